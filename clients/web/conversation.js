// The right pane: one conversation. Messages in seq order (older pages load when the user
// scrolls to the top), ticks on the user's own messages (sent, delivered, read), messages
// still in the outbox shown as pending, who is typing, and the composer.

import { h, replaceChildren } from "./dom.js";
import { chatTitle, clock, initials, lastSeen, otherMember } from "./format.js";

/** @typedef {import("./state.js").AppState} AppState */

const TICKS = { sent: "✓", delivered: "✓✓", read: "✓✓" };
const LOAD_MORE_PX = 80;

/**
 * @param {HTMLElement} root
 * @param {AppState} state
 */
export function mountConversation(root, state) {
  const header = h("header", { class: "conv-header" });
  const list = h("div", { class: "messages", "data-testid": "messages" });
  const typing = h("div", { class: "typing-line", "data-testid": "typing", "aria-live": "polite" });
  const input = /** @type {HTMLTextAreaElement} */ (
    h("textarea", {
      rows: 1,
      placeholder: "Write a message…",
      "data-testid": "composer",
      oninput: () => state.openChatId && state.client.typing(state.openChatId),
      onkeydown: (/** @type {KeyboardEvent} */ event) => {
        if (event.key === "Enter" && !event.shiftKey) {
          event.preventDefault();
          composer.requestSubmit();
        }
      },
    })
  );
  const composer = /** @type {HTMLFormElement} */ (
    h(
      "form",
      {
        class: "composer",
        onsubmit: (/** @type {SubmitEvent} */ event) => {
          event.preventDefault();
          const body = input.value.trim();
          if (!body || !state.openChatId) return;
          state.send(state.openChatId, body);
          input.value = "";
          stickToBottom = true;
        },
      },
      input,
      h("button", { type: "submit", class: "primary", "data-testid": "send" }, "Send"),
    )
  );
  const placeholder = h("div", { class: "no-chat" }, h("p", null, "Select a chat, or start a new one."));
  const pane = h("section", { class: "conversation" }, header, list, typing, composer);

  let stickToBottom = true;
  /** @type {string | undefined} */
  let shownChat;
  list.addEventListener("scroll", () => {
    stickToBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (list.scrollTop < LOAD_MORE_PX && state.openChatId) state.loadOlder(state.openChatId);
  });

  const render = () => {
    const chatId = state.openChatId;
    const chat = chatId ? state.chats.get(chatId) : undefined;
    if (!chatId || !chat) {
      replaceChildren(root, placeholder);
      return;
    }
    if (root.firstChild !== pane) replaceChildren(root, pane);
    if (shownChat !== chatId) {
      shownChat = chatId;
      stickToBottom = true;
      input.focus();
    }
    renderHeader(header, state, chat);

    // Keep the reader's place: at the bottom stay there; otherwise keep the distance from
    // the bottom, so a page of older messages added above does not move what is in view.
    const fromBottom = list.scrollHeight - list.scrollTop;
    replaceChildren(list, ...messageNodes(state, chatId));
    list.scrollTop = stickToBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
    // A short chat does not scroll, so no scroll event asks for more: ask here.
    if (list.scrollHeight <= list.clientHeight && !state.complete.get(chatId)) state.loadOlder(chatId);

    const typists = state.typingIn(chatId);
    typing.textContent = typists.length === 0 ? "" : `${typists.join(", ")} ${typists.length === 1 ? "is" : "are"} typing…`;
  };
  state.subscribe(render);
  render();
}

/**
 * @param {HTMLElement} header
 * @param {AppState} state
 * @param {import("/sdk/index.js").ChatSummary} chat
 */
function renderHeader(header, state, chat) {
  const title = chatTitle(chat, state.me);
  const partner = otherMember(chat, state.me);
  const presence = partner ? state.presence.get(partner) : undefined;
  const subtitle = partner
    ? h("span", { class: presence?.online ? "status online" : "status", "data-testid": "presence" }, lastSeen(presence))
    : h("span", { class: "status" }, chat.members.map((m) => m.user_id).join(", "));
  replaceChildren(
    header,
    h("button", { class: "back link", title: "Chats", onclick: () => document.body.classList.remove("show-conversation") }, "←"),
    h("span", { class: `avatar${chat.kind === "group" ? " group" : ""}` }, initials(title), presence?.online && h("span", { class: "online-dot" })),
    h("div", { class: "conv-title" }, h("h2", { "data-testid": "conv-title" }, title), subtitle),
  );
}

/**
 * @param {AppState} state
 * @param {string} chatId
 */
function messageNodes(state, chatId) {
  const messages = state.messagesOf(chatId);
  const nodes = [];
  if (!state.complete.get(chatId) && messages.length > 0) nodes.push(h("p", { class: "older" }, "Loading older messages…"));
  const group = state.chats.get(chatId)?.kind === "group";
  let previousSender;
  for (const message of messages) {
    const mine = message.sender_id === state.me;
    const tick = mine ? state.tick(chatId, message.seq) : undefined;
    nodes.push(
      h(
        "div",
        {
          class: `bubble ${mine ? "mine" : "theirs"}`,
          "data-testid": "message",
          "data-seq": message.seq,
          "data-sender": message.sender_id,
        },
        group && !mine && previousSender !== message.sender_id && h("span", { class: "sender" }, message.sender_id),
        h("span", { class: "body", "data-testid": "body" }, message.body),
        h(
          "span",
          { class: "meta" },
          clock(message.ts),
          tick && h("span", { class: `tick ${tick}`, "data-testid": "tick", "data-tick": tick, title: tick }, TICKS[tick]),
        ),
      ),
    );
    previousSender = message.sender_id;
  }
  // Not durable yet: shown after everything that is, in the order they will be sent.
  for (const entry of state.client.pending(chatId)) {
    nodes.push(
      h(
        "div",
        { class: "bubble mine pending", "data-testid": "pending" },
        h("span", { class: "body", "data-testid": "body" }, entry.body),
        h("span", { class: "meta" }, clock(entry.created_at), h("span", { class: "tick", title: "waiting to be sent" }, "🕓")),
      ),
    );
  }
  if (messages.length === 0 && nodes.length === 0) nodes.push(h("p", { class: "empty" }, "No messages yet. Say hi!"));
  return nodes;
}
