//! Waiting for another connection's lock on the database file (another process's writer
//! or checkpoint): short sleeps that grow to under a millisecond. SQLite's own busy
//! timeout sleeps 1, 2, 5, 10 … up to 100 ms between tries, so two processes committing to
//! one file in turn kept each other waiting 100–250 ms at times (BENCHMARKS.md).

use std::time::Duration;

use rusqlite::Connection;

/// The first pause; each try doubles it up to `LONGEST_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_micros(50);
const LONGEST_PAUSE: Duration = Duration::from_micros(800);
/// About five seconds of tries before the statement fails with `SQLITE_BUSY`.
const MAX_TRIES: i32 = 6_300;

/// Makes `conn` wait for locks with `pause_and_retry`.
pub(super) fn wait_briefly(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(pause_and_retry))
}

/// SQLite's busy callback: `tries` is how many times it was called for this lock.
fn pause_and_retry(tries: i32) -> bool {
    if tries >= MAX_TRIES {
        return false;
    }
    std::thread::sleep(pause(tries));
    true
}

fn pause(tries: i32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1 << tries.clamp(0, 5))
        .min(LONGEST_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_under_a_millisecond_and_give_up_after_about_five_seconds() {
        assert_eq!(pause(0), FIRST_PAUSE);
        assert_eq!(pause(1), FIRST_PAUSE * 2);
        assert_eq!(pause(100), LONGEST_PAUSE);
        let total: Duration = (0..MAX_TRIES).map(pause).sum();
        assert!(
            (Duration::from_secs(4)..Duration::from_secs(6)).contains(&total),
            "{total:?}"
        );
        assert!(!pause_and_retry(MAX_TRIES));
    }
}
