//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' code on the
//! stable toolchain, so every input the fuzzer found interesting stays a regression test.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    inputs
}

#[test]
fn client_frame_corpus_decodes_without_panic() {
    for input in corpus("client_frame") {
        chat_protocol::fuzzing::client_frame(&input);
    }
}

#[test]
fn rest_query_corpus_parses_without_panic() {
    for input in corpus("rest_query") {
        chat_protocol::fuzzing::rest_query(&input);
    }
}
