// Test support: a real `chatd` in a child process, on a free port and a fresh data dir.
// It can be SIGKILLed (a crash: the data dir keeps what was acknowledged) and started
// again on the same port and data dir. Used by the SDK tests and the browser tests.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const CHATD_BIN = process.env.CHATD_BIN ?? path.resolve(here, "../../../../target/debug/chatd");
const SECRET = "client-tests-secret";

export class Chatd {
  /** @type {import("node:child_process").ChildProcess | undefined} */
  #child;
  /** @type {string[]} the last log lines, shown when the server dies unexpectedly */
  log = [];

  /**
   * @param {object} [options]
   * @param {string[]} [options.args]  Extra `chatd serve` flags.
   */
  constructor({ args = [] } = {}) {
    this.args = args;
    this.dataDir = mkdtempSync(path.join(tmpdir(), "chatd-test-"));
    /** @type {string | undefined} "127.0.0.1:PORT" once listening */
    this.addr = undefined;
  }

  /** Starts a server with these flags and waits until it listens. */
  static async start(options) {
    const chatd = new Chatd(options);
    await chatd.start();
    return chatd;
  }

  get url() {
    return `http://${this.addr}`;
  }

  /** Starts (again): the first time on a free port, then on the same one. */
  async start() {
    await waitForBinary();
    const listen = this.addr ?? "127.0.0.1:0";
    const child = spawn(
      CHATD_BIN,
      ["serve", "--listen", listen, "--data-dir", this.dataDir, "--log-format", "json", "--dev-login", ...this.args],
      { env: { ...process.env, CHAT_JWT_SECRET: SECRET }, stdio: ["ignore", "ignore", "pipe"] },
    );
    this.#child = child;
    const lines = createInterface({ input: /** @type {any} */ (child.stderr) });
    this.addr = await new Promise((resolve, reject) => {
      const onExit = (/** @type {number | null} */ code) =>
        reject(new Error(`chatd exited (${code}) before listening:\n${this.log.join("\n")}`));
      child.once("exit", onExit);
      lines.on("line", (line) => {
        this.log.push(line);
        if (this.log.length > 200) this.log.shift();
        try {
          const entry = JSON.parse(line);
          if (entry.fields?.message === "chatd listening") {
            child.off("exit", onExit);
            resolve(entry.fields.addr);
          }
        } catch {
          // not JSON: ignore
        }
      });
    });
  }

  /**
   * Kills the server (SIGKILL by default: a crash, no draining) and waits until it is gone.
   * @param {NodeJS.Signals} [signal]
   */
  async kill(signal = "SIGKILL") {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
  }

  /** Kills the server and removes its data. */
  async stop() {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * A token for `userId` from the demo login.
   * @param {string} userId
   */
  async token(userId) {
    for (;;) {
      const response = await fetch(`${this.url}/v1/dev/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user_id: userId }),
      });
      if (response.status === 429) {
        await new Promise((r) => setTimeout(r, 1000 * Number(response.headers.get("retry-after") ?? 1)));
        continue;
      }
      if (!response.ok) throw new Error(`dev token for ${userId}: HTTP ${response.status}`);
      return /** @type {{token: string}} */ (await response.json()).token;
    }
  }
}

/** The other engineer may be relinking the binary: wait for it to be back (a minute at most). */
async function waitForBinary() {
  for (let waited = 0; !existsSync(CHATD_BIN); waited += 500) {
    if (waited > 60_000) throw new Error(`no chatd binary at ${CHATD_BIN} (set CHATD_BIN)`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
