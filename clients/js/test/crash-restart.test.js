// Durability across a server crash: chatd is SIGKILLed while a client has sends in
// flight and more queued in its outbox, then started again on the same port and data dir.
// Every message must reach the other member and the sender's own app exactly once, in
// the order it was sent; none lost, none doubled (the outbox retries with the same
// client_msg_id, and the server turns a repeat into the original message).

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { MemoryStorage } from "../src/index.js";
import { Chatd } from "./support/chatd.js";
import { assertExactlyOnceInOrder, bodies, clientFor, nextState } from "./support/clients.js";

/** @type {Chatd[]} */
const servers = [];
after(async () => {
  for (const chatd of servers) await chatd.stop();
});

test("SIGKILL and restart with sends in flight and queued: exactly once, in order, for both sides", async () => {
  const chatd = await Chatd.start({ args: ["--limit-send", "off"] });
  servers.push(chatd);
  const alice = clientFor(chatd, "alice");
  const bob = clientFor(chatd, "bob");
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  const { chat_id: chatId } = await alice.client.createDirect("bob");

  const before = bodies("before", 10);
  for (const body of before) await alice.client.send(chatId, body);

  // A burst that is partly acknowledged when the server dies: kill it on the 5th `sent`.
  const burst = bodies("burst", 30);
  const killed = new Promise((resolve) => {
    let acked = 0;
    const off = alice.client.on("outbox", (change) => {
      if (change.kind === "sent" && change.entry.body.startsWith("burst") && ++acked === 5) {
        off();
        resolve(chatd.kill("SIGKILL"));
      }
    });
  });
  const burstDone = burst.map((body) => alice.client.send(chatId, body));
  await killed;
  await nextState(alice.client, (s) => s.state === "disconnected", "alice notices the crash");
  assert.ok(alice.client.pending(chatId).length > 0, "some of the burst is still in the outbox");

  // Written while the server is down: only the outbox has them.
  const whileDown = bodies("down", 20);
  const downDone = whileDown.map((body) => alice.client.send(chatId, body));

  await chatd.start();
  const results = await Promise.all([...burstDone, ...downDone]);
  const all = [...before, ...burst, ...whileDown];
  assert.deepEqual(
    results.map((r) => r.seq),
    Array.from({ length: 50 }, (_, i) => i + 11),
    "sends resolved with consecutive seqs in send order",
  );
  await bob.log.until("bob has all 60", () => bob.log.of(chatId).length >= all.length);
  await alice.log.until("alice's app has her 60", () => alice.log.of(chatId).length >= all.length);
  assertExactlyOnceInOrder(bob.log.messages, chatId, { count: all.length, bodies: all });
  assertExactlyOnceInOrder(alice.log.messages, chatId, { count: all.length, bodies: all });
  assert.equal(alice.client.pending().length, 0, "outbox empty");

  // And the server agrees: its log holds each body once.
  const page = await bob.client.history(chatId, { limit: 200 });
  assert.deepEqual(page.map((m) => m.body), all);
  await Promise.all([alice.client.close(), bob.client.close()]);
});

test("a new client instance with the same storage resumes the outbox after a crash", async () => {
  const chatd = await Chatd.start({ args: ["--limit-send", "off"] });
  servers.push(chatd);
  const storage = new MemoryStorage(); // stands for IndexedDB across a page reload
  const first = clientFor(chatd, "carol", { storage });
  const dan = clientFor(chatd, "dan");
  await Promise.all([first.client.connect(), dan.client.connect()]);
  const { chat_id: chatId } = await first.client.createDirect("dan");
  await first.client.send(chatId, "hello");

  await chatd.kill("SIGKILL");
  await nextState(first.client, (s) => s.state === "disconnected", "carol sees the crash");
  const queued = bodies("queued", 15);
  const promises = queued.map((body) => first.client.send(chatId, body));
  // The "page" goes away with its sends unconfirmed: they fail here, but stay in storage.
  await first.client.close();
  const outcomes = await Promise.allSettled(promises);
  assert.ok(outcomes.every((o) => o.status === "rejected" && o.reason.code === "closed"));

  await chatd.start();
  const second = clientFor(chatd, "carol", { storage });
  assert.equal(second.client.pending(chatId).length, 0, "nothing known before the storage is read");
  const sent = [];
  second.client.on("outbox", (c) => c.kind === "sent" && sent.push(c.entry.body));
  await second.client.connect();
  await dan.log.until("dan has 16", () => dan.log.of(chatId).length >= 16);
  assertExactlyOnceInOrder(dan.log.messages, chatId, { count: 16, bodies: ["hello", ...queued] });
  await second.log.until("the resumed sends surface in the new instance", () => second.log.of(chatId).length >= 15);
  // The new instance resumes from the saved cursor (1): it gets exactly what is new to it.
  assert.deepEqual(second.log.of(chatId).map((m) => m.seq), Array.from({ length: 15 }, (_, i) => i + 2));
  assert.deepEqual(sent, queued, "the new instance sent the old instance's outbox, in order");
  await Promise.all([second.client.close(), dan.client.close()]);
});
