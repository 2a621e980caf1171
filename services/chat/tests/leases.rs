//! Partition leases against a real Redis: instances split the partitions, never serve the
//! same partition at once, take over a dead instance's partitions, take a cleanly handed
//! over one at once, and survive a Redis restart without overlap, keeping what they held.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_service::lease::{LeaseConfig, PartitionLeases};
use chat_service::{AppendBarrier, Ownership};
use chat_test_redis::RedisServer;
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
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
    let (leases, task, _stop) = started(redis, id, TTL, takeover_wait).await;
    (leases, task)
}

/// A chat service whose appends have all finished, as far as handovers can tell.
struct Settled;

impl AppendBarrier for Settled {
    fn settled(&self) -> BoxFuture<'static, bool> {
        Box::pin(async { true })
    }
}

/// A lease manager with a barrier; cancelling the token is a clean shutdown.
async fn started(
    redis: &RedisServer,
    id: &str,
    ttl: Duration,
    takeover_wait: Duration,
) -> (
    Arc<PartitionLeases>,
    tokio::task::JoinHandle<()>,
    CancellationToken,
) {
    let config = LeaseConfig {
        instance_id: id.into(),
        advertise_url: format!("http://{id}"),
        partitions: PARTITIONS,
        ttl,
        takeover_wait,
    };
    let leases = Arc::new(
        PartitionLeases::connect(&redis.url(), config)
            .await
            .unwrap(),
    );
    leases.set_barrier(Arc::new(Settled));
    let runner = leases.clone();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move { runner.run(shutdown).await });
    (leases, task, stop)
}

/// Waits until `a` and `b` together serve every partition, each some.
async fn settle(a: &PartitionLeases, b: &PartitionLeases, patience: Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    while a.serving().is_empty()
        || b.serving().is_empty()
        || a.serving().len() + b.serving().len() < PARTITIONS as usize
    {
        assert!(tokio::time::Instant::now() < deadline, "never balanced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A chat id that falls in `partition`.
fn chat_in(partition: u32) -> chat_api::ChatId {
    (0..)
        .map(|i| chat_api::ChatId::from(format!("chat-{i}")))
        .find(|c| chat_rpc::placement::partition_of(c, PARTITIONS) == partition)
        .expect("some chat id hashes there")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_handover_is_served_at_once_even_where_takeovers_wait() {
    let redis = RedisServer::start().await;
    // A long TTL, so neither the ticker (a third of it) nor a takeover wait (all of it)
    // can explain a quick handover: only the release notice and the clean marker can.
    let ttl = Duration::from_secs(6);
    let (a, _a_task, _a_stop) = started(&redis, "a", ttl, ttl).await;
    let (b, b_task, b_stop) = started(&redis, "b", ttl, ttl).await;
    settle(&a, &b, ttl * 4).await;
    let handed = b.serving();

    let stopped = tokio::time::Instant::now();
    b_stop.cancel();
    b_task.await.unwrap();
    assert!(b.serving().is_empty(), "b serves nothing after leaving");
    loop {
        let served = a.serving();
        if handed.iter().all(|p| served.contains(p)) {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(1),
            "a did not take b's partitions at once: {served:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("handed over in {:?}", stopped.elapsed());
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let instances: Vec<String> = conn.zrange("chat:instances", 0, -1).await.unwrap();
    assert_eq!(instances, vec!["a".to_owned()], "b left the registry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_owner_died_is_not_served_before_the_takeover_wait() {
    let redis = RedisServer::start().await;
    let ttl = Duration::from_millis(600);
    let wait = Duration::from_secs(3);
    let (a, _a_task, _a_stop) = started(&redis, "a", ttl, wait).await;
    let (b, b_task, _b_stop) = started(&redis, "b", ttl, wait).await;
    settle(&a, &b, wait * 4).await;
    let orphaned = b.serving();
    b_task.abort();
    let killed = tokio::time::Instant::now();
    // b's keys expire within a TTL; a takes them and must then wait the full takeover
    // wait, since b may have died with an append in flight.
    tokio::time::sleep(ttl + ttl / 2).await;
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut taken = 0;
    for p in &orphaned {
        let lease: Option<String> = conn.get(format!("chat:lease:{p}")).await.unwrap();
        taken += lease.is_some_and(|l| l.starts_with("a:")) as usize;
    }
    assert_eq!(taken, orphaned.len(), "a holds b's leases by now");
    while killed.elapsed() < wait {
        let served = a.serving();
        assert!(
            orphaned.iter().all(|p| !served.contains(p)),
            "served {served:?} {:?} after the kill, before the wait",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_loses_its_data_owners_keep_their_partitions_and_their_order() {
    let mut redis = RedisServer::start().await;
    // Takeovers wait: the mode where a lost lease must not hand the chat to anyone else.
    let ttl = Duration::from_secs(2);
    let (a, _a_task, _a_stop) = started(&redis, "a", ttl, ttl).await;
    let (b, _b_task, _b_stop) = started(&redis, "b", ttl, ttl).await;
    settle(&a, &b, ttl * 4).await;
    let (held_a, held_b) = (a.serving(), b.serving());
    let chat = chat_in(held_a[0]);
    let generation = a.owns(&chat).expect("a serves its partition");

    redis.restart().await;
    let restarted = tokio::time::Instant::now();
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = conn.keys("chat:lease:*").await.unwrap();
    assert!(
        keys.len() < PARTITIONS as usize,
        "Redis forgot the leases: {keys:?}"
    );
    // Each owner sets its own leases again; nobody serves what another held.
    loop {
        let keys: Vec<String> = conn.keys("chat:lease:*").await.unwrap();
        let (sa, sb) = (a.serving(), b.serving());
        assert!(sa.iter().all(|p| !held_b.contains(p)), "a took b's: {sa:?}");
        assert!(sb.iter().all(|p| !held_a.contains(p)), "b took a's: {sb:?}");
        if keys.len() == PARTITIONS as usize {
            break;
        }
        assert!(
            restarted.elapsed() < ttl * 2,
            "leases not set again: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "leases set again {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(a.serving(), held_a);
    assert_eq!(b.serving(), held_b);
    assert_eq!(
        a.owns(&chat),
        Some(generation),
        "same generation: the order in memory stays valid"
    );
    let partitions: Option<u32> = conn.get("chat:partitions").await.unwrap();
    assert_eq!(
        partitions,
        Some(PARTITIONS),
        "the partition count is written again"
    );
}
