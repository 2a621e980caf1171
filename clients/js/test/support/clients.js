// Test support: ChatClients in Node (with the `ws` package) and ways to wait for what
// they report — always for an event, never for a fixed time — plus the property checks
// the tests share (exactly once, in order, nothing lost).

import assert from "node:assert/strict";
import WebSocket from "ws";
import { ChatClient } from "../../src/index.js";

/** How long a test waits for something before failing with a description of it. */
export const PATIENCE_MS = Number(process.env.CLIENT_TEST_PATIENCE_MS ?? 30_000);

/**
 * A client of `userId` on the test server.
 * @param {import("./chatd.js").Chatd} chatd
 * @param {string} userId
 * @param {Partial<import("../../src/client.js").ChatClientOptions>} [options]
 */
export function clientFor(chatd, userId, options = {}) {
  const client = new ChatClient({
    url: chatd.url,
    token: () => chatd.token(userId),
    device: "node",
    WebSocket: /** @type {any} */ (WebSocket),
    // Tests restart the server often; keep the waits short but still jittered.
    backoff: { baseMs: 100, maxMs: 2000 },
    ...options,
  });
  const log = new EventLog(client);
  return { client, log };
}

/** Everything a client emitted, with a way to wait until a condition holds. */
export class EventLog {
  /** @type {import("../../src/types.js").Message[]} */
  messages = [];
  /** @type {import("../../src/types.js").StateChange[]} */
  states = [];
  /** @type {import("../../src/types.js").Receipt[]} */
  receipts = [];
  /** @type {import("../../src/types.js").Typing[]} */
  typing = [];
  /** @type {import("../../src/types.js").Presence[]} */
  presence = [];
  /** @type {Set<() => void>} */
  #watchers = new Set();

  /** @param {ChatClient} client */
  constructor(client) {
    client.on("message", (m) => this.#push(this.messages, m));
    client.on("state", (s) => this.#push(this.states, s));
    client.on("receipt", (r) => this.#push(this.receipts, r));
    client.on("typing", (t) => this.#push(this.typing, t));
    client.on("presence", (p) => this.#push(this.presence, p));
  }

  /**
   * Messages of one chat, in the order the app got them.
   * @param {string} chatId
   */
  of(chatId) {
    return this.messages.filter((m) => m.chat_id === chatId);
  }

  /**
   * Resolves once `condition()` is true (checked now and after every event); fails the
   * test after PATIENCE_MS with `what`.
   * @param {string} what
   * @param {() => boolean} condition
   * @param {number} [timeoutMs]
   */
  until(what, condition, timeoutMs = PATIENCE_MS) {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#watchers.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`));
      }, timeoutMs);
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.#watchers.delete(check);
        resolve(undefined);
      };
      this.#watchers.add(check);
    });
  }

  /**
   * @template T
   * @param {T[]} list
   * @param {T} item
   */
  #push(list, item) {
    list.push(item);
    for (const check of [...this.#watchers]) check();
  }
}

/**
 * The property the SDK promises: the app got seqs `1..count` of the chat, each once, in
 * ascending order, and (when given) with these bodies in this order.
 * @param {import("../../src/types.js").Message[]} messages  What the app got, in order.
 * @param {string} chatId
 * @param {{count: number, bodies?: string[]}} expected
 */
export function assertExactlyOnceInOrder(messages, chatId, { count, bodies }) {
  const got = messages.filter((m) => m.chat_id === chatId);
  const seqs = got.map((m) => m.seq);
  const want = Array.from({ length: count }, (_, i) => i + 1);
  assert.deepEqual(seqs, want, `chat ${chatId}: seqs must be 1..${count}, each once, ascending`);
  if (bodies) assert.deepEqual(got.map((m) => m.body), bodies, `chat ${chatId}: bodies in send order`);
  assert.equal(new Set(got.map((m) => m.msg_id)).size, got.length, "no msg_id twice");
}

/**
 * Waits for a client's `state` event matching `predicate`.
 * @param {ChatClient} client
 * @param {(s: import("../../src/types.js").StateChange) => boolean} predicate
 * @param {string} what
 */
export function nextState(client, predicate, what, timeoutMs = PATIENCE_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for state: ${what}`));
    }, timeoutMs);
    const off = client.on("state", (s) => {
      if (!predicate(s)) return;
      clearTimeout(timer);
      off();
      resolve(s);
    });
  });
}

/** Numbers 0..n-1 as message bodies with a prefix: easy to read in a failed assertion. */
export function bodies(prefix, n, from = 0) {
  return Array.from({ length: n }, (_, i) => `${prefix}-${String(i + from).padStart(4, "0")}`);
}
