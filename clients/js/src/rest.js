// The REST half of the API (chat creation, chat list, members, presence lookups, and
// history while no WebSocket is up). Adds the bearer token, asks for a fresh one after a
// 401, waits out a 429's Retry-After (a few times), and turns error bodies into ChatError.

import { ChatError } from "./errors.js";
import { sleep } from "./timing.js";

/** @typedef {import("./auth.js").TokenSource} TokenSource */

const MAX_RATE_LIMIT_RETRIES = 3;

export class Rest {
  /**
   * @param {object} options
   * @param {string} options.baseUrl  http(s)://host[:port], no trailing slash.
   * @param {TokenSource} options.tokens
   * @param {typeof fetch} options.fetch
   */
  constructor({ baseUrl, tokens, fetch }) {
    this.baseUrl = baseUrl;
    this.tokens = tokens;
    this.fetch = fetch;
  }

  /**
   * @param {"GET" | "POST" | "DELETE"} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  async request(method, path, body) {
    let token = await this.tokens.current();
    let refreshed = false;
    for (let attempt = 0; ; attempt += 1) {
      /** @type {Record<string, string>} */
      const headers = { authorization: `Bearer ${token}` };
      if (body !== undefined) headers["content-type"] = "application/json";
      const response = await this.fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (response.status === 401 && !refreshed) {
        // The token may have expired since we last asked: ask once more, then give up.
        refreshed = true;
        token = await this.tokens.fresh();
        continue;
      }
      const hasRetryAfter = response.headers.has("retry-after");
      const retryAfter = Number(response.headers.get("retry-after")) || 0;
      if ((response.status === 429 || response.status === 503) && hasRetryAfter && attempt < MAX_RATE_LIMIT_RETRIES) {
        // Over a rate or shedding load: the server says when to come back.
        await sleep(retryAfter * 1000);
        continue;
      }
      if (response.status === 204) return undefined;
      const text = await response.text();
      /** @type {any} */
      let json;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (!response.ok) {
        const error = json?.error ?? {};
        throw new ChatError(error.code ?? "http", error.message ?? `HTTP ${response.status}`, {
          status: response.status,
          retryAfterMs: hasRetryAfter ? retryAfter * 1000 : undefined,
        });
      }
      return json;
    }
  }
}
