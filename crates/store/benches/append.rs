//! Durable appends to the embedded store with 1, 8 and 64 concurrent writers: how far group
//! commit amortizes the fsync. Each writer appends one message at a time and waits for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::Message;
use chat_store::{MessageStore, SqliteConfig, SqliteStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn append(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MessageStore> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path().join("bench.db"))).unwrap());
    let seq = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("durable_append");
    group.measurement_time(Duration::from_secs(5));
    for writers in [1usize, 8, 64] {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::from_parameter(writers),
            &writers,
            |b, &writers| {
                b.iter_custom(|iters| {
                    let (store, seq) = (store.clone(), seq.clone());
                    runtime.block_on(async move {
                        let started = Instant::now();
                        let per_writer = iters.div_ceil(writers as u64);
                        let tasks: Vec<_> = (0..writers)
                            .map(|w| {
                                let (store, seq) = (store.clone(), seq.clone());
                                tokio::spawn(async move {
                                    for _ in 0..per_writer {
                                        let s = seq.fetch_add(1, Ordering::Relaxed) + 1;
                                        let message = Message {
                                            chat_id: format!("chat-{w}").into(),
                                            seq: s,
                                            msg_id: format!("m{s}"),
                                            sender_id: "bench".into(),
                                            client_msg_id: format!("c{s}"),
                                            body:
                                                "a typical short chat message of about this length"
                                                    .into(),
                                            ts: 0,
                                        };
                                        store.append(vec![message]).await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                        // Time per message: the whole run over the messages written.
                        started
                            .elapsed()
                            .mul_f64(iters as f64 / (per_writer * writers as u64) as f64)
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
