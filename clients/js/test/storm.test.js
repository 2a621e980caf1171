// Reconnect storms: many clients lose the server at once — a crash (SIGKILL) and a
// graceful restart (SIGTERM: `reconnect` frames, then close 1012) — and all come back,
// spread out by jitter or by the server's `after_ms`, and catch up. Afterwards every
// member's app holds every message of the group once, in seq order, and each sender's
// messages in the order they were sent.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Chatd } from "./support/chatd.js";
import { clientFor, nextState } from "./support/clients.js";

const USERS = Array.from({ length: 30 }, (_, i) => `storm${String(i).padStart(2, "0")}`);

/** @type {Chatd[]} */
const servers = [];
after(async () => {
  for (const chatd of servers) await chatd.stop();
});

/**
 * Everyone in one group, connected.
 * @param {Chatd} chatd
 */
async function crowd(chatd) {
  const members = USERS.map((user) => ({ user, ...clientFor(chatd, user) }));
  await Promise.all(members.map((m) => m.client.connect()));
  const group = await members[0].client.createGroup("storm", USERS.slice(1));
  return { members, chatId: group.chat_id };
}

/**
 * Every member's app has seqs 1..total once, ascending, the same messages, and each
 * sender's bodies in the order sent.
 * @param {Awaited<ReturnType<typeof crowd>>["members"]} members
 * @param {string} chatId
 * @param {Map<string, string[]>} sentBy
 */
async function assertEveryoneHasEverything(members, chatId, sentBy) {
  const total = [...sentBy.values()].reduce((n, list) => n + list.length, 0);
  await Promise.all(members.map((m) => m.log.until(`${m.user} has ${total}`, () => m.log.of(chatId).length >= total)));
  const reference = members[0].log.of(chatId).map((msg) => msg.msg_id);
  for (const m of members) {
    const got = m.log.of(chatId);
    assert.deepEqual(got.map((msg) => msg.seq), Array.from({ length: total }, (_, i) => i + 1), `${m.user}: 1..${total} once`);
    assert.deepEqual(got.map((msg) => msg.msg_id), reference, `${m.user}: same order as everyone`);
  }
  for (const [user, list] of sentBy) {
    const theirs = members[0].log.of(chatId).filter((msg) => msg.sender_id === user).map((msg) => msg.body);
    assert.deepEqual(theirs, list, `${user}'s messages in the order sent`);
  }
}

test("30 clients survive a crash: all reconnect with jitter and converge", async (t) => {
  const chatd = await Chatd.start({ args: ["--limit-send", "off"] });
  servers.push(chatd);
  const { members, chatId } = await crowd(chatd);
  /** @type {Map<string, string[]>} */
  const sentBy = new Map(USERS.map((u) => [u, []]));
  /** @param {number} round */
  const everyoneSends = (round) =>
    members.map((m) => {
      const body = `${m.user}/${round}`;
      /** @type {string[]} */ (sentBy.get(m.user)).push(body);
      return m.client.send(chatId, body);
    });

  await Promise.all(everyoneSends(0));
  // Crash with a round of sends on the wire.
  const inFlight = [...everyoneSends(1), ...everyoneSends(2)];
  await chatd.kill("SIGKILL");
  const allDown = Promise.all(
    members.map((m) => m.log.until(`${m.user} notices`, () => m.log.states.some((s) => s.state === "disconnected"))),
  );
  await allDown;
  const queued = everyoneSends(3);

  const reconnectedAt = new Map();
  for (const m of members) {
    nextState(m.client, (s) => s.state === "connected", `${m.user} back`).then(() => reconnectedAt.set(m.user, Date.now()));
  }
  const restartedAt = Date.now();
  await chatd.start();
  await Promise.all([...inFlight, ...queued]);
  await assertEveryoneHasEverything(members, chatId, sentBy);

  // Backoff jitter spread the crowd: they did not all come back in the same instant.
  const offsets = [...reconnectedAt.values()].map((at) => at - restartedAt);
  assert.equal(offsets.length, USERS.length, "everyone reconnected");
  const spread = Math.max(...offsets) - Math.min(...offsets);
  t.diagnostic(`reconnects spread over ${spread} ms after the restart`);
  assert.ok(new Set(offsets).size > 1, "reconnects are spread out");
  await Promise.all(members.map((m) => m.client.close()));
});

test("30 clients through a graceful restart: reconnect frames honoured, nothing lost", async () => {
  const chatd = await Chatd.start({
    args: ["--limit-send", "off", "--reconnect-jitter", "1500ms", "--drain-timeout", "3s"],
  });
  servers.push(chatd);
  const { members, chatId } = await crowd(chatd);
  /** @type {Map<string, string[]>} */
  const sentBy = new Map(USERS.map((u) => [u, [`${u}/before`]]));
  await Promise.all(members.map((m) => m.client.send(chatId, `${m.user}/before`)));

  const told = members.map((m) =>
    nextState(m.client, (s) => s.state === "disconnected", `${m.user} told to reconnect`),
  );
  await chatd.kill("SIGTERM");
  const downs = await Promise.all(told);
  for (const down of downs) {
    assert.equal(down.code, 1012, "closed as a service restart");
    assert.ok(down.retryInMs !== undefined && down.retryInMs <= 1500, "waits the server's after_ms");
  }
  assert.ok(new Set(downs.map((d) => d.retryInMs)).size > 1, "the server spread the crowd");

  const during = members.map((m) => {
    const body = `${m.user}/during`;
    /** @type {string[]} */ (sentBy.get(m.user)).push(body);
    return m.client.send(chatId, body);
  });
  await chatd.start();
  await Promise.all(during);
  await assertEveryoneHasEverything(members, chatId, sentBy);
  await Promise.all(members.map((m) => m.client.close()));
});
