// Shapes of the objects the server sends and the SDK hands to the app (JSDoc only).
// Field names are the wire names of protocol v1.1 (docs/protocol.md), so an app can
// compare what it sees with the server's log or the protocol doc without a mapping.

/**
 * A message, as `msg` frames, `history` replies and REST carry it.
 * @typedef {object} Message
 * @property {string} chat_id
 * @property {number} seq            1, 2, 3 ... per chat; one order for every member.
 * @property {string} msg_id         UUIDv7 assigned by the server.
 * @property {string} sender_id
 * @property {string} client_msg_id  Chosen by the sender; the idempotency key of a send.
 * @property {string} body
 * @property {number} ts             Server time of acceptance, ms since the Unix epoch.
 */

/**
 * @typedef {object} Member
 * @property {string} user_id
 * @property {"admin" | "member"} role
 */

/**
 * A chat, as REST carries it.
 * @typedef {object} Chat
 * @property {string} chat_id
 * @property {"direct" | "group"} kind
 * @property {string | null} title
 * @property {Member[]} members
 * @property {number} created_at
 * @property {number} head_seq
 * @property {number} [version]  Bumped by every change of members or roles.
 */

/**
 * A chat in the chat list (`GET /v1/chats`): the chat plus the caller's watermarks.
 * @typedef {Chat & {read_seq: number, delivered_seq: number, unread: number, last_message: Message | null}} ChatSummary
 */

/**
 * One chat as a `synced` frame reports it.
 * @typedef {object} SyncedChat
 * @property {string} chat_id
 * @property {"direct" | "group"} kind
 * @property {string | null} title
 * @property {number} head_seq
 * @property {number} delivered_seq
 * @property {number} read_seq
 * @property {number} unread
 */

/**
 * What `send` resolves with: the message is durable on the server.
 * @typedef {object} SendResult
 * @property {string} chat_id
 * @property {string} client_msg_id
 * @property {string} msg_id
 * @property {number} seq
 * @property {number} ts
 */

/**
 * A message waiting in the outbox for its `sent`.
 * @typedef {object} OutboxEntry
 * @property {string} chat_id
 * @property {string} client_msg_id
 * @property {string} body
 * @property {number} created_at  Local clock, ms since the epoch (for display only).
 * @property {number} order       Position in the outbox; entries are sent in this order per chat.
 */

/**
 * @typedef {object} Receipt
 * @property {string} chat_id
 * @property {string} user_id
 * @property {"delivered" | "read"} kind
 * @property {number} seq
 */

/**
 * @typedef {object} Typing
 * @property {string} chat_id
 * @property {string} user_id
 */

/**
 * @typedef {object} Presence
 * @property {string} user_id
 * @property {boolean} online
 * @property {number | null} last_seen
 * @property {string} [error]  "forbidden" when the caller may not see this user.
 */

/**
 * What a `chat` frame says about the chat: no member list (fetch it with `client.chat(id)`).
 * @typedef {object} ChatHeader
 * @property {string} chat_id
 * @property {"direct" | "group"} kind
 * @property {string | null} title
 * @property {number} member_count
 * @property {number} version  One above the last one seen: nothing missed; more: refetch.
 */

/**
 * One change a `chat` frame reports.
 * @typedef {{op: "member_added", user_id: string, role: "admin" | "member"}
 *   | {op: "member_removed", user_id: string}
 *   | {op: "role_changed", user_id: string, role: "admin" | "member"}} ChatChange
 */

/**
 * @typedef {object} ChatEvent
 * @property {"added" | "removed" | "updated"} event
 * @property {ChatHeader} chat
 * @property {ChatChange[]} changes  Empty for a chat the user was just added to.
 */

/**
 * The `hello` frame, first on every connection.
 * @typedef {object} Hello
 * @property {number} proto
 * @property {string} user_id
 * @property {string} device_id
 * @property {string} session_id
 * @property {string} server_id
 * @property {number} heartbeat_ms
 * @property {number} max_frame_bytes
 * @property {number} max_body_bytes
 */

/**
 * The connection state the SDK reports with `state` events.
 * - `idle`: created, `connect()` not called yet.
 * - `connecting`: opening a WebSocket (token fetched, upgrade in progress).
 * - `syncing`: `hello` received; catching up with `sync` before sending the outbox.
 * - `connected`: caught up; live frames flow and the outbox is being sent.
 * - `disconnected`: the connection is gone; a reconnect is scheduled (`retryInMs`).
 * - `replaced`: another connection of the same device took over (close 4001). Terminal:
 *   the SDK does not reconnect by itself; the app decides (`connect()` again).
 * - `closed`: `close()` was called. Terminal.
 * @typedef {"idle" | "connecting" | "syncing" | "connected" | "disconnected" | "replaced" | "closed"} ConnectionState
 */

/**
 * @typedef {object} StateChange
 * @property {ConnectionState} state
 * @property {number} [code]        WebSocket close code that caused a `disconnected` / `replaced`.
 * @property {string} [reason]      Why, in words (close reason or error message).
 * @property {number} [retryInMs]   When `disconnected`: delay before the next attempt.
 */

/**
 * @typedef {object} OutboxChange
 * @property {"queued" | "sent" | "failed"} kind
 * @property {OutboxEntry} entry
 * @property {SendResult} [result]   With `sent`.
 * @property {Error} [error]         With `failed`: the server refused the message for good.
 */

/**
 * Events of a ChatClient and their payloads.
 * @typedef {object} ChatClientEvents
 * @property {Message} message        Exactly once per (chat_id, seq), in seq order per chat.
 * @property {Receipt} receipt        Another member's (or my other device's) watermark rose.
 * @property {Typing} typing
 * @property {Presence} presence
 * @property {ChatEvent} chat
 * @property {StateChange} state
 * @property {OutboxChange} outbox
 * @property {{chats: SyncedChat[]}} synced  A catch-up finished; per-chat counters from the server.
 * @property {Error} error            A failure that belongs to no call (e.g. an `error` frame without `re`).
 */

export {};
