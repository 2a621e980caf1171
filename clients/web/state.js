// The web app's model: what the screens show, kept up to date from the SDK's events.
// Views read it and subscribe to `changed`; they never talk to the server themselves.
// Messages are keyed by (chat, seq), so a message that comes both from the `message`
// stream and from a history page is shown once, and lists are always in seq order.

/** @typedef {import("/sdk/index.js").ChatClient} ChatClient */
/** @typedef {import("/sdk/index.js").Message} Message */
/** @typedef {import("/sdk/index.js").ChatSummary} ChatSummary */

const TYPING_SHOWN_MS = 4000;
const HISTORY_PAGE = 50;

export class AppState {
  /** @type {Map<string, ChatSummary>} chat list entries by chat id */
  chats = new Map();
  /** @type {Map<string, Map<number, Message>>} loaded messages per chat, by seq */
  messages = new Map();
  /** @type {Map<string, boolean>} chats whose history reaches seq 1 */
  complete = new Map();
  /** @type {Map<string, {online: boolean, last_seen: number | null}>} */
  presence = new Map();
  /** @type {Map<string, Map<string, number>>} chat -> user -> typing shown until (ms) */
  typing = new Map();
  /** @type {import("/sdk/index.js").StateChange} */
  connection = { state: "idle" };
  /** @type {string | undefined} */
  openChatId;
  /** @type {Set<() => void>} */
  #listeners = new Set();
  #scheduled = false;
  /** @type {Set<string>} */
  #loading = new Set();
  /** @type {Promise<void> | undefined} */
  #refresh;
  #refreshAgain = false;

  /**
   * @param {ChatClient} client
   * @param {string} me
   */
  constructor(client, me) {
    this.client = client;
    this.me = me;
    client.on("message", (m) => this.#onMessage(m));
    client.on("outbox", () => this.changed());
    client.on("receipt", () => this.changed());
    client.on("presence", (p) => {
      this.presence.set(p.user_id, { online: p.online, last_seen: p.last_seen });
      this.changed();
    });
    client.on("typing", (t) => this.#onTyping(t.chat_id, t.user_id));
    client.on("chat", () => this.refreshChats());
    client.on("synced", () => this.refreshChats());
    client.on("state", (s) => {
      this.connection = s;
      this.changed();
    });
    document.addEventListener("visibilitychange", () => this.markOpenChatRead());
  }

  /** @param {() => void} listener */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Re-render once per frame, however many events came in it. */
  changed() {
    if (this.#scheduled) return;
    this.#scheduled = true;
    requestAnimationFrame(() => {
      this.#scheduled = false;
      for (const listener of this.#listeners) listener();
    });
  }

  /**
   * Reloads the chat list (after a catch-up or a membership change). Calls that come
   * while one is running share one more run after it, instead of one request each.
   */
  refreshChats() {
    if (this.#refresh) {
      this.#refreshAgain = true;
      return this.#refresh;
    }
    this.#refresh = (async () => {
      try {
        do {
          this.#refreshAgain = false;
          await this.#loadChats();
        } while (this.#refreshAgain);
      } catch (error) {
        console.warn("chat list:", error);
      } finally {
        this.#refresh = undefined;
      }
    })();
    return this.#refresh;
  }

  async #loadChats() {
    const list = await this.client.chats();
    const partners = new Set();
    for (const chat of list) {
      // Keep counts we advanced locally if the server's copy is older.
      const known = this.chats.get(chat.chat_id);
      if (known && known.head_seq > chat.head_seq) Object.assign(chat, { head_seq: known.head_seq, last_message: known.last_message });
      if (chat.chat_id === this.openChatId) chat.unread = 0;
      this.chats.set(chat.chat_id, chat);
      for (const member of chat.members) if (member.user_id !== this.me) partners.add(member.user_id);
    }
    const unseen = [...partners].filter((user) => !this.presence.has(user));
    if (unseen.length > 0) {
      for (const user of await this.client.subscribePresence(unseen)) {
        this.presence.set(user.user_id, { online: user.online, last_seen: user.last_seen });
      }
    }
    this.changed();
  }

  /** Chats for the list, most recent activity first. */
  sortedChats() {
    return [...this.chats.values()].sort((a, b) => activity(b) - activity(a));
  }

  /**
   * Opens a conversation: loads its newest page and marks it read.
   * @param {string} chatId
   */
  async openChat(chatId) {
    this.openChatId = chatId;
    const chat = this.chats.get(chatId);
    if (chat) chat.unread = 0;
    this.changed();
    if (!this.messages.has(chatId) || (this.messages.get(chatId)?.size ?? 0) < HISTORY_PAGE) await this.loadOlder(chatId, true);
    this.markOpenChatRead();
  }

  /**
   * Loads the page before the oldest loaded message (or the newest page).
   * @param {string} chatId
   * @param {boolean} [newest]
   */
  async loadOlder(chatId, newest = false) {
    if (this.#loading.has(chatId) || this.complete.get(chatId)) return;
    this.#loading.add(chatId);
    try {
      const loaded = this.messages.get(chatId);
      const oldest = newest || !loaded?.size ? undefined : Math.min(...loaded.keys());
      const page = await this.client.history(chatId, { beforeSeq: oldest, limit: HISTORY_PAGE });
      for (const message of page) this.#store(message);
      if (page.length === 0 || page[0].seq === 1) this.complete.set(chatId, true);
      this.changed();
    } finally {
      this.#loading.delete(chatId);
    }
  }

  /**
   * Messages of a chat in seq order.
   * @param {string} chatId
   */
  messagesOf(chatId) {
    return [...(this.messages.get(chatId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
  }

  /**
   * How far one of my messages got: "read" once every other member read it, "delivered"
   * once every other member's device has it, else "sent" (it has a seq: it is durable).
   * @param {string} chatId
   * @param {number} seq
   * @returns {"sent" | "delivered" | "read"}
   */
  tick(chatId, seq) {
    const others = (this.chats.get(chatId)?.members ?? []).filter((m) => m.user_id !== this.me);
    if (others.length === 0) return "sent";
    const marks = this.client.receipts(chatId);
    const all = (/** @type {"read" | "delivered"} */ kind) => others.every((m) => (marks[m.user_id]?.[kind] ?? 0) >= seq);
    if (all("read")) return "read";
    if (all("delivered")) return "delivered";
    return "sent";
  }

  /**
   * Who is typing in a chat now.
   * @param {string} chatId
   */
  typingIn(chatId) {
    const now = Date.now();
    return [...(this.typing.get(chatId) ?? [])].filter(([, until]) => until > now).map(([user]) => user);
  }

  /**
   * @param {string} chatId
   * @param {string} body
   */
  send(chatId, body) {
    // The SDK keeps it in the outbox until it is durable; the view shows it as pending.
    this.client.send(chatId, body).catch((error) => {
      if (error.code !== "closed") alert(`Message not sent: ${error.message}`);
    });
    this.changed();
  }

  /** Tells the server the user saw the open chat up to its newest message. */
  markOpenChatRead() {
    const chatId = this.openChatId;
    if (!chatId || document.visibilityState !== "visible") return;
    const newest = this.client.cursor(chatId) ?? 0;
    const loaded = this.messagesOf(chatId).at(-1)?.seq ?? 0;
    const seq = Math.max(newest, loaded);
    const chat = this.chats.get(chatId);
    if (seq === 0 || (chat && chat.read_seq >= seq)) return;
    if (chat) chat.read_seq = seq;
    this.client.markRead(chatId, seq).catch(() => {});
  }

  /** @param {Message} message */
  #onMessage(message) {
    this.#store(message);
    const chat = this.chats.get(message.chat_id);
    if (!chat) {
      this.refreshChats();
      return;
    }
    if (message.seq > chat.head_seq) {
      chat.head_seq = message.seq;
      chat.last_message = message;
      const mine = message.sender_id === this.me;
      if (!mine && message.seq > chat.read_seq && message.chat_id !== this.openChatId) chat.unread += 1;
    }
    // A message ends its sender's typing.
    this.typing.get(message.chat_id)?.delete(message.sender_id);
    if (message.chat_id === this.openChatId) this.markOpenChatRead();
    this.changed();
  }

  /** @param {Message} message */
  #store(message) {
    let map = this.messages.get(message.chat_id);
    if (!map) this.messages.set(message.chat_id, (map = new Map()));
    map.set(message.seq, message);
  }

  /**
   * @param {string} chatId
   * @param {string} userId
   */
  #onTyping(chatId, userId) {
    let users = this.typing.get(chatId);
    if (!users) this.typing.set(chatId, (users = new Map()));
    users.set(userId, Date.now() + TYPING_SHOWN_MS);
    this.changed();
    setTimeout(() => this.changed(), TYPING_SHOWN_MS + 50);
  }
}

/** @param {ChatSummary} chat */
function activity(chat) {
  return chat.last_message?.ts ?? chat.created_at;
}
