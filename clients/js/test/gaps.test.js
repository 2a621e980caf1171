// Gap filling: live `msg` frames that never reach the app must still be delivered, once
// and in order. Two ways to lose them: a frame lost on the way (the client notices the
// jump in seq and fills it with `sync` on the same connection), and a consumer too slow
// for the server, which closes it with 1013 (the client reconnects and syncs).

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Chatd } from "./support/chatd.js";
import { assertExactlyOnceInOrder, bodies, clientFor, nextState } from "./support/clients.js";
import { hookedWebSocket } from "./support/hooked-websocket.js";

/** @type {Chatd[]} */
const servers = [];
after(async () => {
  for (const chatd of servers) await chatd.stop();
});

test("a lost live frame is filled in by sync, without reconnecting", async () => {
  const chatd = await Chatd.start({ args: ["--limit-send", "off"] });
  servers.push(chatd);
  const lost = new Set([3, 4, 7]);
  const dropped = [];
  const net = hookedWebSocket({
    drop: (frame) => {
      if (frame.type !== "msg" || !lost.has(frame.seq)) return false;
      lost.delete(frame.seq); // lose each only once: the sync output must get through
      dropped.push(frame.seq);
      return true;
    },
  });
  const alice = clientFor(chatd, "alice");
  const bob = clientFor(chatd, "bob", { WebSocket: net.WebSocket, gapFillDelayMs: 100 });
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  const { chat_id: chatId } = await alice.client.createDirect("bob");
  const sent = bodies("m", 10);
  for (const body of sent) await alice.client.send(chatId, body);

  await bob.log.until("bob has 10", () => bob.log.of(chatId).length >= 10);
  assert.deepEqual(dropped, [3, 4, 7], "the hook really lost three live frames");
  assertExactlyOnceInOrder(bob.log.messages, chatId, { count: 10, bodies: sent });
  assert.equal(net.count, 1, "filled on the same connection");
  assert.deepEqual(bob.log.states.map((s) => s.state), ["connecting", "syncing", "connected"]);
  await Promise.all([alice.client.close(), bob.client.close()]);
});

test("a consumer closed as too slow (1013) reconnects and catches up", async () => {
  // A tiny outbound queue: a reader that stops reading overflows it quickly.
  const chatd = await Chatd.start({
    args: ["--outbound-queue-bytes", "4096", "--limit-send", "off", "--send-rate", "100000", "--send-burst", "100000"],
  });
  servers.push(chatd);
  const net = hookedWebSocket();
  const alice = clientFor(chatd, "alice");
  const bob = clientFor(chatd, "bob", { WebSocket: net.WebSocket });
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  // Four chats, so alice's outbox sends four at a time (one in flight per chat).
  const chats = [];
  for (let i = 0; i < 4; i++) chats.push((await alice.client.createGroup(`g${i}`, ["bob"])).chat_id);

  const closedSlow = nextState(bob.client, (s) => s.state === "disconnected", "bob disconnected");
  net.stall();
  // Far more than the kernel's socket buffers hold: the server's queue for bob overflows.
  const big = "x".repeat(12_000);
  const perChat = 120;
  const sends = [];
  for (const chatId of chats) {
    for (let i = 0; i < perChat; i++) sends.push(alice.client.send(chatId, `${chatId}:${i}:${big}`));
  }
  await Promise.all(sends);
  net.resume();
  const down = await closedSlow;
  assert.equal(down.code, 1013, "the server closed bob as a slow consumer");

  for (const chatId of chats) {
    await bob.log.until(`bob has ${perChat} in ${chatId}`, () => bob.log.of(chatId).length >= perChat);
    assertExactlyOnceInOrder(bob.log.messages, chatId, {
      count: perChat,
      bodies: Array.from({ length: perChat }, (_, i) => `${chatId}:${i}:${big}`),
    });
  }
  assert.ok(net.count >= 2, "bob reconnected");
  await Promise.all([alice.client.close(), bob.client.close()]);
});
