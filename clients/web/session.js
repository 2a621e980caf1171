// Who is using this tab: the login screen and what it leaves in sessionStorage.
// With the server's demo login on (`chatd serve --dev-login`), a name is enough: the page
// asks POST /v1/dev/token for a token. Without it, the user pastes a token (minted by
// `chatd token NAME`). The device id is per tab (sessionStorage), so two tabs of one user
// are two devices and do not replace each other's connection.

import { h } from "./dom.js";

const SESSION_KEY = "chat.session";
const DEVICE_KEY = "chat.device";

/**
 * @typedef {object} Session
 * @property {string} userId
 * @property {"dev" | "token"} mode
 * @property {string} [token]   The pasted token (mode "token").
 */

/** This tab's device id, made once per tab. */
export function deviceId() {
  let id = sessionStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 8)}`;
    sessionStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

/** A new device id for this tab (after another tab with a copied session took ours). */
export function renewDeviceId() {
  sessionStorage.removeItem(DEVICE_KEY);
  return deviceId();
}

/** @returns {Session | undefined} */
export function savedSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null") ?? undefined;
  } catch {
    return undefined;
  }
}

export function forgetSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

/**
 * Whether the server has demo login on: the route exists (it refuses our empty request
 * with 400) or not (404).
 */
export async function devLoginAvailable() {
  try {
    const response = await fetch("/v1/dev/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    return response.status !== 404 && response.status !== 405;
  } catch {
    return false;
  }
}

/**
 * A token for the session: a fresh demo token each time (they are cheap and never stale),
 * or the pasted one.
 * @param {Session} session
 */
export async function tokenFor(session) {
  if (session.mode === "token") return /** @type {string} */ (session.token);
  const response = await fetch("/v1/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: session.userId }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body?.error?.message ?? `login failed (HTTP ${response.status})`);
  return body.token;
}

/**
 * The subject of a JWT, read without verifying it (the server verifies; this is for display).
 * @param {string} token
 */
function subjectOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub;
  } catch {
    return undefined;
  }
}

/**
 * Shows the login form in `root`; resolves with the session once the user is in.
 * @param {HTMLElement} root
 * @returns {Promise<Session>}
 */
export async function login(root) {
  const dev = await devLoginAvailable();
  return new Promise((resolve) => {
    const error = h("p", { class: "login-error", role: "alert" });
    const input = dev
      ? h("input", { name: "user", placeholder: "Your name, e.g. alice", autocomplete: "username", required: true, pattern: "[A-Za-z0-9._@\\-]{1,64}", "data-testid": "login-name" })
      : h("textarea", { name: "token", placeholder: "Paste a token (chatd token NAME)", rows: 4, required: true, "data-testid": "login-token" });
    const form = h(
      "form",
      {
        class: "login-card",
        onsubmit: async (/** @type {SubmitEvent} */ event) => {
          event.preventDefault();
          const value = /** @type {HTMLInputElement} */ (input).value.trim();
          /** @type {Session} */
          const session = dev ? { userId: value, mode: "dev" } : { userId: subjectOf(value) ?? "?", mode: "token", token: value };
          try {
            if (dev) await tokenFor(session); // fail here, visibly, rather than in the background
            sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
            resolve(session);
          } catch (e) {
            error.textContent = String(/** @type {Error} */ (e).message ?? e);
          }
        },
      },
      h("h1", null, "Chat"),
      h("p", { class: "muted" }, dev ? "Demo login is on: pick any name." : "Sign in with a token."),
      input,
      h("button", { type: "submit", class: "primary", "data-testid": "login-submit" }, "Sign in"),
      error,
    );
    root.replaceChildren(h("div", { class: "login" }, form));
    input.focus();
  });
}
