// The left pane: the user's chats, most recent first, with unread counts, the last
// message, and a dot for direct-chat partners who are online.

import { h, replaceChildren } from "./dom.js";
import { chatTitle, initials, otherMember, shortTime } from "./format.js";

/** @typedef {import("./state.js").AppState} AppState */

/**
 * @param {HTMLElement} root
 * @param {AppState} state
 * @param {(chatId: string) => void} open
 */
export function mountChatList(root, state, open) {
  const render = () => {
    const chats = state.sortedChats();
    if (chats.length === 0) {
      replaceChildren(root, h("p", { class: "empty" }, "No chats yet. Start one with the buttons above."));
      return;
    }
    replaceChildren(
      root,
      ...chats.map((chat) => {
        const title = chatTitle(chat, state.me);
        const partner = otherMember(chat, state.me);
        const online = partner !== undefined && state.presence.get(partner)?.online;
        const last = chat.last_message;
        const preview = last ? `${last.sender_id === state.me ? "You: " : chat.kind === "group" ? `${last.sender_id}: ` : ""}${last.body}` : "No messages yet";
        const typing = state.typingIn(chat.chat_id);
        return h(
          "button",
          {
            class: `chat-item${chat.chat_id === state.openChatId ? " active" : ""}`,
            "data-chat-id": chat.chat_id,
            "data-testid": "chat-item",
            onclick: () => open(chat.chat_id),
          },
          h("span", { class: `avatar${chat.kind === "group" ? " group" : ""}` }, initials(title), online && h("span", { class: "online-dot", title: "online", "data-testid": "online-dot" })),
          h(
            "span",
            { class: "chat-item-main" },
            h("span", { class: "chat-item-top" }, h("span", { class: "chat-title" }, title), last && h("span", { class: "chat-time" }, shortTime(last.ts))),
            h(
              "span",
              { class: "chat-item-bottom" },
              h("span", { class: `chat-preview${typing.length ? " typing" : ""}` }, typing.length ? "typing…" : preview),
              chat.unread > 0 && h("span", { class: "unread", "data-testid": "unread" }, String(chat.unread)),
            ),
          ),
        );
      }),
    );
  };
  state.subscribe(render);
  render();
}
