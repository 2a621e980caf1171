// Chats the client has no cursor for: a new device, or a device whose local storage was
// lost. The server starts those at the device's delivered watermark, which it does not
// report, and live messages interleave with the catch-up. The client must place each
// chat so that nothing is lost and nothing is repeated (docs/client-guide.md, 4.3).

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { MemoryStorage } from "../src/index.js";
import { Chatd } from "./support/chatd.js";
import { assertExactlyOnceInOrder, clientFor } from "./support/clients.js";

/** @type {Chatd[]} */
const servers = [];
after(async () => {
  for (const chatd of servers) await chatd.stop();
});

test("a new device catches up through many short sync rounds while messages keep coming", async () => {
  // At most 7 messages per sync reply: the catch-up takes many incomplete rounds.
  const chatd = await Chatd.start({ args: ["--max-sync-limit", "7", "--limit-send", "off", "--limit-reads", "off"] });
  servers.push(chatd);
  const alice = clientFor(chatd, "alice");
  await alice.client.connect();
  const chats = [];
  for (let i = 0; i < 5; i++) chats.push((await alice.client.createGroup(`room ${i}`, ["bob"])).chat_id);
  /** @type {Map<string, string[]>} */
  const sent = new Map(chats.map((c) => [c, []]));
  const sendTo = (/** @type {string} */ chatId, /** @type {string} */ body) => {
    /** @type {string[]} */ (sent.get(chatId)).push(body);
    return alice.client.send(chatId, body);
  };
  await Promise.all(chats.flatMap((c) => Array.from({ length: 20 }, (_, i) => sendTo(c, `${c}/old/${i}`))));

  // Bob's brand-new device connects while alice goes on writing into every chat.
  const bob = clientFor(chatd, "bob", { device: "new-phone" });
  const live = chats.flatMap((c) => Array.from({ length: 10 }, (_, i) => sendTo(c, `${c}/live/${i}`)));
  await bob.client.connect();
  await Promise.all(live);
  for (const chatId of chats) {
    const bodies = /** @type {string[]} */ (sent.get(chatId));
    await bob.log.until(`bob has ${bodies.length} in ${chatId}`, () => bob.log.of(chatId).length >= bodies.length);
    assertExactlyOnceInOrder(bob.log.messages, chatId, { count: bodies.length, bodies });
  }
  await Promise.all([alice.client.close(), bob.client.close()]);
});

test("a device that lost its storage resumes at its server-side watermark, not from seq 1", async () => {
  const chatd = await Chatd.start({ args: ["--limit-send", "off"] });
  servers.push(chatd);
  const alice = clientFor(chatd, "alice");
  await alice.client.connect();
  const chatId = (await alice.client.createDirect("bob")).chat_id;
  for (let i = 1; i <= 10; i++) await alice.client.send(chatId, `m${i}`);

  const first = clientFor(chatd, "bob", { device: "laptop" });
  await first.client.connect();
  await first.log.until("bob's laptop has 10", () => first.log.of(chatId).length === 10);
  // close() sends the last recv: the server now holds delivered = 10 for this device.
  await first.client.close();

  for (let i = 11; i <= 15; i++) await alice.client.send(chatId, `m${i}`);
  // Same device, empty storage (reinstalled app, cleared site data).
  const again = clientFor(chatd, "bob", { device: "laptop", storage: new MemoryStorage() });
  await again.client.connect();
  await again.log.until("the five new ones", () => again.log.of(chatId).length >= 5);
  assert.deepEqual(
    again.log.of(chatId).map((m) => m.seq),
    [11, 12, 13, 14, 15],
    "exactly what the device had not acknowledged, once, in order",
  );
  await alice.client.send(chatId, "m16");
  await again.log.until("and live from there", () => again.log.of(chatId).length === 6);
  assert.equal(again.client.cursor(chatId), 16);
  await Promise.all([alice.client.close(), again.client.close()]);
});
