//! The CQL schema of the Scylla/Cassandra store, versioned. `apply` creates the keyspace
//! (with the configured replication) and every table that is missing, then records the
//! version; a keyspace written by a newer version is refused. docs/data-model.md explains
//! each table and the queries it serves.

use scylla::client::session::Session;

use crate::error::{StoreError, StoreResult};

pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Tables of version 1; `{ks}` is replaced by the keyspace.
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {ks}.schema_version (component text PRIMARY KEY, version int)",
    "CREATE TABLE IF NOT EXISTS {ks}.chats (
        chat_id text PRIMARY KEY, kind text, title text, created_at bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.members_by_chat (
        chat_id text, user_id text, role text, joined_at bigint,
        PRIMARY KEY (chat_id, user_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.chats_by_user (
        user_id text, chat_id text,
        PRIMARY KEY (user_id, chat_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.messages (
        chat_id text, bucket bigint, seq bigint, msg_id text, sender_id text,
        client_msg_id text, body text, ts bigint,
        PRIMARY KEY ((chat_id, bucket), seq))
        WITH CLUSTERING ORDER BY (seq ASC)",
    "CREATE TABLE IF NOT EXISTS {ks}.chat_heads (chat_id text PRIMARY KEY, head_seq bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.dedup (
        chat_id text, sender_id text, client_msg_id text, seq bigint, msg_id text, ts bigint,
        PRIMARY KEY (chat_id, sender_id, client_msg_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.device_watermarks (
        chat_id text, user_id text, device_id text, delivered_seq bigint,
        PRIMARY KEY ((chat_id, user_id), device_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.user_watermarks (
        chat_id text, user_id text, delivered_seq bigint, read_seq bigint,
        PRIMARY KEY ((chat_id, user_id)))",
    "CREATE TABLE IF NOT EXISTS {ks}.push_devices (
        user_id text, device_id text, platform text, token text, updated_at bigint,
        PRIMARY KEY (user_id, device_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.last_seen (user_id text PRIMARY KEY, ts bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.blocks (
        blocker text, blocked text, created_at bigint, PRIMARY KEY (blocker, blocked))",
    "CREATE TABLE IF NOT EXISTS {ks}.chat_versions (chat_id text PRIMARY KEY, version bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.privacy (user_id text PRIMARY KEY, last_seen text)",
    "CREATE TABLE IF NOT EXISTS {ks}.hidden_chats (
        user_id text, chat_id text, hidden_seq bigint, PRIMARY KEY (user_id, chat_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.blockers (
        blocked text, blocker text, PRIMARY KEY (blocked, blocker))",
];

/// Keyspace names are spliced into CQL, so only plain identifiers are accepted.
pub(crate) fn valid_keyspace(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn ddl_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("schema: {e}"))
}

pub(crate) async fn apply(
    session: &Session,
    keyspace: &str,
    replication_factor: u32,
) -> StoreResult<()> {
    if !valid_keyspace(keyspace) {
        return Err(StoreError::Internal(format!(
            "invalid keyspace name `{keyspace}`"
        )));
    }
    let create_keyspace = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', 'replication_factor': {replication_factor}}}"
    );
    session
        .query_unpaged(create_keyspace, ())
        .await
        .map_err(ddl_error)?;
    let recorded: Option<i32> = session
        .query_unpaged(
            format!("SELECT version FROM {keyspace}.schema_version WHERE component = 'store'"),
            (),
        )
        .await
        .ok()
        .and_then(|r| r.into_rows_result().ok())
        .and_then(|rows| rows.maybe_first_row::<(i32,)>().ok().flatten())
        .map(|(v,)| v);
    if let Some(version) = recorded.filter(|v| *v > SCHEMA_VERSION) {
        return Err(StoreError::Internal(format!(
            "keyspace {keyspace} has schema v{version}, newer than this binary's v{SCHEMA_VERSION}"
        )));
    }
    for table in TABLES {
        session
            .query_unpaged(table.replace("{ks}", keyspace), ())
            .await
            .map_err(ddl_error)?;
    }
    session
        .query_unpaged(
            format!(
                "INSERT INTO {keyspace}.schema_version (component, version) VALUES ('store', ?)"
            ),
            (SCHEMA_VERSION,),
        )
        .await
        .map_err(ddl_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_are_plain_identifiers() {
        assert!(valid_keyspace("chat"));
        assert!(valid_keyspace("chat_test_01"));
        assert!(!valid_keyspace("chat; DROP KEYSPACE x"));
        assert!(!valid_keyspace("1chat"));
        assert!(!valid_keyspace(""));
    }

    #[test]
    fn every_table_names_the_keyspace_placeholder() {
        assert!(TABLES.iter().all(|t| t.contains("{ks}.")));
    }
}
