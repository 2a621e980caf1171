// Catch-up: `sync` rounds from the per-chat cursors until the server says `complete`.
// Runs on every (re)connect before the outbox is sent, and again to fill a gap.
//
// The subtle part is a chat the client has no cursor for (new device, new chat, lost
// storage). The server starts it at this device's delivered watermark D, which it does not
// report, and live `msg` frames of the chat may arrive before, between or after the sync
// output, indistinguishable from it. Where the stream starts is decided per round:
//
// - complete round: the server returned every message from D+1 up to the chat's head H
//   (as of its snapshot), and anything newer arrives live in order. So the lowest buffered
//   seq is D+1 if there was anything to return; if nothing was buffered at or below H, the
//   device had everything up to H. Start = min(lowest buffered, H + 1) - 1.
// - incomplete round: the chat may have been skipped (the page was full) while live frames
//   of it arrived, so the lowest buffered seq proves nothing. If anything of the chat is
//   buffered, start it at 0 (deliver from seq 1: never lose, at worst repeat what a lost
//   storage had already seen); if nothing is, leave it for the next round.
// - a chat the server did not list joined after its snapshot: nothing of it was
//   acknowledged by this device, so start at 0.

import { ChatError } from "./errors.js";
import { sleep } from "./timing.js";

/** @typedef {import("./types.js").SyncedChat} SyncedChat */
/** @typedef {import("./ordering.js").MessageOrder} MessageOrder */

/**
 * @param {object} options
 * @param {(frame: Record<string, any>) => Promise<any>} options.request  Sends a request on the current connection.
 * @param {MessageOrder} options.order
 * @param {number} [options.limit]         Messages per round (the server caps it).
 * @param {AbortSignal} [options.signal]   Stops waiting between retries.
 * @returns {Promise<SyncedChat[]>} the server's per-chat counters from the last round.
 */
export async function catchUp({ request, order, limit = 1000, signal }) {
  for (;;) {
    let synced;
    try {
      synced = await request({ type: "sync", cursors: order.cursors(), limit });
    } catch (error) {
      // Over the read rate, or the server shedding load: wait as told, then ask again.
      if (error instanceof ChatError && (error.code === "rate_limited" || error.code === "unavailable")) {
        await sleep(error.retryAfterMs ?? 1000, signal);
        if (signal?.aborted) throw new ChatError("closed", "sync aborted");
        continue;
      }
      throw error;
    }
    /** @type {SyncedChat[]} */
    const chats = synced.chats ?? [];
    for (const chat of chats) {
      if (order.isResolved(chat.chat_id)) continue;
      const lowest = order.lowestBuffered(chat.chat_id);
      if (synced.complete) order.resolve(chat.chat_id, Math.min(lowest, chat.head_seq + 1) - 1);
      else if (lowest !== Infinity) order.resolve(chat.chat_id, 0);
    }
    if (synced.complete) {
      for (const chatId of order.unresolved()) order.resolve(chatId, 0);
      return chats;
    }
  }
}
