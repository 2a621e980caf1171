// Test support for the end-to-end tests: Debian's Chromium driven by playwright-core
// (never a browser playwright would download), and the steps a person takes in the app —
// sign in, open a chat, write — plus reading back what the page shows.

import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];
export const PATIENCE_MS = 30_000;

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: PATIENCE_MS });
}

/**
 * A browser profile of its own (storage, IndexedDB), like a separate person's browser.
 * @param {import("playwright-core").Browser} browser
 */
export async function newProfile(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  context.setDefaultTimeout(PATIENCE_MS);
  return context;
}

/**
 * Opens the app in a new tab and signs in with the demo login.
 * @param {import("playwright-core").BrowserContext} context
 * @param {string} url
 * @param {string} user
 */
export async function signIn(context, url, user) {
  const page = await context.newPage();
  /** @type {string[]} */
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${url}/`);
  await page.getByTestId("login-name").fill(user);
  await page.getByTestId("login-submit").click();
  await page.getByTestId("me").waitFor();
  await connected(page);
  return Object.assign(page, { errors });
}

/** @param {import("playwright-core").Page} page */
export async function connected(page) {
  await page.waitForFunction(() => /** @type {any} */ (window).chat?.client.state === "connected");
}

/**
 * @param {import("playwright-core").Page} page
 * @param {string} chatId
 */
export async function openChat(page, chatId) {
  await page.locator(`[data-testid=chat-item][data-chat-id="${chatId}"]`).click();
  await page.getByTestId("composer").waitFor();
}

/**
 * Writes a message in the open conversation and sends it with Enter.
 * @param {import("playwright-core").Page} page
 * @param {string} body
 */
export async function write(page, body) {
  await page.getByTestId("composer").fill(body);
  await page.getByTestId("composer").press("Enter");
}

/**
 * The messages the open conversation shows, top to bottom (sent ones; not pending).
 * @param {import("playwright-core").Page} page
 * @returns {Promise<{seq: number, body: string, sender: string, tick: string | null}[]>}
 */
export function shownMessages(page) {
  return page.$$eval("[data-testid=message]", (nodes) =>
    nodes.map((node) => ({
      seq: Number(/** @type {HTMLElement} */ (node).dataset.seq),
      body: node.querySelector("[data-testid=body]")?.textContent ?? "",
      sender: /** @type {HTMLElement} */ (node).dataset.sender ?? "",
      tick: node.querySelector("[data-testid=tick]")?.getAttribute("data-tick") ?? null,
    })),
  );
}

/**
 * Waits until the open conversation shows a message with this body.
 * @param {import("playwright-core").Page} page
 * @param {string} body
 */
export async function seeMessage(page, body) {
  await page.locator("[data-testid=message] [data-testid=body]", { hasText: body }).first().waitFor();
}

/**
 * Waits until the tick of my message with `body` says `tick`.
 * @param {import("playwright-core").Page} page
 * @param {string} body
 * @param {"sent" | "delivered" | "read"} tick
 */
export async function seeTick(page, body, tick) {
  await page
    .locator("[data-testid=message]", { has: page.locator("[data-testid=body]", { hasText: body }) })
    .locator(`[data-testid=tick][data-tick=${tick}]`)
    .waitFor();
}
