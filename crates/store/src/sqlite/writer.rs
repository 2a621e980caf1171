//! Group commit: one thread owns the write connection and runs every queued write job in
//! one transaction, so concurrent callers share a single commit and fsync. The queue is
//! bounded: when it is full, writers wait for room instead of piling up jobs.
//!
//! A job either runs in a savepoint (`write`: its failure undoes only itself) or checks
//! first and then writes without one (`write_checked`, the append path: a savepoint per
//! job cost a statement journal per batch); if such a job's write fails anyway, the whole
//! transaction is rolled back and every job in it fails.
//!
//! Checked jobs (appends) reach the queue in the order their futures were first polled,
//! even while they wait for room: the sequencer relies on it (see `write_checked`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::settle::Settler;
use crate::error::{StoreError, StoreResult};

/// Runs inside the batch transaction; returns what to do once the commit outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> Ran + Send>;
type Completion = Box<dyn FnOnce(&Result<(), StoreError>) + Send>;

/// What running a job left behind.
struct Ran {
    complete: Completion,
    /// False when the job failed part-way without a savepoint: the transaction holds half
    /// of its writes and must not commit.
    sound: bool,
}

/// The most jobs one transaction takes; bounds the latency of the last job in a batch.
const MAX_BATCH: usize = 4096;

pub(crate) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    /// Held by a checked job from its first poll until it is queued; waiters are served
    /// first come, first served.
    checked_turn: tokio::sync::Mutex<()>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread; at most `queue` jobs wait for it. Each batch transaction starts
    /// with a settle step when `settler` has one due; between two commits the thread
    /// finishes a WAL checkpoint whenever `checkpoint_wanted` is set.
    pub(crate) fn start(
        conn: Connection,
        queue: usize,
        checkpoint_wanted: Arc<AtomicBool>,
        settler: Settler,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, checkpoint_wanted, settler))?;
        Ok(Writer {
            jobs: Some(jobs),
            checked_turn: tokio::sync::Mutex::new(()),
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
        let outcome = self
            .enqueue(move |conn, reply| {
                let (result, sound) = in_savepoint(conn, f);
                Ran {
                    complete: answer_after_commit(result, reply),
                    sound,
                }
            })
            .await?;
        answer(outcome).await
    }

    /// Runs `check` (which must not write) and then `apply` with what it found, without a
    /// savepoint, in the next batch transaction; resolves once that transaction is
    /// durable. A failed check writes nothing and fails this job alone.
    ///
    /// Checked jobs are queued in the order their futures were first polled. The sequencer
    /// polls each append once as it makes it and then only the oldest one in flight; with
    /// the queue full, tokio hands room to waiters in order but a waiter only takes it when
    /// polled, so without a turn a later append could find room first, reach the writer
    /// ahead of an earlier one of its chat and fail its check against the head.
    pub(crate) async fn write_checked<P, C, A>(&self, check: C, apply: A) -> StoreResult<()>
    where
        P: 'static,
        C: FnOnce(&Connection) -> rusqlite::Result<P> + Send + 'static,
        A: FnOnce(&Connection, P) -> rusqlite::Result<()> + Send + 'static,
    {
        let outcome = {
            let _turn = self.checked_turn.lock().await;
            self.enqueue(move |conn, reply| match check(conn) {
                Err(e) => Ran {
                    complete: answer_after_commit(Err(e.into()), reply),
                    sound: true,
                },
                Ok(plan) => {
                    let applied = apply(conn, plan).map_err(StoreError::from);
                    let sound = applied.is_ok();
                    Ran {
                        complete: answer_after_commit(applied, reply),
                        sound,
                    }
                }
            })
            .await?
        };
        answer(outcome).await
    }

    /// Queues a job (waiting for room when the queue is full); returns where its answer
    /// will come.
    async fn enqueue<T, F>(&self, run: F) -> StoreResult<oneshot::Receiver<StoreResult<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, oneshot::Sender<StoreResult<T>>) -> Ran + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| run(conn, reply));
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                metrics::counter!("chat_store_write_queue_full_total").increment(1);
                jobs.send(job).await.map_err(|_| StoreError::Closed)?;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(StoreError::Closed),
        }
        Ok(outcome)
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

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    checkpoint_wanted: Arc<AtomicBool>,
    settler: Settler,
) {
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
        let mut completions: Vec<Completion> = Vec::with_capacity(size);
        // A settle step, when one is due, goes first: it shares the batch's commit, fsync
        // and (between processes on one file) its turn at the write lock.
        let (step, mut sound) = settler.step(&tx);
        for job in batch.drain(..) {
            if !sound {
                // Dropped unrun: its caller hears the write was not applied.
                continue;
            }
            let ran = job(&tx);
            completions.push(ran.complete);
            sound = ran.sound;
        }
        let committed = if sound {
            tx.commit().map_err(StoreError::from)
        } else {
            tracing::error!("a write failed part-way; rolling back the batch of {size} jobs");
            drop(tx);
            Err(StoreError::Unavailable(
                "the write batch was rolled back".into(),
            ))
        };
        if let Err(e) = &committed {
            tracing::error!(error = %e, "write transaction failed to commit");
        }
        metrics::histogram!("chat_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chat_store_commit_batch_jobs").record(size as f64);
        for complete in completions {
            complete(&committed);
        }
        settler.finished(step, committed.is_ok());
        if checkpoint_wanted.swap(false, Ordering::Relaxed) {
            finish_checkpoint(&conn);
        }
    }
}

/// Copies the WAL frames the checkpoint thread could not (those committed while it ran),
/// so that the next commit rewinds the WAL instead of growing it.
fn finish_checkpoint(conn: &Connection) {
    let started = Instant::now();
    match super::checkpoint::checkpoint(conn) {
        Ok((wal_frames, copied)) => {
            metrics::histogram!("chat_store_writer_checkpoint_seconds")
                .record(started.elapsed().as_secs_f64());
            if copied < wal_frames {
                tracing::debug!(wal_frames, copied, "a reader still holds WAL frames");
            }
        }
        Err(e) => tracing::warn!(error = %e, "writer's WAL checkpoint failed"),
    }
}

/// Waits for a queued job's answer. A job dropped unrun (the transaction could not begin,
/// or was rolled back before its turn) closes its reply channel.
async fn answer<T>(outcome: oneshot::Receiver<StoreResult<T>>) -> StoreResult<T> {
    outcome
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("write was not applied".into())))
}

/// The answer to a job's caller: its own result if it failed, else the commit's.
fn answer_after_commit<T: Send + 'static>(
    result: StoreResult<T>,
    reply: oneshot::Sender<StoreResult<T>>,
) -> Completion {
    Box::new(move |commit: &Result<(), StoreError>| {
        let outcome = match (result, commit) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e.clone()),
            (Ok(v), Ok(())) => Ok(v),
        };
        let _ = reply.send(outcome);
    })
}

/// Runs `f` in a savepoint; the flag is false when the savepoint itself could not be
/// opened, released or rolled back, leaving the transaction in an unknown state.
pub(super) fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> (StoreResult<T>, bool) {
    if let Err(e) = conn.execute_batch("SAVEPOINT job") {
        return (Err(e.into()), true);
    }
    match f(conn) {
        Ok(v) => match conn.execute_batch("RELEASE job") {
            Ok(()) => (Ok(v), true),
            Err(e) => (Err(e.into()), false),
        },
        Err(e) => {
            let sound = conn.execute_batch("ROLLBACK TO job; RELEASE job").is_ok();
            (Err(e.into()), sound)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    use super::*;

    fn writer() -> Writer {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        Writer::start(conn, 16, Arc::default(), Settler::new(usize::MAX)).unwrap()
    }

    async fn rows(writer: &Writer) -> i64 {
        writer
            .write(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap()
    }

    /// A checked job whose write fails part-way (no savepoint to undo it) takes its whole
    /// batch down: nothing of the batch commits and every caller hears so.
    #[tokio::test]
    async fn a_checked_job_failing_part_way_rolls_back_its_batch() {
        let writer = Arc::new(writer());
        // Holds the writer so the next three jobs queue up and share one transaction.
        let holder = writer.clone();
        let hold = tokio::spawn(async move {
            holder
                .write(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok(())
                })
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let before = writer.write(|c| c.execute("INSERT INTO t VALUES (1)", []));
        let half = writer.write_checked(
            |_| Ok(()),
            |c, ()| {
                c.execute("INSERT INTO t VALUES (2)", [])?;
                c.execute("INSERT INTO t VALUES (2)", []).map(|_| ())
            },
        );
        let after = writer.write(|c| c.execute("INSERT INTO t VALUES (3)", []));
        let (before, half, after) = tokio::join!(before, half, after);
        hold.await.unwrap().unwrap();
        assert!(
            matches!(before, Err(StoreError::Unavailable(_))),
            "{before:?}"
        );
        assert!(half.is_err());
        assert!(
            matches!(after, Err(StoreError::Unavailable(_))),
            "{after:?}"
        );
        assert_eq!(rows(&writer).await, 0);
    }

    /// Appends `k` if it directly follows the table's largest key, as the append path
    /// checks a message's seq against its chat's head.
    fn append_next(writer: &Writer, k: i64) -> impl Future<Output = StoreResult<()>> + '_ {
        writer.write_checked(
            move |c| {
                let head: i64 =
                    c.query_row("SELECT COALESCE(MAX(k), 0) FROM t", [], |r| r.get(0))?;
                if head + 1 == k {
                    Ok(())
                } else {
                    Err(rusqlite::Error::InvalidParameterName(format!(
                        "{k} after {head}"
                    )))
                }
            },
            move |c, ()| c.execute("INSERT INTO t VALUES (?1)", [k]).map(|_| ()),
        )
    }

    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
    }

    /// The sequencer polls each append once as it makes it, then only the oldest until
    /// that one is durable. With the queue full, the appends waiting for room must still
    /// reach the writer in that order: one that overtook an earlier append of its chat
    /// would fail its check against the head.
    #[tokio::test]
    async fn checked_jobs_are_queued_in_the_order_they_were_first_polled() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            .unwrap();
        let writer =
            Arc::new(Writer::start(conn, 2, Arc::default(), Settler::new(usize::MAX)).unwrap());
        // The writer busy with one job (until released) and its queue of two full.
        let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |_| {
                        entered_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        Ok(())
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || entered.recv().unwrap())
            .await
            .unwrap();
        let mut fillers = vec![blocker];
        for _ in 0..2 {
            let writer = writer.clone();
            fillers.push(tokio::spawn(async move { writer.write(|_| Ok(())).await }));
        }
        while writer.jobs.as_ref().unwrap().capacity() > 0 {
            tokio::task::yield_now().await;
        }
        let mut first = Box::pin(append_next(&writer, 1));
        let mut second = Box::pin(append_next(&writer, 2));
        assert!(poll_once(&mut first).await.is_pending());
        assert!(poll_once(&mut second).await.is_pending());
        release.send(()).unwrap();
        // The writer takes the two queued jobs at once: room for both appends, but only the
        // first is polled (as the oldest batch) until it is durable.
        for filler in fillers {
            filler.await.unwrap().unwrap();
        }
        first.await.unwrap();
        // A third append, made now, finds room in the queue at once.
        let mut third = Box::pin(append_next(&writer, 3));
        let _ = poll_once(&mut third).await;
        let (second, third) = tokio::join!(second, third);
        second.unwrap();
        third.unwrap();
        assert_eq!(rows(&writer).await, 3);
    }

    /// A failed check writes nothing and fails only its own job.
    #[tokio::test]
    async fn a_failed_check_fails_only_its_job() {
        let writer = writer();
        let refused = writer
            .write_checked(
                |c| c.execute("SELECT * FROM missing", []).map(|_| ()),
                |c, ()| c.execute("INSERT INTO t VALUES (1)", []).map(|_| ()),
            )
            .await;
        assert!(refused.is_err());
        writer
            .write_checked(
                |_| Ok(()),
                |c, ()| c.execute("INSERT INTO t VALUES (2)", []).map(|_| ()),
            )
            .await
            .unwrap();
        assert_eq!(rows(&writer).await, 1);
    }
}
