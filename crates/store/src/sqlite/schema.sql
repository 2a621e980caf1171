-- The embedded store's schema, as of v7. Applied by SqliteStore::open to a new database;
-- older ones are brought up to date by the steps in `migrate`.
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

-- One row per settled message; the primary key is the chat's order. With
-- the recent tables, the rows are also the dedup record of idempotent sends
-- (sender_id, client_msg_id), read back from the head.
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

-- Who blocks whom (v3).
CREATE TABLE IF NOT EXISTS blocks (
    blocker    TEXT NOT NULL,
    blocked    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blocks_by_blocked ON blocks (blocked, blocker);

-- A chat's version, bumped by every change of members or roles (v4).
CREATE TABLE IF NOT EXISTS chat_versions (
    chat_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

-- Chats a user hid from their list, up to a seq (v5).
CREATE TABLE IF NOT EXISTS hidden_chats (
    user_id    TEXT NOT NULL,
    chat_id    TEXT NOT NULL,
    hidden_seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, chat_id)
) WITHOUT ROWID;

-- Users who hide their last seen (v6); absent means the default (contacts).
CREATE TABLE IF NOT EXISTS privacy (
    user_id   TEXT PRIMARY KEY,
    last_seen TEXT NOT NULL
) WITHOUT ROWID;

-- Messages appended since they were last settled into `messages` (v7), in two tables:
-- appends go to the one settle_state names as filling while the other is drained into
-- `messages` chat by chat, then emptied. Rowid tables written only at their end, so a
-- commit rewrites a page or two however many chats it touches; small by design, so they
-- have no index. See sqlite/settle.rs.
CREATE TABLE IF NOT EXISTS recent_a (
    id            INTEGER PRIMARY KEY,
    chat_id       TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    msg_id        TEXT NOT NULL,
    sender_id     TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    body          TEXT NOT NULL,
    ts            INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS recent_b (
    id            INTEGER PRIMARY KEY,
    chat_id       TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    msg_id        TEXT NOT NULL,
    sender_id     TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    body          TEXT NOT NULL,
    ts            INTEGER NOT NULL
);
-- filling: 0 for recent_a, 1 for recent_b. draining_after: NULL when the other table is
-- empty, else the last chat already copied out of it ('' before the first).
CREATE TABLE IF NOT EXISTS settle_state (
    id             INTEGER PRIMARY KEY CHECK (id = 0),
    filling        INTEGER NOT NULL,
    draining_after TEXT
);
INSERT OR IGNORE INTO settle_state (id, filling, draining_after) VALUES (0, 0, NULL);

-- Each chat's last seq, written with its messages (v7): the append check reads it
-- instead of looking for the chat's newest message in three tables. A chat last written
-- before v7 has no row until its next append (its head is then its newest settled seq).
CREATE TABLE IF NOT EXISTS chat_heads (
    chat_id  TEXT PRIMARY KEY,
    head_seq INTEGER NOT NULL
) WITHOUT ROWID;

-- Only this store's writer inserts into messages (v7): it registers the function the
-- trigger calls, so a binary from before v7 still running on the file fails its appends
-- loudly instead of writing where v7 no longer looks for new messages.
-- The store's own writer runs with triggers off (sqlite/settle.rs, ready_writer): a
-- trigger added here would not fire for its writes, migrations included.
CREATE TRIGGER IF NOT EXISTS messages_only_by_settling BEFORE INSERT ON messages
BEGIN
    SELECT chat_store_v7_writer();
END;
-- End of the v7 tables.
