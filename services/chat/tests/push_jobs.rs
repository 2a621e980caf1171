//! The chat service queues a push job for each recipient with no device online, and none
//! for the sender or for recipients who are online.

use std::sync::Arc;
use std::time::Duration;

use chat_api::{Caller, ChatApi, CreateChat, SendRequest, UserId};
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

#[tokio::test]
async fn offline_recipients_get_push_jobs_online_ones_do_not() {
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

    let group = CreateChat {
        kind: ChatKind::Group,
        title: Some("g".into()),
        members: vec!["bob".into(), "carol".into()],
    };
    let created = chat
        .create_chat(&caller("alice"), group)
        .await
        .unwrap()
        .chat;
    presence
        .connected(&UserId::from("carol"), Uuid::new_v4())
        .await;

    let request = SendRequest {
        chat_id: created.chat_id.clone(),
        client_msg_id: "c1".into(),
        body: "hello".into(),
    };
    let sent = chat.send(&caller("alice"), request).await.unwrap();

    let job = queue
        .claim(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a job for bob")
        .job;
    assert_eq!(job.user_id, "bob");
    assert_eq!(job.chat_id, created.chat_id);
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
