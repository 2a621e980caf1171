// The outbox after a long time offline: hundreds of messages written while the client
// could not connect go out when it can, in order per chat, each exactly once; the
// receiver gets them in that order and the sender's app sees them once, in seq order.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Chatd } from "./support/chatd.js";
import { assertExactlyOnceInOrder, bodies, clientFor, nextState } from "./support/clients.js";

/** @type {Chatd | undefined} */
let chatd;
after(async () => {
  await chatd?.stop();
});

test("hundreds of messages queued offline in two chats are flushed in order, once", async (t) => {
  chatd = await Chatd.start({ args: ["--limit-send", "off", "--send-rate", "100000", "--send-burst", "100000"] });
  const alice = clientFor(chatd, "alice");
  const bob = clientFor(chatd, "bob");
  const carol = clientFor(chatd, "carol");
  await Promise.all([alice.client.connect(), bob.client.connect(), carol.client.connect()]);
  const direct = (await alice.client.createDirect("bob")).chat_id;
  const group = (await alice.client.createGroup("team", ["bob", "carol"])).chat_id;
  await alice.client.send(direct, "online first");

  // Offline: the server is down for a while.
  await chatd.kill("SIGKILL");
  await nextState(alice.client, (s) => s.state === "disconnected", "alice offline");
  const toBob = bodies("direct", 300);
  const toTeam = bodies("team", 200);
  const done = [];
  // Interleaved writes to two chats, as a user switching between them would.
  for (let i = 0; i < 300; i++) {
    done.push(alice.client.send(direct, toBob[i]));
    if (i < 200) done.push(alice.client.send(group, toTeam[i]));
  }
  await alice.log.until("all 500 are in the outbox", () => alice.client.pending().length === 500);

  const started = Date.now();
  await chatd.start();
  const results = await Promise.all(done);
  const flushMs = Date.now() - started;

  const directSeqs = results.filter((r) => r.chat_id === direct).map((r) => r.seq);
  assert.deepEqual(directSeqs, Array.from({ length: 300 }, (_, i) => i + 2), "direct: seqs follow send order");
  const groupSeqs = results.filter((r) => r.chat_id === group).map((r) => r.seq);
  assert.deepEqual(groupSeqs, Array.from({ length: 200 }, (_, i) => i + 1), "group: seqs follow send order");

  await bob.log.until("bob has everything", () => bob.log.of(direct).length >= 301 && bob.log.of(group).length >= 200);
  await carol.log.until("carol has the group", () => carol.log.of(group).length >= 200);
  await alice.log.until("alice's app has her own", () => alice.log.of(direct).length >= 301 && alice.log.of(group).length >= 200);
  for (const log of [bob.log, alice.log]) {
    assertExactlyOnceInOrder(log.messages, direct, { count: 301, bodies: ["online first", ...toBob] });
    assertExactlyOnceInOrder(log.messages, group, { count: 200, bodies: toTeam });
  }
  assertExactlyOnceInOrder(carol.log.messages, group, { count: 200, bodies: toTeam });
  assert.equal(carol.log.of(direct).length, 0, "carol is not in the direct chat");
  assert.equal(alice.client.pending().length, 0);
  t.diagnostic(`flushed 500 queued messages in ${flushMs} ms (restart included)`);
  await Promise.all([alice.client.close(), bob.client.close(), carol.client.close()]);
});
