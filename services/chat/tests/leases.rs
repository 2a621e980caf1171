//! Partition leases against a real Redis: instances split the partitions, never serve the
//! same partition at once, take over a dead instance's partitions, and survive a Redis
//! restart without overlap.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_service::lease::{LeaseConfig, PartitionLeases};
use chat_test_redis::RedisServer;
use tokio_util::sync::CancellationToken;

const PARTITIONS: u32 = 8;
const TTL: Duration = Duration::from_millis(600);

/// A running lease manager that waits a TTL before serving what it takes (the mode for a
/// store that cannot fence appends, which must never have two owners at once); aborting
/// its task is a crash (no release).
async fn instance(
    redis: &RedisServer,
    id: &str,
) -> (Arc<PartitionLeases>, tokio::task::JoinHandle<()>) {
    instance_waiting(redis, id, TTL).await
}

async fn instance_waiting(
    redis: &RedisServer,
    id: &str,
    takeover_wait: Duration,
) -> (Arc<PartitionLeases>, tokio::task::JoinHandle<()>) {
    let config = LeaseConfig {
        instance_id: id.into(),
        advertise_url: format!("http://{id}"),
        partitions: PARTITIONS,
        ttl: TTL,
        takeover_wait,
    };
    let leases = Arc::new(
        PartitionLeases::connect(&redis.url(), config)
            .await
            .unwrap(),
    );
    let runner = leases.clone();
    let task = tokio::spawn(async move { runner.run(CancellationToken::new()).await });
    (leases, task)
}

/// Samples both instances for `duration`, failing on any overlap; returns the last view.
async fn watch(
    a: &PartitionLeases,
    b: &PartitionLeases,
    duration: Duration,
) -> (Vec<u32>, Vec<u32>) {
    let deadline = tokio::time::Instant::now() + duration;
    loop {
        let (sa, sb) = (a.serving(), b.serving());
        let overlap: HashSet<_> = sa.iter().filter(|p| sb.contains(p)).collect();
        assert!(overlap.is_empty(), "both serve {overlap:?}");
        if tokio::time::Instant::now() >= deadline {
            return (sa, sb);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_split_partitions_and_take_over_from_the_dead() {
    let redis = RedisServer::start().await;
    let (a, _stop_a) = instance(&redis, "a").await;
    let (b, b_task) = instance(&redis, "b").await;
    let (sa, sb) = watch(&a, &b, TTL * 8).await;
    assert_eq!(
        sa.len() + sb.len(),
        PARTITIONS as usize,
        "every partition served: {sa:?} {sb:?}"
    );
    assert_eq!(sa.len(), sb.len(), "a fair split: {sa:?} {sb:?}");

    // b dies without releasing (no clean shutdown): a serves everything after expiry + one TTL.
    b_task.abort();
    let (sa, _) = watch(&a, &b, Duration::from_millis(10)).await;
    assert!(sa.len() < PARTITIONS as usize);
    let mut all = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if a.serving().len() == PARTITIONS as usize {
            all = true;
            break;
        }
    }
    assert!(all, "a took over b's partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_never_makes_two_owners() {
    let mut redis = RedisServer::start().await;
    let (a, _sa) = instance(&redis, "a").await;
    let (b, _sb) = instance(&redis, "b").await;
    watch(&a, &b, TTL * 8).await;
    redis.restart().await;
    // Through the restart and the re-acquisition that follows, no partition has two owners.
    let (sa, sb) = watch(&a, &b, TTL * 10).await;
    assert_eq!(
        sa.len() + sb.len(),
        PARTITIONS as usize,
        "served again after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_fenced_store_a_dead_owners_partitions_are_served_within_a_ttl_and_a_third() {
    let redis = RedisServer::start().await;
    let (a, _keep_a) = instance_waiting(&redis, "a", Duration::ZERO).await;
    let (b, b_task) = instance_waiting(&redis, "b", Duration::ZERO).await;
    // Settle: both hold a share, together all.
    let deadline = tokio::time::Instant::now() + TTL * 20;
    while b.serving().is_empty() || a.serving().len() + b.serving().len() < PARTITIONS as usize {
        assert!(tokio::time::Instant::now() < deadline, "never balanced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let orphaned = b.serving();
    assert!(!orphaned.is_empty());
    let killed = tokio::time::Instant::now();
    b_task.abort();
    loop {
        let served = a.serving();
        if orphaned.iter().all(|p| served.contains(p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = killed.elapsed();
    // The key expires within a TTL of the last renewal, and the survivor looks every
    // third of one; no blind wait on top.
    assert!(
        took <= TTL + TTL / 3 + Duration::from_millis(200),
        "took {took:?}"
    );
}
