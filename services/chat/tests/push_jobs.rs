//! The chat service queues a push job for each recipient with no device online, and none
//! for the sender or for recipients who are online.

use std::sync::Arc;
use std::time::Duration;

use chat_api::{Caller, ChatApi, ChatId, CreateChat, SendRequest, UserId};
use chat_bus::LocalBus;
use chat_presence::{LocalPresence, SessionTracker};
use chat_protocol::ChatKind;
use chat_push::{LocalPushQueue, PushQueue};
use chat_service::{ChatConfig, ChatService, OwnsEverything};
use chat_store::{MessageStore, SqliteConfig, SqliteStore};
use uuid::Uuid;

fn caller(user: &str) -> Caller {
    Caller {
        user_id: user.into(),
        device_id: "phone".into(),
        session: None,
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    chat: Arc<ChatService>,
    presence: Arc<LocalPresence>,
    queue: Arc<LocalPushQueue>,
}

fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("chat.db"))).unwrap());
    let bus = Arc::new(LocalBus::new());
    let presence = Arc::new(LocalPresence::new(store.clone(), bus.clone()));
    let queue = Arc::new(LocalPushQueue::new(100));
    let chat = ChatService::start(
        ChatConfig::default(),
        store,
        bus,
        presence.clone(),
        queue.clone(),
        Arc::new(OwnsEverything),
    );
    Setup {
        _dir: dir,
        chat,
        presence,
        queue,
    }
}

async fn group(chat: &ChatService, creator: &str, members: &[&str]) -> ChatId {
    let group = CreateChat {
        kind: ChatKind::Group,
        title: Some("g".into()),
        members: members.iter().map(|m| UserId::from(*m)).collect(),
    };
    chat.create_chat(&caller(creator), group)
        .await
        .unwrap()
        .chat
        .chat_id
}

fn send(chat_id: &ChatId, client_msg_id: &str) -> SendRequest {
    SendRequest {
        chat_id: chat_id.clone(),
        client_msg_id: client_msg_id.into(),
        body: "hello".into(),
    }
}

/// Every job queued within `wait`, as (user, chat).
async fn claimed(queue: &LocalPushQueue, wait: Duration) -> Vec<(UserId, ChatId)> {
    let mut jobs = Vec::new();
    while let Some(claimed) = queue.claim(wait).await.unwrap() {
        jobs.push((claimed.job.user_id, claimed.job.chat_id));
    }
    jobs.sort();
    jobs
}

#[tokio::test]
async fn offline_recipients_get_push_jobs_online_ones_do_not() {
    let setup = start();
    let (chat, presence, queue) = (&setup.chat, &setup.presence, &setup.queue);
    let created_id = group(chat, "alice", &["bob", "carol"]).await;
    presence
        .connected(&UserId::from("carol"), Uuid::new_v4())
        .await;

    let sent = chat
        .send(&caller("alice"), send(&created_id, "c1"))
        .await
        .unwrap();

    let job = queue
        .claim(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a job for bob")
        .job;
    assert_eq!(job.user_id, "bob");
    assert_eq!(job.chat_id, created_id);
    assert_eq!(job.seq, sent.seq);
    assert_eq!(job.sender_id, "alice");
    assert_eq!(job.body, "hello");
    // Nothing for alice (the sender) nor carol (online).
    assert!(queue
        .claim(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
}

/// Sends made durable together are looked up together: each recipient's presence once for
/// the batch, but the sender of one message is still a recipient of the others, and a
/// recipient of two messages gets a job for each.
#[tokio::test]
async fn a_batch_of_sends_queues_a_job_per_offline_recipient_of_each_message() {
    let setup = start();
    let (chat, presence, queue) = (&setup.chat, &setup.presence, &setup.queue);
    let first = group(chat, "alice", &["bob", "carol", "dave"]).await;
    let second = group(chat, "bob", &["alice", "dave"]).await;
    presence
        .connected(&UserId::from("carol"), Uuid::new_v4())
        .await;

    let (alice, bob) = (caller("alice"), caller("bob"));
    let (a, b) = tokio::join!(
        chat.send(&alice, send(&first, "a1")),
        chat.send(&bob, send(&second, "b1")),
    );
    a.unwrap();
    b.unwrap();

    // Dave, offline in both chats, gets a job for each message.
    let mut expected = vec![
        (UserId::from("bob"), first.clone()),
        (UserId::from("dave"), first.clone()),
        (UserId::from("alice"), second.clone()),
        (UserId::from("dave"), second.clone()),
    ];
    expected.sort();
    assert_eq!(claimed(queue, Duration::from_millis(500)).await, expected);
}
