//! Settling recent messages. Appends land in a recent table: a rowid table written only at
//! its end, so a commit rewrites a page or two however many chats it touches. The table
//! clustered by chat (`messages`) is written in bulk instead, each chat's pages once per
//! settle rather than once per commit.
//!
//! There are two recent tables so that settling never holds up appends for long. Once the
//! filling one holds `after_rows` messages, appends switch to the other, and the full one
//! is drained: at the start of each batch transaction the writer copies a few chats'
//! messages from it into `messages` (one short step: `STEP_ROWS` messages, or twice what
//! was appended since the last step when appends come faster), and once every chat is
//! copied the table is emptied whole. Until then readers skip the copies
//! (`queries::UNSETTLED`). Where the drain stands is in the database (`settle_state`), so
//! processes sharing the file take turns at it, and a restart carries on where it stopped.
//!
//! Nothing appends to a table being drained, so each process reads its order (row ids by
//! chat and seq) once per drain, a `DrainPlan`, and its steps copy rows by id instead of
//! scanning and sorting the whole table twice each (a third of a step's time in `chatd`;
//! with two processes on one file a step's cold page reads dominate and it cost the same).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::ffi;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::queries::{MESSAGE_COLUMNS, RECENT, SETTLED};
use super::writer::in_savepoint;
use crate::error::StoreResult;

/// Messages copied per drain step at least, roughly (whole chats are copied, so a step of a
/// busy chat may take more): a step is a stall of every append queued behind it, so steps
/// are small and the drain is spread over many batches. With 128 a drain at 10k msgs/s was
/// eight back-to-back steps, ~6 ms of steps in ~10 ms, and the latency timeline
/// showed a burst of 10–15 ms at every switch; with 16 the bursts mostly went, for ~30 µs
/// of fixed work per extra step (BENCHMARKS.md, "The 100 ms rhythm at 10k msgs/s").
const STEP_ROWS: usize = 16;
/// A step also copies this many times the messages appended since the last one, so the
/// drain outpaces the appends however large commits get (under saturation one commit
/// holds hundreds of messages, and a fixed step fell behind).
const STEP_PACE: usize = 2;

/// How long the writer leaves the drain alone after a step failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Readies the writer's connection for settling. It may insert into `messages`: schema
/// v7's trigger calls `chat_store_v7_writer`, which only this store's writers register
/// (see schema.sql). And a step passes the row ids it copies as one `rarray` parameter.
///
/// Triggers are off on this connection (only): the one on `messages` is there to stop
/// other binaries, and here it only cost. SQLite ran it for every row copied, and an
/// `INSERT ... SELECT` into a table with a trigger first copies every selected row into a
/// temporary table: together about a third of a step's instructions (BENCHMARKS.md).
/// The function stays registered, for a connection that has them on.
pub(crate) fn ready_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "chat_store_v7_writer",
        0,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |_| Ok(1),
    )?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    rusqlite::vtab::array::load_module(conn)
}

/// When the writer switches tables, and how the drain goes.
#[derive(Clone)]
pub(crate) struct Settler {
    /// Messages this process appended since its last drain step.
    since_step: Arc<AtomicUsize>,
    after_rows: usize,
    /// Set after a failed step: no step before then.
    paused_until: Arc<Mutex<Option<Instant>>>,
    /// The order of the table being drained, read at this process's first step of it.
    plan: Arc<Mutex<Option<DrainPlan>>>,
}

/// The drain's progress, as `settle_state` holds it.
struct State {
    filling: usize,
    /// The last chat copied out of the table being drained; `None` when it is empty.
    draining_after: Option<String>,
}

impl Settler {
    /// Switches once the filling table holds `after_rows` messages.
    pub(crate) fn new(after_rows: usize) -> Self {
        Settler {
            since_step: Arc::default(),
            after_rows: after_rows.max(1),
            paused_until: Arc::default(),
            plan: Arc::default(),
        }
    }

    /// Counts messages an append added to the filling table.
    pub(crate) fn appended(&self, messages: usize) {
        self.since_step.fetch_add(messages, Ordering::Relaxed);
    }

    /// Takes one step if one is due: a drain step while a table is being drained, else the
    /// switch once the filling table is full. Runs at the start of the writer's batch
    /// transaction, so it shares that commit and its fsync, and it reads the state under
    /// the write lock that every process takes in turn. The step runs in a savepoint: a
    /// failed one is undone alone. The flag is false when the savepoint could not be undone
    /// and the transaction must not commit (as for a job). Pass the outcome to `finished`.
    pub(crate) fn step(&self, conn: &Connection) -> (StoreResult<Taken>, bool) {
        if self
            .paused_until
            .lock()
            .expect("settle pause lock")
            .is_some_and(|until| Instant::now() < until)
        {
            return (Ok(Taken::nothing()), true);
        }
        let state = match read_state(conn) {
            Ok(state) => state,
            Err(e) => return (Err(e.into()), true),
        };
        if state.draining_after.is_none() {
            // A plan kept from a drain another process finished is of no more use.
            *self.plan.lock().expect("drain plan lock") = None;
            match appended_to(conn, RECENT[state.filling]) {
                Ok(rows) if rows < self.after_rows => return (Ok(Taken::nothing()), true),
                Ok(_) => {}
                Err(e) => return (Err(e.into()), true),
            }
        }
        let started = Instant::now();
        let since = self.since_step.load(Ordering::Relaxed);
        let (stepped, sound) = in_savepoint(conn, |c| match &state.draining_after {
            Some(after) => {
                let rows = STEP_ROWS.max(STEP_PACE * since);
                self.drain_step(c, RECENT[1 - state.filling], after, rows)
            }
            None => switch(c, state.filling),
        });
        let taken = stepped.map(|step| Taken { step, since });
        metrics::histogram!("chat_store_settle_step_seconds")
            .record(started.elapsed().as_secs_f64());
        (taken, sound)
    }

    /// Accounts for a step once its batch committed (or did not: then it is taken again).
    /// The count the step saw is taken off, not zeroed: the appends of the batch the step
    /// started came after it.
    pub(crate) fn finished(&self, taken: StoreResult<Taken>, committed: bool) {
        match taken {
            Ok(_) if !committed => {}
            Ok(Taken { step, since }) => match step {
                Step::Switched => {
                    self.since_step.fetch_sub(since, Ordering::Relaxed);
                    metrics::counter!("chat_store_settle_switches_total").increment(1);
                }
                Step::Copied(rows) => {
                    self.since_step.fetch_sub(since, Ordering::Relaxed);
                    metrics::counter!("chat_store_settled_messages_total").increment(rows as u64);
                }
                Step::Emptied | Step::Nothing => {}
            },
            Err(e) => {
                metrics::counter!("chat_store_settle_failures_total").increment(1);
                tracing::error!(error = %e, "a settle step failed; tried again in a second");
                *self.paused_until.lock().expect("settle pause lock") =
                    Some(Instant::now() + RETRY_AFTER);
            }
        }
    }

    /// Copies the chats after `after` in the table being drained, whole, until about
    /// `rows` messages are copied; empties the table when none are left.
    fn drain_step(
        &self,
        conn: &Connection,
        table: &'static str,
        after: &str,
        rows: usize,
    ) -> rusqlite::Result<Step> {
        let mut kept = self.plan.lock().expect("drain plan lock");
        let plan = match kept.take() {
            Some(plan) if plan.is_of(conn, table)? => plan,
            _ => DrainPlan::read(conn, table)?,
        };
        let (copied, through) = match plan.copy_chats_after(conn, after, rows) {
            Ok(Some(copied)) => copied,
            Ok(None) => {
                // Every chat is copied. Without a WHERE clause SQLite frees the table's
                // pages whole.
                conn.prepare_cached(&format!("DELETE FROM {table}"))?
                    .execute([])?;
                conn.prepare_cached("UPDATE settle_state SET draining_after = NULL")?
                    .execute([])?;
                return Ok(Step::Emptied);
            }
            Err(e) => {
                // The table did not change: keep the plan rather than sort it all again.
                *kept = Some(plan);
                return Err(e);
            }
        };
        if copied.rows != copied.planned {
            // Not kept: read afresh on the next try rather than trusted.
            return Err(plan_mismatch(table, copied));
        }
        *kept = Some(plan);
        conn.prepare_cached("UPDATE settle_state SET draining_after = ?1")?
            .execute([through])?;
        Ok(Step::Copied(copied.rows))
    }
}

/// A step and the count it was taken with.
pub(crate) struct Taken {
    step: Step,
    /// This process's messages appended since the step before.
    since: usize,
}

impl Taken {
    fn nothing() -> Self {
        Taken {
            step: Step::Nothing,
            since: 0,
        }
    }
}

/// What a step did.
pub(crate) enum Step {
    Nothing,
    /// Appends now go to the other table; the full one is to be drained.
    Switched,
    /// Copied this many messages of a few chats.
    Copied(usize),
    /// Every chat was copied: the drained table is empty again.
    Emptied,
}

/// The rows of a table being drained, chat by chat in the order steps copy them. Memory:
/// 8 bytes a row of the draining table and each of its chats' ids once (while it is read,
/// 16 bytes a row more, and a vector per chat). That table holds
/// about `CHAT_SQLITE_SETTLE_AFTER` messages, more only if it kept filling while the drain
/// before it was failing.
struct DrainPlan {
    table: &'static str,
    /// The table's newest row when the plan was read: its id, chat and seq. A chat's seq is
    /// appended once, to one filling of one table, and nothing is added to or taken from a
    /// table while it drains: while that row is still there the plan holds, and once the
    /// table was emptied (maybe by another process) and filled again, it is not.
    newest: Option<(i64, String, i64)>,
    /// Row ids, by chat id as SQLite compares text (bytes), each chat's in seq order.
    ids: Vec<i64>,
    /// Each chat and where its ids end in `ids`.
    chats: Vec<(String, usize)>,
}

/// What a step copied, against what its plan said it would.
struct Copied {
    rows: usize,
    planned: usize,
}

impl DrainPlan {
    fn read(conn: &Connection, table: &'static str) -> rusqlite::Result<Self> {
        // `id` is the table's rowid, so it keeps its value for as long as the row exists.
        let newest = conn
            .prepare_cached(&format!(
                "SELECT id, chat_id, seq FROM {table} ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        // Grouped here rather than by `ORDER BY chat_id, seq`: SQLite's sorter, comparing
        // records of 36-byte text keys, was a quarter of a drain's instructions. A
        // `String`'s order is its bytes', as SQLite compares text.
        let mut by_chat: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        let mut statement =
            conn.prepare_cached(&format!("SELECT chat_id, seq, id FROM {table}"))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let chat_id = row.get_ref(0)?.as_str()?;
            let seq_and_id = (row.get(1)?, row.get(2)?);
            match by_chat.get_mut(chat_id) {
                Some(of_chat) => of_chat.push(seq_and_id),
                None => {
                    by_chat.insert(chat_id.to_owned(), vec![seq_and_id]);
                }
            }
        }
        let rows = by_chat.values().map(Vec::len).sum();
        let (mut ids, mut chats) = (Vec::with_capacity(rows), Vec::with_capacity(by_chat.len()));
        for (chat_id, mut of_chat) in by_chat {
            // In seq order already (a chat's appends commit in seq order); cheap to make sure.
            of_chat.sort_unstable();
            ids.extend(of_chat.iter().map(|&(_, id)| id));
            chats.push((chat_id, ids.len()));
        }
        Ok(DrainPlan {
            table,
            newest,
            ids,
            chats,
        })
    }

    /// Whether this is still the plan of `table` as it is now.
    fn is_of(&self, conn: &Connection, table: &str) -> rusqlite::Result<bool> {
        let Some((id, chat_id, seq)) = &self.newest else {
            return Ok(false);
        };
        if self.table != table {
            return Ok(false);
        }
        let found: Option<(String, i64)> = conn
            .prepare_cached(&format!("SELECT chat_id, seq FROM {table} WHERE id = ?1"))?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(found.is_some_and(|(c, s)| c == *chat_id && s == *seq))
    }

    /// The chats left once every chat up to `after` is copied, each with where its ids end.
    fn chats_after(&self, after: &str) -> &[(String, usize)] {
        let first = self
            .chats
            .partition_point(|(chat, _)| chat.as_str() <= after);
        &self.chats[first..]
    }

    /// Copies whole chats after `after` until about `rows` messages are copied, in the
    /// plan's order (by chat) so each chat's pages are written in one pass. Returns what
    /// was copied and the last chat, or `None` when no chat is left. One statement: inside
    /// the batch's savepoint each statement that writes opens and releases a statement
    /// journal of its own, which a statement per row made most of a step's cost.
    fn copy_chats_after(
        &self,
        conn: &Connection,
        after: &str,
        rows: usize,
    ) -> rusqlite::Result<Option<(Copied, String)>> {
        let chats = self.chats_after(after);
        let copied_before = self.chats.len() - chats.len();
        let first_id = self.chats[..copied_before]
            .last()
            .map_or(0, |(_, end)| *end);
        let Some((through, end)) = chats
            .iter()
            .find(|(_, end)| end - first_id >= rows)
            .or(chats.last())
        else {
            return Ok(None);
        };
        let ids: Vec<Value> = self.ids[first_id..*end]
            .iter()
            .map(|&id| Value::Integer(id))
            .collect();
        let planned = ids.len();
        // Driven by the array, in its order: a lookup by id per row and no sort (`id IN
        // rarray(?1)` would collect the ids in a temporary index and sort the rows again).
        let copied = conn
            .prepare_cached(&format!(
                "INSERT INTO {SETTLED} ({MESSAGE_COLUMNS})
                 SELECT {COPIED_COLUMNS} FROM rarray(?1) AS planned
                 JOIN {table} AS recent ON recent.id = planned.value",
                table = self.table
            ))?
            .execute([Rc::new(ids)])?;
        Ok(Some((
            Copied {
                rows: copied,
                planned,
            },
            through.clone(),
        )))
    }
}

/// The error of a step whose copy did not match its plan: the step is undone rather than
/// a message skipped.
fn plan_mismatch(table: &str, copied: Copied) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_ABORT),
        Some(format!(
            "settling {table}: planned to copy {} messages, copied {}; the table is read again",
            copied.planned, copied.rows
        )),
    )
}

/// `MESSAGE_COLUMNS` of the recent table in a step's copy.
const COPIED_COLUMNS: &str = "recent.chat_id, recent.seq, recent.msg_id, recent.sender_id,
    recent.client_msg_id, recent.body, recent.ts";

/// Which of `RECENT` takes appends now.
pub(crate) fn filling_table(conn: &Connection) -> rusqlite::Result<usize> {
    read_state(conn).map(|state| state.filling)
}

fn read_state(conn: &Connection) -> rusqlite::Result<State> {
    conn.prepare_cached("SELECT filling, draining_after FROM settle_state")?
        .query_row([], |r| {
            Ok(State {
                filling: (r.get::<_, i64>(0)? & 1) as usize,
                draining_after: r.get(1)?,
            })
        })
}

/// Messages appended to `table` since it was last emptied: a rowid table (`id` is the
/// rowid) gives a new row the id one past its largest, and this one is only emptied whole,
/// so its rows are numbered 1, 2, 3, ...
fn appended_to(conn: &Connection, table: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
}

/// Appends go to the other table from the next transaction on; the full one drains from
/// its first chat.
fn switch(conn: &Connection, filling: usize) -> rusqlite::Result<Step> {
    conn.prepare_cached("UPDATE settle_state SET filling = ?1, draining_after = ''")?
        .execute([(1 - filling) as i64])?;
    Ok(Step::Switched)
}

#[cfg(test)]
mod tests {
    use chat_protocol::{Chat, ChatKind, Member, Message, Role};

    use super::*;
    use crate::sqlite::queries;
    use crate::types::Page;

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        ready_writer(&conn).unwrap();
        conn.execute_batch(include_str!("schema.sql")).unwrap();
        let member = |user: &str| Member {
            user_id: user.into(),
            role: Role::Member,
        };
        for chat_id in ["c1", "c2", "c3"] {
            let chat = Chat {
                chat_id: chat_id.into(),
                kind: ChatKind::Group,
                title: None,
                members: vec![member("alice"), member("bob")],
                created_at: 0,
                head_seq: 0,
                version: 0,
            };
            queries::insert_chat(&conn, &chat).unwrap();
        }
        conn
    }

    /// Appends alice's messages `seqs` to `chat_id` as the store does.
    fn append(conn: &Connection, chat_id: &str, seqs: std::ops::RangeInclusive<u64>) {
        let messages: Vec<Message> = seqs
            .map(|seq| Message {
                chat_id: chat_id.into(),
                seq,
                msg_id: format!("{chat_id}-{seq}"),
                sender_id: "alice".into(),
                client_msg_id: format!("k{seq}"),
                body: "hello".into(),
                ts: seq as i64,
            })
            .collect();
        let checked = queries::check_append(conn, &messages).unwrap();
        queries::insert_checked(conn, &messages, checked).unwrap();
    }

    fn rows(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Every read of `chat_id` sees seqs 1..=head once each, wherever the drain stands.
    fn assert_reads(conn: &Connection, chat_id: &str, head: u64) {
        let all: Vec<u64> = (1..=head).collect();
        let seqs = |messages: Vec<Message>| messages.iter().map(|m| m.seq).collect::<Vec<_>>();
        let page = Page::count(1000);
        assert_eq!(
            seqs(queries::messages_after(conn, chat_id, 0, page).unwrap()),
            all
        );
        assert_eq!(
            seqs(queries::messages_before(conn, chat_id, u64::MAX, page).unwrap()),
            all
        );
        let state = queries::sequencer_state(conn, chat_id, 0).unwrap();
        assert_eq!(state.head_seq, head);
        let mut window: Vec<u64> = state.recent.iter().map(|e| e.seq).collect();
        window.sort_unstable();
        assert_eq!(window, all);
        let list = queries::chats_of_user(conn, "bob", "d").unwrap();
        let listed = list.iter().find(|s| s.chat.chat_id == chat_id).unwrap();
        assert_eq!(listed.unread, head);
        assert_eq!(listed.last_message.as_ref().unwrap().seq, head);
    }

    /// One batch transaction with nothing in it but the step, as the writer runs it.
    fn take_step(settler: &Settler, conn: &mut Connection) {
        let tx = conn.transaction().unwrap();
        let (step, sound) = settler.step(&tx);
        assert!(sound);
        tx.commit().unwrap();
        settler.finished(step, true);
    }

    /// Messages per chat in these tests: two chats fill a step, one does not.
    const PER_CHAT: u64 = (STEP_ROWS * 3 / 4) as u64;

    /// A store with `PER_CHAT` messages in each of c1, c2 and c3, in the filling table;
    /// and how many that is.
    fn three_chats_two_to_a_step() -> (Connection, usize) {
        let conn = store();
        for chat in ["c1", "c2", "c3"] {
            append(&conn, chat, 1..=PER_CHAT);
        }
        (conn, 3 * PER_CHAT as usize)
    }

    #[test]
    fn a_drain_copies_whole_chats_step_by_step_and_reads_never_see_a_copy() {
        let (mut conn, total) = three_chats_two_to_a_step();
        let settler = Settler::new(total);
        settler.appended(total);

        take_step(&settler, &mut conn);
        assert_eq!(read_state(&conn).unwrap().filling, 1, "switched");
        append(&conn, "c1", PER_CHAT + 1..=PER_CHAT + 10);
        // c3 has older messages in the drained table and newer ones in the filling table.
        append(&conn, "c3", PER_CHAT + 1..=PER_CHAT + 5);
        assert_eq!(rows(&conn, "recent_b"), 15, "appends go to the other table");
        assert_reads(&conn, "c3", PER_CHAT + 5);

        // c1 and c2 make a step; c3 waits for the next one.
        take_step(&settler, &mut conn);
        assert_eq!(rows(&conn, "messages"), 2 * PER_CHAT as i64);
        assert_eq!(
            rows(&conn, "recent_a"),
            total as i64,
            "the copies stay until the end"
        );
        assert_reads(&conn, "c1", PER_CHAT + 10);
        assert_reads(&conn, "c3", PER_CHAT + 5);

        take_step(&settler, &mut conn);
        assert_eq!(rows(&conn, "messages"), total as i64);
        assert_reads(&conn, "c3", PER_CHAT + 5);

        take_step(&settler, &mut conn);
        assert_eq!(rows(&conn, "recent_a"), 0, "emptied");
        assert!(read_state(&conn).unwrap().draining_after.is_none());
        assert_reads(&conn, "c1", PER_CHAT + 10);

        // Fifteen messages in the filling table are below the threshold: nothing to do.
        take_step(&settler, &mut conn);
        assert_eq!(rows(&conn, "recent_b"), 15);
        assert_eq!(read_state(&conn).unwrap().filling, 1);
    }

    /// A step that fails is undone alone: the batch it starts still commits, and the drain
    /// waits before trying again.
    #[test]
    fn a_failed_step_is_undone_alone_and_waits() {
        let mut conn = store();
        append(&conn, "c1", 1..=5);
        let settler = Settler::new(5);
        take_step(&settler, &mut conn);
        assert_eq!(
            read_state(&conn).unwrap().draining_after.as_deref(),
            Some("")
        );
        // A row already settled at c1's first seq makes the copy fail (primary key).
        conn.execute(
            "INSERT INTO messages (chat_id, seq, msg_id, sender_id, client_msg_id, body, ts)
             VALUES ('c1', 1, 'x', 'alice', 'k', 'b', 0)",
            [],
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        let (step, sound) = settler.step(&tx);
        assert!(step.is_err() && sound, "undone alone");
        tx.execute("INSERT INTO last_seen (user_id, ts) VALUES ('u', 1)", [])
            .unwrap();
        tx.commit().unwrap();
        settler.finished(step, true);
        assert_eq!(rows(&conn, "last_seen"), 1, "the batch committed");
        assert_eq!(rows(&conn, "messages"), 1, "the step did not");
        assert_eq!(
            read_state(&conn).unwrap().draining_after.as_deref(),
            Some("")
        );

        let tx = conn.transaction().unwrap();
        let (step, _) = settler.step(&tx);
        assert!(
            matches!(
                step,
                Ok(Taken {
                    step: Step::Nothing,
                    ..
                })
            ),
            "paused after the failure"
        );
    }

    /// Under heavy appends a step copies more, so the drain keeps ahead of the filling.
    #[test]
    fn a_step_copies_more_when_appends_come_faster() {
        let (mut conn, total) = three_chats_two_to_a_step();
        let settler = Settler::new(total);
        take_step(&settler, &mut conn);
        // As many messages as the whole drained table arrived since the switch.
        append(&conn, "c1", PER_CHAT + 1..=2 * PER_CHAT);
        settler.appended(total);
        take_step(&settler, &mut conn);
        assert_eq!(
            rows(&conn, "messages"),
            total as i64,
            "all three chats in one step"
        );
    }

    /// Another process sharing the file can finish a drain, and later start a drain of
    /// the same table filled again, between two steps of this process: the order it read
    /// for the first drain is not used for the second.
    #[test]
    fn a_drain_order_read_for_one_drain_is_not_used_for_the_next() {
        let (mut conn, total) = three_chats_two_to_a_step();
        let (this, other) = (Settler::new(total), Settler::new(1));
        take_step(&this, &mut conn);
        take_step(&this, &mut conn);
        assert_eq!(rows(&conn, "messages"), 2 * PER_CHAT as i64, "c1 and c2");
        // The other process copies c3 and empties recent_a...
        take_step(&other, &mut conn);
        take_step(&other, &mut conn);
        assert_eq!(rows(&conn, "recent_a"), 0);
        // ...switches to it, drains and empties recent_b...
        append(&conn, "c1", PER_CHAT + 1..=PER_CHAT + 10);
        take_step(&other, &mut conn);
        take_step(&other, &mut conn);
        take_step(&other, &mut conn);
        assert_eq!(rows(&conn, "recent_b"), 0);
        // ...and switches back once c3 alone filled recent_a with as many rows as before.
        let refill = PER_CHAT + 1..=PER_CHAT + total as u64;
        append(&conn, "c3", refill);
        take_step(&other, &mut conn);
        assert_eq!(read_state(&conn).unwrap().filling, 1);

        // The same table, the same rowids, other messages: this process reads it afresh.
        take_step(&this, &mut conn);
        take_step(&this, &mut conn);
        assert_eq!(rows(&conn, "recent_a"), 0, "drained and emptied");
        assert_eq!(rows(&conn, "messages"), 2 * total as i64 + 10);
        assert_reads(&conn, "c3", PER_CHAT + total as u64);
        assert_reads(&conn, "c1", PER_CHAT + 10);
    }

    /// A step whose order no longer matches the table copies nothing rather than skip a
    /// message; the order is read afresh for the next try.
    #[test]
    fn a_step_stops_where_its_order_misses_a_row() {
        let (mut conn, total) = three_chats_two_to_a_step();
        let settler = Settler::new(total);
        take_step(&settler, &mut conn);
        take_step(&settler, &mut conn);
        // Gone behind the order's back (nothing in the store does this).
        conn.execute("DELETE FROM recent_a WHERE chat_id = 'c3' AND seq = 1", [])
            .unwrap();
        let tx = conn.transaction().unwrap();
        let (step, sound) = settler.step(&tx);
        assert!(step.is_err() && sound, "the step failed and was undone");
        tx.commit().unwrap();
        settler.finished(step, true);
        assert_eq!(
            rows(&conn, "messages"),
            2 * PER_CHAT as i64,
            "no part of c3"
        );

        // Once the pause is over, the table is read afresh and the rest of c3 copied.
        *settler.paused_until.lock().unwrap() = None;
        take_step(&settler, &mut conn);
        assert_eq!(rows(&conn, "messages"), total as i64 - 1);
    }

    /// The switch counts the rows in the filling table, whichever process appended them,
    /// and starts again from nothing once the table was emptied.
    #[test]
    fn the_switch_counts_the_table_not_this_process() {
        let (mut conn, total) = three_chats_two_to_a_step();
        let this = Settler::new(total + 10);
        take_step(&this, &mut conn);
        assert_eq!(read_state(&conn).unwrap().filling, 0, "not full yet");
        // Another process appends the last ten; this one appended nothing.
        append(&conn, "c1", PER_CHAT + 1..=PER_CHAT + 10);
        take_step(&this, &mut conn);
        assert_eq!(read_state(&conn).unwrap().filling, 1, "full: switched");
        for _ in 0..3 {
            take_step(&this, &mut conn);
        }
        assert!(
            read_state(&conn).unwrap().draining_after.is_none(),
            "drained"
        );

        // recent_b fills up to the threshold again, from its first row.
        append(&conn, "c2", PER_CHAT + 1..=PER_CHAT + total as u64);
        take_step(&this, &mut conn);
        assert_eq!(read_state(&conn).unwrap().filling, 1, "one short");
        append(
            &conn,
            "c2",
            PER_CHAT + total as u64 + 1..=PER_CHAT + total as u64 + 10,
        );
        take_step(&this, &mut conn);
        assert_eq!(read_state(&conn).unwrap().filling, 0, "switched back");
    }

    /// A drain interrupted (a restart) carries on from the chat it stopped after.
    #[test]
    fn a_drain_resumes_from_the_state_in_the_database() {
        let (mut conn, total) = three_chats_two_to_a_step();
        let before_restart = Settler::new(total);
        take_step(&before_restart, &mut conn);
        take_step(&before_restart, &mut conn);
        assert_eq!(rows(&conn, "messages"), 2 * PER_CHAT as i64);

        let after_restart = Settler::new(total);
        take_step(&after_restart, &mut conn);
        assert_eq!(
            rows(&conn, "messages"),
            total as i64,
            "c3 only, not c1 and c2 again"
        );
        take_step(&after_restart, &mut conn);
        assert_eq!(rows(&conn, "recent_a"), 0);
        assert_reads(&conn, "c2", PER_CHAT);
    }
}
