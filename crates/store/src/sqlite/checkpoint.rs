//! WAL checkpoints on a thread of their own. SQLite's automatic checkpoint runs inside
//! the commit that crosses its threshold, so one group commit in every few hundred paid
//! for copying the whole WAL into the database and its fsync; here a commit never waits
//! for one. Checkpoints are PASSIVE: they copy what no reader still needs and never block
//! the writer.
//!
//! A PASSIVE checkpoint alone never lets the WAL restart under steady load: SQLite only
//! rewinds it when every frame has been copied, and new commits land while the copy runs
//! (10 s at 10k msgs/s grew it to 0.9 GB). Once the WAL is past `REWIND_AT_FRAMES`, the
//! writer thread is asked to run one more checkpoint itself, between two commits: it only
//! has the frames since this thread's copy left to do, and the next commit rewinds the WAL.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied into the database. Often, so each copy is small: once a
/// second, each copy took ~80 ms of a core, and on two cores that burst delayed every
/// message in flight (p99 22 ms at 10k msgs/s, 9 ms at this interval).
const EVERY: Duration = Duration::from_millis(100);
/// WAL length (4 KiB frames, so 64 MiB) past which the writer finishes a checkpoint so the
/// WAL can rewind.
const REWIND_AT_FRAMES: i64 = 16_384;

pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens its own connection to the database at `path` and starts checkpointing; sets
    /// `finish_wanted` when the writer should complete one (see the module note).
    pub(crate) fn start(
        path: &Path,
        finish_wanted: Arc<AtomicBool>,
    ) -> rusqlite::Result<std::io::Result<Self>> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = mpsc::channel();
        Ok(std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, stopped, finish_wanted))
            .map(|thread| Checkpointer {
                stop: Some(stop),
                thread: Some(thread),
            }))
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, stopped: mpsc::Receiver<()>, finish_wanted: Arc<AtomicBool>) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        let started = std::time::Instant::now();
        match checkpoint(&conn) {
            Ok((wal_frames, copied)) => {
                metrics::histogram!("chat_store_checkpoint_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::gauge!("chat_store_wal_frames").set(wal_frames as f64);
                metrics::gauge!("chat_store_wal_copied_frames").set(copied as f64);
                if wal_frames >= REWIND_AT_FRAMES {
                    finish_wanted.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
        }
    }
}

/// Runs a PASSIVE checkpoint; returns the frames in the WAL and how many of them are now
/// copied into the database.
pub(crate) fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })
}
