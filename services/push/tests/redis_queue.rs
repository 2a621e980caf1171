//! The Redis Stream push queue against a real redis-server: claim and ack, re-claim of a
//! dead worker's job, dead letters, and surviving a worker restart.

use chat_protocol::ids::DeviceId;
use std::time::Duration;

use chat_push::{
    Enqueued, PushJob, PushQueue, QueueBounds, QueueError, RedisPushQueue, RedisQueueConfig,
    SendRight,
};
use chat_test_redis::RedisServer;

fn job(seq: u64) -> PushJob {
    in_chat(&format!("c{seq}"), seq)
}

fn in_chat(chat: &str, seq: u64) -> PushJob {
    PushJob {
        user_id: "bob".into(),
        chat_id: chat.into(),
        seq,
        sender_id: "alice".into(),
        body: "hi".into(),
        attempt: 0,
        devices: None,
    }
}

async fn queue(redis: &RedisServer, consumer: &str, reclaim_after: Duration) -> RedisPushQueue {
    let mut config = RedisQueueConfig::new(&redis.url(), consumer);
    config.reclaim_after = reclaim_after;
    RedisPushQueue::connect(config).await.unwrap()
}

const WAIT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn jobs_are_claimed_once_and_acked() {
    let redis = RedisServer::start().await;
    let a = queue(&redis, "worker-a", Duration::from_secs(60)).await;
    let b = queue(&redis, "worker-b", Duration::from_secs(60)).await;
    a.enqueue(job(1)).await.unwrap();
    a.enqueue(job(2)).await.unwrap();
    let first = a.claim(WAIT).await.unwrap().unwrap();
    let second = b.claim(WAIT).await.unwrap().unwrap();
    assert_eq!(
        (first.job.seq, second.job.seq),
        (1, 2),
        "each job goes to one worker, in order"
    );
    assert!(b.claim(WAIT).await.unwrap().is_none());
    a.ack(&first).await.unwrap();
    b.ack(&second).await.unwrap();
    assert_eq!(a.pending_len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_chat_burst_is_one_job_and_a_user_has_a_bounded_share() {
    let redis = RedisServer::start().await;
    let mut config = RedisQueueConfig::new(&redis.url(), "w");
    config.bounds = QueueBounds {
        max_pending_per_user: 2,
    };
    let q = RedisPushQueue::connect(config).await.unwrap();
    assert_eq!(q.enqueue(in_chat("a", 1)).await.unwrap(), Enqueued::Queued);
    for seq in 2..30 {
        assert_eq!(
            q.enqueue(in_chat("a", seq)).await.unwrap(),
            Enqueued::Collapsed
        );
    }
    assert_eq!(q.enqueue(in_chat("b", 1)).await.unwrap(), Enqueued::Queued);
    assert!(
        matches!(q.enqueue(in_chat("c", 1)).await, Err(QueueError::UserFull)),
        "a third chat is over the user's share"
    );
    assert_eq!(q.pending_len().await.unwrap(), 2);
    // Claiming ends the burst and frees the user's share.
    let first = q.claim(WAIT).await.unwrap().unwrap();
    assert_eq!((first.job.chat_id.as_str(), first.job.seq), ("a", 1));
    assert_eq!(q.enqueue(in_chat("a", 31)).await.unwrap(), Enqueued::Queued);
    assert!(matches!(
        q.enqueue(in_chat("c", 2)).await,
        Err(QueueError::UserFull)
    ));
}

#[tokio::test]
async fn a_dead_workers_job_is_reclaimed_not_lost() {
    let redis = RedisServer::start().await;
    let reclaim_after = Duration::from_millis(400);
    {
        let dying = queue(&redis, "worker-dying", reclaim_after).await;
        dying.enqueue(job(7)).await.unwrap();
        let claimed = dying.claim(WAIT).await.unwrap().unwrap();
        assert_eq!(claimed.job.seq, 7);
        // Dropped without ack: the worker died mid-job.
    }
    let survivor = queue(&redis, "worker-survivor", reclaim_after).await;
    assert!(
        survivor
            .claim(Duration::from_millis(50))
            .await
            .unwrap()
            .is_none(),
        "not before the timeout"
    );
    tokio::time::sleep(reclaim_after).await;
    let reclaimed = survivor.claim(WAIT).await.unwrap().expect("re-claimed");
    assert_eq!(reclaimed.job.seq, 7);
    survivor.ack(&reclaimed).await.unwrap();
    tokio::time::sleep(reclaim_after).await;
    assert!(
        survivor.claim(WAIT).await.unwrap().is_none(),
        "acked jobs never come back"
    );
}

#[tokio::test]
async fn dead_letters_keep_the_job_and_delivery_marks_survive_a_reclaim() {
    let redis = RedisServer::start().await;
    let q = queue(&redis, "w", Duration::from_secs(60)).await;
    q.enqueue(job(3)).await.unwrap();
    let claimed = q.claim(WAIT).await.unwrap().unwrap();
    let parked = PushJob {
        devices: Some(vec!["phone".into()]),
        ..job(3)
    };
    q.dead_letter(&parked, "provider failures").await.unwrap();
    assert_eq!(q.dead_letters().await.unwrap(), vec![parked]);
    // One send right per device and job: taken, it is busy for anyone else; given back
    // undelivered, it can be taken again; delivered, a re-claimed job skips the device.
    let (tablet, hold) = (DeviceId::from("tablet"), Duration::from_secs(30));
    assert_eq!(
        q.begin_send(&claimed, &tablet, hold).await,
        SendRight::Granted
    );
    assert_eq!(q.begin_send(&claimed, &tablet, hold).await, SendRight::Busy);
    q.end_send(&claimed, &tablet, false).await;
    assert_eq!(
        q.begin_send(&claimed, &tablet, hold).await,
        SendRight::Granted
    );
    q.end_send(&claimed, &tablet, true).await;
    assert_eq!(
        q.begin_send(&claimed, &tablet, hold).await,
        SendRight::AlreadyDelivered
    );
    // The right of a worker that died mid-send lapses after its hold.
    let phone = DeviceId::from("phone");
    let short = Duration::from_millis(100);
    assert_eq!(
        q.begin_send(&claimed, &phone, short).await,
        SendRight::Granted
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        q.begin_send(&claimed, &phone, short).await,
        SendRight::Granted
    );
    q.ack(&claimed).await.unwrap();
    assert_eq!(q.pending_len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_kept_claim_is_never_reclaimed_and_a_retry_comes_back_when_due() {
    let redis = RedisServer::start().await;
    let reclaim_after = Duration::from_millis(300);
    let slow = queue(&redis, "slow", reclaim_after).await;
    let other = queue(&redis, "other", reclaim_after).await;
    slow.enqueue(job(4)).await.unwrap();
    let claimed = slow.claim(WAIT).await.unwrap().unwrap();
    // Three re-claim periods while the claim is kept: the other worker never gets it.
    for _ in 0..9 {
        tokio::time::sleep(reclaim_after / 3).await;
        assert!(slow.keep_claim(&claimed).await.unwrap());
        assert!(other
            .claim(Duration::from_millis(1))
            .await
            .unwrap()
            .is_none());
    }
    // Left alone, it is re-claimed; the old holder learns it lost the claim.
    tokio::time::sleep(reclaim_after * 2).await;
    let taken = other.claim(WAIT).await.unwrap().expect("re-claimed");
    assert_eq!(taken.receipt, claimed.receipt);
    assert!(!slow.keep_claim(&claimed).await.unwrap());
    other.ack(&taken).await.unwrap();

    // A retry waits for its time, then comes back once, narrowed to its devices.
    let again = PushJob {
        attempt: 1,
        devices: Some(vec!["phone".into()]),
        ..job(4)
    };
    slow.retry(again.clone(), Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(slow.delayed_len().await.unwrap(), 1);
    assert!(
        other
            .claim(Duration::from_millis(50))
            .await
            .unwrap()
            .is_none(),
        "not yet due"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let due = other.claim(WAIT).await.unwrap().expect("due retry");
    assert_eq!(due.job, again);
    assert_eq!(slow.delayed_len().await.unwrap(), 0);
    other.ack(&due).await.unwrap();
    assert!(other
        .claim(Duration::from_millis(50))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_queue_recreates_its_group_after_redis_loses_it() {
    let mut redis = RedisServer::start().await;
    let q = queue(&redis, "w", Duration::from_secs(60)).await;
    redis.restart().await;
    // The first claim after the loss recreates the group; enqueue and claim work again.
    let mut delivered = None;
    for _ in 0..40 {
        let _ = q.enqueue(job(9)).await;
        if let Ok(Some(claimed)) = q.claim(WAIT).await {
            delivered = Some(claimed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered.expect("queue recovered").job.seq, 9);
}

/// Jobs that keep failing at the front of the pending list (never acked, idle again before
/// the next claim) do not hide the jobs behind them: re-claims go round the list.
#[tokio::test]
async fn reclaims_go_round_the_pending_list() {
    let redis = RedisServer::start().await;
    let reclaim_after = Duration::from_millis(100);
    let dying = queue(&redis, "worker-dying", reclaim_after).await;
    for seq in 1..=15 {
        dying.enqueue(job(seq)).await.unwrap();
    }
    for _ in 1..=15 {
        assert!(dying.claim(WAIT).await.unwrap().is_some());
    }
    drop(dying);
    let survivor = queue(&redis, "worker-survivor", reclaim_after).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        // Slower than `reclaim_after`: every job claimed so far is idle again, as a job
        // that keeps failing would be. None is acked.
        tokio::time::sleep(reclaim_after + Duration::from_millis(50)).await;
        if let Some(claimed) = survivor.claim(Duration::from_millis(10)).await.unwrap() {
            seen.insert(claimed.job.seq);
        }
    }
    assert_eq!(seen.len(), 15, "every pending job re-claimed: {seen:?}");
}

/// An entry that is not a job (written by something else, or an older format) is removed
/// when claimed, instead of being handed out again and again.
#[tokio::test]
async fn an_undecodable_entry_is_removed_not_claimed_for_ever() {
    let redis = RedisServer::start().await;
    let q = queue(&redis, "worker", Duration::from_millis(100)).await;
    q.enqueue(job(1)).await.unwrap();
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("chat:push:jobs")
        .arg("*")
        .arg("job")
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let first = q.claim(WAIT).await.unwrap().expect("the job");
    q.ack(&first).await.unwrap();
    assert!(
        q.claim(WAIT).await.unwrap().is_none(),
        "the undecodable entry is no job"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        q.claim(WAIT).await.unwrap().is_none(),
        "nor is it re-claimed"
    );
    let left: u64 = redis::cmd("XLEN")
        .arg("chat:push:jobs")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "removed from the stream");
}
