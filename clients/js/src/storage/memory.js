// The storage interface of the SDK and its in-memory implementation (the default).
// What the client keeps is small: a cursor per chat (how far the app has the message
// stream) and the outbox. Kept in memory they last as long as the storage object: a new
// ChatClient given the same MemoryStorage resumes where the old one stopped, which is
// what tests and long-running Node processes need. Browsers that must survive a page
// reload use IndexedDBStorage (./indexeddb.js).

/** @typedef {import("../types.js").OutboxEntry} OutboxEntry */

/**
 * Where a ChatClient keeps its state between instances. All methods may be asynchronous;
 * the client awaits `putOutbox` before sending and batches `saveCursors`.
 * One storage belongs to one (user, device): namespace it accordingly.
 * @typedef {object} ChatStorage
 * @property {() => Promise<Record<string, number>>} loadCursors
 * @property {(cursors: Record<string, number>) => Promise<void>} saveCursors  Merges: chats not named keep their cursor.
 * @property {() => Promise<OutboxEntry[]>} loadOutbox
 * @property {(entry: OutboxEntry) => Promise<void>} putOutbox
 * @property {(clientMsgId: string) => Promise<void>} deleteOutbox
 */

/** @implements {ChatStorage} */
export class MemoryStorage {
  /** @type {Map<string, number>} */
  #cursors = new Map();
  /** @type {Map<string, OutboxEntry>} */
  #outbox = new Map();

  async loadCursors() {
    return Object.fromEntries(this.#cursors);
  }

  /** @param {Record<string, number>} cursors */
  async saveCursors(cursors) {
    for (const [chatId, seq] of Object.entries(cursors)) {
      // Cursors only move forward; an older write finishing late must not move one back.
      this.#cursors.set(chatId, Math.max(seq, this.#cursors.get(chatId) ?? 0));
    }
  }

  async loadOutbox() {
    return [...this.#outbox.values()].map((entry) => ({ ...entry }));
  }

  /** @param {OutboxEntry} entry */
  async putOutbox(entry) {
    this.#outbox.set(entry.client_msg_id, { ...entry });
  }

  /** @param {string} clientMsgId */
  async deleteOutbox(clientMsgId) {
    this.#outbox.delete(clientMsgId);
  }
}
