// Where tokens come from. The app supplies a function (it may refresh a session, ask a
// login server, ...); the SDK calls it again for every WebSocket connect (a reconnect may
// come hours later, past the old token's expiry) and after any 401, and otherwise reuses
// the last token for REST calls.

export class TokenSource {
  /** @type {string | undefined} */
  #last;

  /** @param {() => string | Promise<string>} provider */
  constructor(provider) {
    if (typeof provider !== "function") throw new TypeError("token must be a function returning a token");
    this.provider = provider;
  }

  /** Asks the provider for a token now. */
  async fresh() {
    const token = await this.provider();
    if (typeof token !== "string" || token === "") throw new TypeError("the token function returned no token");
    this.#last = token;
    return token;
  }

  /** The last token, or a fresh one if there is none yet. */
  async current() {
    return this.#last ?? this.fresh();
  }
}
