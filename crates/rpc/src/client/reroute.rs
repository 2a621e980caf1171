//! Riding out an owner change inside the gateway. While a chat's partition moves (a
//! handover, a takeover, Redis losing the leases) its calls get `moved`, find no owner, or
//! lose their stream; for a short window they are tried again at the new owner, with
//! growing pauses, instead of failing back to the client. A send tried again is safe: the
//! owner check refuses before storing, and a send whose fate is unknown carries its
//! client_msg_id, so the owner answers a stored one with its first outcome.

use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reroute {
    /// How long after its first try a call may still be tried again.
    window: Duration,
}

impl Reroute {
    pub(crate) fn new(window: Duration) -> Self {
        Reroute { window }
    }

    /// The pause before try number `attempt + 2` of a call first tried at `since`, or
    /// `None` when it would end past the window (the call fails with its last error).
    pub(crate) fn pause(&self, since: Instant, attempt: u32) -> Option<Duration> {
        let pause = FIRST_PAUSE
            .saturating_mul(1 << attempt.min(8))
            .min(MAX_PAUSE);
        (since.elapsed() + pause <= self.window).then_some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_then_stop_at_the_window() {
        let reroute = Reroute::new(Duration::from_secs(1));
        let now = Instant::now();
        assert_eq!(reroute.pause(now, 0), Some(FIRST_PAUSE));
        assert_eq!(reroute.pause(now, 1), Some(FIRST_PAUSE * 2));
        assert_eq!(reroute.pause(now, 30), Some(MAX_PAUSE));
        let long_ago = now - Duration::from_millis(900);
        assert_eq!(reroute.pause(long_ago, 30), None);
        assert_eq!(Reroute::new(Duration::ZERO).pause(now, 0), None);
    }
}
