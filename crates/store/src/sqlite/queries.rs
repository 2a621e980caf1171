//! The SQL of the embedded store, as plain functions over a connection. The writer thread
//! and the read pool call them; nothing here knows about threads or async.

use std::collections::HashMap;

use chat_protocol::ids::{ChatId, UserId};
use chat_protocol::{Chat, ChatKind, Member, Message, PushPlatform, Role};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::SeqConflict;
use crate::types::{
    DedupEntry, Page, PageFiller, PushDevice, SequencerState, UserChatState, Watermarks,
};

pub(crate) const MESSAGE_COLUMNS: &str = "chat_id, seq, msg_id, sender_id, client_msg_id, body, ts";

/// Messages settled out of the recent tables in bulk (see `settle`), clustered by chat.
pub(crate) const SETTLED: &str = "messages";
/// The two recent tables: appends go to the one `settle_state` names as filling, while
/// the other is drained into `SETTLED` chat by chat.
pub(crate) const RECENT: [&str; 2] = ["recent_a", "recent_b"];
/// A chat's messages not yet settled (?1: the chat, ?2: its settled head). Rows at or
/// below the settled head are copies of settled ones, in a table still being drained;
/// the rest are newer than every settled message of the chat, so a read in seq order
/// takes the settled table and then these.
const UNSETTLED: &str = "(SELECT chat_id, seq, msg_id, sender_id, client_msg_id, body, ts
    FROM recent_a WHERE chat_id = ?1 AND seq > ?2
    UNION ALL SELECT chat_id, seq, msg_id, sender_id, client_msg_id, body, ts
    FROM recent_b WHERE chat_id = ?1 AND seq > ?2)";
/// A chat's settled messages, in the shape of `UNSETTLED` and with its parameters.
const SETTLED_OF_CHAT: &str = "(SELECT chat_id, seq, msg_id, sender_id, client_msg_id, body, ts
    FROM messages WHERE chat_id = ?1 AND seq <= ?2)";
/// Where a chat's messages are, oldest first.
const OLDEST_FIRST: [&str; 2] = [SETTLED_OF_CHAT, UNSETTLED];
/// Where a chat's messages are, newest first.
const NEWEST_FIRST: [&str; 2] = [UNSETTLED, SETTLED_OF_CHAT];

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        chat_id: row.get(0)?,
        seq: row.get::<_, i64>(1)? as u64,
        msg_id: row.get(2)?,
        sender_id: row.get(3)?,
        client_msg_id: row.get(4)?,
        body: row.get(5)?,
        ts: row.get(6)?,
    })
}

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, format!("{what}={value}"), rusqlite::types::Type::Text)
}

pub(crate) fn insert_chat(conn: &Connection, chat: &Chat) -> rusqlite::Result<bool> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO chats (chat_id, kind, title, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (chat_id) DO NOTHING",
        )?
        .execute(params![
            chat.chat_id,
            chat.kind.as_str(),
            chat.title,
            chat.created_at
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    upsert_members(conn, &chat.chat_id, &chat.members, chat.created_at)?;
    Ok(true)
}

pub(crate) fn upsert_members(
    conn: &Connection,
    chat_id: &str,
    members: &[Member],
    now_ms: i64,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO members (chat_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (chat_id, user_id) DO UPDATE SET role = excluded.role",
    )?;
    for m in members {
        stmt.execute(params![chat_id, m.user_id, m.role.as_str(), now_ms])?;
    }
    Ok(())
}

pub(crate) fn delete_member(
    conn: &Connection,
    chat_id: &str,
    user_id: &str,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM members WHERE chat_id = ?1 AND user_id = ?2")?
        .execute(params![chat_id, user_id])?
        > 0)
}

pub(crate) fn set_role(
    conn: &Connection,
    chat_id: &str,
    user_id: &str,
    role: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE members SET role = ?3 WHERE chat_id = ?1 AND user_id = ?2")?
        .execute(params![chat_id, user_id, role])?;
    Ok(())
}

pub(crate) fn head_seq(conn: &Connection, chat_id: &str) -> rusqlite::Result<u64> {
    let head = conn
        .prepare_cached("SELECT head_seq FROM chat_heads WHERE chat_id = ?1")?
        .query_row([chat_id], |r| r.get::<_, i64>(0))
        .optional()?;
    // A chat last written before schema v7 has its messages settled and no head row yet.
    let head = match head {
        Some(head) => head,
        None => settled_head(conn, chat_id)?,
    };
    Ok(head as u64)
}

pub(crate) fn select_chat(conn: &Connection, chat_id: &str) -> rusqlite::Result<Option<Chat>> {
    let head = conn
        .prepare_cached("SELECT kind, title, created_at FROM chats WHERE chat_id = ?1")?
        .query_row([chat_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    let Some((kind, title, created_at)) = head else {
        return Ok(None);
    };
    let kind = ChatKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?;
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, role FROM members WHERE chat_id = ?1 ORDER BY joined_at, user_id",
    )?;
    let members = stmt
        .query_map([chat_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .map(|row| {
            let (user_id, role) = row?;
            let role = Role::parse(&role).ok_or_else(|| corrupt("role", &role))?;
            Ok(Member {
                user_id: user_id.into(),
                role,
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Chat {
        chat_id: chat_id.to_owned().into(),
        kind,
        title,
        members,
        created_at,
        head_seq: head_seq(conn, chat_id)?,
        version: chat_version(conn, chat_id)?,
    }))
}

fn chat_version(conn: &Connection, chat_id: &str) -> rusqlite::Result<u64> {
    Ok(conn
        .prepare_cached("SELECT version FROM chat_versions WHERE chat_id = ?1")?
        .query_row([chat_id], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64)
}

pub(crate) fn bump_chat_version(conn: &Connection, chat_id: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "INSERT INTO chat_versions (chat_id, version) VALUES (?1, 1)
         ON CONFLICT (chat_id) DO UPDATE SET version = version + 1
         RETURNING version",
    )?
    .query_row([chat_id], |r| r.get::<_, i64>(0))
    .map(|v| v as u64)
}

pub(crate) fn chat_ids_of_user(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<ChatId>> {
    conn.prepare_cached("SELECT chat_id FROM members WHERE user_id = ?1 ORDER BY chat_id")?
        .query_map([user_id], |r| r.get(0))?
        .collect()
}

pub(crate) fn contacts_of(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<UserId>> {
    conn.prepare_cached(
        "SELECT DISTINCT other.user_id FROM members mine
         JOIN members other ON other.chat_id = mine.chat_id
         WHERE mine.user_id = ?1 AND other.user_id <> ?1",
    )?
    .query_map([user_id], |r| r.get(0))?
    .collect()
}

pub(crate) fn large_groups_of(
    conn: &Connection,
    user_id: &str,
    more_than: usize,
) -> rusqlite::Result<Vec<ChatId>> {
    conn.prepare_cached(
        "SELECT mine.chat_id FROM members mine
         JOIN chats c ON c.chat_id = mine.chat_id AND c.kind = 'group'
         WHERE mine.user_id = ?1
           AND (SELECT COUNT(*) FROM members m WHERE m.chat_id = mine.chat_id) > ?2
         ORDER BY mine.chat_id",
    )?
    .query_map(params![user_id, more_than as i64], |r| r.get(0))?
    .collect()
}

pub(crate) fn chats_of_user(
    conn: &Connection,
    user_id: &str,
    device_id: &str,
) -> rusqlite::Result<Vec<UserChatState>> {
    let mut states = Vec::new();
    for chat_id in chat_ids_of_user(conn, user_id)? {
        let Some(chat) = select_chat(conn, &chat_id)? else {
            continue;
        };
        let watermarks = select_watermarks(conn, &chat_id, user_id, device_id)?;
        let unread = unread_count(conn, &chat_id, user_id, watermarks.read)?;
        let last_message = last_message(conn, &chat_id)?;
        states.push(UserChatState {
            chat,
            watermarks,
            unread,
            last_message,
        });
    }
    Ok(states)
}

/// The newest settled seq of a chat (0 if none is settled).
fn settled_head(conn: &Connection, chat_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE chat_id = ?1")?
        .query_row([chat_id], |r| r.get(0))
}

fn last_message(conn: &Connection, chat_id: &str) -> rusqlite::Result<Option<Message>> {
    let newest = messages_before(conn, chat_id, u64::MAX, Page::count(1))?;
    Ok(newest.into_iter().next())
}

fn unread_count(
    conn: &Connection,
    chat_id: &str,
    user_id: &str,
    read: u64,
) -> rusqlite::Result<u64> {
    let settled = settled_head(conn, chat_id)?;
    let mut unread = 0;
    for from in OLDEST_FIRST {
        unread += conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM {from} WHERE seq > ?3 AND sender_id <> ?4"
            ))?
            .query_row(params![chat_id, settled, read as i64, user_id], |r| {
                r.get::<_, i64>(0)
            })? as u64;
    }
    Ok(unread)
}

/// What an append will do, decided before anything is written: the messages that are new
/// (in order), the others being repeats of stored ones.
pub(crate) struct CheckedAppend {
    new: Vec<usize>,
}

/// Checks a batch against the log without writing: each message is either already stored
/// (the same msg_id at its seq: a retried batch) or comes right after its chat's head, so
/// the log stays gap-free even when an earlier batch in flight failed. Anything else is a
/// `SeqConflict` and nothing of the batch is written.
pub(crate) fn check_append(
    conn: &Connection,
    messages: &[Message],
) -> rusqlite::Result<CheckedAppend> {
    let mut heads: HashMap<&str, u64> = HashMap::new();
    let mut new = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let head = match heads.get(m.chat_id.as_str()) {
            Some(head) => *head,
            None => head_seq(conn, &m.chat_id)?,
        };
        if m.seq == head + 1 {
            heads.insert(m.chat_id.as_str(), m.seq);
            new.push(i);
            continue;
        }
        let conflict = |why: String| {
            rusqlite::Error::ToSqlConversionFailure(Box::new(SeqConflict(format!(
                "chat {} seq {}: {why}",
                m.chat_id, m.seq
            ))))
        };
        if m.seq > head {
            return Err(conflict(format!("the log ends at {head}")));
        }
        let existing = stored_msg_id(conn, &m.chat_id, m.seq)?;
        if existing.as_deref() != Some(m.msg_id.as_str()) {
            return Err(conflict(format!(
                "holds {}, not {}",
                existing.unwrap_or_default(),
                m.msg_id
            )));
        }
        heads.insert(m.chat_id.as_str(), head);
    }
    Ok(CheckedAppend { new })
}

/// The msg_id stored at a chat's seq, in whichever table holds it (a copy in a table
/// being drained has the same).
fn stored_msg_id(conn: &Connection, chat_id: &str, seq: u64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT msg_id FROM messages WHERE chat_id = ?1 AND seq = ?2
         UNION ALL SELECT msg_id FROM recent_a WHERE chat_id = ?1 AND seq = ?2
         UNION ALL SELECT msg_id FROM recent_b WHERE chat_id = ?1 AND seq = ?2
         LIMIT 1",
    )?
    .query_row(params![chat_id, seq as i64], |r| r.get(0))
    .optional()
}

/// Writes the new messages of a checked batch, and the new heads of their chats, to the
/// recent table; fails only if the database does. Returns how many it wrote.
pub(crate) fn insert_checked(
    conn: &Connection,
    messages: &[Message],
    checked: CheckedAppend,
) -> rusqlite::Result<usize> {
    let filling = RECENT[super::settle::filling_table(conn)?];
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO {filling} ({MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?;
    let mut heads: HashMap<&str, u64> = HashMap::new();
    for m in checked.new.iter().map(|&i| &messages[i]) {
        insert.execute(params![
            m.chat_id,
            m.seq as i64,
            m.msg_id,
            m.sender_id,
            m.client_msg_id,
            m.body,
            m.ts
        ])?;
        // Checked to continue their chats in order: the last one is the head.
        heads.insert(m.chat_id.as_str(), m.seq);
    }
    let mut set_head = conn.prepare_cached(
        "INSERT INTO chat_heads (chat_id, head_seq) VALUES (?1, ?2)
         ON CONFLICT (chat_id) DO UPDATE SET head_seq = excluded.head_seq",
    )?;
    for (chat_id, head) in heads {
        set_head.execute(params![chat_id, head as i64])?;
    }
    Ok(checked.new.len())
}

/// The chat's head and its messages since `dedup_since_ms`, newest first: the messages
/// themselves are the dedup record (no separate table to write on every append), read
/// backwards from the head until one is older than the window.
pub(crate) fn sequencer_state(
    conn: &Connection,
    chat_id: &str,
    dedup_since_ms: i64,
) -> rusqlite::Result<SequencerState> {
    let head_seq = head_seq(conn, chat_id)?;
    let settled = settled_head(conn, chat_id)?;
    let mut recent = Vec::new();
    // Newest first: the unsettled messages, then the settled ones.
    for from in NEWEST_FIRST {
        let mut statement = conn.prepare_cached(&format!(
            "SELECT sender_id, client_msg_id, seq, msg_id, ts FROM {from} ORDER BY seq DESC"
        ))?;
        let rows = statement.query_map(params![chat_id, settled], |r| {
            Ok(DedupEntry {
                sender_id: r.get(0)?,
                client_msg_id: r.get(1)?,
                seq: r.get::<_, i64>(2)? as u64,
                msg_id: r.get(3)?,
                ts: r.get(4)?,
            })
        })?;
        for row in rows {
            let entry = row?;
            if entry.ts < dedup_since_ms {
                return Ok(SequencerState { head_seq, recent });
            }
            recent.push(entry);
        }
    }
    Ok(SequencerState { head_seq, recent })
}

pub(crate) fn messages_after(
    conn: &Connection,
    chat_id: &str,
    after_seq: u64,
    page: Page,
) -> rusqlite::Result<Vec<Message>> {
    let settled = settled_head(conn, chat_id)?;
    let mut filler = page.filler();
    let after = Beyond::After(after_seq.min(i64::MAX as u64) as i64);
    offer_settled(conn, chat_id, settled, after, &mut filler)?;
    offer_unsettled(conn, chat_id, settled, after, &mut filler)?;
    Ok(filler.into_messages())
}

pub(crate) fn messages_before(
    conn: &Connection,
    chat_id: &str,
    before_seq: u64,
    page: Page,
) -> rusqlite::Result<Vec<Message>> {
    let settled = settled_head(conn, chat_id)?;
    let mut filler = page.filler();
    let before = Beyond::Before(before_seq.min(i64::MAX as u64) as i64);
    offer_unsettled(conn, chat_id, settled, before, &mut filler)?;
    offer_settled(conn, chat_id, settled, before, &mut filler)?;
    let mut messages = filler.into_messages();
    messages.reverse();
    Ok(messages)
}

/// Which messages of a chat a page reads, and so in which order.
#[derive(Clone, Copy)]
enum Beyond {
    /// Seqs above this one, oldest first.
    After(i64),
    /// Seqs below this one, newest first.
    Before(i64),
}

impl Beyond {
    /// The seq condition on `?3` and the order, as SQL.
    fn sql(self) -> &'static str {
        match self {
            Beyond::After(_) => "seq > ?3 ORDER BY seq ASC",
            Beyond::Before(_) => "seq < ?3 ORDER BY seq DESC",
        }
    }

    fn seq(self) -> i64 {
        match self {
            Beyond::After(seq) | Beyond::Before(seq) => seq,
        }
    }
}

/// Offers the chat's settled messages beyond the bound to `filler` until it is full.
fn offer_settled(
    conn: &Connection,
    chat_id: &str,
    settled: i64,
    beyond: Beyond,
    filler: &mut PageFiller,
) -> rusqlite::Result<()> {
    if filler.is_full() {
        return Ok(());
    }
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM {SETTLED_OF_CHAT} WHERE {} LIMIT ?4",
        beyond.sql()
    ))?;
    let rows = statement.query_map(
        params![chat_id, settled, beyond.seq(), sql_limit(filler.room())],
        message_from_row,
    )?;
    fill(filler, rows)
}

/// Offers the chat's unsettled messages beyond the bound to `filler` until it is full.
/// The recent tables have no index, so this finds the rows by their seq alone first and
/// then reads only the rows it offers: a scan never reads the bodies of messages it does
/// not return.
fn offer_unsettled(
    conn: &Connection,
    chat_id: &str,
    settled: i64,
    beyond: Beyond,
    filler: &mut PageFiller,
) -> rusqlite::Result<()> {
    if filler.is_full() {
        return Ok(());
    }
    let keys: Vec<(usize, i64)> = conn
        .prepare_cached(&format!(
            "SELECT t, id FROM (
                 SELECT 0 AS t, id, seq FROM recent_a WHERE chat_id = ?1 AND seq > ?2
                 UNION ALL SELECT 1, id, seq FROM recent_b WHERE chat_id = ?1 AND seq > ?2)
             WHERE {} LIMIT ?4",
            beyond.sql()
        ))?
        .query_map(
            params![chat_id, settled, beyond.seq(), sql_limit(filler.room())],
            |r| Ok((r.get::<_, i64>(0)? as usize & 1, r.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    for (table, id) in keys {
        let message = conn
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM {} WHERE id = ?1",
                RECENT[table]
            ))?
            .query_row([id], message_from_row)?;
        if !filler.offer(message) {
            break;
        }
    }
    Ok(())
}

/// Reads rows only until the page is full, so a byte-bounded page never loads the rest.
fn fill(
    filler: &mut PageFiller,
    rows: impl Iterator<Item = rusqlite::Result<Message>>,
) -> rusqlite::Result<()> {
    for row in rows {
        if !filler.offer(row?) {
            break;
        }
    }
    Ok(())
}

/// A page's remaining count as an SQL LIMIT.
fn sql_limit(room: usize) -> i64 {
    room.min(i64::MAX as usize) as i64
}

pub(crate) fn select_watermarks(
    conn: &Connection,
    chat_id: &str,
    user_id: &str,
    device_id: &str,
) -> rusqlite::Result<Watermarks> {
    let device_delivered = conn
        .prepare_cached(
            "SELECT delivered_seq FROM device_watermarks
             WHERE chat_id = ?1 AND user_id = ?2 AND device_id = ?3",
        )?
        .query_row(params![chat_id, user_id, device_id], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0) as u64;
    let (delivered, read) = conn
        .prepare_cached(
            "SELECT delivered_seq, read_seq FROM user_watermarks WHERE chat_id = ?1 AND user_id = ?2",
        )?
        .query_row(params![chat_id, user_id], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .optional()?
        .unwrap_or((0, 0));
    Ok(Watermarks {
        device_delivered,
        delivered,
        read,
    })
}

/// Raises the device and user delivered watermarks; returns the user's new value if it rose.
pub(crate) fn advance_delivered(
    conn: &Connection,
    chat_id: &str,
    user_id: &str,
    device_id: &str,
    seq: u64,
) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached(
        "INSERT INTO device_watermarks (chat_id, user_id, device_id, delivered_seq)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (chat_id, user_id, device_id)
         DO UPDATE SET delivered_seq = MAX(delivered_seq, excluded.delivered_seq)",
    )?
    .execute(params![chat_id, user_id, device_id, seq as i64])?;
    let before = select_watermarks(conn, chat_id, user_id, device_id)?.delivered;
    if seq <= before {
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO user_watermarks (chat_id, user_id, delivered_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (chat_id, user_id) DO UPDATE SET delivered_seq = excluded.delivered_seq",
    )?
    .execute(params![chat_id, user_id, seq as i64])?;
    Ok(Some(seq))
}

/// Raises the user's read watermark; returns the new value if it rose.
pub(crate) fn advance_read(
    conn: &Connection,
    chat_id: &str,
    user_id: &str,
    seq: u64,
) -> rusqlite::Result<Option<u64>> {
    let before = select_watermarks(conn, chat_id, user_id, "")?.read;
    if seq <= before {
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO user_watermarks (chat_id, user_id, read_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (chat_id, user_id) DO UPDATE SET read_seq = excluded.read_seq",
    )?
    .execute(params![chat_id, user_id, seq as i64])?;
    Ok(Some(seq))
}

pub(crate) fn upsert_push_device(
    conn: &Connection,
    d: &PushDevice,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO push_devices (user_id, device_id, platform, token, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (user_id, device_id)
         DO UPDATE SET platform = excluded.platform, token = excluded.token,
                       updated_at = excluded.updated_at",
    )?
    .execute(params![
        d.user_id,
        d.device_id,
        d.platform.as_str(),
        d.token,
        now_ms
    ])?;
    Ok(())
}

pub(crate) fn delete_push_device(
    conn: &Connection,
    user_id: &str,
    device_id: &str,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM push_devices WHERE user_id = ?1 AND device_id = ?2")?
        .execute(params![user_id, device_id])?
        > 0)
}

pub(crate) fn delete_push_token(conn: &Connection, device: &PushDevice) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM push_devices WHERE user_id = ?1 AND device_id = ?2 AND token = ?3",
        )?
        .execute(params![
            device.user_id.as_str(),
            device.device_id.as_str(),
            device.token
        ])?
        > 0)
}

pub(crate) fn push_devices(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<PushDevice>> {
    conn.prepare_cached(
        "SELECT device_id, platform, token FROM push_devices WHERE user_id = ?1 ORDER BY device_id",
    )?
    .query_map([user_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })?
    .map(|row| {
        let (device_id, platform, token) = row?;
        let platform =
            PushPlatform::parse(&platform).ok_or_else(|| corrupt("platform", &platform))?;
        Ok(PushDevice {
            user_id: user_id.to_owned().into(),
            device_id: device_id.into(),
            platform,
            token,
        })
    })
    .collect()
}

pub(crate) fn set_last_seen(conn: &Connection, user_id: &str, ts: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO last_seen (user_id, ts) VALUES (?1, ?2)
         ON CONFLICT (user_id) DO UPDATE SET ts = MAX(ts, excluded.ts)",
    )?
    .execute(params![user_id, ts])?;
    Ok(())
}

pub(crate) fn last_seen(
    conn: &Connection,
    user_ids: &[UserId],
) -> rusqlite::Result<HashMap<UserId, i64>> {
    let mut stmt = conn.prepare_cached("SELECT ts FROM last_seen WHERE user_id = ?1")?;
    let mut seen = HashMap::new();
    for user in user_ids {
        if let Some(ts) = stmt.query_row([user], |r| r.get::<_, i64>(0)).optional()? {
            seen.insert(user.clone(), ts);
        }
    }
    Ok(seen)
}

pub(crate) fn block(
    conn: &Connection,
    blocker: &str,
    blocked: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO blocks (blocker, blocked, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (blocker, blocked) DO NOTHING",
    )?
    .execute(params![blocker, blocked, now_ms])?;
    Ok(())
}

pub(crate) fn unblock(conn: &Connection, blocker: &str, blocked: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM blocks WHERE blocker = ?1 AND blocked = ?2")?
        .execute(params![blocker, blocked])?
        > 0)
}

pub(crate) fn is_blocked(
    conn: &Connection,
    blocker: &str,
    blocked: &str,
) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM blocks WHERE blocker = ?1 AND blocked = ?2")?
        .exists(params![blocker, blocked])
}

pub(crate) fn blocks_of(conn: &Connection, blocker: &str) -> rusqlite::Result<Vec<UserId>> {
    conn.prepare_cached("SELECT blocked FROM blocks WHERE blocker = ?1 ORDER BY blocked")?
        .query_map([blocker], |r| r.get(0))?
        .collect()
}

pub(crate) fn blockers_of(conn: &Connection, blocked: &str) -> rusqlite::Result<Vec<UserId>> {
    conn.prepare_cached("SELECT blocker FROM blocks WHERE blocked = ?1 ORDER BY blocker")?
        .query_map([blocked], |r| r.get(0))?
        .collect()
}

pub(crate) fn hide_chat(
    conn: &Connection,
    user_id: &str,
    chat_id: &str,
    seq: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO hidden_chats (user_id, chat_id, hidden_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id, chat_id) DO UPDATE SET hidden_seq = excluded.hidden_seq",
    )?
    .execute(params![user_id, chat_id, seq as i64])?;
    Ok(())
}

pub(crate) fn hidden_chats(
    conn: &Connection,
    user_id: &str,
) -> rusqlite::Result<std::collections::HashMap<ChatId, u64>> {
    conn.prepare_cached("SELECT chat_id, hidden_seq FROM hidden_chats WHERE user_id = ?1")?
        .query_map([user_id], |r| {
            Ok((
                ChatId::from(r.get::<_, String>(0)?),
                r.get::<_, i64>(1)? as u64,
            ))
        })?
        .collect()
}

pub(crate) fn set_privacy(
    conn: &Connection,
    user_id: &str,
    last_seen: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO privacy (user_id, last_seen) VALUES (?1, ?2)
         ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
    )?
    .execute(params![user_id, last_seen])?;
    Ok(())
}

pub(crate) fn last_seen_hidden(
    conn: &Connection,
    user_ids: &[UserId],
) -> rusqlite::Result<std::collections::HashSet<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM privacy WHERE user_id = ?1 AND last_seen = 'nobody'")?;
    let mut hidden = std::collections::HashSet::new();
    for user in user_ids {
        if stmt.exists([user.as_str()])? {
            hidden.insert(user.clone());
        }
    }
    Ok(hidden)
}
