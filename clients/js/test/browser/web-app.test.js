// End-to-end: the web app (clients/web) in a real browser (Debian's Chromium) against a real chatd.
// Two people, alice and bob, each in a browser profile of their own, do what people do:
// start a chat, write, watch the ticks and the typing indicator, close the tab and come
// back, and keep writing while the server crashes and restarts.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Chatd } from "../support/chatd.js";
import { connected, launch, newProfile, openChat, seeMessage, seeTick, shownMessages, signIn, write } from "../support/browser.js";

const IMAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../docs/images");

/** @type {Chatd} */
let chatd;
/** @type {import("playwright-core").Browser} */
let browser;
before(async () => {
  chatd = await Chatd.start();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await chatd?.stop();
});

/**
 * The property the app must show: seqs strictly ascending with no repeats, and each of
 * `bodies` exactly once, in this order.
 * @param {{seq: number, body: string}[]} shown
 * @param {string[]} bodies
 */
function assertShownOnceInOrder(shown, bodies) {
  const seqs = shown.map((m) => m.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), "seqs ascending, none twice");
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), "no holes from seq 1");
  const wanted = shown.filter((m) => bodies.includes(m.body)).map((m) => m.body);
  assert.deepEqual(wanted, bodies, "each message once, in the order written");
}

/** Creates the direct chat through the UI; returns its id. */
async function startDirectChat(page, withUser) {
  await page.getByTestId("new-direct").click();
  await page.getByTestId("new-direct-user").fill(withUser);
  await page.locator("dialog[open] [data-testid=dialog-submit]").click();
  await page.getByTestId("composer").waitFor();
  return page.evaluate(() => /** @type {any} */ (window).chat.state.openChatId);
}

test("alice and bob chat: unread count, ticks sent → delivered → read, typing, replies", async () => {
  const alice = await signIn(await newProfile(browser), chatd.url, "alice");
  const bob = await signIn(await newProfile(browser), chatd.url, "bob");

  const chatId = await startDirectChat(alice, "bob");
  await write(alice, "Hi Bob! Lunch today?");
  await seeMessage(alice, "Hi Bob! Lunch today?");
  // Bob's client has it (it acknowledges delivery by itself) but he has not opened it.
  await seeTick(alice, "Hi Bob! Lunch today?", "delivered");
  const badge = bob.locator(`[data-chat-id="${chatId}"] [data-testid=unread]`);
  await badge.waitFor();
  assert.equal(await badge.textContent(), "1");
  // Online dot: alice sees bob online in her list.
  await alice.locator(`[data-chat-id="${chatId}"] [data-testid=online-dot]`).waitFor();

  await openChat(bob, chatId);
  await seeMessage(bob, "Hi Bob! Lunch today?");
  await seeTick(alice, "Hi Bob! Lunch today?", "read");
  assert.equal(await badge.count(), 0, "opening the chat cleared the unread count");

  await bob.getByTestId("composer").pressSequentially("Sure", { delay: 20 });
  await alice.getByTestId("typing").filter({ hasText: "bob is typing" }).waitFor();
  await bob.getByTestId("composer").press("Enter");
  await seeMessage(alice, "Sure");
  await write(bob, "12:30 at the usual place?");
  await seeMessage(alice, "12:30 at the usual place?");
  await write(alice, "Perfect! See you there.");
  await seeTick(alice, "Perfect! See you there.", "read");

  const bodies = ["Hi Bob! Lunch today?", "Sure", "12:30 at the usual place?", "Perfect! See you there."];
  assertShownOnceInOrder(await shownMessages(alice), bodies);
  await seeMessage(bob, "Perfect! See you there.");
  assertShownOnceInOrder(await shownMessages(bob), bodies);
  const mine = (await shownMessages(alice)).filter((m) => m.sender === "alice");
  assert.ok(mine.every((m) => m.tick === "read"), "bob read all of alice's messages");

  if (process.env.UPDATE_SCREENSHOTS) await screenshots(alice, bob, chatId);
  assert.deepEqual([...alice.errors, ...bob.errors], [], "no script errors");
  await alice.context().close();
  await bob.context().close();
});

test("bob closes his tab, alice writes three, bob comes back and sees them once, in order", async () => {
  const alice = await signIn(await newProfile(browser), chatd.url, "carol");
  const bobProfile = await newProfile(browser);
  const bob = await signIn(bobProfile, chatd.url, "dave");
  const chatId = await startDirectChat(alice, "dave");
  await write(alice, "before you left");
  await openChat(bob, chatId);
  await seeMessage(bob, "before you left");

  // Closing the tab; reopening it later restores its sessionStorage (same device), and the
  // SDK's cursors and outbox come back from IndexedDB.
  const tab = await bob.evaluate(() => ({ session: sessionStorage.getItem("chat.session"), device: sessionStorage.getItem("chat.device") }));
  await bob.close();
  const three = ["one", "two", "three"];
  for (const body of three) await write(alice, body);
  for (const body of three) await seeTick(alice, body, "sent");

  await bobProfile.addInitScript((saved) => {
    if (!sessionStorage.getItem("chat.session")) {
      sessionStorage.setItem("chat.session", saved.session);
      sessionStorage.setItem("chat.device", saved.device);
    }
  }, tab);
  const back = await bobProfile.newPage();
  await back.goto(`${chatd.url}/`);
  await connected(back);
  assert.equal(await back.evaluate(() => sessionStorage.getItem("chat.device")), tab.device, "the same device");
  const badge = back.locator(`[data-chat-id="${chatId}"] [data-testid=unread]`);
  await badge.waitFor();
  assert.equal(await badge.textContent(), "3");
  await openChat(back, chatId);
  await seeMessage(back, "three");
  assertShownOnceInOrder(await shownMessages(back), ["before you left", ...three]);
  // Everything bob's app got came once: the SDK's message stream had no repeats.
  await seeTick(alice, "three", "read");
  await alice.context().close();
  await bobProfile.close();
});

test("chatd is killed and restarted while alice has a message queued: it arrives once", async () => {
  const alice = await signIn(await newProfile(browser), chatd.url, "erin");
  const bob = await signIn(await newProfile(browser), chatd.url, "frank");
  const chatId = await startDirectChat(alice, "frank");
  await write(alice, "first");
  await openChat(bob, chatId);
  await seeMessage(bob, "first");

  await chatd.kill("SIGKILL");
  await alice.getByTestId("banner").filter({ hasText: "Offline" }).waitFor();
  await write(alice, "written while the server was down");
  // Shown as pending (in the outbox, in IndexedDB), not as a sent message.
  await alice.locator("[data-testid=pending]", { hasText: "written while the server was down" }).waitFor();
  assert.equal((await shownMessages(alice)).some((m) => m.body === "written while the server was down"), false);

  await chatd.start(); // same port, same data dir
  await connected(alice);
  // Confirmed: it moved from the pending bubbles to the messages (its tick may already
  // say delivered or read: bob has the chat open).
  await seeMessage(alice, "written while the server was down");
  await seeMessage(bob, "written while the server was down");
  await write(bob, "got it");
  await seeMessage(alice, "got it");
  await seeMessage(bob, "got it"); // once its `sent` is back; until then it shows as pending

  const bodies = ["first", "written while the server was down", "got it"];
  assertShownOnceInOrder(await shownMessages(alice), bodies);
  assertShownOnceInOrder(await shownMessages(bob), bodies);
  assert.equal(await alice.locator("[data-testid=pending]").count(), 0, "the outbox is empty");
  await alice.context().close();
  await bob.context().close();
});

test("a message written while the socket is down survives closing the tab (IndexedDB outbox)", async () => {
  const profile = await newProfile(browser);
  const ivy = await signIn(profile, chatd.url, "ivy");
  const jon = await signIn(await newProfile(browser), chatd.url, "jon");
  const chatId = await startDirectChat(ivy, "jon");
  const tab = await ivy.evaluate(() => ({ session: sessionStorage.getItem("chat.session"), device: sessionStorage.getItem("chat.device") }));
  await ivy.close();
  await profile.addInitScript((saved) => {
    if (!sessionStorage.getItem("chat.session")) {
      sessionStorage.setItem("chat.session", saved.session);
      sessionStorage.setItem("chat.device", saved.device);
    }
  }, tab);

  // Same tab, reopened, but its WebSocket cannot get through (REST still can).
  const offline = await profile.newPage();
  await offline.routeWebSocket(/\/v1\/ws/, (ws) => ws.close({ code: 4000, reason: "blocked by the test" }));
  await offline.goto(`${chatd.url}/#${chatId}`);
  await offline.getByTestId("composer").waitFor();
  await write(offline, "queued in IndexedDB");
  await offline.locator("[data-testid=pending]", { hasText: "queued in IndexedDB" }).waitFor();
  const blocked = await offline.evaluate(() => {
    const { client } = /** @type {any} */ (window).chat;
    return { state: client.state, pending: client.pending().length };
  });
  assert.notEqual(blocked.state, "connected", "the socket really is blocked");
  assert.equal(blocked.pending, 1);
  // Stored before send() returned: closing the tab now must not lose it.
  await offline.close();

  const back = await profile.newPage();
  await back.goto(`${chatd.url}/#${chatId}`);
  await connected(back);
  await openChat(jon, chatId);
  await seeMessage(jon, "queued in IndexedDB");
  await seeMessage(back, "queued in IndexedDB");
  assertShownOnceInOrder(await shownMessages(jon), ["queued in IndexedDB"]);
  assertShownOnceInOrder(await shownMessages(back), ["queued in IndexedDB"]);
  assert.equal(await back.locator("[data-testid=pending]").count(), 0);
  await profile.close();
  await jon.context().close();
});

test("history pages load as the user scrolls up, without holes or repeats", async () => {
  const kay = await signIn(await newProfile(browser), chatd.url, "kay");
  const chatId = await startDirectChat(kay, "lou");
  // 120 messages through the SDK of the page (quicker than typing them).
  await kay.evaluate(async (id) => {
    const { client } = /** @type {any} */ (window).chat;
    for (let i = 1; i <= 120; i++) await client.send(id, `line ${i}`);
  }, chatId);
  await seeMessage(kay, "line 120");
  // A reload keeps the tab's device and cursors: the app shows the newest page only.
  await kay.reload();
  await connected(kay);
  await openChat(kay, chatId);
  await seeMessage(kay, "line 120");
  const count = () => kay.locator("[data-testid=message]").count();
  assert.ok((await count()) < 120, "not everything is loaded up front");
  const list = kay.getByTestId("messages");
  while ((await count()) < 120) {
    const before = await count();
    await list.evaluate((el) => (el.scrollTop = 0));
    await kay.waitForFunction((n) => document.querySelectorAll("[data-testid=message]").length > n, before);
  }
  const shown = await shownMessages(kay);
  assertShownOnceInOrder(shown, Array.from({ length: 120 }, (_, i) => `line ${i + 1}`));
  await kay.context().close();
});

test("a group: created in the UI, every member sees the messages in one order", async () => {
  const gina = await signIn(await newProfile(browser), chatd.url, "gina");
  const hal = await signIn(await newProfile(browser), chatd.url, "hal");
  await gina.getByTestId("new-group").click();
  await gina.getByTestId("new-group-title").fill("Book club");
  await gina.getByTestId("new-group-members").fill("hal, ines");
  await gina.locator("dialog[open] [data-testid=dialog-submit]").click();
  await gina.getByTestId("conv-title").filter({ hasText: "Book club" }).waitFor();
  const chatId = await gina.evaluate(() => /** @type {any} */ (window).chat.state.openChatId);
  await write(gina, "Next book? Grüße aus Köln — 你好");
  await hal.locator(`[data-chat-id="${chatId}"]`).waitFor();
  await openChat(hal, chatId);
  await write(hal, "Dune");
  await seeMessage(gina, "Dune");
  await seeMessage(hal, "Dune");
  // Delivered needs every other member: ines has never connected.
  await seeTick(gina, "Next book?", "sent");
  const bodies = ["Next book? Grüße aus Köln — 你好", "Dune"];
  assertShownOnceInOrder(await shownMessages(gina), bodies);
  assertShownOnceInOrder(await shownMessages(hal), bodies);
  await gina.context().close();
  await hal.context().close();
});

/**
 * The README's pictures: alice's conversation with bob, and bob's chat list.
 * @param {import("playwright-core").Page} alice
 * @param {import("playwright-core").Page} bob
 * @param {string} chatId
 */
async function screenshots(alice, bob, chatId) {
  mkdirSync(IMAGES, { recursive: true });
  // A second chat for the list, with an unread message.
  const group = await alice.evaluate(async () => {
    const { client } = /** @type {any} */ (window).chat;
    const chat = await client.createGroup("Team lunch", ["bob", "carol"]);
    await client.send(chat.chat_id, "Who's in for Friday?");
    return chat.chat_id;
  });
  await bob.locator(`[data-chat-id="${group}"] [data-testid=unread]`).waitFor();
  await alice.locator(`[data-chat-id="${chatId}"]`).click();
  await bob.locator(`[data-chat-id="${chatId}"]`).click();
  // Typing is sent at most every 2 s per chat: wait out the last one before typing again.
  await alice.waitForTimeout(2100);
  await alice.getByTestId("composer").pressSequentially("On my way", { delay: 10 });
  await bob.getByTestId("typing").filter({ hasText: "alice is typing" }).waitFor();
  await alice.screenshot({ path: path.join(IMAGES, "web-conversation.png") });
  await bob.screenshot({ path: path.join(IMAGES, "web-chat-list.png") });
}
