// The outbox: messages the app sent that the server has not confirmed as durable yet.
// Each entry is written to storage before it goes out, is sent with the same
// client_msg_id until a `sent` comes back (the server turns repeats into the original
// message), and leaves the outbox only then, or when the server refuses it for good.
//
// Order per chat: only the oldest entry of a chat is in flight at any time. Pipelining
// would be faster, but a failed send (rate_limited after the server held it, unavailable
// while shedding load) followed by a successful later one would commit them in the wrong
// order, and seqs cannot be taken back. Different chats proceed in parallel.

import { Backoff } from "./backoff.js";
import { ChatError, isRetryable } from "./errors.js";

/** @typedef {import("./types.js").OutboxEntry} OutboxEntry */
/** @typedef {import("./types.js").SendResult} SendResult */
/** @typedef {import("./storage/memory.js").ChatStorage} ChatStorage */

export class Outbox {
  /** @type {OutboxEntry[]} all entries, in the order they were added */
  #entries = [];
  /** @type {Set<string>} chats with a send in flight or a retry scheduled */
  #busy = new Set();
  /** @type {Map<string, Backoff>} per-chat retry delays for failures that carry no hint */
  #backoffs = new Map();
  /** @type {Set<ReturnType<typeof setTimeout>>} */
  #timers = new Set();
  /** @type {Map<string, {resolve: (result: SendResult) => void, reject: (error: Error) => void}>} */
  #waiters = new Map();
  /** @type {((entry: OutboxEntry) => Promise<SendResult>) | undefined} */
  #transport;
  #nextOrder = 1;
  #closed = false;
  /** @type {Promise<void>} the last storage write of `add` */
  #writes = Promise.resolve();

  /**
   * @param {object} options
   * @param {ChatStorage} options.storage
   * @param {(entry: OutboxEntry, result: SendResult) => void} options.onSent
   * @param {(entry: OutboxEntry, error: Error) => void} options.onFailed
   */
  constructor({ storage, onSent, onFailed }) {
    this.storage = storage;
    this.onSent = onSent;
    this.onFailed = onFailed;
  }

  /** Loads the entries a previous instance left in storage; they are sent first. */
  async restore() {
    const stored = await this.storage.loadOutbox();
    stored.sort((a, b) => a.order - b.order);
    for (const entry of stored) {
      if (this.#find(entry.chat_id, entry.client_msg_id)) continue;
      this.#entries.push(entry);
      this.#nextOrder = Math.max(this.#nextOrder, entry.order + 1);
    }
  }

  /**
   * Queues a message; resolves when the server has it durably.
   * @param {string} chatId
   * @param {string} body
   * @param {string} clientMsgId
   * @returns {{entry: OutboxEntry, done: Promise<SendResult>}}
   */
  add(chatId, body, clientMsgId) {
    /** @type {OutboxEntry} */
    const entry = {
      chat_id: chatId,
      client_msg_id: clientMsgId,
      body,
      created_at: Date.now(),
      order: this.#nextOrder++,
    };
    const done = new Promise((resolve, reject) => this.#waiters.set(clientMsgId, { resolve, reject }));
    // Stored first: once `send` was called, a crash or page reload must not lose it.
    // One write at a time, so entries join the outbox in the order `send` was called even
    // if the storage would finish concurrent writes out of order.
    const stored = this.#writes.then(() => this.storage.putOutbox(entry));
    this.#writes = stored.then(
      () => {
        this.#entries.push(entry);
        // Closed meanwhile: the entry is kept (for a later instance), the caller told so.
        if (this.#closed) this.#settle(clientMsgId, undefined, closedError());
        else this.#pump();
      },
      (error) => this.#settle(clientMsgId, undefined, error),
    );
    return { entry, done };
  }

  /**
   * Starts sending through `transport` (a connected, caught-up connection).
   * @param {(entry: OutboxEntry) => Promise<SendResult>} transport
   */
  online(transport) {
    this.#transport = transport;
    this.#pump();
  }

  /** The connection is gone; in-flight sends fail as `disconnected` and wait for `online`. */
  offline() {
    this.#transport = undefined;
  }

  /**
   * The message log shows an entry arrived (our own message came back through `sync`,
   * for instance after the connection died before its `sent`). Same as a `sent`.
   * @param {import("./types.js").Message} message
   */
  confirmFromLog(message) {
    const entry = this.#find(message.chat_id, message.client_msg_id);
    if (!entry) return;
    const { chat_id, client_msg_id, msg_id, seq, ts } = message;
    this.#complete(entry, { chat_id, client_msg_id, msg_id, seq, ts });
  }

  /**
   * Entries not yet confirmed, oldest first; of one chat when `chatId` is given.
   * @param {string} [chatId]
   * @returns {OutboxEntry[]}
   */
  pending(chatId) {
    return this.#entries.filter((entry) => chatId === undefined || entry.chat_id === chatId).map((e) => ({ ...e }));
  }

  /** Stops timers and fails the waiting `send` promises; stored entries stay for a later instance. */
  close() {
    this.#transport = undefined;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#closed = true;
    const error = closedError();
    for (const waiter of this.#waiters.values()) waiter.reject(error);
    this.#waiters.clear();
  }

  #pump() {
    if (!this.#transport) return;
    for (const entry of this.#entries) {
      if (this.#busy.has(entry.chat_id)) continue;
      this.#busy.add(entry.chat_id);
      this.#sendHead(entry.chat_id);
    }
  }

  /** @param {string} chatId */
  async #sendHead(chatId) {
    const entry = this.#entries.find((e) => e.chat_id === chatId);
    const transport = this.#transport;
    if (!entry || !transport) {
      this.#busy.delete(chatId);
      return;
    }
    try {
      const result = await transport(entry);
      this.#backoffs.get(chatId)?.reset();
      this.#complete(entry, result);
    } catch (error) {
      if (!isRetryable(error)) {
        this.#fail(entry, /** @type {Error} */ (error));
      } else if (/** @type {ChatError} */ (error).code === "disconnected") {
        // Sent again, with the same client_msg_id, once the next connection is caught up.
        this.#busy.delete(chatId);
        return;
      } else {
        // Keep the chat busy until the retry: nothing behind this entry may overtake it.
        this.#retryLater(chatId, /** @type {ChatError} */ (error).retryAfterMs);
        return;
      }
    }
    this.#busy.delete(chatId);
    this.#pump();
  }

  /**
   * @param {string} chatId
   * @param {number | undefined} hintMs  The server's retry_after_ms, when it gave one.
   */
  #retryLater(chatId, hintMs) {
    let backoff = this.#backoffs.get(chatId);
    if (!backoff) this.#backoffs.set(chatId, (backoff = new Backoff({ baseMs: 250, maxMs: 10_000 })));
    const delay = hintMs ?? backoff.next();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#busy.delete(chatId);
      this.#pump();
    }, delay);
    this.#timers.add(timer);
  }

  /**
   * @param {OutboxEntry} entry
   * @param {SendResult} result
   */
  #complete(entry, result) {
    if (!this.#remove(entry)) return; // confirmed already (log and `sent` both told us)
    this.onSent(entry, result);
    this.#settle(entry.client_msg_id, result);
  }

  /**
   * @param {OutboxEntry} entry
   * @param {Error} error
   */
  #fail(entry, error) {
    if (!this.#remove(entry)) return;
    this.onFailed(entry, error);
    this.#settle(entry.client_msg_id, undefined, error);
  }

  /** @param {OutboxEntry} entry */
  #remove(entry) {
    const index = this.#entries.indexOf(entry);
    if (index < 0) return false;
    this.#entries.splice(index, 1);
    // If this delete is lost (crash), the entry is sent again after a restart and the
    // server answers with the original seq, which the app has had: no duplicate.
    this.storage.deleteOutbox(entry.client_msg_id).catch(() => {});
    return true;
  }

  /**
   * @param {string} clientMsgId
   * @param {SendResult | undefined} result
   * @param {Error} [error]
   */
  #settle(clientMsgId, result, error) {
    const waiter = this.#waiters.get(clientMsgId);
    if (!waiter) return;
    this.#waiters.delete(clientMsgId);
    if (error) waiter.reject(error);
    else waiter.resolve(/** @type {SendResult} */ (result));
  }

  /**
   * @param {string} chatId
   * @param {string} clientMsgId
   */
  #find(chatId, clientMsgId) {
    return this.#entries.find((e) => e.chat_id === chatId && e.client_msg_id === clientMsgId);
  }
}

function closedError() {
  return new ChatError("closed", "client closed; the message stays in the outbox storage");
}
