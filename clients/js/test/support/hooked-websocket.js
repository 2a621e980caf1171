// Test support: the `ws` WebSocket with hooks a network would provide — frames that never
// arrive, and a reader that stops reading (so the server's queue for it overflows). The
// SDK gets this class as its `WebSocket` option and cannot tell it from the real one.

import WebSocket from "ws";

/**
 * @param {object} [hooks]
 * @param {(frame: any) => boolean} [hooks.drop]  Return true to lose an incoming frame.
 */
export function hookedWebSocket(hooks = {}) {
  /** @type {any[]} */
  const sockets = [];
  class HookedWebSocket extends WebSocket {
    /** @param {string} url */
    constructor(url) {
      super(url);
      sockets.push(this);
    }

    set onmessage(handler) {
      super.onmessage = handler && ((/** @type {any} */ event) => {
        if (hooks.drop?.(JSON.parse(String(event.data)))) return;
        handler.call(this, event);
      });
    }

    get onmessage() {
      return super.onmessage;
    }
  }
  return {
    WebSocket: HookedWebSocket,
    /** The socket of the newest connection. */
    get current() {
      return sockets[sockets.length - 1];
    },
    /** Stops reading from the TCP connection of the newest socket (a frozen consumer). */
    stall() {
      sockets[sockets.length - 1]._socket.pause();
    },
    resume() {
      sockets[sockets.length - 1]._socket.resume();
    },
    get count() {
      return sockets.length;
    },
  };
}
