//! The store conformance suite against the embedded SQLite store.

use std::sync::Arc;

use chat_store::{MessageStore, SqliteConfig, SqliteStore};

async fn sqlite_store() -> Option<Arc<dyn MessageStore>> {
    // Each test gets its own directory; it is leaked on purpose so the file outlives the store.
    let dir = tempfile::tempdir().unwrap().keep();
    let store = SqliteStore::open(&SqliteConfig::new(dir.join("chat.db"))).unwrap();
    Some(Arc::new(store))
}

chat_store::conformance_tests!(sqlite_store());
