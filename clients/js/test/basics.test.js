// The everyday API against a real server: two users exchange messages in a direct chat;
// each app sees every message once, its own included, in seq order; receipts, typing,
// presence, read marks and history pages arrive as the protocol says.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Chatd } from "./support/chatd.js";
import { assertExactlyOnceInOrder, bodies, clientFor } from "./support/clients.js";

/** @type {Chatd} */
let chatd;
before(async () => {
  chatd = await Chatd.start({ args: ["--limit-send", "off"] });
});
after(async () => {
  await chatd?.stop();
});

test("a direct chat: both sides get every message once, in seq order, own ones included", async () => {
  const alice = clientFor(chatd, "alice");
  const bob = clientFor(chatd, "bob");
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  const chat = await alice.client.createDirect("bob");

  const fromAlice = bodies("a", 5);
  const fromBob = bodies("b", 5);
  // Interleaved sends from both sides: the server decides one order; both must see it.
  const results = await Promise.all([
    ...fromAlice.map((b) => alice.client.send(chat.chat_id, b)),
    ...fromBob.map((b) => bob.client.send(chat.chat_id, b)),
  ]);
  assert.deepEqual(
    results.map((r) => r.seq).sort((x, y) => x - y),
    Array.from({ length: 10 }, (_, i) => i + 1),
    "each send resolved with its own seq",
  );
  await alice.log.until("alice has 10", () => alice.log.of(chat.chat_id).length >= 10);
  await bob.log.until("bob has 10", () => bob.log.of(chat.chat_id).length >= 10);
  assertExactlyOnceInOrder(alice.log.messages, chat.chat_id, { count: 10 });
  assertExactlyOnceInOrder(bob.log.messages, chat.chat_id, { count: 10 });
  assert.deepEqual(
    alice.log.of(chat.chat_id).map((m) => m.msg_id),
    bob.log.of(chat.chat_id).map((m) => m.msg_id),
    "both apps see the same messages in the same order",
  );
  // Per sender, the server kept the order of each client's sends.
  assert.deepEqual(bob.log.of(chat.chat_id).filter((m) => m.sender_id === "alice").map((m) => m.body), fromAlice);
  assert.deepEqual(alice.log.of(chat.chat_id).filter((m) => m.sender_id === "bob").map((m) => m.body), fromBob);

  // Delivery receipts come by themselves (bob's client acknowledges with recv) ...
  await alice.log.until("bob's delivered receipt for seq 10", () =>
    alice.log.receipts.some((r) => r.user_id === "bob" && r.kind === "delivered" && r.seq === 10),
  );
  // ... read receipts only when the app says so.
  assert.equal(alice.log.receipts.some((r) => r.user_id === "bob" && r.kind === "read"), false);
  await bob.client.markRead(chat.chat_id, 10);
  await alice.log.until("bob's read receipt", () =>
    alice.log.receipts.some((r) => r.user_id === "bob" && r.kind === "read" && r.seq === 10),
  );
  assert.deepEqual(alice.client.receipts(chat.chat_id).bob, { delivered: 10, read: 10 });

  const list = await bob.client.chats();
  const entry = list.find((c) => c.chat_id === chat.chat_id);
  assert.equal(entry?.read_seq, 10);
  assert.equal(entry?.unread, 0);

  await Promise.all([alice.client.close(), bob.client.close()]);
});

test("typing and presence reach the other member", async () => {
  const carol = clientFor(chatd, "carol");
  const dave = clientFor(chatd, "dave");
  await carol.client.connect();
  const chat = await carol.client.createDirect("dave");
  const now = await carol.client.subscribePresence(["dave"]);
  assert.equal(now[0].online, false);

  await dave.client.connect();
  await carol.log.until("dave online", () => carol.log.presence.some((p) => p.user_id === "dave" && p.online));

  dave.client.typing(chat.chat_id);
  dave.client.typing(chat.chat_id); // throttled: the second one is not sent
  await carol.log.until("dave typing", () => carol.log.typing.some((t) => t.user_id === "dave"));

  await dave.client.close();
  await carol.log.until("dave offline with a last_seen", () =>
    carol.log.presence.some((p) => p.user_id === "dave" && !p.online && typeof p.last_seen === "number"),
  );
  assert.equal(carol.log.typing.length, 1, "one typing frame for two calls within the interval");
  await carol.client.close();
});

test("history pages go back to seq 1 without holes or repeats", async () => {
  const erin = clientFor(chatd, "erin");
  await erin.client.connect();
  const group = await erin.client.createGroup("paging", ["frank"]);
  const sent = bodies("h", 120);
  for (const body of sent) await erin.client.send(group.chat_id, body);

  const pages = [];
  let before;
  for (;;) {
    const page = await erin.client.history(group.chat_id, { beforeSeq: before, limit: 50 });
    if (page.length === 0) break;
    pages.unshift(page);
    before = page[0].seq;
    if (before === 1) break;
  }
  const all = pages.flat();
  assert.deepEqual(all.map((m) => m.seq), Array.from({ length: 120 }, (_, i) => i + 1));
  assert.deepEqual(all.map((m) => m.body), sent);
  assert.ok(pages.length >= 3, "120 messages at 50 a page take three pages");
  await erin.client.close();
});
