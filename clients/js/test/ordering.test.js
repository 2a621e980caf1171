// MessageOrder on its own (no server): the rules that make delivery exactly once and in
// order, whatever order and how often messages arrive.

import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageOrder } from "../src/ordering.js";

/** @param {number} seq */
const msg = (seq, chat = "c") => ({
  chat_id: chat,
  seq,
  msg_id: `id-${chat}-${seq}`,
  sender_id: "u",
  client_msg_id: `k${seq}`,
  body: `b${seq}`,
  ts: seq,
});

function recorder() {
  /** @type {number[]} */
  const delivered = [];
  /** @type {string[]} */
  const gaps = [];
  const order = new MessageOrder({ deliver: (m) => delivered.push(m.seq), gap: (c) => gaps.push(c) });
  return { order, delivered, gaps };
}

test("any arrival order with duplicates delivers 1..n once, ascending", () => {
  const { order, delivered } = recorder();
  order.resolve("c", 0);
  const arrivals = [3, 1, 1, 2, 5, 3, 4, 4, 2, 6, 5];
  for (const seq of arrivals) order.accept(msg(seq));
  assert.deepEqual(delivered, [1, 2, 3, 4, 5, 6]);
  assert.equal(order.cursor("c"), 6);
});

test("a hole is reported and holds back what follows until filled", () => {
  const { order, delivered, gaps } = recorder();
  order.resolve("c", 0);
  order.accept(msg(1));
  order.accept(msg(3));
  assert.deepEqual(delivered, [1]);
  assert.deepEqual(gaps, ["c"]);
  assert.deepEqual(order.gaps(), ["c"]);
  order.accept(msg(2));
  assert.deepEqual(delivered, [1, 2, 3]);
  assert.deepEqual(order.gaps(), []);
});

test("an unresolved chat buffers until it is placed; below the start is dropped", () => {
  const { order, delivered } = recorder();
  order.accept(msg(7));
  order.accept(msg(5));
  order.accept(msg(6));
  assert.deepEqual(delivered, []);
  assert.deepEqual(order.unresolved(), ["c"]);
  assert.equal(order.lowestBuffered("c"), 5);
  order.resolve("c", 5);
  assert.deepEqual(delivered, [6, 7]);
  order.resolve("c", 0); // a placed chat keeps its cursor
  assert.equal(order.cursor("c"), 7);
});

test("chats are independent and restored cursors hold", () => {
  const { order, delivered } = recorder();
  order.restore({ a: 2, b: 0 });
  order.accept(msg(2, "a"));
  order.accept(msg(3, "a"));
  order.accept(msg(1, "b"));
  assert.deepEqual(delivered, [3, 1]);
  assert.deepEqual(order.cursors(), { a: 3, b: 1 });
});
