// ChatClient: the SDK's public face, and the connection state machine that ties the parts
// together (see docs/client-guide.md for the algorithm in full):
//
//   idle -> connecting -> syncing -> connected -> disconnected -> connecting -> ...
//                                            \-> replaced (4001, stops)   close() -> closed
//
// On every connection: fetch a token, open the WebSocket, wait for `hello`, run `sync`
// from the cursors until complete, then send the outbox and let live frames flow. When the
// connection ends, the close code decides how long to wait before the next one.
// The parts: Connection (one socket), MessageOrder (exactly once, in order), catchUp (sync
// rounds), Outbox (durable sends), Watermarks (recv), Rest, TokenSource, Backoff.

import { TokenSource } from "./auth.js";
import { Backoff, decideAfterClose } from "./backoff.js";
import { Connection } from "./connection.js";
import { Emitter } from "./emitter.js";
import { ChatError, isRetryable } from "./errors.js";
import { MessageOrder } from "./ordering.js";
import { Outbox } from "./outbox.js";
import { Rest } from "./rest.js";
import { MemoryStorage } from "./storage/memory.js";
import { catchUp } from "./sync.js";
import { sleep } from "./timing.js";
import { Watermarks } from "./watermarks.js";

/** @typedef {import("./types.js").Message} Message */
/** @typedef {import("./types.js").Chat} Chat */
/** @typedef {import("./types.js").ChatSummary} ChatSummary */
/** @typedef {import("./types.js").SendResult} SendResult */
/** @typedef {import("./types.js").OutboxEntry} OutboxEntry */
/** @typedef {import("./types.js").Presence} Presence */
/** @typedef {import("./types.js").Hello} Hello */
/** @typedef {import("./types.js").ConnectionState} ConnectionState */
/** @typedef {import("./types.js").StateChange} StateChange */
/** @typedef {import("./types.js").ChatClientEvents} ChatClientEvents */
/** @typedef {import("./storage/memory.js").ChatStorage} ChatStorage */
/** @typedef {import("./connection.js").WebSocketConstructor} WebSocketConstructor */

/**
 * @typedef {object} ChatClientOptions
 * @property {string} url  The server's base URL, e.g. `https://chat.example.com` (REST there,
 *   the WebSocket at `/v1/ws` on the same host).
 * @property {() => string | Promise<string>} token  Returns a JWT; called on every connect and after a 401.
 * @property {string} device  This device's id (1-64 of `A-Z a-z 0-9 . _ @ -`); one connection per device.
 * @property {ChatStorage} [storage]  Keeps the outbox and cursors; default in memory.
 * @property {WebSocketConstructor} [WebSocket]  Default: the global WebSocket (Node 20: pass `ws`).
 * @property {typeof fetch} [fetch]  Default: the global fetch.
 * @property {number} [recvDelayMs]  Deliveries are gathered this long before one `recv` per chat (200).
 * @property {number} [gapFillDelayMs]  A hole in a chat's seqs is given this long to fill by itself
 *   (a `sent` and a `msg` may cross) before a `sync` fills it (1000).
 * @property {number} [syncLimit]  Messages per `sync` round (1000; the server caps it).
 * @property {{baseMs?: number, maxMs?: number}} [backoff]  Reconnect delays (500 ms doubling to 30 s, jittered).
 * @property {number} [typingIntervalMs]  At most one `typing` per chat this often (2000).
 * @property {number} [deadAfterMs]  Silence before the connection is probed and then given up
 *   (default from the server's heartbeat, at least 10 s).
 */

const ID_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;
const DEFAULT_MAX_BODY_BYTES = 16384;
const PRESENCE_BATCH = 500;

export class ChatClient {
  /** @type {Backoff} */ #backoff;
  /** @type {TokenSource} */ #tokens;
  /** @type {Rest} */ #rest;
  /** @type {MessageOrder} */ #order;
  /** @type {Outbox} */ #outbox;
  /** @type {Watermarks} */ #watermarks;
  /** @type {Emitter<ChatClientEvents>} */
  #events = new Emitter();
  /** @type {ConnectionState} */
  #state = "idle";
  /** @type {Connection | undefined} the current connection, from `hello` until it ends */
  #conn;
  /** @type {boolean} a connect loop is running */
  #running = false;
  /** @type {AbortController} aborts retries' sleeps on close() */
  #abort = new AbortController();
  /** @type {AbortController | undefined} ends the wait before a reconnect early */
  #wake;
  /** @type {Connection | undefined} the connection being opened (before `hello`) */
  #opening;
  /** @type {{promise: Promise<void>, resolve: () => void, reject: (error: Error) => void}} */
  #ready = deferred();
  /** Until the first complete sync, a chat without cursor waits for sync to place it. */
  #caughtUpOnce = false;
  /** @type {{conn: Connection, run: Promise<void>} | undefined} */
  #sync;
  #syncAgain = false;
  /** @type {import("./types.js").SyncedChat[]} the chats of the last complete catch-up */
  #lastSynced = [];
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #gapTimer;
  /** @type {Set<string>} users whose presence the app follows (renewed on each connection) */
  #watched = new Set();
  /** @type {Map<string, number>} */
  #typingSentAt = new Map();
  /** @type {Map<string, Map<string, {delivered: number, read: number}>>} */
  #receipts = new Map();
  /** @type {Map<string, {seq: number, waiters: {resolve: () => void, reject: (e: Error) => void}[]}>} */
  #reads = new Map();
  /** @type {Promise<void>} */
  #loaded;
  #idCounter = 0;

  /** @param {ChatClientOptions} options */
  constructor(options) {
    if (!options || typeof options.url !== "string") throw new TypeError("url is required");
    if (!ID_PATTERN.test(options.device ?? "")) {
      throw new TypeError("device must be 1-64 characters of A-Z a-z 0-9 . _ @ -");
    }
    const WebSocketImpl = options.WebSocket ?? /** @type {any} */ (globalThis).WebSocket;
    if (!WebSocketImpl) throw new TypeError("no WebSocket here: pass the WebSocket option (e.g. the ws package)");
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (!fetchImpl) throw new TypeError("no fetch here: pass the fetch option");

    this.url = options.url.replace(/\/+$/, "");
    this.device = options.device;
    /** @type {string | undefined} the user, known from the first `hello` */
    this.userId = undefined;
    /** @type {Hello | undefined} */
    this.hello = undefined;
    this.options = {
      recvDelayMs: options.recvDelayMs ?? 200,
      gapFillDelayMs: options.gapFillDelayMs ?? 1000,
      syncLimit: options.syncLimit ?? 1000,
      typingIntervalMs: options.typingIntervalMs ?? 2000,
      deadAfterMs: options.deadAfterMs,
    };
    /** @type {WebSocketConstructor} */
    this.WebSocket = WebSocketImpl;
    this.storage = options.storage ?? new MemoryStorage();
    this.#backoff = new Backoff(options.backoff);
    this.#tokens = new TokenSource(options.token);
    this.#rest = new Rest({ baseUrl: this.url, tokens: this.#tokens, fetch: fetchImpl });
    this.#order = new MessageOrder({
      deliver: (message) => this.#deliver(message),
      gap: () => this.#scheduleGapFill(),
    });
    this.#outbox = new Outbox({
      storage: this.storage,
      onSent: (entry, result) => this.#onSent(entry, result),
      onFailed: (entry, error) => this.#events.emit("outbox", { kind: "failed", entry, error }),
    });
    this.#watermarks = new Watermarks({
      storage: this.storage,
      delayMs: this.options.recvDelayMs,
      notify: (frame) => this.#conn?.notify(frame) ?? false,
    });
    this.#loaded = this.#restore();
    globalThis.addEventListener?.("online", this.#onOnline);
    // Nobody may be awaiting connect(); a rejection then is not an error of its own.
    this.#ready.promise.catch(() => {});
  }

  // ---- events and state -------------------------------------------------------------

  /**
   * Subscribes to an event; returns a function that unsubscribes.
   * @template {keyof ChatClientEvents} K
   * @param {K} event
   * @param {(payload: ChatClientEvents[K]) => void} handler
   */
  on(event, handler) {
    return this.#events.on(event, handler);
  }

  /**
   * @template {keyof ChatClientEvents} K
   * @param {K} event
   * @param {(payload: ChatClientEvents[K]) => void} handler
   */
  off(event, handler) {
    this.#events.off(event, handler);
  }

  /** @returns {ConnectionState} */
  get state() {
    return this.#state;
  }

  // ---- connecting -----------------------------------------------------------------------

  /**
   * Starts connecting (and reconnecting, until close() or a replacement). Resolves when
   * the client is connected and caught up for the first time; rejects if it is closed or
   * replaced before that. Calling it again after `replaced` takes the device back.
   * @returns {Promise<void>}
   */
  connect() {
    if (this.#state === "closed") return Promise.reject(new ChatError("closed", "client closed"));
    if (!this.#running) {
      this.#running = true;
      if (this.#state === "replaced") {
        this.#ready = deferred();
        this.#ready.promise.catch(() => {});
      }
      this.#run();
    }
    return this.#ready.promise;
  }

  /**
   * Stops for good: no reconnect, pending `send` promises reject with `closed` (their
   * messages stay in the storage for a later client), the last `recv` is sent first.
   * @returns {Promise<void>}
   */
  async close() {
    if (this.#state === "closed") return;
    this.#abort.abort();
    this.#wake?.abort();
    this.#opening?.close(1000, "client closed");
    this.#running = false;
    globalThis.removeEventListener?.("online", this.#onOnline);
    clearTimeout(this.#gapTimer);
    this.#outbox.close();
    this.#setState({ state: "closed" });
    this.#ready.reject(new ChatError("closed", "client closed"));
    await this.#watermarks.flush();
    this.#watermarks.close();
    this.#conn?.close(1000, "client closed");
  }

  #onOnline = () => this.reconnectNow();

  async #restore() {
    this.#order.restore(await this.storage.loadCursors());
    await this.#outbox.restore();
  }

  /** The connection loop: one iteration per connection attempt. */
  async #run() {
    await this.#loaded;
    while (this.#running) {
      this.#setState({ state: "connecting" });
      /** @type {Connection | undefined} */
      let conn;
      /** @type {import("./connection.js").Ended} */
      let ended;
      try {
        const token = await this.#tokens.fresh();
        conn = new Connection({
          WebSocket: this.WebSocket,
          url: this.#socketUrl(token),
          onFrame: (frame) => this.#onFrame(frame),
          deadAfterMs: this.options.deadAfterMs,
        });
        this.#opening = conn;
        const hello = await conn.open();
        this.#opening = undefined;
        if (!this.#running) {
          conn.close(1000, "client closed");
          break;
        }
        this.hello = hello;
        this.userId = hello.user_id;
        this.#conn = conn;
        this.#setState({ state: "syncing" });
        await this.#online(conn);
        ended = await conn.closed;
      } catch (error) {
        this.#opening = undefined;
        // Refused upgrade, token function failure, or a sync that failed for good.
        if (conn?.hello) conn.close(4000, `client error: ${error}`);
        ended = conn ? await conn.closed : { code: 1006, reason: String(error) };
        if (/** @type {any} */ (error)?.status !== undefined) ended.httpStatus ??= /** @type {any} */ (error).status;
      }
      this.#offline();
      if (!this.#running) break;
      const decision = decideAfterClose(ended);
      if (decision.action === "stop") {
        this.#running = false;
        this.#setState({ state: "replaced", code: ended.code, reason: ended.reason });
        this.#ready.reject(new ChatError("replaced", "another connection of this device took over"));
        break;
      }
      const delay =
        decision.why === "restart" && decision.minDelayMs !== undefined
          ? decision.minDelayMs
          : Math.max(decision.minDelayMs ?? 0, this.#backoff.next());
      this.#setState({ state: "disconnected", code: ended.code, reason: ended.reason, retryInMs: delay });
      this.#wake = new AbortController();
      await sleep(delay, this.#wake.signal);
      this.#wake = undefined;
    }
  }

  /**
   * The network is back (the browser's `online` event): try now rather than at the end of
   * the backoff. Apps may call it too (e.g. when the app returns to the foreground).
   */
  reconnectNow() {
    this.#wake?.abort();
  }

  /**
   * A fresh connection said hello: catch up, then open the gates.
   * @param {Connection} conn
   */
  async #online(conn) {
    const chats = await this.#catchUp(conn);
    if (!conn.isOpen) return;
    this.#backoff.reset();
    this.#watermarks.connected(
      this.#order.cursors(),
      Object.fromEntries(chats.map((chat) => [chat.chat_id, chat.delivered_seq])),
    );
    // Only now: sends go out after we have everything the server had for us.
    this.#outbox.online((entry) => this.#sendFrame(conn, entry));
    this.#setState({ state: "connected" });
    this.#ready.resolve();
    this.#flushReads();
    this.#renewPresence(conn);
    if (this.#order.gaps().length > 0) this.#scheduleGapFill();
  }

  #offline() {
    this.#conn = undefined;
    this.#outbox.offline();
  }

  /** @param {string} token */
  #socketUrl(token) {
    const base = this.url.replace(/^http/, "ws");
    return `${base}/v1/ws?token=${encodeURIComponent(token)}&device=${encodeURIComponent(this.device)}`;
  }

  /** @param {StateChange} change */
  #setState(change) {
    this.#state = change.state;
    this.#events.emit("state", change);
  }

  // ---- catching up and filling gaps ---------------------------------------------------

  /**
   * Runs sync rounds on `conn` until complete; one run per connection at a time (a request
   * while one runs makes it go round once more).
   * @param {Connection} conn
   * @returns {Promise<import("./types.js").SyncedChat[]>}
   */
  async #catchUp(conn) {
    if (this.#sync?.conn === conn) {
      this.#syncAgain = true;
      await this.#sync.run;
      return this.#lastSynced;
    }
    const run = (async () => {
      do {
        this.#syncAgain = false;
        const chats = await catchUp({
          request: (frame) => conn.request(frame),
          order: this.#order,
          limit: this.options.syncLimit,
          signal: this.#abort.signal,
        });
        this.#caughtUpOnce = true;
        this.#lastSynced = chats;
        this.#events.emit("synced", { chats });
      } while (this.#syncAgain && conn.isOpen);
    })();
    this.#sync = { conn, run };
    try {
      await run;
    } finally {
      if (this.#sync?.run === run) this.#sync = undefined;
    }
    return this.#lastSynced;
  }

  /** A chat's seqs have a hole. Give in-flight frames a moment, then sync. */
  #scheduleGapFill() {
    if (this.#gapTimer) return;
    this.#gapTimer = setTimeout(() => {
      this.#gapTimer = undefined;
      const conn = this.#conn;
      // While syncing after a connect, the connect's own sync fills it (and re-checks).
      if (!conn || this.#state !== "connected" || this.#order.gaps().length === 0) return;
      const before = new Set(this.#order.gaps());
      this.#catchUp(conn)
        .then((chats) => {
          // A complete sync leaves no hole in a chat we are in. One that had a hole before
          // it and that the server no longer lists is a chat we left while the `chat`
          // event was lost: its hole can never be filled.
          const listed = new Set(chats.map((chat) => chat.chat_id));
          for (const chatId of this.#order.gaps()) {
            if (before.has(chatId) && !listed.has(chatId)) this.#order.discard(chatId);
          }
          if (this.#order.gaps().length > 0) this.#scheduleGapFill();
        })
        .catch(() => {
          // The connection died; the next one syncs anyway.
        });
    }, this.options.gapFillDelayMs);
  }

  /**
   * A chat the client had no cursor for, seen after the first complete sync, joined after
   * that sync's snapshot: this device has acknowledged nothing in it, so it starts at 0.
   * @param {string} chatId
   */
  #placeNewChat(chatId) {
    if (this.#caughtUpOnce && !this.#order.isResolved(chatId)) this.#order.resolve(chatId, 0);
  }

  // ---- frames from the server ---------------------------------------------------------

  /** @param {any} frame */
  #onFrame(frame) {
    switch (frame.type) {
      case "msg": {
        const message = toMessage(frame);
        // Our own message coming back (sync after a lost `sent`): the outbox entry is done.
        if (message.sender_id === this.userId) this.#outbox.confirmFromLog(message);
        this.#order.accept(message);
        this.#placeNewChat(message.chat_id);
        break;
      }
      case "receipt": {
        const { chat_id, user_id, kind, seq } = frame;
        this.#noteReceipt(chat_id, user_id, kind, seq);
        this.#events.emit("receipt", { chat_id, user_id, kind, seq });
        break;
      }
      case "typing":
        this.#events.emit("typing", { chat_id: frame.chat_id, user_id: frame.user_id });
        break;
      case "presence":
        for (const user of frame.users ?? []) this.#events.emit("presence", user);
        break;
      case "chat":
        if (frame.event === "added") this.#placeNewChat(frame.chat.chat_id);
        if (frame.event === "removed") this.#order.discard(frame.chat.chat_id);
        this.#events.emit("chat", { event: frame.event, chat: frame.chat, changes: frame.changes ?? [] });
        break;
      case "error":
        // A request without id failed (a recv or typing): nobody awaits it.
        this.#events.emit("error", new ChatError(frame.code, frame.message, { retryAfterMs: frame.retry_after_ms }));
        break;
      default:
        // `reconnect` is handled by the Connection; unknown types are ignored (forward compatible).
        break;
    }
  }

  /** @param {Message} message */
  #deliver(message) {
    this.#events.emit("message", message);
    this.#watermarks.delivered(message.chat_id, message.seq);
  }

  /**
   * @param {string} chatId
   * @param {string} userId
   * @param {"delivered" | "read"} kind
   * @param {number} seq
   */
  #noteReceipt(chatId, userId, kind, seq) {
    let users = this.#receipts.get(chatId);
    if (!users) this.#receipts.set(chatId, (users = new Map()));
    const marks = users.get(userId) ?? { delivered: 0, read: 0 };
    marks[kind] = Math.max(marks[kind], seq);
    // What was read was delivered.
    if (kind === "read") marks.delivered = Math.max(marks.delivered, seq);
    users.set(userId, marks);
  }

  // ---- sending ------------------------------------------------------------------------

  /**
   * Sends a message. It goes to the outbox (kept in storage) at once and is retried until
   * the server confirms it durable; resolves then with its seq. The message also comes as
   * a `message` event, in seq order with the others.
   * @param {string} chatId
   * @param {string} body
   * @returns {Promise<SendResult>}
   */
  async send(chatId, body) {
    if (this.#state === "closed") throw new ChatError("closed", "client closed");
    if (typeof body !== "string" || body.length === 0) throw new ChatError("bad_request", "body must be a non-empty string");
    const maxBytes = this.hello?.max_body_bytes ?? DEFAULT_MAX_BODY_BYTES;
    if (new TextEncoder().encode(body).length > maxBytes) {
      throw new ChatError("too_large", `body is over ${maxBytes} bytes`);
    }
    await this.#loaded;
    const { entry, done } = this.#outbox.add(chatId, body, this.#newClientMsgId());
    this.#events.emit("outbox", { kind: "queued", entry: { ...entry } });
    return done;
  }

  /**
   * Messages waiting for the server, oldest first (of one chat if given): what a UI shows
   * as "sending".
   * @param {string} [chatId]
   * @returns {OutboxEntry[]}
   */
  pending(chatId) {
    return this.#outbox.pending(chatId);
  }

  /**
   * @param {Connection} conn
   * @param {OutboxEntry} entry
   * @returns {Promise<SendResult>}
   */
  async #sendFrame(conn, entry) {
    const reply = await conn.request({
      type: "send",
      chat_id: entry.chat_id,
      client_msg_id: entry.client_msg_id,
      body: entry.body,
    });
    const { chat_id, client_msg_id, msg_id, seq, ts } = reply;
    return { chat_id, client_msg_id, msg_id, seq, ts };
  }

  /**
   * @param {OutboxEntry} entry
   * @param {SendResult} result
   */
  #onSent(entry, result) {
    // The sending connection gets no `msg` for its own message: build it, so the app
    // sees its message once, in its place among the others.
    this.#order.accept({
      chat_id: entry.chat_id,
      seq: result.seq,
      msg_id: result.msg_id,
      sender_id: /** @type {string} */ (this.userId),
      client_msg_id: entry.client_msg_id,
      body: entry.body,
      ts: result.ts,
    });
    this.#placeNewChat(entry.chat_id);
    this.#events.emit("outbox", { kind: "sent", entry: { ...entry }, result });
  }

  #newClientMsgId() {
    const random = globalThis.crypto?.randomUUID?.();
    return random ?? `${Date.now().toString(36)}-${(this.#idCounter++).toString(36)}-${Math.random().toString(36).slice(2)}`;
  }

  // ---- reading --------------------------------------------------------------------------

  /**
   * A page of a chat's messages, ascending, ending before `beforeSeq` (default: the
   * newest). Pages are bounded in bytes, so one may hold fewer than `limit`: page on with
   * the lowest seq received until seq 1 or an empty page. Newer-than-cursor messages in
   * the page also go through the `message` stream (so a hole can be filled from here).
   * @param {string} chatId
   * @param {{beforeSeq?: number, limit?: number}} [options]
   * @returns {Promise<Message[]>}
   */
  async history(chatId, { beforeSeq, limit = 50 } = {}) {
    /** @type {any[] | undefined} */
    let messages;
    for (let attempt = 0; !messages && this.#conn && this.#state === "connected" && attempt < 3; attempt += 1) {
      try {
        /** @type {Record<string, any>} */
        const frame = { type: "history", chat_id: chatId, limit };
        if (beforeSeq !== undefined) frame.before_seq = beforeSeq;
        messages = (await this.#conn.request(frame)).messages;
      } catch (error) {
        const e = /** @type {ChatError} */ (error);
        if (e.code === "disconnected") break; // fall back to REST below
        if (!isRetryable(e)) throw e;
        await sleep(e.retryAfterMs ?? 500, this.#abort.signal);
      }
    }
    if (!messages) {
      const query = new URLSearchParams({ limit: String(limit) });
      if (beforeSeq !== undefined) query.set("before_seq", String(beforeSeq));
      messages = (await this.#rest.request("GET", `/v1/chats/${encodeURIComponent(chatId)}/messages?${query}`)).messages;
    }
    const page = (messages ?? []).map(toMessage);
    if (this.#order.isResolved(chatId)) for (const message of page) this.#order.accept(message);
    return page;
  }

  /**
   * The user's chats with unread counts, watermarks and last message (REST).
   * @returns {Promise<ChatSummary[]>}
   */
  async chats() {
    return (await this.#rest.request("GET", "/v1/chats")).chats;
  }

  /**
   * One chat with its members.
   * @param {string} chatId
   * @returns {Promise<Chat>}
   */
  async chat(chatId) {
    return this.#rest.request("GET", `/v1/chats/${encodeURIComponent(chatId)}`);
  }

  /**
   * The direct chat with `userId` (created if it does not exist yet).
   * @param {string} userId
   * @returns {Promise<Chat>}
   */
  async createDirect(userId) {
    const chat = await this.#rest.request("POST", "/v1/chats", { kind: "direct", members: [userId] });
    this.#placeNewChat(chat.chat_id);
    return chat;
  }

  /**
   * A new group; the caller is its admin.
   * @param {string} title
   * @param {string[]} userIds
   * @returns {Promise<Chat>}
   */
  async createGroup(title, userIds) {
    const chat = await this.#rest.request("POST", "/v1/chats", { kind: "group", title, members: userIds });
    this.#placeNewChat(chat.chat_id);
    return chat;
  }

  /**
   * Adds members to a group (admins only).
   * @param {string} chatId
   * @param {string[]} userIds
   * @returns {Promise<Chat>}
   */
  async addMembers(chatId, userIds) {
    return this.#rest.request("POST", `/v1/chats/${encodeURIComponent(chatId)}/members`, { user_ids: userIds });
  }

  /**
   * What the client knows of other members' watermarks in a chat, from `receipt` events
   * seen by this client (the server offers no way to ask for them).
   * @param {string} chatId
   * @returns {Record<string, {delivered: number, read: number}>}
   */
  receipts(chatId) {
    return Object.fromEntries([...(this.#receipts.get(chatId) ?? [])].map(([user, marks]) => [user, { ...marks }]));
  }

  /**
   * How far the app has a chat's message stream (undefined before the chat is placed).
   * @param {string} chatId
   */
  cursor(chatId) {
    return this.#order.cursor(chatId);
  }

  // ---- watermarks, typing, presence ------------------------------------------------------

  /**
   * Marks the chat read up to `seq` (cumulative; lower values change nothing). Sent now or
   * on the next connection; resolves when the server has it.
   * @param {string} chatId
   * @param {number} seq
   * @returns {Promise<void>}
   */
  markRead(chatId, seq) {
    return new Promise((resolve, reject) => {
      const pending = this.#reads.get(chatId) ?? { seq: 0, waiters: [] };
      pending.seq = Math.max(pending.seq, seq);
      pending.waiters.push({ resolve, reject });
      this.#reads.set(chatId, pending);
      this.#flushReads();
    });
  }

  #flushReads() {
    const conn = this.#conn;
    if (!conn || this.#state !== "connected") return;
    for (const [chatId, pending] of this.#reads) {
      this.#reads.delete(chatId);
      conn.request({ type: "read", chat_id: chatId, seq: pending.seq }).then(
        () => pending.waiters.forEach((w) => w.resolve()),
        (error) => {
          if (!isRetryable(error)) return pending.waiters.forEach((w) => w.reject(error));
          // Put it back (merged with any newer mark) for the next connection or retry.
          const again = this.#reads.get(chatId) ?? { seq: 0, waiters: [] };
          again.seq = Math.max(again.seq, pending.seq);
          again.waiters.push(...pending.waiters);
          this.#reads.set(chatId, again);
          if (error.code !== "disconnected") {
            sleep(error.retryAfterMs ?? 1000, this.#abort.signal).then(() => this.#flushReads());
          }
        },
      );
    }
  }

  /**
   * Tells the chat's other members that the user is typing. Call it on every keystroke:
   * it is sent at most once per `typingIntervalMs` per chat, and dropped while offline
   * (a late typing indicator is worthless).
   * @param {string} chatId
   */
  typing(chatId) {
    const now = Date.now();
    if (now - (this.#typingSentAt.get(chatId) ?? 0) < this.options.typingIntervalMs) return;
    if (this.#state === "connected" && this.#conn?.notify({ type: "typing", chat_id: chatId })) {
      this.#typingSentAt.set(chatId, now);
    }
  }

  /**
   * Follows users' presence: resolves with their state now, then `presence` events on
   * every change, across reconnects.
   * @param {string[]} userIds
   * @returns {Promise<Presence[]>}
   */
  async subscribePresence(userIds) {
    for (const userId of userIds) this.#watched.add(userId);
    const conn = this.#conn;
    if (conn && this.#state === "connected") {
      try {
        const users = await this.#presenceSub(conn, userIds);
        return users;
      } catch (error) {
        if (/** @type {ChatError} */ (error).code !== "disconnected") throw error;
      }
    }
    // Offline: answer from REST now; the subscription is made on the next connection.
    return this.presence(userIds);
  }

  /**
   * Users' presence now (REST), without following it.
   * @param {string[]} userIds
   * @returns {Promise<Presence[]>}
   */
  async presence(userIds) {
    const query = new URLSearchParams({ user_ids: userIds.join(",") });
    return (await this.#rest.request("GET", `/v1/presence?${query}`)).users;
  }

  /**
   * @param {Connection} conn
   * @param {string[]} userIds
   * @returns {Promise<Presence[]>}
   */
  async #presenceSub(conn, userIds) {
    /** @type {Presence[]} */
    const users = [];
    for (let i = 0; i < userIds.length; i += PRESENCE_BATCH) {
      const reply = await conn.request({ type: "presence_sub", user_ids: userIds.slice(i, i + PRESENCE_BATCH) });
      users.push(...reply.users);
    }
    for (const user of users) this.#events.emit("presence", user);
    return users;
  }

  /**
   * Subscriptions belong to a connection: renew them on each new one.
   * @param {Connection} conn
   */
  #renewPresence(conn) {
    if (this.#watched.size === 0) return;
    this.#presenceSub(conn, [...this.#watched]).catch((error) => this.#events.emit("error", error));
  }
}

/**
 * The message fields of a frame or page entry (without `type` and the like).
 * @param {any} m
 * @returns {Message}
 */
function toMessage(m) {
  return {
    chat_id: m.chat_id,
    seq: m.seq,
    msg_id: m.msg_id,
    sender_id: m.sender_id,
    client_msg_id: m.client_msg_id,
    body: m.body,
    ts: m.ts,
  };
}

/** @returns {{promise: Promise<void>, resolve: () => void, reject: (error: Error) => void}} */
function deferred() {
  /** @type {() => void} */
  let resolve = () => {};
  /** @type {(error: Error) => void} */
  let reject = () => {};
  const promise = new Promise((res, rej) => {
    resolve = () => res(undefined);
    reject = rej;
  });
  return { promise, resolve, reject };
}
