-- Schema v1 of the embedded store. Applied by SqliteStore::open when user_version < 1.
CREATE TABLE IF NOT EXISTS chats (
    chat_id    TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    title      TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS members (
    chat_id   TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    role      TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id, chat_id);

-- One row per message; the primary key is the chat's order.
CREATE TABLE IF NOT EXISTS messages (
    chat_id       TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    msg_id        TEXT NOT NULL,
    sender_id     TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    body          TEXT NOT NULL,
    ts            INTEGER NOT NULL,
    PRIMARY KEY (chat_id, seq)
) WITHOUT ROWID;

-- Idempotent send: (chat, sender, client_msg_id) -> the message it created. Pruned by ts.
CREATE TABLE IF NOT EXISTS dedup (
    chat_id       TEXT NOT NULL,
    sender_id     TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    msg_id        TEXT NOT NULL,
    ts            INTEGER NOT NULL,
    PRIMARY KEY (chat_id, sender_id, client_msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_ts ON dedup (ts);

CREATE TABLE IF NOT EXISTS device_watermarks (
    chat_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    delivered_seq INTEGER NOT NULL,
    PRIMARY KEY (chat_id, user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS user_watermarks (
    chat_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    delivered_seq INTEGER NOT NULL DEFAULT 0,
    read_seq      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS push_devices (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    platform   TEXT NOT NULL,
    token      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS last_seen (
    user_id TEXT PRIMARY KEY,
    ts      INTEGER NOT NULL
) WITHOUT ROWID;
