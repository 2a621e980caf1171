//! The store conformance suite against ScyllaDB/Cassandra, when `CHAT_SCYLLA_NODES`
//! (host:port,...) names a cluster; otherwise every test reports a visible SKIP. Each test
//! gets its own keyspace (replication factor 1) and buckets of 7 messages, so partition
//! boundaries are crossed constantly.

use std::io::Write;
use std::sync::Arc;

use chat_store::{MessageStore, ScyllaConfig, ScyllaStore, ScyllaTls};

async fn scylla_store() -> Option<Arc<dyn MessageStore>> {
    let Ok(nodes) = std::env::var("CHAT_SCYLLA_NODES") else {
        // Written past the test harness's capture, so the skip shows in every run.
        let _ = writeln!(std::io::stderr(), "SKIP scylla: CHAT_SCYLLA_NODES not set");
        return None;
    };
    let keyspace = format!(
        "chat_test_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut config = ScyllaConfig::new(nodes.split(',').map(str::to_owned).collect(), &keyspace);
    config.replication_factor = 1;
    config.bucket_size = 7;
    // The same settings as the services, for a cluster with authentication or TLS on.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    config.credentials = env("CHAT_SCYLLA_USERNAME").zip(env("CHAT_SCYLLA_PASSWORD"));
    let ca_file = env("CHAT_SCYLLA_CA_FILE").map(Into::into);
    if env("CHAT_SCYLLA_TLS").is_some_and(|v| v == "true") || ca_file.is_some() {
        config.tls = Some(ScyllaTls { ca_file });
    }
    let store = ScyllaStore::connect(config)
        .await
        .expect("connect to the Scylla cluster in CHAT_SCYLLA_NODES");
    Some(Arc::new(store))
}

chat_store::conformance_tests!(scylla_store());
