//! Several processes opening one fresh database at the same moment (chat services
//! starting together): every one opens it, and the schema is applied once.

use std::sync::{Arc, Barrier};

use chat_store::{SqliteConfig, SqliteStore};

#[test]
fn stores_opening_a_fresh_database_at_once_all_succeed() {
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let start = Arc::new(Barrier::new(4));
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    SqliteStore::open(&SqliteConfig::new(path)).map(|_| ())
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().unwrap();
            assert!(opened.is_ok(), "round {round}: {:?}", opened.err());
        }
    }
}
