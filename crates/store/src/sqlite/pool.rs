//! A small pool of read-only connections used from blocking threads, so reads never wait
//! behind the writer (WAL lets readers and the writer proceed at once). A semaphore caps
//! the reads running at once: more wait their turn without holding a thread, so a flood
//! of reads can neither spawn hundreds of threads nor hold their results all at once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::error::{StoreError, StoreResult};

pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    running: Arc<Semaphore>,
    max_idle: usize,
}

impl ReadPool {
    /// At most `concurrency` reads run at once; as many connections are kept open.
    pub(crate) fn new(path: PathBuf, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            running: Arc::new(Semaphore::new(concurrency)),
            max_idle: concurrency,
        }
    }

    /// Runs `f` on a pooled connection in tokio's blocking pool, once a slot is free.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = match self.running.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                metrics::counter!("chat_store_reads_queued_total").increment(1);
                self.running
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StoreError::Closed)?
            }
        };
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.take()?;
            let result = in_snapshot(&conn, f).map_err(StoreError::from);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }

    fn take(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.idle.lock().expect("pool lock").pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        super::busy::wait_briefly(&conn)?;
        conn.pragma_update(None, "mmap_size", super::MMAP_BYTES)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if !conn.is_autocommit() {
            // Its read transaction could not be ended: a fresh connection replaces it.
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

/// Runs `f` in one read transaction, so every statement of a read sees the same commit:
/// a read of both message tables never misses messages being settled from one to the other.
fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("BEGIN")?;
    let result = f(conn);
    // A read-only transaction has nothing to undo: ending it only lets the snapshot go.
    let ended = conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let value = result?;
    ended?;
    Ok(value)
}
