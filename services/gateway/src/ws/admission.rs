//! Admission of a request frame, before it is handled: what its reply may cost, whether
//! the connection can afford it now, and whether its rates allow it. An eager client is
//! slowed — its frame is held and the gateway stops reading — rather than refused; only
//! what cannot wait (a typing indicator, a delay beyond `max_rate_delay`, a server out of
//! reply memory) is answered with an error at once.

use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use chat_protocol::{ClientFrame, ErrorCode, ServerFrame};

use super::limits::RateLimit;
use super::requests::{text, Session};
use crate::limits::{record_hit, LimitClass, Reservation};

/// What a reply without a page in it may cost at most (`sent`, `ok`, `pong`, errors).
const SMALL_REPLY_BYTES: usize = 512;
/// A presence entry in a reply.
const PRESENCE_ENTRY_BYTES: usize = 128;
/// Room for the chat list `synced` carries besides the messages.
const SYNCED_CHATS_BYTES: usize = 64 * 1024;
/// When the server's reply memory is spent, clients are told to come back after this.
const SHED_RETRY: Duration = Duration::from_secs(1);

/// Bytes reserved for a request's reply until it is written: counted against the
/// connection (by the connection task) and the server (by `memory`).
pub(crate) struct Reserved {
    pub(crate) bytes: usize,
    memory: Reservation,
}

impl Reserved {
    /// The reply came out at `actual` bytes; returns how many more than reserved.
    pub(crate) fn settle(&mut self, actual: usize) -> usize {
        if actual <= self.bytes {
            return 0;
        }
        let extra = actual - self.bytes;
        self.memory.grow_to(actual);
        self.bytes = actual;
        extra
    }
}

/// What to do with a request frame now.
pub(crate) enum Verdict {
    /// Handle it; its reply has this reserved.
    Admit(Reserved),
    /// Hold it (reading paused) until then: it is over a rate.
    HoldUntil(Instant),
    /// Hold it (reading paused) until the connection owes less.
    HoldForBudget,
    /// Do not handle it; write these frames instead (none for a request without an id).
    Answer(Vec<Utf8Bytes>),
}

/// The per-connection side of admission: this connection's own rates.
pub(crate) struct Admission {
    send_limit: RateLimit,
    typing_limit: RateLimit,
}

impl Admission {
    pub(crate) fn new(send_rate: u32, send_burst: u32, typing_rate: u32) -> Self {
        Admission {
            send_limit: RateLimit::per_second(send_rate, send_burst),
            typing_limit: RateLimit::per_second(typing_rate, typing_rate),
        }
    }

    /// Decides for `frame`, given the bytes the connection owes already (replies in flight
    /// or unwritten, and events queued for it).
    pub(crate) fn decide(&self, session: &Session, frame: &ClientFrame, owed: usize) -> Verdict {
        let limits = &session.state.limits;
        let estimate = reply_estimate(frame, session.state.chat.max_page_bytes());
        if owed > 0 && owed + estimate > limits.config.reply_budget_bytes {
            return Verdict::HoldForBudget;
        }
        if let Err(wait) = self.check_rates(session, frame) {
            if matches!(frame, ClientFrame::Typing { .. }) || wait > limits.config.max_rate_delay {
                return Verdict::Answer(rate_limited(frame.id(), wait));
            }
            return Verdict::HoldUntil(Instant::now() + wait);
        }
        match limits.replies.try_reserve(estimate) {
            Some(memory) => Verdict::Admit(Reserved {
                bytes: estimate,
                memory,
            }),
            None => {
                record_hit("reply_memory");
                Verdict::Answer(shed(frame.id()))
            }
        }
    }

    /// The connection's own rate first (it costs no one else anything), then the user's.
    fn check_rates(&self, session: &Session, frame: &ClientFrame) -> Result<(), Duration> {
        let own = match frame {
            ClientFrame::Send { .. } => Some(&self.send_limit),
            ClientFrame::Typing { .. } => Some(&self.typing_limit),
            _ => None,
        };
        if let Some(limit) = own {
            limit
                .check()
                .inspect_err(|_| record_hit("connection_rate"))?;
        }
        match class_of(frame) {
            Some(class) => session.state.limits.check(class, &session.caller.user_id),
            None => Ok(()),
        }
    }
}

/// The per-user rate a frame spends.
fn class_of(frame: &ClientFrame) -> Option<LimitClass> {
    Some(match frame {
        ClientFrame::Send { .. } => LimitClass::Send,
        ClientFrame::Recv { .. } | ClientFrame::Read { .. } => LimitClass::Receipts,
        ClientFrame::Sync { .. } | ClientFrame::History { .. } => LimitClass::Reads,
        ClientFrame::Typing { .. } => LimitClass::Typing,
        ClientFrame::PresenceSub { .. } => LimitClass::Presence,
        ClientFrame::Ping { .. } => return None,
    })
}

/// The most a frame's reply is expected to cost, from the server's page bound.
fn reply_estimate(frame: &ClientFrame, max_page_bytes: usize) -> usize {
    match frame {
        ClientFrame::History { .. } => max_page_bytes + SMALL_REPLY_BYTES,
        ClientFrame::Sync { .. } => max_page_bytes + SYNCED_CHATS_BYTES,
        ClientFrame::PresenceSub { user_ids, .. } => {
            SMALL_REPLY_BYTES + user_ids.len() * PRESENCE_ENTRY_BYTES
        }
        _ => SMALL_REPLY_BYTES,
    }
}

fn rate_limited(re: Option<&str>, wait: Duration) -> Vec<Utf8Bytes> {
    metrics::counter!("chat_ws_rate_limited_total").increment(1);
    error_with_retry(re, ErrorCode::RateLimited, "too many requests", wait)
}

fn shed(re: Option<&str>) -> Vec<Utf8Bytes> {
    error_with_retry(
        re,
        ErrorCode::Unavailable,
        "server busy, retry later",
        SHED_RETRY,
    )
}

/// An error with a retry hint, for a request with an id; nothing for one without.
pub(crate) fn error_with_retry(
    re: Option<&str>,
    code: ErrorCode,
    message: &str,
    retry_after: Duration,
) -> Vec<Utf8Bytes> {
    let Some(re) = re else {
        return Vec::new();
    };
    vec![text(&ServerFrame::Error {
        re: Some(re.to_owned()),
        code,
        message: message.into(),
        retry_after_ms: Some(retry_after.as_millis().max(1) as u64),
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_estimated_at_the_page_bound() {
        let history = ClientFrame::History {
            id: "1".into(),
            chat_id: "c".into(),
            before_seq: None,
            limit: Some(200),
        };
        assert_eq!(reply_estimate(&history, 1000), 1000 + SMALL_REPLY_BYTES);
        let ping = ClientFrame::Ping { id: "2".into() };
        assert_eq!(reply_estimate(&ping, 1000), SMALL_REPLY_BYTES);
    }

    #[test]
    fn errors_without_an_id_are_not_written() {
        assert!(rate_limited(None, Duration::from_millis(5)).is_empty());
        let frame = rate_limited(Some("7"), Duration::from_millis(5));
        let value: serde_json::Value = serde_json::from_str(frame[0].as_str()).unwrap();
        assert_eq!(value["code"], "rate_limited");
        assert_eq!(value["retry_after_ms"], 5);
        assert_eq!(value["re"], "7");
    }
}
