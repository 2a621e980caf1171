// The web app's entry point: sign in, create the SDK client for this user and tab, and
// mount the chat list, the conversation and the connection banner. Plain ES modules,
// served by chatd at /app/ (the SDK at /sdk/): no build step.

import { ChatClient, IndexedDBStorage } from "/sdk/index.js";
import { h, replaceChildren } from "./dom.js";
import { mountChatList } from "./chat-list.js";
import { mountConversation } from "./conversation.js";
import { newChatButtons } from "./new-chat.js";
import { deviceId, forgetSession, login, renewDeviceId, savedSession, tokenFor } from "./session.js";
import { AppState } from "./state.js";

const root = /** @type {HTMLElement} */ (document.getElementById("app"));

async function start() {
  const session = savedSession() ?? (await login(root));
  const device = deviceId();
  const client = new ChatClient({
    url: location.origin,
    token: () => tokenFor(session),
    device,
    // The outbox and cursors survive a reload of this tab.
    storage: new IndexedDBStorage(`${session.userId}/${device}`),
  });
  const state = new AppState(client, session.userId);
  // For the end-to-end tests and for poking around in the console.
  Object.assign(window, { chat: { client, state } });

  const banner = h("div", { class: "banner", "data-testid": "banner" });
  const listPane = h("nav", { class: "chat-list", "data-testid": "chat-list" });
  const conversationPane = h("main", { class: "conversation-pane" });
  const open = (/** @type {string} */ chatId) => {
    document.body.classList.add("show-conversation");
    state.openChat(chatId);
    history.replaceState(null, "", `#${chatId}`);
  };
  const sidebar = h(
    "aside",
    { class: "sidebar" },
    h(
      "header",
      { class: "sidebar-header" },
      h("div", { class: "me" }, h("strong", { "data-testid": "me" }, session.userId), h("span", { class: "muted" }, device)),
      h("button", { class: "link", onclick: () => signOut(client), "data-testid": "sign-out" }, "Sign out"),
    ),
    newChatButtons(state, open),
    listPane,
  );
  replaceChildren(root, h("div", { class: "layout" }, sidebar, h("div", { class: "right" }, banner, conversationPane)));
  mountChatList(listPane, state, open);
  mountConversation(conversationPane, state);
  state.subscribe(() => renderBanner(banner, state, client));

  // The chat list comes over REST, so it shows even while the WebSocket cannot connect.
  const wanted = location.hash.slice(1);
  state.refreshChats().then(() => wanted && state.chats.has(wanted) && open(wanted));
  client.connect().catch(() => {});
}

/**
 * The connection's state in one line; nothing while all is well.
 * @param {HTMLElement} banner
 * @param {AppState} state
 * @param {ChatClient} client
 */
function renderBanner(banner, state, client) {
  const s = state.connection;
  banner.dataset.state = s.state;
  switch (s.state) {
    case "connected":
      replaceChildren(banner);
      break;
    case "connecting":
    case "syncing":
      replaceChildren(banner, s.state === "syncing" ? "Catching up…" : "Connecting…");
      break;
    case "disconnected":
      replaceChildren(banner, `Offline — retrying in ${Math.ceil((s.retryInMs ?? 0) / 1000)} s. Messages you write are kept and sent later.`);
      break;
    case "replaced":
      replaceChildren(
        banner,
        "This chat is open in another tab as the same device. ",
        h("button", { class: "link", onclick: () => client.connect().catch(() => {}) }, "Use it here"),
        " or ",
        h("button", { class: "link", onclick: () => { renewDeviceId(); location.reload(); } }, "continue as a new device"),
      );
      break;
    default:
      replaceChildren(banner, s.state);
  }
}

/** @param {ChatClient} client */
async function signOut(client) {
  await client.close();
  forgetSession();
  location.hash = "";
  location.reload();
}

start().catch((error) => {
  console.error(error);
  replaceChildren(root, h("p", { class: "fatal" }, `Could not start: ${error.message ?? error}`));
});
