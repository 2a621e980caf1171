// How the client treats the ends of a connection the server chooses: a refused token
// (HTTP 401: ask the app for a new one and retry), and a replacement by a newer
// connection of the same device (close 4001: stop, tell the app, do not fight back).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Chatd } from "./support/chatd.js";
import { clientFor, nextState } from "./support/clients.js";

/** @type {Chatd} */
let chatd;
before(async () => {
  chatd = await Chatd.start();
});
after(async () => {
  await chatd?.stop();
});

test("the token function is called for every connect, and again after a 401", async () => {
  let calls = 0;
  const { client, log } = clientFor(chatd, "gina", {
    token: async () => {
      calls += 1;
      // The first token is stale (as after a long sleep); the next one is good.
      return calls === 1 ? "expired.token.value" : chatd.token("gina");
    },
  });
  await client.connect();
  assert.equal(calls, 2);
  const refused = log.states.find((s) => s.state === "disconnected");
  assert.ok(refused, "the refused attempt was reported");
  assert.ok(refused.retryInMs !== undefined && refused.retryInMs > 0, "and retried after a delay, not at once");

  // A reconnect asks again (the token may have expired meanwhile): every attempt does,
  // including those refused while the server was down, however many the timing allows.
  await chatd.kill("SIGKILL");
  await chatd.start();
  await nextState(client, (s) => s.state === "connected", "reconnected");
  const attempts = log.states.filter((s) => s.state === "connecting").length;
  assert.ok(attempts >= 3, `${attempts} connection attempts`);
  assert.equal(calls, attempts, "one token per connection attempt");
  await client.close();
});

test("a newer connection of the same device replaces the old one, which stops (4001)", async () => {
  const first = clientFor(chatd, "hank", { device: "tab-1" });
  const second = clientFor(chatd, "hank", { device: "tab-1" });
  await first.client.connect();
  const replaced = nextState(first.client, (s) => s.state !== "connected", "first tab's next state");
  await second.client.connect();
  const change = await replaced;
  assert.equal(change.state, "replaced");
  assert.equal(change.code, 4001);

  // Messages keep flowing to the device through the new connection; the old one stays down.
  const ivy = clientFor(chatd, "ivy");
  await ivy.client.connect();
  const chat = await ivy.client.createDirect("hank");
  await ivy.client.send(chat.chat_id, "are you there?");
  await second.log.until("the new tab gets it", () => second.log.of(chat.chat_id).length === 1);
  assert.equal(first.client.state, "replaced");
  assert.deepEqual(
    first.log.states.map((s) => s.state),
    ["connecting", "syncing", "connected", "replaced"],
    "no reconnect attempt after 4001",
  );
  await Promise.all([first.client.close(), second.client.close(), ivy.client.close()]);
});

test("a different device of the same user does not replace, and gets the user's own messages", async () => {
  const phone = clientFor(chatd, "jane", { device: "phone" });
  const laptop = clientFor(chatd, "jane", { device: "laptop" });
  await Promise.all([phone.client.connect(), laptop.client.connect()]);
  const chat = await phone.client.createDirect("kim");
  await phone.client.send(chat.chat_id, "from my phone");
  await laptop.log.until("the laptop gets the phone's message", () => laptop.log.of(chat.chat_id).length === 1);
  assert.deepEqual(phone.log.of(chat.chat_id).map((m) => m.body), ["from my phone"], "the phone's app shows it once");
  assert.equal(phone.client.state, "connected");
  await Promise.all([phone.client.close(), laptop.client.close()]);
});
