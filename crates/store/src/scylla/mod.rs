//! The ScyllaDB/Cassandra store: the store that grows past one machine. Messages live in
//! bounded partitions ((chat_id, bucket), seq) with the bucket derived from seq, so range
//! reads know their partitions; every query is prepared; nothing on the message path uses a
//! lightweight transaction. See docs/data-model.md.

mod schema;
mod statements;
mod tls;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::ids::{ChatId, DeviceId, UserId};
use chat_protocol::{
    now_ms, Chat, ChatKind, LastSeenVisibility, Member, Message, PrivacySettings, PushPlatform,
    Role,
};
use futures_util::future::try_join_all;
use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::value::{CqlValue, Row};

use crate::error::{StoreError, StoreResult};
use crate::types::{DedupEntry, Page, PushDevice, SequencerState, UserChatState, Watermarks};
use crate::MessageStore;
use statements::Statements;
pub use tls::ScyllaTls;

/// Settings of the Scylla store.
#[derive(Debug, Clone)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Replication factor of the keyspace, if this store creates it.
    pub replication_factor: u32,
    /// Consistency of every read and write (LOCAL_QUORUM keeps reads seeing acked writes).
    pub consistency: Consistency,
    pub request_timeout: Duration,
    /// Messages per partition: partitions stay bounded (~`bucket_size` × message size).
    pub bucket_size: u64,
    /// How long dedup entries live (the dedup window plus a margin).
    pub dedup_ttl: Duration,
    /// Username and password, for clusters with authentication on.
    pub credentials: Option<(String, String)>,
    /// Talk TLS to every node.
    pub tls: Option<ScyllaTls>,
}

impl ScyllaConfig {
    pub fn new(nodes: Vec<String>, keyspace: &str) -> Self {
        ScyllaConfig {
            nodes,
            keyspace: keyspace.to_owned(),
            replication_factor: 3,
            consistency: Consistency::LocalQuorum,
            request_timeout: Duration::from_secs(5),
            bucket_size: 10_000,
            dedup_ttl: Duration::from_secs(25 * 3600),
            credentials: None,
            tls: None,
        }
    }
}

/// How many messages past the read watermark `unread` counts exactly before it estimates.
const UNREAD_SCAN_LIMIT: u64 = 1000;

pub struct ScyllaStore {
    session: Session,
    statements: Statements,
    config: ScyllaConfig,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl ScyllaStore {
    /// Connects, applies the schema and prepares every statement.
    pub async fn connect(config: ScyllaConfig) -> StoreResult<Self> {
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.nodes)
            .connection_timeout(Duration::from_secs(5));
        if let Some((user, password)) = &config.credentials {
            builder = builder.user(user, password);
        }
        if let Some(tls) = &config.tls {
            builder = builder.tls_context(Some(tls.client_config()?));
        }
        let session = builder.build().await.map_err(unavailable)?;
        schema::apply(&session, &config.keyspace, config.replication_factor).await?;
        let statements = Statements::prepare(
            &session,
            &config.keyspace,
            config.consistency,
            config.request_timeout,
        )
        .await?;
        Ok(ScyllaStore {
            session,
            statements,
            config,
        })
    }

    async fn chat_version(&self, chat_id: &ChatId) -> StoreResult<u64> {
        let version: Option<(Option<i64>,)> = self
            .first_row(&self.statements.select_chat_version, (chat_id,))
            .await?;
        Ok(version.and_then(|(v,)| v).unwrap_or(0) as u64)
    }

    /// Whether a lightweight transaction applied (its first column, `[applied]`).
    async fn applied(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<bool> {
        let row = self
            .run(statement, values)
            .await?
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<Row>()
            .map_err(corrupt)?;
        Ok(matches!(
            row.and_then(|r| r.columns.into_iter().next().flatten()),
            Some(CqlValue::Boolean(true))
        ))
    }

    fn bucket(&self, seq: u64) -> i64 {
        (seq / self.config.bucket_size.max(1)) as i64
    }

    async fn run(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<QueryResult> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(unavailable)
    }

    /// All rows of a (possibly large) result, page by page.
    async fn all_rows<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Vec<T>>
    where
        T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + 'static,
    {
        self.session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(unavailable)?
            .rows_stream::<T>()
            .map_err(corrupt)?
            .try_collect()
            .await
            .map_err(unavailable)
    }

    async fn first_row<T>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> StoreResult<Option<T>>
    where
        T: for<'f> scylla::deserialize::row::DeserializeRow<'f, 'f>,
    {
        let rows = self
            .run(statement, values)
            .await?
            .into_rows_result()
            .map_err(corrupt)?;
        rows.maybe_first_row::<T>().map_err(corrupt)
    }

    async fn head(&self, chat_id: &str) -> StoreResult<u64> {
        let head: Option<(Option<i64>,)> = self
            .first_row(&self.statements.select_head, (chat_id,))
            .await?;
        Ok(head.and_then(|(h,)| h).unwrap_or(0) as u64)
    }

    async fn members(&self, chat_id: &str) -> StoreResult<Vec<Member>> {
        let mut rows: Vec<(String, String, i64)> = self
            .all_rows(&self.statements.select_members, (chat_id,))
            .await?;
        // Members in joining order, as the embedded store returns them.
        rows.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
        rows.into_iter()
            .map(|(user_id, role, _)| {
                let role = Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?;
                Ok(Member {
                    user_id: user_id.into(),
                    role,
                })
            })
            .collect()
    }

    async fn insert_members(
        &self,
        chat_id: &str,
        members: &[Member],
        joined_at: i64,
    ) -> StoreResult<()> {
        let writes = members.iter().map(|m| async move {
            self.run(
                &self.statements.insert_member,
                (chat_id, m.user_id.as_str(), m.role.as_str(), joined_at),
            )
            .await?;
            self.run(
                &self.statements.insert_chat_of_user,
                (m.user_id.as_str(), chat_id),
            )
            .await
        });
        try_join_all(writes).await.map(|_| ())
    }

    async fn user_watermarks(&self, chat_id: &str, user_id: &str) -> StoreResult<(u64, u64)> {
        let row: Option<(Option<i64>, Option<i64>)> = self
            .first_row(&self.statements.select_user_watermarks, (chat_id, user_id))
            .await?;
        let (delivered, read) = row.unwrap_or((None, None));
        Ok((delivered.unwrap_or(0) as u64, read.unwrap_or(0) as u64))
    }

    /// Refuses the batch if another message already holds one of its (chat, seq): one
    /// range read per chat and bucket. Without a lightweight transaction this cannot close
    /// the window between the read and the write; the partition leases keep two writers
    /// apart, and this catches a stale writer whose head is behind what is stored.
    async fn check_seqs_free(&self, messages: &[Message]) -> StoreResult<()> {
        let mut ranges: HashMap<(&str, i64), (u64, u64)> = HashMap::new();
        for m in messages {
            let range = ranges
                .entry((m.chat_id.as_str(), self.bucket(m.seq)))
                .or_insert((m.seq, m.seq));
            range.0 = range.0.min(m.seq);
            range.1 = range.1.max(m.seq);
        }
        let ours: HashMap<(&str, u64), &str> = messages
            .iter()
            .map(|m| ((m.chat_id.as_str(), m.seq), m.msg_id.as_str()))
            .collect();
        for ((chat_id, bucket), (low, high)) in ranges {
            let stored: Vec<(i64, String)> = self
                .all_rows(
                    &self.statements.select_ids_in_range,
                    (chat_id, bucket, low as i64, high as i64),
                )
                .await?;
            for (seq, msg_id) in stored {
                if ours
                    .get(&(chat_id, seq as u64))
                    .is_some_and(|mine| *mine != msg_id)
                {
                    return Err(StoreError::Conflict(format!(
                        "chat {chat_id} seq {seq} holds {msg_id}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Messages from others after `read`, counted exactly up to a bound, then estimated
    /// from the head (a Cassandra count over a long backlog would scan it all).
    async fn unread(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        read: u64,
        head: u64,
    ) -> StoreResult<u64> {
        if head <= read {
            return Ok(0);
        }
        let scanned = self
            .messages_after(chat_id, read, Page::count(UNREAD_SCAN_LIMIT as usize))
            .await?;
        let from_others = scanned.iter().filter(|m| m.sender_id != user_id).count() as u64;
        let unscanned = (head - read).saturating_sub(scanned.len() as u64);
        Ok(from_others + unscanned)
    }
}

fn message_of(row: (String, i64, String, String, String, String, i64)) -> Message {
    let (chat_id, seq, msg_id, sender_id, client_msg_id, body, ts) = row;
    Message {
        chat_id: chat_id.into(),
        seq: seq as u64,
        msg_id,
        sender_id: sender_id.into(),
        client_msg_id,
        body,
        ts,
    }
}

type MessageRow = (String, i64, String, String, String, String, i64);

#[async_trait]
impl MessageStore for ScyllaStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(&self.statements.ping, ()).await.map(|_| ())
    }

    async fn create_chat(&self, chat: &Chat) -> StoreResult<bool> {
        // A lightweight transaction, on the cold path of creating a chat only: it makes
        // "the pair's direct chat" unique however many clients create it at once.
        let result = self
            .run(
                &self.statements.insert_chat_if_absent,
                (
                    chat.chat_id.as_str(),
                    chat.kind.as_str(),
                    chat.title.as_deref(),
                    chat.created_at,
                ),
            )
            .await?;
        let row = result
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<Row>()
            .map_err(corrupt)?;
        let applied = matches!(
            row.and_then(|r| r.columns.into_iter().next().flatten()),
            Some(CqlValue::Boolean(true))
        );
        if applied {
            self.insert_members(&chat.chat_id, &chat.members, chat.created_at)
                .await?;
        }
        Ok(applied)
    }

    async fn get_chat(&self, chat_id: &ChatId) -> StoreResult<Option<Chat>> {
        let Some((kind, title, created_at)) = self
            .first_row::<(String, Option<String>, i64)>(&self.statements.select_chat, (chat_id,))
            .await?
        else {
            return Ok(None);
        };
        let kind = ChatKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind}")))?;
        Ok(Some(Chat {
            chat_id: chat_id.to_owned(),
            kind,
            title,
            members: self.members(chat_id).await?,
            created_at,
            head_seq: self.head(chat_id).await?,
            version: self.chat_version(chat_id).await?,
        }))
    }

    async fn add_members(&self, chat_id: &ChatId, members: &[Member]) -> StoreResult<()> {
        self.insert_members(chat_id, members, now_ms()).await
    }

    async fn remove_member(&self, chat_id: &ChatId, user_id: &UserId) -> StoreResult<bool> {
        let was: Option<(String,)> = self
            .first_row(&self.statements.select_member, (chat_id, user_id))
            .await?;
        self.run(&self.statements.delete_member, (chat_id, user_id))
            .await?;
        self.run(&self.statements.delete_chat_of_user, (user_id, chat_id))
            .await?;
        Ok(was.is_some())
    }

    async fn bump_chat_version(&self, chat_id: &ChatId) -> StoreResult<u64> {
        // Compare-and-set with lightweight transactions (member changes are rare): two
        // changes at once each get their own version.
        for _ in 0..16 {
            let applied = match self.chat_version(chat_id).await? {
                0 => {
                    self.applied(&self.statements.insert_chat_version, (chat_id,))
                        .await?
                }
                current => {
                    let next = current as i64 + 1;
                    let values = (next, chat_id, current as i64);
                    self.applied(&self.statements.update_chat_version, values)
                        .await?
                }
            };
            if applied {
                return self.chat_version(chat_id).await;
            }
        }
        Err(StoreError::Unavailable(
            "chat version kept changing; retry".into(),
        ))
    }

    async fn set_role(&self, chat_id: &ChatId, user_id: &UserId, role: Role) -> StoreResult<()> {
        // An UPDATE, not the INSERT of add_members: joined_at (the member order) stays.
        self.run(
            &self.statements.update_role,
            (role.as_str(), chat_id, user_id),
        )
        .await?;
        Ok(())
    }

    async fn chat_ids_of_user(&self, user_id: &UserId) -> StoreResult<Vec<ChatId>> {
        let rows: Vec<(String,)> = self
            .all_rows(&self.statements.select_chats_of_user, (user_id,))
            .await?;
        Ok(rows.into_iter().map(|(c,)| ChatId::from(c)).collect())
    }

    async fn chats_of_user(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Vec<UserChatState>> {
        let mut states = Vec::new();
        for chat_id in self.chat_ids_of_user(user_id).await? {
            let Some(chat) = self.get_chat(&chat_id).await? else {
                continue;
            };
            let watermarks = self.watermarks(&chat_id, user_id, device_id).await?;
            let unread = self
                .unread(&chat_id, user_id, watermarks.read, chat.head_seq)
                .await?;
            let last_message = if chat.head_seq == 0 {
                None
            } else {
                self.messages_before(&chat_id, chat.head_seq + 1, Page::count(1))
                    .await?
                    .pop()
            };
            states.push(UserChatState {
                chat,
                watermarks,
                unread,
                last_message,
            });
        }
        Ok(states)
    }

    async fn contacts_of(&self, user_id: &UserId) -> StoreResult<Vec<UserId>> {
        let mut contacts = HashSet::new();
        for chat_id in self.chat_ids_of_user(user_id).await? {
            for member in self.members(&chat_id).await? {
                if member.user_id != *user_id {
                    contacts.insert(member.user_id);
                }
            }
        }
        Ok(contacts.into_iter().collect())
    }

    async fn large_groups_of(
        &self,
        user_id: &UserId,
        more_than: usize,
    ) -> StoreResult<Vec<ChatId>> {
        let mut large = Vec::new();
        for chat_id in self.chat_ids_of_user(user_id).await? {
            let kind: Option<(String, Option<String>, i64)> = self
                .first_row(&self.statements.select_chat, (chat_id.as_str(),))
                .await?;
            if kind.is_some_and(|(k, _, _)| k == "group")
                && self.members(&chat_id).await?.len() > more_than
            {
                large.push(chat_id);
            }
        }
        Ok(large)
    }

    async fn append(&self, messages: Vec<Message>) -> StoreResult<()> {
        let started = std::time::Instant::now();
        self.check_seqs_free(&messages).await?;
        let ttl = self.config.dedup_ttl.as_secs() as i32;
        // Independent idempotent writes, in parallel: a retried batch rewrites the same
        // cells. The head is written USING TIMESTAMP = seq, so the highest seq wins.
        let writes = messages.iter().map(|m| async move {
            let seq = m.seq as i64;
            let chat = m.chat_id.as_str();
            self.run(
                &self.statements.insert_message,
                (
                    chat,
                    self.bucket(m.seq),
                    seq,
                    m.msg_id.as_str(),
                    m.sender_id.as_str(),
                    m.client_msg_id.as_str(),
                    m.body.as_str(),
                    m.ts,
                ),
            )
            .await?;
            self.run(
                &self.statements.insert_dedup,
                (
                    chat,
                    m.sender_id.as_str(),
                    m.client_msg_id.as_str(),
                    seq,
                    m.msg_id.as_str(),
                    m.ts,
                    ttl,
                ),
            )
            .await?;
            self.run(&self.statements.raise_head, (seq, seq, chat))
                .await
        });
        let result = try_join_all(writes).await.map(|_| ());
        metrics::histogram!("chat_store_append_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    async fn sequencer_state(
        &self,
        chat_id: &ChatId,
        dedup_since_ms: i64,
    ) -> StoreResult<SequencerState> {
        // The head cell may lag the messages if a write of it failed after theirs: look for
        // later messages in the head's bucket and the next one.
        let mut head = self.head(chat_id).await?;
        for bucket in [self.bucket(head), self.bucket(head) + 1] {
            let last: Option<(i64,)> = self
                .first_row(&self.statements.select_last_in_bucket, (chat_id, bucket))
                .await?;
            if let Some((seq,)) = last {
                head = head.max(seq as u64);
            }
        }
        let rows: Vec<(String, String, i64, String, i64)> = self
            .all_rows(&self.statements.select_dedup, (chat_id,))
            .await?;
        let recent = rows
            .into_iter()
            .filter(|r| r.4 >= dedup_since_ms)
            .map(|(sender_id, client_msg_id, seq, msg_id, ts)| DedupEntry {
                sender_id: sender_id.into(),
                client_msg_id,
                seq: seq as u64,
                msg_id,
                ts,
            })
            .collect();
        Ok(SequencerState {
            head_seq: head,
            recent,
        })
    }

    async fn messages_after(
        &self,
        chat_id: &ChatId,
        after_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>> {
        let head = self.head(chat_id).await?;
        let mut filler = page.filler();
        let mut bucket = self.bucket(after_seq + 1);
        while !filler.is_full() && bucket <= self.bucket(head.max(after_seq + 1)) + 1 {
            let want = filler.room() as i32;
            let rows: Vec<MessageRow> = self
                .all_rows(
                    &self.statements.select_after,
                    (chat_id, bucket, after_seq as i64, want),
                )
                .await?;
            for row in rows {
                if !filler.offer(message_of(row)) {
                    break;
                }
            }
            bucket += 1;
        }
        Ok(filler.into_messages())
    }

    async fn messages_before(
        &self,
        chat_id: &ChatId,
        before_seq: u64,
        page: Page,
    ) -> StoreResult<Vec<Message>> {
        let head = self.head(chat_id).await?;
        let last = before_seq
            .saturating_sub(1)
            .min(head.max(1) + self.config.bucket_size);
        let mut filler = page.filler();
        let mut bucket = self.bucket(last);
        let before = before_seq.min(i64::MAX as u64) as i64;
        while !filler.is_full() && bucket >= 0 {
            let want = filler.room() as i32;
            let rows: Vec<MessageRow> = self
                .all_rows(
                    &self.statements.select_before,
                    (chat_id, bucket, before, want),
                )
                .await?;
            for row in rows {
                if !filler.offer(message_of(row)) {
                    break;
                }
            }
            bucket -= 1;
        }
        let mut messages = filler.into_messages();
        messages.reverse();
        Ok(messages)
    }

    async fn prune_dedup(&self, _older_than_ms: i64) -> StoreResult<u64> {
        // Dedup entries expire by TTL (`dedup_ttl`); there is nothing to delete by hand.
        Ok(0)
    }

    async fn advance_delivered(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        let (before, _) = self.user_watermarks(chat_id, user_id).await?;
        let s = seq as i64;
        self.run(
            &self.statements.raise_device_delivered,
            (s, s, chat_id, user_id, device_id),
        )
        .await?;
        self.run(
            &self.statements.raise_user_delivered,
            (s, s, chat_id, user_id),
        )
        .await?;
        // Racing raises may both report a rise; receipts tolerate a duplicate, the stored
        // value is the maximum either way.
        Ok((seq > before).then_some(seq))
    }

    async fn advance_read(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        seq: u64,
    ) -> StoreResult<Option<u64>> {
        let (_, before) = self.user_watermarks(chat_id, user_id).await?;
        let s = seq as i64;
        self.run(&self.statements.raise_user_read, (s, s, chat_id, user_id))
            .await?;
        Ok((seq > before).then_some(seq))
    }

    async fn watermarks(
        &self,
        chat_id: &ChatId,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<Watermarks> {
        let device: Option<(Option<i64>,)> = self
            .first_row(
                &self.statements.select_device_watermark,
                (chat_id, user_id, device_id),
            )
            .await?;
        let (delivered, read) = self.user_watermarks(chat_id, user_id).await?;
        Ok(Watermarks {
            device_delivered: device.and_then(|(d,)| d).unwrap_or(0) as u64,
            delivered,
            read,
        })
    }

    async fn upsert_push_device(&self, device: &PushDevice) -> StoreResult<()> {
        self.run(
            &self.statements.upsert_push_device,
            (
                device.user_id.as_str(),
                device.device_id.as_str(),
                device.platform.as_str(),
                device.token.as_str(),
                now_ms(),
            ),
        )
        .await
        .map(|_| ())
    }

    async fn delete_push_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> StoreResult<bool> {
        let was: Option<(String,)> = self
            .first_row(&self.statements.select_push_device, (user_id, device_id))
            .await?;
        self.run(&self.statements.delete_push_device, (user_id, device_id))
            .await?;
        Ok(was.is_some())
    }

    async fn delete_push_token(&self, device: &PushDevice) -> StoreResult<bool> {
        self.applied(
            &self.statements.delete_push_token,
            (
                device.user_id.as_str(),
                device.device_id.as_str(),
                device.token.as_str(),
            ),
        )
        .await
    }

    async fn push_devices(&self, user_id: &UserId) -> StoreResult<Vec<PushDevice>> {
        let rows: Vec<(String, String, String)> = self
            .all_rows(&self.statements.select_push_devices, (user_id,))
            .await?;
        let mut devices: Vec<PushDevice> = rows
            .into_iter()
            .map(|(device_id, platform, token)| {
                let platform = PushPlatform::parse(&platform)
                    .ok_or_else(|| corrupt(format!("platform {platform}")))?;
                Ok(PushDevice {
                    user_id: user_id.to_owned(),
                    device_id: device_id.into(),
                    platform,
                    token,
                })
            })
            .collect::<StoreResult<_>>()?;
        devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(devices)
    }

    async fn set_last_seen(&self, user_id: &UserId, ts_ms: i64) -> StoreResult<()> {
        // Timestamp = the time itself (in µs): the latest last-seen wins in any order.
        self.run(
            &self.statements.raise_last_seen,
            (ts_ms.saturating_mul(1000), ts_ms, user_id),
        )
        .await
        .map(|_| ())
    }

    async fn last_seen(&self, user_ids: &[UserId]) -> StoreResult<HashMap<UserId, i64>> {
        let reads = user_ids.iter().map(|u| async move {
            let row: Option<(Option<i64>,)> = self
                .first_row(&self.statements.select_last_seen, (u.as_str(),))
                .await?;
            Ok::<_, StoreError>(row.and_then(|(ts,)| ts).map(|ts| (u.clone(), ts)))
        });
        Ok(try_join_all(reads).await?.into_iter().flatten().collect())
    }

    async fn block(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<()> {
        self.run(&self.statements.insert_block, (blocker, blocked, now_ms()))
            .await?;
        // The reverse index, for "who blocks this user" (presence visibility).
        self.run(&self.statements.insert_blocker, (blocked, blocker))
            .await?;
        Ok(())
    }

    async fn is_blocked(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
        let row: Option<(Option<i64>,)> = self
            .first_row(&self.statements.select_block, (blocker, blocked))
            .await?;
        Ok(row.is_some())
    }

    async fn unblock(&self, blocker: &UserId, blocked: &UserId) -> StoreResult<bool> {
        let was = self.is_blocked(blocker, blocked).await?;
        self.run(&self.statements.delete_block, (blocker, blocked))
            .await?;
        self.run(&self.statements.delete_blocker, (blocked, blocker))
            .await?;
        Ok(was)
    }

    async fn blocks_of(&self, blocker: &UserId) -> StoreResult<Vec<UserId>> {
        let rows: Vec<(String,)> = self
            .all_rows(&self.statements.select_blocks, (blocker,))
            .await?;
        let mut blocked: Vec<UserId> = rows.into_iter().map(|(u,)| UserId::from(u)).collect();
        blocked.sort();
        Ok(blocked)
    }

    async fn set_privacy(&self, user_id: &UserId, settings: PrivacySettings) -> StoreResult<()> {
        let last_seen = match settings.last_seen {
            LastSeenVisibility::Contacts => "contacts",
            LastSeenVisibility::Nobody => "nobody",
        };
        self.run(&self.statements.upsert_privacy, (user_id, last_seen))
            .await?;
        Ok(())
    }

    async fn last_seen_hidden(&self, user_ids: &[UserId]) -> StoreResult<HashSet<UserId>> {
        let reads = user_ids.iter().map(|user| async move {
            let row: Option<(Option<String>,)> = self
                .first_row(&self.statements.select_privacy, (user,))
                .await?;
            Ok::<_, StoreError>(row.and_then(|(v,)| v).is_some_and(|v| v == "nobody"))
        });
        let hidden = try_join_all(reads).await?;
        Ok(user_ids
            .iter()
            .zip(hidden)
            .filter(|(_, hidden)| *hidden)
            .map(|(user, _)| user.clone())
            .collect())
    }

    async fn hide_chat(&self, user_id: &UserId, chat_id: &ChatId, seq: u64) -> StoreResult<()> {
        self.run(
            &self.statements.upsert_hidden_chat,
            (user_id, chat_id, seq as i64),
        )
        .await?;
        Ok(())
    }

    async fn hidden_chats(&self, user_id: &UserId) -> StoreResult<HashMap<ChatId, u64>> {
        let rows: Vec<(String, i64)> = self
            .all_rows(&self.statements.select_hidden_chats, (user_id,))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(chat_id, seq)| (ChatId::from(chat_id), seq as u64))
            .collect())
    }

    async fn blockers_of(&self, blocked: &UserId) -> StoreResult<Vec<UserId>> {
        let rows: Vec<(String,)> = self
            .all_rows(&self.statements.select_blockers, (blocked,))
            .await?;
        let mut blockers: Vec<UserId> = rows.into_iter().map(|(u,)| UserId::from(u)).collect();
        blockers.sort();
        Ok(blockers)
    }
}
