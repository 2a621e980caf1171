//! Cheap receivers: a `msg` frame is recognised and timed by scanning its text for the
//! type and the body's timestamp, without parsing the JSON; only the one frame in
//! `ACK_EVERY` that gets acknowledged is parsed. A full parse of every frame made the
//! generator, not the server, the limit of the group scenario. One task per connection:
//! reading 32 connections from one task (a `SelectAll`) cost four times the system time
//! per frame and cut a relay's group fan-out from 200k to 120k frames/s.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::stats::{histogram, Stats};
use super::timeline::Timeline;
use crate::client::Ws;

/// Receivers ack (`recv`) every this many messages per connection, as real clients do.
const ACK_EVERY: u64 = 64;

/// Starts one receiver task per socket, counting and timing every `msg` until `stopped`.
pub(super) fn spawn(
    sockets: Vec<Ws>,
    stats: &Arc<Stats>,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    sockets
        .into_iter()
        .map(|ws| tokio::spawn(receive(ws, stats.clone(), stopped.clone())))
        .collect()
}

async fn receive(mut ws: Ws, stats: Arc<Stats>, mut stopped: watch::Receiver<bool>) {
    let mut latency = histogram();
    let mut timeline = stats.timeline().map(Timeline::local);
    let mut since_ack = 0;
    loop {
        let next = tokio::select! {
            _ = stopped.changed() => break,
            next = ws.next() => next,
        };
        let text = match next {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let Some(sent_at) = scan_msg(&text) else {
            continue;
        };
        let now = stats.now_us();
        let took = now.saturating_sub(sent_at).max(1);
        let _ = latency.record(took);
        if let (Some(shared), Some(local)) = (stats.timeline(), timeline.as_mut()) {
            shared.observe(local, sent_at, took);
        }
        stats.received.fetch_add(1, Ordering::Relaxed);
        since_ack += 1;
        if since_ack >= ACK_EVERY {
            since_ack = 0;
            if let Ok(frame) = serde_json::from_str::<Value>(&text) {
                let ack = json!({"type": "recv", "chat_id": frame["chat_id"], "seq": frame["seq"]});
                let _ = ws.send(Message::Text(ack.to_string().into())).await;
            }
        }
    }
    stats.latency.merge(&latency);
    if let (Some(shared), Some(local)) = (stats.timeline(), &timeline) {
        shared.merge(local);
    }
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
