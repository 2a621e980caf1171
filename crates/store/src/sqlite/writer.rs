//! Group commit: one thread owns the write connection and runs every queued write job in
//! one transaction, so concurrent callers share a single commit and fsync. The queue is
//! bounded: when it is full, writers wait for room instead of piling up jobs.

use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::error::{StoreError, StoreResult};

/// Runs inside the batch transaction; returns what to do once the commit outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;
type Completion = Box<dyn FnOnce(&Result<(), StoreError>) + Send>;

/// The most jobs one transaction takes; bounds the latency of the last job in a batch.
const MAX_BATCH: usize = 4096;

pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread; at most `queue` jobs wait for it.
    pub(crate) fn start(conn: Connection, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next batch transaction (inside a savepoint, so its failure does not
    /// undo the other jobs) and resolves once that transaction is durable.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: &Result<(), StoreError>| {
                let outcome = match (result, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e.clone()),
                    (Ok(v), Ok(())) => Ok(v),
                };
                let _ = reply.send(outcome);
            })
        });
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                metrics::counter!("chat_store_write_queue_full_total").increment(1);
                jobs.send(job).await.map_err(|_| StoreError::Closed)?;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(StoreError::Closed),
        }
        // A job dropped unrun (the transaction could not begin) closes its reply channel.
        outcome
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("write was not applied".into())))
    }

    /// Stops taking jobs, finishes the queued ones and joins the thread.
    pub(crate) fn shutdown(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = batch.len();
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin write transaction; failing {size} jobs");
                batch.clear();
                continue;
            }
        };
        let completions: Vec<Completion> = batch.drain(..).map(|job| job(&tx)).collect();
        let committed = tx.commit().map_err(StoreError::from);
        if let Err(e) = &committed {
            tracing::error!(error = %e, "write transaction failed to commit");
        }
        metrics::histogram!("chat_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chat_store_commit_batch_jobs").record(size as f64);
        for complete in completions {
            complete(&committed);
        }
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT job")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e.into())
        }
    }
}
