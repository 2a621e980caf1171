// The error type of the SDK and the one place that decides which failures are worth a
// retry. Codes are the server's (`docs/protocol.md`, Errors) plus `disconnected` (the
// connection went away before the reply) and `closed` (the client was closed).

export class ChatError extends Error {
  /**
   * @param {string} code  Server error code, or `disconnected` / `closed` / `http`.
   * @param {string} message
   * @param {{retryAfterMs?: number, status?: number}} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = "ChatError";
    /** @type {string} */
    this.code = code;
    /** Set with `rate_limited` and load-shedding `unavailable`: wait this long before retrying. */
    this.retryAfterMs = details.retryAfterMs;
    /** HTTP status, for REST calls and refused WebSocket upgrades (where the platform tells it). */
    this.status = details.status;
  }
}

/**
 * Failures after which the same request may succeed later. Everything else
 * (`bad_request`, `too_large`, `forbidden`, `not_found`, `unauthorized`) will fail the
 * same way again, so retrying it would only hot-loop.
 * `internal` is retried because a server bug is often one transient path; callers back off.
 */
const RETRYABLE = new Set(["unavailable", "rate_limited", "disconnected", "internal"]);

/**
 * @param {unknown} error
 * @returns {boolean}
 */
export function isRetryable(error) {
  return error instanceof ChatError && RETRYABLE.has(error.code);
}

/**
 * Builds a ChatError from an `error` frame.
 * @param {{code?: string, message?: string, retry_after_ms?: number}} frame
 */
export function fromErrorFrame(frame) {
  return new ChatError(frame.code ?? "internal", frame.message ?? "error", {
    retryAfterMs: frame.retry_after_ms,
  });
}
