//! Cheap receivers: one task reads many connections, and a `msg` frame is recognised and
//! timed by scanning its text for the type and the body's timestamp, without parsing the
//! JSON. A full parse of every frame in a few tasks made the generator, not the server,
//! the limit of the group scenario.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::stream::{SelectAll, SplitSink};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::stats::{histogram, Stats};
use crate::client::Ws;

/// Receivers ack (`recv`) every this many messages per connection, as real clients do.
const ACK_EVERY: u64 = 64;
/// Connections one receiver task reads.
const CONNECTIONS_PER_TASK: usize = 32;

/// Spreads `sockets` over receiver tasks that count and time every `msg` until `stopped`.
pub(super) fn spawn(
    sockets: Vec<Ws>,
    stats: &Arc<Stats>,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let mut sockets = sockets.into_iter().peekable();
    while sockets.peek().is_some() {
        let share: Vec<Ws> = sockets.by_ref().take(CONNECTIONS_PER_TASK).collect();
        tasks.push(tokio::spawn(receive(share, stats.clone(), stopped.clone())));
    }
    tasks
}

async fn receive(sockets: Vec<Ws>, stats: Arc<Stats>, mut stopped: watch::Receiver<bool>) {
    let mut latency = histogram();
    let mut sinks: Vec<(SplitSink<Ws, Message>, u64)> = Vec::new();
    let mut streams = SelectAll::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sink, stream) = ws.split();
        sinks.push((sink, 0));
        streams.push(stream.map(move |m| (i, m)));
    }
    loop {
        let next = tokio::select! {
            _ = stopped.changed() => break,
            next = streams.next() => next,
        };
        let Some((i, Ok(Message::Text(text)))) = next else {
            if next.is_none() {
                break;
            }
            continue;
        };
        let Some(sent_at) = scan_msg(&text) else {
            continue;
        };
        let now = stats.now_us();
        let _ = latency.record(now.saturating_sub(sent_at).max(1));
        stats.received.fetch_add(1, Ordering::Relaxed);
        let (sink, since_ack) = &mut sinks[i];
        *since_ack += 1;
        if *since_ack >= ACK_EVERY {
            *since_ack = 0;
            // One frame in ACK_EVERY is parsed in full, for the position to acknowledge.
            if let Ok(frame) = serde_json::from_str::<Value>(&text) {
                let ack = json!({"type": "recv", "chat_id": frame["chat_id"], "seq": frame["seq"]});
                let _ = sink.send(Message::Text(ack.to_string().into())).await;
            }
        }
    }
    stats.merge(&latency);
}

/// The send time a `msg` frame's body carries (`"body":"t=<us> ..."`); None for any other
/// frame. Servers write compact JSON, so the keys appear exactly so.
fn scan_msg(text: &str) -> Option<u64> {
    if !text.contains(r#""type":"msg""#) {
        return None;
    }
    let (_, body) = text.split_once(r#""body":"t="#)?;
    let digits = body.find(|c: char| !c.is_ascii_digit())?;
    body[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::scan_msg;

    #[test]
    fn a_msg_frame_yields_its_send_time() {
        let frame = r#"{"type":"msg","chat_id":"c","seq":3,"body":"t=1234 lorem","sender":"a"}"#;
        assert_eq!(scan_msg(frame), Some(1234));
    }

    #[test]
    fn other_frames_and_foreign_bodies_yield_nothing() {
        assert_eq!(scan_msg(r#"{"type":"sent","id":"1","seq":3}"#), None);
        assert_eq!(scan_msg(r#"{"type":"msg","body":"hello"}"#), None);
        assert_eq!(scan_msg(r#"{"type":"msg","body":"t=12"#), None);
    }
}
