// Exactly once, in order: the per-chat cursor and reorder buffer. Messages reach it from
// four sources — live `msg` frames, `sync` output, `history` pages and our own `sent`
// replies — in any interleaving and with duplicates. It hands each (chat_id, seq) to the
// app once, in seq order, and reports chats whose next seq is missing (a gap to fill).
//
// A chat's cursor is the highest seq handed to the app with nothing missing below it.
// A chat the client has no cursor for is "unresolved": its messages wait in the buffer
// until the sync algorithm decides where its stream starts (see sync.js), because the
// server starts such chats at this device's delivered watermark, which it does not tell.

/** @typedef {import("./types.js").Message} Message */

export class MessageOrder {
  /** @type {Map<string, number>} chat -> cursor */
  #cursors = new Map();
  /** @type {Map<string, Map<number, Message>>} chat -> seq -> message waiting for its turn */
  #buffers = new Map();

  /**
   * @param {object} handlers
   * @param {(message: Message) => void} handlers.deliver  Called once per (chat, seq), in order.
   * @param {(chatId: string) => void} handlers.gap        A chat's buffer holds messages past a hole.
   */
  constructor({ deliver, gap }) {
    this.deliver = deliver;
    this.gap = gap;
  }

  /**
   * Starts from cursors kept by a previous instance (storage).
   * @param {Record<string, number>} cursors
   */
  restore(cursors) {
    for (const [chatId, seq] of Object.entries(cursors)) {
      if (Number.isSafeInteger(seq) && seq >= 0) this.#cursors.set(chatId, seq);
    }
  }

  /** @param {string} chatId */
  cursor(chatId) {
    return this.#cursors.get(chatId);
  }

  /** @param {string} chatId */
  isResolved(chatId) {
    return this.#cursors.has(chatId);
  }

  /** Cursors of every resolved chat, as `sync` takes them. */
  cursors() {
    return Object.fromEntries(this.#cursors);
  }

  /** Chats that have buffered messages but no cursor yet. */
  unresolved() {
    return [...this.#buffers.keys()].filter((chatId) => !this.#cursors.has(chatId));
  }

  /**
   * Lowest buffered seq of a chat (Infinity when none).
   * @param {string} chatId
   */
  lowestBuffered(chatId) {
    let lowest = Infinity;
    for (const seq of this.#buffers.get(chatId)?.keys() ?? []) lowest = Math.min(lowest, seq);
    return lowest;
  }

  /**
   * Gives an unresolved chat its starting point: messages after `cursor` will be delivered.
   * A resolved chat keeps its cursor (cursors only move forward, by delivery).
   * @param {string} chatId
   * @param {number} cursor
   */
  resolve(chatId, cursor) {
    if (this.#cursors.has(chatId)) return;
    this.#cursors.set(chatId, cursor);
    this.#drain(chatId);
  }

  /**
   * Takes a message from any source. Duplicates and already delivered seqs are dropped.
   * @param {Message} message
   */
  accept(message) {
    const { chat_id: chatId, seq } = message;
    if (!Number.isSafeInteger(seq) || seq < 1) return;
    const cursor = this.#cursors.get(chatId);
    if (cursor !== undefined && seq <= cursor) return;
    let buffer = this.#buffers.get(chatId);
    if (!buffer) this.#buffers.set(chatId, (buffer = new Map()));
    if (buffer.has(seq)) return;
    buffer.set(seq, message);
    if (cursor !== undefined) this.#drain(chatId);
  }

  /**
   * Drops what waits in a chat's buffer (the chat was left: its holes cannot be filled).
   * @param {string} chatId
   */
  discard(chatId) {
    this.#buffers.delete(chatId);
  }

  /** Chats whose buffer waits for a missing seq. */
  gaps() {
    return [...this.#buffers.keys()].filter((chatId) => this.#cursors.has(chatId));
  }

  /** @param {string} chatId */
  #drain(chatId) {
    const buffer = this.#buffers.get(chatId);
    if (!buffer) return;
    // Messages at or below a freshly set cursor are old news.
    const start = /** @type {number} */ (this.#cursors.get(chatId));
    for (const seq of buffer.keys()) if (seq <= start) buffer.delete(seq);
    for (;;) {
      // Re-read each time: a handler may call back into the client and deliver more.
      const cursor = /** @type {number} */ (this.#cursors.get(chatId));
      const next = buffer.get(cursor + 1);
      if (!next) break;
      buffer.delete(cursor + 1);
      // Advance before delivering: a handler must see the cursor that includes this message.
      this.#cursors.set(chatId, cursor + 1);
      this.deliver(next);
    }
    if (buffer.size === 0) {
      if (this.#buffers.get(chatId) === buffer) this.#buffers.delete(chatId);
    } else {
      this.gap(chatId);
    }
  }
}
