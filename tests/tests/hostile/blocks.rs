//! A user who blocks everyone they can think of: the list a server keeps (and returns
//! whole) stops at `CHAT_MAX_BLOCKS`, the refusal is counted, and the server stays up.

use chat_testkit::{binary, token, ChatdProcess};

use crate::helpers::refusals;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_list_is_bounded() {
    let data = tempfile::tempdir().unwrap();
    let chatd = ChatdProcess::spawn(
        &binary("chatd"),
        data.path(),
        &["--max-blocks", "5", "--limit-members", "off"],
    )
    .await;
    let http = chatd.http();
    let mallory = token("mallory", None);
    let mut answers = Vec::new();
    for i in 0..50 {
        answers.push(
            http.put(&format!("/v1/blocks/victim{i}"), Some(&mallory))
                .await,
        );
    }
    assert_eq!(refusals(&answers), 45, "five blocks kept, the rest refused");
    let (_, list) = http.get("/v1/blocks", Some(&mallory)).await;
    assert_eq!(list["user_ids"].as_array().unwrap().len(), 5);
    // Blocking someone already blocked is still fine at the cap; unblocking frees a slot.
    assert_eq!(http.put("/v1/blocks/victim0", Some(&mallory)).await.0, 204);
    assert_eq!(
        http.delete("/v1/blocks/victim0", Some(&mallory)).await.0,
        204
    );
    assert_eq!(http.put("/v1/blocks/newcomer", Some(&mallory)).await.0, 204);
    let metrics = chatd.metrics().await;
    assert!(
        metrics.contains(r#"chat_limit_hits_total{limit="blocks_per_user"} 45"#),
        "the refusals are counted"
    );
}
