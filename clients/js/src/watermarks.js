// Delivery watermarks: tells the server, with `recv`, how far this device has the message
// stream of each chat, after the app's handlers got the messages; and saves the cursors
// to storage (before the `recv`, so the server never believes we have more than we kept).
// Batched: a sync of a thousand messages ends in one `recv` per chat, not a thousand.
// `recv` is cumulative, so only the highest seq per chat matters and a lost one is
// repaired by the next. The read watermark is not here: only the app knows what the user
// has seen, so it calls markRead.

/** @typedef {import("./storage/memory.js").ChatStorage} ChatStorage */

export class Watermarks {
  /** @type {Map<string, number>} cursors not yet saved / acknowledged */
  #dirty = new Map();
  /** @type {Map<string, number>} what the server has from us (as far as we know) */
  #acked = new Map();
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  /** @type {Promise<void>} */
  #flushing = Promise.resolve();

  /**
   * @param {object} options
   * @param {ChatStorage} options.storage
   * @param {(frame: Record<string, any>) => boolean} options.notify  Sends on the current
   *   connection; false when there is none.
   * @param {number} [options.delayMs]  How long deliveries are gathered before one flush.
   */
  constructor({ storage, notify, delayMs = 200 }) {
    this.storage = storage;
    this.notify = notify;
    this.delayMs = delayMs;
  }

  /**
   * The app has every message of the chat up to `seq`.
   * @param {string} chatId
   * @param {number} seq
   */
  delivered(chatId, seq) {
    if (seq <= (this.#dirty.get(chatId) ?? 0)) return;
    this.#dirty.set(chatId, seq);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, this.delayMs);
  }

  /**
   * A connection caught up. `serverDelivered` holds the delivered watermarks `synced`
   * reported; anything we have beyond them is acknowledged again (a `recv` may have been
   * lost with the previous connection).
   * @param {Record<string, number>} cursors      The client's cursors.
   * @param {Record<string, number>} serverDelivered
   */
  connected(cursors, serverDelivered) {
    this.#acked = new Map(Object.entries(serverDelivered));
    for (const [chatId, seq] of Object.entries(cursors)) {
      if (seq > (this.#acked.get(chatId) ?? 0)) this.delivered(chatId, seq);
    }
  }

  /** Saves and acknowledges what is pending now; resolves when done. */
  flush() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = Object.fromEntries(this.#dirty);
    this.#dirty.clear();
    this.#flushing = this.#flushing.then(async () => {
      if (Object.keys(batch).length === 0) return;
      try {
        await this.storage.saveCursors(batch);
      } catch {
        // Not saved: the worst case is that a later instance gets these messages again.
      }
      for (const [chatId, seq] of Object.entries(batch)) {
        if (seq <= (this.#acked.get(chatId) ?? 0)) continue;
        if (this.notify({ type: "recv", chat_id: chatId, seq })) this.#acked.set(chatId, seq);
      }
    });
    return this.#flushing;
  }

  close() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
