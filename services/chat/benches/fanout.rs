//! Fan-out of one message to a 1,000-member group through the chat service: sequencing, the
//! durable append, serializing the frame once, and handing it to 1,000 connection queues.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_api::{Caller, ChatApi, CreateChat, SendRequest, UserId};
use chat_bus::{Bus, BusEvent, LocalBus, Topic};
use chat_presence::LocalPresence;
use chat_protocol::ChatKind;
use chat_push::LocalPushQueue;
use chat_service::{ChatConfig, ChatService, OwnsEverything};
use chat_store::{MessageStore, SqliteConfig, SqliteStore, Synchronous};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::mpsc;

const MEMBERS: usize = 1000;

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = SqliteConfig::new(dir.path().join("bench.db"));
    // The fsync is measured by the append bench; here it would only hide the fan-out.
    config.synchronous = Synchronous::Normal;
    let store: Arc<dyn MessageStore> = Arc::new(SqliteStore::open(&config).unwrap());
    let bus = Arc::new(LocalBus::new());
    // One bounded queue per member, as a gateway holds one per connection.
    let mut queues = HashMap::new();
    let mut receivers = Vec::new();
    for i in 0..MEMBERS {
        let (tx, rx) = mpsc::channel::<bytes::Bytes>(1 << 16);
        let topic = Topic::User(UserId::from(format!("u{i}")));
        bus.subscribe(&topic);
        queues.insert(topic, tx);
        receivers.push(rx);
    }
    bus.set_handler(Arc::new(move |topic, event| {
        if let (Some(queue), BusEvent::Frame(message)) = (queues.get(topic), event) {
            let _ = queue.try_send(message.frame.clone());
        }
    }));
    let (chat, chat_id) = runtime.block_on(async {
        let presence = Arc::new(LocalPresence::new(store.clone(), bus.clone()));
        let chat_config = ChatConfig {
            large_group_members: MEMBERS * 2,
            ..ChatConfig::default()
        };
        let chat = ChatService::start(
            chat_config,
            store.clone(),
            bus.clone(),
            presence,
            Arc::new(LocalPushQueue::new(1)),
            Arc::new(OwnsEverything),
        );
        let owner = Caller {
            user_id: "u0".into(),
            device_id: "d".into(),
            session: None,
        };
        let members = (1..MEMBERS)
            .map(|i| UserId::from(format!("u{i}")))
            .collect();
        let created = chat
            .create_chat(
                &owner,
                CreateChat {
                    kind: ChatKind::Group,
                    title: None,
                    members,
                },
            )
            .await
            .unwrap();
        (chat, created.chat.chat_id)
    });
    let sender = Caller {
        user_id: "u0".into(),
        device_id: "d".into(),
        session: None,
    };
    let mut group = c.benchmark_group("fanout");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(MEMBERS as u64));
    let mut n = 0u64;
    group.bench_function("group_1000_members", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    let request = SendRequest {
                        chat_id: chat_id.clone(),
                        client_msg_id: format!("c{n}"),
                        body: "hello everyone".into(),
                    };
                    chat.send(&sender, request).await.unwrap();
                }
                let elapsed = started.elapsed();
                for rx in &mut receivers {
                    while rx.try_recv().is_ok() {}
                }
                elapsed
            })
        })
    });
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
