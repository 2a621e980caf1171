// One WebSocket connection to the server: opening it (up to the `hello` frame), matching
// replies to requests by `id`/`re`, handing every other frame to the owner, noticing a
// dead connection, and reporting once how it ended. It knows nothing about chats: the
// client decides what frames mean and whether to reconnect (a new Connection each time).

import { ChatError, fromErrorFrame } from "./errors.js";

/** @typedef {import("./types.js").Hello} Hello */

/**
 * How a connection ended.
 * @typedef {object} Ended
 * @property {number} code              Close code; 1006 when the socket died without one.
 * @property {string} reason
 * @property {number} [reconnectAfterMs] From a `reconnect` frame, if one came first.
 * @property {number} [httpStatus]      Status of a refused upgrade (Node's `ws` tells it; browsers do not).
 */

/**
 * The subset of the WebSocket API the SDK uses: the browser's class and the `ws` package's
 * both fit.
 * @typedef {object} WebSocketLike
 * @property {number} readyState
 * @property {(data: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {((event: any) => void) | null} onopen
 * @property {((event: {data: any}) => void) | null} onmessage
 * @property {((event: any) => void) | null} onerror
 * @property {((event: {code: number, reason: string}) => void) | null} onclose
 */

/** @typedef {new (url: string) => WebSocketLike} WebSocketConstructor */

const OPEN = 1;

export class Connection {
  /** @type {Hello | undefined} */
  hello;
  /** @type {WebSocketLike | undefined} */
  #ws;
  /** @type {Map<string, {resolve: (frame: any) => void, reject: (error: Error) => void}>} */
  #pending = new Map();
  #nextId = 1;
  /** @type {number | undefined} */
  #reconnectAfterMs;
  /** @type {number | undefined} */
  #httpStatus;
  #lastReceived = Date.now();
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #watchdog;
  /** @type {Ended | undefined} */
  #ended;
  /** @type {(ended: Ended) => void} */
  #resolveClosed = () => {};
  /** Resolves once, when the connection is gone for whatever reason. */
  closed = new Promise((resolve) => {
    this.#resolveClosed = resolve;
  });

  /**
   * @param {object} options
   * @param {WebSocketConstructor} options.WebSocket
   * @param {string} options.url           Full ws:// or wss:// URL including token and device.
   * @param {(frame: any) => void} options.onFrame  Every frame that is not a reply (and `hello`).
   * @param {number} [options.deadAfterMs]  Silence after which a ping is sent, and the same again
   *   without an answer before the connection is given up. Defaults from `hello.heartbeat_ms`.
   * @param {number} [options.openTimeoutMs]  How long to wait for `hello` (15 s).
   */
  constructor({ WebSocket, url, onFrame, deadAfterMs, openTimeoutMs = 15_000 }) {
    this.openTimeoutMs = openTimeoutMs;
    this.WebSocket = WebSocket;
    this.url = url;
    this.onFrame = onFrame;
    this.deadAfterMs = deadAfterMs;
  }

  /**
   * Opens the socket and waits for `hello`.
   * @returns {Promise<Hello>}
   */
  open() {
    return new Promise((resolve, reject) => {
      // A blackholed network never answers the upgrade; do not wait for the OS to give up.
      const timer = setTimeout(() => {
        if (!this.hello) this.close(4000, "no hello in time");
      }, this.openTimeoutMs);
      this.closed.then(() => clearTimeout(timer));
      let ws;
      try {
        ws = new this.WebSocket(this.url);
      } catch (error) {
        this.#finish(1006, String(error));
        return reject(error);
      }
      this.#ws = ws;
      ws.onmessage = (event) => {
        this.#lastReceived = Date.now();
        let frame;
        try {
          frame = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
        } catch {
          return; // the server only sends JSON; ignore anything else rather than crash
        }
        if (!this.hello) {
          if (frame.type === "hello") {
            clearTimeout(timer);
            this.hello = frame;
            this.#startWatchdog(frame.heartbeat_ms);
            resolve(frame);
          }
          return;
        }
        this.#dispatch(frame);
      };
      ws.onerror = (event) => {
        // Node's `ws` reports a refused upgrade as "Unexpected server response: 401";
        // browsers hide the status (the app's token function is called again anyway).
        const text = String(event?.message ?? event?.error?.message ?? "");
        const match = /Unexpected server response: (\d{3})/.exec(text);
        if (match) this.#httpStatus = Number(match[1]);
      };
      this.closed.then(() => {
        if (this.hello) return;
        const status = this.#httpStatus;
        reject(
          new ChatError(
            status === 401 ? "unauthorized" : "disconnected",
            status ? `connection refused with HTTP ${status}` : "connection failed before hello",
            { status },
          ),
        );
      });
      ws.onclose = (event) => {
        this.#finish(event.code || 1006, event.reason || "");
      };
    });
  }

  /**
   * Sends a request with a fresh `id`; resolves with its reply, rejects with the `error`
   * reply or `disconnected` if the connection ends first.
   * @param {Record<string, any>} frame
   * @returns {Promise<any>}
   */
  request(frame) {
    if (!this.isOpen) return Promise.reject(new ChatError("disconnected", "not connected"));
    const id = String(this.#nextId++);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#write({ ...frame, id });
    });
  }

  /**
   * Sends a frame that expects no reply (`recv`, `typing`, ...). Returns false when the
   * connection is not open; the caller decides whether that matters.
   * @param {Record<string, any>} frame
   */
  notify(frame) {
    if (!this.isOpen) return false;
    this.#write(frame);
    return true;
  }

  get isOpen() {
    return !this.#ended && this.hello !== undefined && this.#ws?.readyState === OPEN;
  }

  /**
   * Closes from our side. Resolves `closed` at once: the server does not always answer
   * the close frame, and a dead TCP connection would never do so.
   * @param {number} [code]  1000, or 4000-4999 (browsers refuse other codes from a client).
   * @param {string} [reason]
   */
  close(code = 1000, reason = "client closed") {
    try {
      this.#ws?.close(code, reason);
    } catch {
      // already closing
    }
    this.#finish(code, reason);
  }

  /** @param {Record<string, any>} frame */
  #write(frame) {
    try {
      /** @type {WebSocketLike} */ (this.#ws).send(JSON.stringify(frame));
    } catch (error) {
      this.close(4000, `send failed: ${error}`);
    }
  }

  /** @param {any} frame */
  #dispatch(frame) {
    if (typeof frame.re === "string") {
      const waiter = this.#pending.get(frame.re);
      if (waiter) {
        this.#pending.delete(frame.re);
        if (frame.type === "error") waiter.reject(fromErrorFrame(frame));
        else waiter.resolve(frame);
        return;
      }
    }
    if (frame.type === "reconnect") this.#reconnectAfterMs = Number(frame.after_ms) || 0;
    this.onFrame(frame);
  }

  /**
   * The server pings every heartbeat_ms at the WebSocket level, which browsers answer
   * but do not show to scripts. So the client watches for silence itself: after a quiet
   * interval it sends an application `ping`; if still nothing arrives, the connection is
   * dead (a dropped network, a frozen NAT) and is given up, to be replaced by a new one.
   * @param {number} heartbeatMs
   */
  #startWatchdog(heartbeatMs) {
    // Not shorter than 10 s: a server that is slowing us down (flow control) may hold a
    // request, and with it our ping, for up to 5 s.
    const quietMs = this.deadAfterMs ?? Math.max(10_000, heartbeatMs || 30_000);
    let pingSentAt = 0;
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastReceived < quietMs) {
        pingSentAt = 0;
        return;
      }
      if (!pingSentAt) {
        pingSentAt = now;
        this.request({ type: "ping" }).catch(() => {});
      } else if (now - pingSentAt >= quietMs) {
        this.close(4000, "no answer to ping");
      }
    }, Math.max(250, Math.floor(quietMs / 4)));
    // In Node, a pending watchdog alone should not keep the process running.
    /** @type {any} */ (this.#watchdog).unref?.();
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #finish(code, reason) {
    if (this.#ended) return;
    clearInterval(this.#watchdog);
    const ws = this.#ws;
    if (ws) {
      // Late events of a socket we gave up on must not reach the client.
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = () => {};
    }
    this.#ended = { code, reason, reconnectAfterMs: this.#reconnectAfterMs, httpStatus: this.#httpStatus };
    const error = new ChatError("disconnected", `connection closed (${code}${reason ? ": " + reason : ""})`);
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
    this.#resolveClosed(this.#ended);
  }
}
