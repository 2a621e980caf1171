// A tiny typed event emitter (browsers and Node alike; no dependency on EventTarget or
// node:events). A throwing handler must not stop the SDK's own bookkeeping nor the other
// handlers, so its error is rethrown asynchronously, where the platform reports it.

/**
 * @template {Record<string, any>} Events
 */
export class Emitter {
  /** @type {Map<keyof Events, Set<(payload: any) => void>>} */
  #handlers = new Map();

  /**
   * Registers a handler; returns a function that removes it.
   * @template {keyof Events} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} handler
   * @returns {() => void}
   */
  on(event, handler) {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => this.off(event, handler);
  }

  /**
   * @template {keyof Events} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} handler
   */
  off(event, handler) {
    this.#handlers.get(event)?.delete(handler);
  }

  /**
   * @template {keyof Events} K
   * @param {K} event
   * @param {Events[K]} payload
   */
  emit(event, payload) {
    const set = this.#handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(payload);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }
}
