// Being told to slow down: a server that answers sends with `rate_limited` (over the
// user's send rate and unable to hold them longer). The outbox must retry each with the
// same client_msg_id after retry_after_ms, and still commit every chat's messages once, in
// the order they were written. (`unavailable` from load shedding takes the same path in
// the outbox; chatd cannot be made to shed sends while still admitting the clients' syncs,
// whose reservation is a whole page plus 64 KiB, so it is not provoked here.)

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Chatd } from "./support/chatd.js";
import { assertExactlyOnceInOrder, bodies, clientFor } from "./support/clients.js";
import { hookedWebSocket } from "./support/hooked-websocket.js";

/** @type {Chatd[]} */
const servers = [];
after(async () => {
  for (const chatd of servers) await chatd.stop();
});

/** A WebSocket that counts the error codes the server answers with. */
function countingErrors() {
  /** @type {Record<string, number>} */
  const errors = {};
  const net = hookedWebSocket({
    drop: (frame) => {
      if (frame.type === "error") errors[frame.code] = (errors[frame.code] ?? 0) + 1;
      return false;
    },
  });
  return { net, errors };
}

test("sends answered rate_limited are retried after retry_after_ms, in order, once", async () => {
  // 10 sends a second with a burst of 2, and the server holds a send at most 20 ms: most
  // of a quick burst is answered rate_limited instead of waiting its turn.
  const chatd = await Chatd.start({ args: ["--limit-send", "10/s,2", "--max-rate-delay", "20ms"] });
  servers.push(chatd);
  const { net, errors } = countingErrors();
  const alice = clientFor(chatd, "alice", { WebSocket: net.WebSocket });
  const bob = clientFor(chatd, "bob");
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  const one = (await alice.client.createDirect("bob")).chat_id;
  const two = (await alice.client.createGroup("two", ["bob"])).chat_id;
  const toOne = bodies("one", 15);
  const toTwo = bodies("two", 15);
  await Promise.all([...toOne.map((b) => alice.client.send(one, b)), ...toTwo.map((b) => alice.client.send(two, b))]);
  assert.ok((errors.rate_limited ?? 0) > 0, "the server did refuse some sends as rate_limited");
  await bob.log.until("bob has all", () => bob.log.of(one).length >= 15 && bob.log.of(two).length >= 15);
  assertExactlyOnceInOrder(bob.log.messages, one, { count: 15, bodies: toOne });
  assertExactlyOnceInOrder(bob.log.messages, two, { count: 15, bodies: toTwo });
  assertExactlyOnceInOrder(alice.log.messages, one, { count: 15, bodies: toOne });
  await Promise.all([alice.client.close(), bob.client.close()]);
});
