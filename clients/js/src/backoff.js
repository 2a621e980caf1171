// When to reconnect. Two pieces: a jittered exponential backoff, and the table that maps
// why a connection ended (close code, refused upgrade) to what the client does next.
// The jitter matters: after a server restart every client reconnects at once, and without
// it they would all come back in the same millisecond, again and again.

/**
 * Exponential backoff with "equal jitter": the n-th delay is uniformly random in
 * [cap/2, cap] where cap = min(maxMs, baseMs * 2^n). Never zero (a dead server is not
 * hammered) and spread wide enough that a crowd of clients disperses.
 */
export class Backoff {
  #attempt = 0;

  /**
   * @param {{baseMs?: number, maxMs?: number, random?: () => number}} [options]
   */
  constructor({ baseMs = 500, maxMs = 30_000, random = Math.random } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.random = random;
  }

  /** The next delay in ms; each call doubles the cap up to maxMs. */
  next() {
    const cap = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt += 1;
    return Math.round(cap / 2 + this.random() * (cap / 2));
  }

  /** Called once a connection has proven healthy (caught up with `sync`). */
  reset() {
    this.#attempt = 0;
  }

  get attempt() {
    return this.#attempt;
  }
}

/** The server closed us for a client bug; reconnecting quickly would only repeat it. */
export const CLIENT_BUG_DELAY_MS = 60_000;

/**
 * What to do after a connection ended.
 * @typedef {object} CloseDecision
 * @property {"reconnect" | "stop"} action
 * @property {"replaced" | "restart" | "client_bug" | "slow" | "lost" | "refused"} why
 * @property {number} [minDelayMs]   Wait at least this long before reconnecting.
 */

/**
 * @param {object} ended
 * @param {number} ended.code            WebSocket close code (1006 when the socket just died).
 * @param {number} [ended.reconnectAfterMs]  From a `reconnect` frame received before the close.
 * @param {number} [ended.httpStatus]    Status of a refused upgrade, where the platform tells it.
 * @returns {CloseDecision}
 */
export function decideAfterClose({ code, reconnectAfterMs, httpStatus }) {
  if (code === 4001) return { action: "stop", why: "replaced" };
  if (reconnectAfterMs !== undefined) {
    // A draining server told us when; it already spread the clients with its own jitter.
    return { action: "reconnect", why: "restart", minDelayMs: reconnectAfterMs };
  }
  if (httpStatus === 403) {
    // Too many devices of this user connected: waiting is the only cure.
    return { action: "reconnect", why: "refused", minDelayMs: CLIENT_BUG_DELAY_MS };
  }
  if (httpStatus !== undefined) return { action: "reconnect", why: "refused" };
  switch (code) {
    case 1002: // protocol error
    case 1007: // invalid UTF-8
    case 1008: // too many bad frames
    case 1009: // frame far too big
      return { action: "reconnect", why: "client_bug", minDelayMs: CLIENT_BUG_DELAY_MS };
    case 1013: // we were too slow to read; the backlog is recovered by sync
      return { action: "reconnect", why: "slow" };
    case 1012: // restart without a reconnect frame (or we missed it)
      return { action: "reconnect", why: "restart" };
    default: // 1001 heartbeat, 1006 network, 1011 server error, anything else
      return { action: "reconnect", why: "lost" };
  }
}
