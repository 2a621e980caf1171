//! What the chatctl tests share: running `chatctl bench` and reading its JSON report.

use chat_testkit::TEST_SECRET;

/// Runs `chatctl bench SCENARIO_ARGS --url URL --duration 1s --json`, plus `extra`;
/// returns the report, failing the test if the command fails.
pub async fn bench_report(url: &str, scenario_args: &[&str], extra: &[&str]) -> serde_json::Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatctl"))
        .arg("bench")
        .args(scenario_args)
        .args(["--url", url, "--duration", "1s", "--json"])
        .args(extra)
        .env("CHAT_JWT_SECRET", TEST_SECRET)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON report on stdout")
}
