//! Frame decode and encode, the work done for every frame in and out.

use chat_protocol::{decode_client_frame, Message, ServerFrame};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn codec(c: &mut Criterion) {
    let send = r#"{"type":"send","id":"r123","chat_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","client_msg_id":"c-8d7f6e5d","body":"hello there, how are you doing today? this is a typical short chat message."}"#;
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_send", |b| {
        b.iter(|| decode_client_frame(std::hint::black_box(send)).unwrap())
    });
    let bad = r#"{"type":"send","id":"r1","chat_id":"c","client_msg_id":"k","body":42}"#;
    group.bench_function("decode_invalid", |b| {
        b.iter(|| decode_client_frame(std::hint::black_box(bad)).unwrap_err())
    });
    let msg = ServerFrame::Msg(Message {
        chat_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        seq: 123_456,
        msg_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c".into(),
        sender_id: "alice".into(),
        client_msg_id: "c-8d7f6e5d".into(),
        body: "hello there, how are you doing today? this is a typical short chat message.".into(),
        ts: 1_764_000_000_000,
    });
    group.bench_function("encode_msg", |b| {
        b.iter(|| std::hint::black_box(&msg).to_json())
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
