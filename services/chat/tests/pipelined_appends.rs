//! The sequencer keeps several appends in flight. When one fails, the batches sequenced
//! after it must not leave a gap: every send is answered (acked or refused), retries with
//! the same client_msg_id converge, and the log ends up gap-free with each message once.
//! And the state of a batch's cold chats is read several chats at a time, but only for
//! chats the sender belongs to.

mod flaky_store;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chat_api::{ChatApi, CreateChat, SendRequest};
use chat_protocol::ids::ChatId;
use chat_protocol::ChatKind;
use chat_service::ChatService;
use chat_store::{MessageStore, Page};
use flaky_store::{caller, spawn_send, start, FlakyStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_leaves_no_gap_behind_the_batches_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FlakyStore::open(dir.path());
    let chat = start(&store);
    let group = CreateChat {
        kind: ChatKind::Group,
        title: Some("g".into()),
        members: vec!["bob".into()],
    };
    let chat_id = chat
        .create_chat(&caller("alice"), group)
        .await
        .unwrap()
        .chat
        .chat_id;
    let send = |chat: Arc<ChatService>, client_msg_id: String| {
        let request = SendRequest {
            chat_id: chat_id.clone(),
            client_msg_id,
            body: "hi".into(),
        };
        async move { chat.send(&caller("alice"), request).await }
    };
    send(chat.clone(), "first".into()).await.unwrap();

    // The next append fails after a while; sends keep coming meanwhile, in small waves,
    // so several batches are sequenced behind it.
    store.fail_next.store(true, Ordering::SeqCst);
    let mut waves = Vec::new();
    for wave in 0..20 {
        let sends: Vec<_> = (0..10)
            .map(|i| tokio::spawn(send(chat.clone(), format!("w{wave}-{i}"))))
            .collect();
        waves.push(sends);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut refused: Vec<String> = Vec::new();
    for (wave, sends) in waves.into_iter().enumerate() {
        for (i, sent) in sends.into_iter().enumerate() {
            let id = format!("w{wave}-{i}");
            match sent.await.unwrap() {
                Ok(outcome) => {
                    acked.insert(id, outcome.seq);
                }
                Err(_) => refused.push(id),
            }
        }
    }
    assert!(
        store.most_appending.load(Ordering::SeqCst) >= 2,
        "appends were never pipelined"
    );
    assert!(!refused.is_empty(), "the injected failure hit no send");
    // Clients retry what was refused, with the same ids, until it is acked.
    for _ in 0..5 {
        let retry = std::mem::take(&mut refused);
        for id in retry {
            match send(chat.clone(), id.clone()).await {
                Ok(outcome) => {
                    acked.insert(id, outcome.seq);
                }
                Err(_) => refused.push(id),
            }
        }
    }
    assert!(
        refused.is_empty(),
        "still refused after retries: {refused:?}"
    );
    // A repeat of an acked send answers with its seq.
    let (id, seq) = acked.iter().next().map(|(k, v)| (k.clone(), *v)).unwrap();
    assert_eq!(send(chat.clone(), id).await.unwrap().seq, seq);

    let stored = store
        .messages_after(&chat_id, 0, Page::count(1000))
        .await
        .unwrap();
    let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=201).collect::<Vec<_>>(),
        "gap or duplicate in the log"
    );
    let ids: HashSet<&str> = stored.iter().map(|m| m.client_msg_id.as_str()).collect();
    assert_eq!(ids.len(), 201, "a message stored twice");
    for m in &stored[1..] {
        assert_eq!(
            acked[&m.client_msg_id], m.seq,
            "{} acked at another seq",
            m.client_msg_id
        );
    }
}

/// Sixteen direct chats of alice's, created through `chat`.
async fn sixteen_chats(chat: &ChatService) -> Vec<ChatId> {
    let mut chats = Vec::new();
    for i in 0..16 {
        let direct = CreateChat {
            kind: ChatKind::Direct,
            title: None,
            members: vec![format!("friend{i}").as_str().into()],
        };
        let created = chat.create_chat(&caller("alice"), direct).await.unwrap();
        chats.push(created.chat.chat_id);
    }
    chats
}

/// A store slow to read order state when asked, a service over it and sixteen of alice's
/// chats (the directory must outlive them).
async fn sixteen_chats_on_a_flaky_store() -> (
    tempfile::TempDir,
    Arc<FlakyStore>,
    Arc<ChatService>,
    Vec<ChatId>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = FlakyStore::open(dir.path());
    let chat = start(&store);
    let chats = sixteen_chats(&chat).await;
    (dir, store, chat, chats)
}

/// One send from `user` to each chat, all at once; their answers, in chat order.
async fn send_to_each(
    chat: &Arc<ChatService>,
    user: &str,
    chats: &[ChatId],
) -> Vec<Result<u64, String>> {
    let sends: Vec<_> = chats
        .iter()
        .map(|chat_id| spawn_send(chat, user, chat_id, "first"))
        .collect();
    let mut answers = Vec::new();
    for sent in sends {
        answers.push(
            sent.await
                .unwrap()
                .map(|o| o.seq)
                .map_err(|e| format!("{e:?}")),
        );
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_chats_of_a_batch_are_read_several_at_a_time() {
    let (_dir, store, chat, chats) = sixteen_chats_on_a_flaky_store().await;
    store.slow_state_reads.store(true, Ordering::SeqCst);

    // The first send may make a batch alone; the rest queue behind its 20 ms read and are
    // sequenced together, their chats all cold.
    let answers = send_to_each(&chat, "alice", &chats).await;
    assert!(answers.iter().all(|a| a == &Ok(1)), "{answers:?}");
    assert_eq!(
        store.state_reads.load(Ordering::SeqCst),
        16,
        "one read a chat"
    );
    let most = store.most_reading_state.load(Ordering::SeqCst);
    assert!(
        most >= 2,
        "state reads never overlapped (at most {most} at once)"
    );
}

/// Sends `user`'s first message to each of `chats` while alice's first send to the cold
/// chat `ahead` waits on its slow state read, so that they queue and make one batch.
async fn behind_a_slow_read(
    chat: &Arc<ChatService>,
    store: &FlakyStore,
    ahead: &ChatId,
    user: &str,
    chats: &[ChatId],
) -> Vec<Result<u64, String>> {
    store.slow_state_reads.store(true, Ordering::SeqCst);
    let first = spawn_send(chat, "alice", ahead, "ahead");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let answers = send_to_each(chat, user, chats).await;
    assert_eq!(first.await.unwrap().unwrap().seq, 1);
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_chats_the_sender_is_not_in_read_no_order_state() {
    let (_dir, store, chat, mut chats) = sixteen_chats_on_a_flaky_store().await;
    let ahead = chats.pop().unwrap();

    let answers = behind_a_slow_read(&chat, &store, &ahead, "mallory", &chats).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_err_and(|e| e.contains("not a member"))),
        "{answers:?}"
    );
    assert_eq!(
        store.state_reads.load(Ordering::SeqCst),
        1,
        "alice's chat only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_chats_that_do_not_exist_read_each_chat_once() {
    let (_dir, store, chat, mut chats) = sixteen_chats_on_a_flaky_store().await;
    let ahead = chats.remove(0);
    let made_up: Vec<ChatId> = (0..16)
        .map(|i| format!("no-such-chat-{i}").as_str().into())
        .collect();
    let before = store.chat_reads.load(Ordering::SeqCst);

    let answers = behind_a_slow_read(&chat, &store, &ahead, "alice", &made_up).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_err_and(|e| e.contains("NotFound"))),
        "{answers:?}"
    );
    // Each made-up chat once (not again when its send is answered), and alice's chat.
    assert_eq!(store.chat_reads.load(Ordering::SeqCst) - before, 17);
}
