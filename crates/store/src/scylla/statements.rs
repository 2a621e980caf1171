//! Every query of the Scylla store, prepared once at start. Prepared statements are routed
//! token-aware by the driver; those that may be retried safely are marked idempotent.

use std::time::Duration;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;

use crate::error::{StoreError, StoreResult};

pub(crate) struct Statements {
    pub(crate) insert_chat_if_absent: PreparedStatement,
    pub(crate) select_chat: PreparedStatement,
    pub(crate) insert_member: PreparedStatement,
    pub(crate) insert_chat_of_user: PreparedStatement,
    pub(crate) delete_member: PreparedStatement,
    pub(crate) update_role: PreparedStatement,
    pub(crate) select_chat_version: PreparedStatement,
    pub(crate) upsert_privacy: PreparedStatement,
    pub(crate) select_privacy: PreparedStatement,
    pub(crate) upsert_hidden_chat: PreparedStatement,
    pub(crate) select_hidden_chats: PreparedStatement,
    pub(crate) insert_chat_version: PreparedStatement,
    pub(crate) update_chat_version: PreparedStatement,
    pub(crate) delete_chat_of_user: PreparedStatement,
    pub(crate) select_members: PreparedStatement,
    pub(crate) select_member: PreparedStatement,
    pub(crate) select_chats_of_user: PreparedStatement,
    pub(crate) insert_message: PreparedStatement,
    pub(crate) insert_dedup: PreparedStatement,
    pub(crate) raise_head: PreparedStatement,
    pub(crate) select_head: PreparedStatement,
    pub(crate) select_after: PreparedStatement,
    pub(crate) select_before: PreparedStatement,
    pub(crate) select_last_in_bucket: PreparedStatement,
    pub(crate) select_ids_in_range: PreparedStatement,
    pub(crate) select_dedup: PreparedStatement,
    pub(crate) raise_device_delivered: PreparedStatement,
    pub(crate) raise_user_delivered: PreparedStatement,
    pub(crate) raise_user_read: PreparedStatement,
    pub(crate) select_device_watermark: PreparedStatement,
    pub(crate) select_user_watermarks: PreparedStatement,
    pub(crate) upsert_push_device: PreparedStatement,
    pub(crate) select_push_device: PreparedStatement,
    pub(crate) delete_push_device: PreparedStatement,
    pub(crate) delete_push_token: PreparedStatement,
    pub(crate) select_push_devices: PreparedStatement,
    pub(crate) raise_last_seen: PreparedStatement,
    pub(crate) select_last_seen: PreparedStatement,
    pub(crate) insert_block: PreparedStatement,
    pub(crate) delete_block: PreparedStatement,
    pub(crate) select_block: PreparedStatement,
    pub(crate) select_blocks: PreparedStatement,
    pub(crate) insert_blocker: PreparedStatement,
    pub(crate) delete_blocker: PreparedStatement,
    pub(crate) select_blockers: PreparedStatement,
    pub(crate) ping: PreparedStatement,
}

struct Preparer<'a> {
    session: &'a Session,
    keyspace: &'a str,
    consistency: Consistency,
    timeout: Duration,
}

impl Preparer<'_> {
    async fn prepare(&self, cql: &str, idempotent: bool) -> StoreResult<PreparedStatement> {
        let cql = cql.replace("{ks}", self.keyspace);
        let mut statement = self
            .session
            .prepare(cql.as_str())
            .await
            .map_err(|e| StoreError::Unavailable(format!("prepare `{cql}`: {e}")))?;
        statement.set_consistency(self.consistency);
        statement.set_is_idempotent(idempotent);
        statement.set_request_timeout(Some(self.timeout));
        statement.set_page_size(1000);
        Ok(statement)
    }
}

impl Statements {
    pub(crate) async fn prepare(
        session: &Session,
        keyspace: &str,
        consistency: Consistency,
        timeout: Duration,
    ) -> StoreResult<Self> {
        let p = Preparer {
            session,
            keyspace,
            consistency,
            timeout,
        };
        // Watermarks, heads and last-seen are written USING TIMESTAMP = the value itself,
        // so whichever write carries the highest value wins, in any arrival order: they
        // only move forward without read-before-write or lightweight transactions.
        Ok(Statements {
            insert_chat_if_absent: p
                .prepare(
                    "INSERT INTO {ks}.chats (chat_id, kind, title, created_at) VALUES (?, ?, ?, ?) IF NOT EXISTS",
                    false,
                )
                .await?,
            select_chat: p.prepare("SELECT kind, title, created_at FROM {ks}.chats WHERE chat_id = ?", true).await?,
            insert_member: p
                .prepare(
                    "INSERT INTO {ks}.members_by_chat (chat_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
                    true,
                )
                .await?,
            insert_chat_of_user: p
                .prepare("INSERT INTO {ks}.chats_by_user (user_id, chat_id) VALUES (?, ?)", true)
                .await?,
            delete_member: p
                .prepare("DELETE FROM {ks}.members_by_chat WHERE chat_id = ? AND user_id = ?", true)
                .await?,
            upsert_hidden_chat: p
                .prepare("INSERT INTO {ks}.hidden_chats (user_id, chat_id, hidden_seq) VALUES (?, ?, ?)", true)
                .await?,
            select_hidden_chats: p
                .prepare("SELECT chat_id, hidden_seq FROM {ks}.hidden_chats WHERE user_id = ?", true)
                .await?,
            upsert_privacy: p
                .prepare("INSERT INTO {ks}.privacy (user_id, last_seen) VALUES (?, ?)", true)
                .await?,
            select_privacy: p
                .prepare("SELECT last_seen FROM {ks}.privacy WHERE user_id = ?", true)
                .await?,
            select_chat_version: p
                .prepare("SELECT version FROM {ks}.chat_versions WHERE chat_id = ?", true)
                .await?,
            insert_chat_version: p
                .prepare("INSERT INTO {ks}.chat_versions (chat_id, version) VALUES (?, 1) IF NOT EXISTS", false)
                .await?,
            update_chat_version: p
                .prepare("UPDATE {ks}.chat_versions SET version = ? WHERE chat_id = ? IF version = ?", false)
                .await?,
            update_role: p
                .prepare("UPDATE {ks}.members_by_chat SET role = ? WHERE chat_id = ? AND user_id = ?", true)
                .await?,
            delete_chat_of_user: p
                .prepare("DELETE FROM {ks}.chats_by_user WHERE user_id = ? AND chat_id = ?", true)
                .await?,
            select_members: p
                .prepare("SELECT user_id, role, joined_at FROM {ks}.members_by_chat WHERE chat_id = ?", true)
                .await?,
            select_member: p
                .prepare("SELECT role FROM {ks}.members_by_chat WHERE chat_id = ? AND user_id = ?", true)
                .await?,
            select_chats_of_user: p.prepare("SELECT chat_id FROM {ks}.chats_by_user WHERE user_id = ?", true).await?,
            insert_message: p
                .prepare(
                    "INSERT INTO {ks}.messages (chat_id, bucket, seq, msg_id, sender_id, client_msg_id, body, ts)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    true,
                )
                .await?,
            insert_dedup: p
                .prepare(
                    "INSERT INTO {ks}.dedup (chat_id, sender_id, client_msg_id, seq, msg_id, ts)
                     VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
                    true,
                )
                .await?,
            raise_head: p
                .prepare("UPDATE {ks}.chat_heads USING TIMESTAMP ? SET head_seq = ? WHERE chat_id = ?", true)
                .await?,
            select_head: p.prepare("SELECT head_seq FROM {ks}.chat_heads WHERE chat_id = ?", true).await?,
            select_after: p
                .prepare(
                    "SELECT chat_id, seq, msg_id, sender_id, client_msg_id, body, ts FROM {ks}.messages
                     WHERE chat_id = ? AND bucket = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
                    true,
                )
                .await?,
            select_before: p
                .prepare(
                    "SELECT chat_id, seq, msg_id, sender_id, client_msg_id, body, ts FROM {ks}.messages
                     WHERE chat_id = ? AND bucket = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                    true,
                )
                .await?,
            select_last_in_bucket: p
                .prepare(
                    "SELECT seq FROM {ks}.messages WHERE chat_id = ? AND bucket = ? ORDER BY seq DESC LIMIT 1",
                    true,
                )
                .await?,
            select_ids_in_range: p
                .prepare(
                    "SELECT seq, msg_id FROM {ks}.messages WHERE chat_id = ? AND bucket = ? AND seq >= ? AND seq <= ?",
                    true,
                )
                .await?,
            select_dedup: p
                .prepare(
                    "SELECT sender_id, client_msg_id, seq, msg_id, ts FROM {ks}.dedup WHERE chat_id = ?",
                    true,
                )
                .await?,
            raise_device_delivered: p
                .prepare(
                    "UPDATE {ks}.device_watermarks USING TIMESTAMP ? SET delivered_seq = ?
                     WHERE chat_id = ? AND user_id = ? AND device_id = ?",
                    true,
                )
                .await?,
            raise_user_delivered: p
                .prepare(
                    "UPDATE {ks}.user_watermarks USING TIMESTAMP ? SET delivered_seq = ? WHERE chat_id = ? AND user_id = ?",
                    true,
                )
                .await?,
            raise_user_read: p
                .prepare(
                    "UPDATE {ks}.user_watermarks USING TIMESTAMP ? SET read_seq = ? WHERE chat_id = ? AND user_id = ?",
                    true,
                )
                .await?,
            select_device_watermark: p
                .prepare(
                    "SELECT delivered_seq FROM {ks}.device_watermarks WHERE chat_id = ? AND user_id = ? AND device_id = ?",
                    true,
                )
                .await?,
            select_user_watermarks: p
                .prepare(
                    "SELECT delivered_seq, read_seq FROM {ks}.user_watermarks WHERE chat_id = ? AND user_id = ?",
                    true,
                )
                .await?,
            upsert_push_device: p
                .prepare(
                    "INSERT INTO {ks}.push_devices (user_id, device_id, platform, token, updated_at) VALUES (?, ?, ?, ?, ?)",
                    true,
                )
                .await?,
            select_push_device: p
                .prepare("SELECT token FROM {ks}.push_devices WHERE user_id = ? AND device_id = ?", true)
                .await?,
            delete_push_device: p
                .prepare("DELETE FROM {ks}.push_devices WHERE user_id = ? AND device_id = ?", true)
                .await?,
            delete_push_token: p
                .prepare("DELETE FROM {ks}.push_devices WHERE user_id = ? AND device_id = ? IF token = ?", false)
                .await?,
            select_push_devices: p
                .prepare("SELECT device_id, platform, token FROM {ks}.push_devices WHERE user_id = ?", true)
                .await?,
            raise_last_seen: p
                .prepare("UPDATE {ks}.last_seen USING TIMESTAMP ? SET ts = ? WHERE user_id = ?", true)
                .await?,
            select_last_seen: p.prepare("SELECT ts FROM {ks}.last_seen WHERE user_id = ?", true).await?,
            insert_block: p
                .prepare("INSERT INTO {ks}.blocks (blocker, blocked, created_at) VALUES (?, ?, ?)", true)
                .await?,
            delete_block: p
                .prepare("DELETE FROM {ks}.blocks WHERE blocker = ? AND blocked = ?", true)
                .await?,
            select_block: p
                .prepare("SELECT created_at FROM {ks}.blocks WHERE blocker = ? AND blocked = ?", true)
                .await?,
            select_blocks: p.prepare("SELECT blocked FROM {ks}.blocks WHERE blocker = ?", true).await?,
            insert_blocker: p
                .prepare("INSERT INTO {ks}.blockers (blocked, blocker) VALUES (?, ?)", true)
                .await?,
            delete_blocker: p
                .prepare("DELETE FROM {ks}.blockers WHERE blocked = ? AND blocker = ?", true)
                .await?,
            select_blockers: p.prepare("SELECT blocker FROM {ks}.blockers WHERE blocked = ?", true).await?,
            ping: p.prepare("SELECT release_version FROM system.local", true).await?,
        })
    }
}
