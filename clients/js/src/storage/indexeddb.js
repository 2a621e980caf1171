// A ChatStorage in the browser's IndexedDB: the outbox and the cursors survive a page
// reload, a crash of the tab or the browser. One database per namespace; the app names it
// after the user and device (e.g. `alice/tab-1f3a`) so two accounts or two devices in the
// same browser never share an outbox.

/** @typedef {import("../types.js").OutboxEntry} OutboxEntry */
/** @typedef {import("./memory.js").ChatStorage} ChatStorage */

const VERSION = 1;

/** @implements {ChatStorage} */
export class IndexedDBStorage {
  /** @type {Promise<IDBDatabase> | undefined} */
  #db;

  /**
   * @param {string} namespace
   * @param {IDBFactory} [indexedDB]  Defaults to the global one.
   */
  constructor(namespace, indexedDB = globalThis.indexedDB) {
    if (!indexedDB) throw new Error("IndexedDB is not available here; use MemoryStorage");
    this.name = `chat-sdk:${namespace}`;
    this.factory = indexedDB;
  }

  async loadCursors() {
    /** @type {Record<string, number>} */
    const cursors = {};
    await this.#transaction("cursors", "readonly", (store) => {
      const request = store.openCursor();
      request.onsuccess = () => {
        const cursor = request.result;
        if (!cursor) return;
        cursors[String(cursor.key)] = cursor.value;
        cursor.continue();
      };
    });
    return cursors;
  }

  /** @param {Record<string, number>} cursors */
  async saveCursors(cursors) {
    await this.#transaction("cursors", "readwrite", (store) => {
      for (const [chatId, seq] of Object.entries(cursors)) {
        // Read-modify-write in one transaction: cursors only move forward.
        const request = store.get(chatId);
        request.onsuccess = () => store.put(Math.max(seq, request.result ?? 0), chatId);
      }
    });
  }

  async loadOutbox() {
    /** @type {OutboxEntry[]} */
    let entries = [];
    await this.#transaction("outbox", "readonly", (store) => {
      const request = store.getAll();
      request.onsuccess = () => (entries = request.result);
    });
    return entries;
  }

  /** @param {OutboxEntry} entry */
  async putOutbox(entry) {
    await this.#transaction("outbox", "readwrite", (store) => store.put(entry));
  }

  /** @param {string} clientMsgId */
  async deleteOutbox(clientMsgId) {
    await this.#transaction("outbox", "readwrite", (store) => store.delete(clientMsgId));
  }

  /** Closes the database (tests; a page just goes away). */
  async close() {
    (await this.#db)?.close();
    this.#db = undefined;
  }

  /**
   * Runs `body` in a transaction and resolves when it has committed.
   * @param {"cursors" | "outbox"} storeName
   * @param {IDBTransactionMode} mode
   * @param {(store: IDBObjectStore) => void} body
   * @returns {Promise<void>}
   */
  async #transaction(storeName, mode, body) {
    const db = await this.#open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
      body(tx.objectStore(storeName));
    });
  }

  /** @returns {Promise<IDBDatabase>} */
  #open() {
    this.#db ??= new Promise((resolve, reject) => {
      const request = this.factory.open(this.name, VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains("cursors")) db.createObjectStore("cursors");
        if (!db.objectStoreNames.contains("outbox")) db.createObjectStore("outbox", { keyPath: "client_msg_id" });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return this.#db;
  }
}
