// Starting chats: a direct chat with one user, or a group with a title and members.
// Both are small dialogs (<dialog>), opened from the buttons above the chat list.

import { h } from "./dom.js";

/**
 * @param {import("./state.js").AppState} state
 * @param {(chatId: string) => void} open  Opens the new chat.
 */
export function newChatButtons(state, open) {
  const direct = dialog({
    title: "New chat",
    fields: [{ name: "user", label: "User id", placeholder: "bob", testid: "new-direct-user" }],
    submit: async ({ user }) => {
      const chat = await state.client.createDirect(user);
      await state.refreshChats();
      open(chat.chat_id);
    },
  });
  const group = dialog({
    title: "New group",
    fields: [
      { name: "title", label: "Title", placeholder: "Weekend plans", testid: "new-group-title" },
      { name: "members", label: "Members (comma separated)", placeholder: "bob, carol", testid: "new-group-members" },
    ],
    submit: async ({ title, members }) => {
      const ids = members.split(/[\s,]+/).filter(Boolean);
      const chat = await state.client.createGroup(title, ids);
      await state.refreshChats();
      open(chat.chat_id);
    },
  });
  return h(
    "div",
    { class: "new-chat" },
    h("button", { onclick: () => direct.showModal(), "data-testid": "new-direct" }, "+ Chat"),
    h("button", { onclick: () => group.showModal(), "data-testid": "new-group" }, "+ Group"),
    direct,
    group,
  );
}

/**
 * @param {object} spec
 * @param {string} spec.title
 * @param {{name: string, label: string, placeholder: string, testid: string}[]} spec.fields
 * @param {(values: Record<string, string>) => Promise<void>} spec.submit
 * @returns {HTMLDialogElement}
 */
function dialog({ title, fields, submit }) {
  const error = h("p", { class: "form-error", role: "alert" });
  const inputs = fields.map((f) => h("input", { name: f.name, placeholder: f.placeholder, required: true, "data-testid": f.testid }));
  const el = /** @type {HTMLDialogElement} */ (
    h(
      "dialog",
      null,
      h(
        "form",
        {
          onsubmit: async (/** @type {SubmitEvent} */ event) => {
            event.preventDefault();
            error.textContent = "";
            const values = Object.fromEntries(inputs.map((i) => [/** @type {HTMLInputElement} */ (i).name, /** @type {HTMLInputElement} */ (i).value.trim()]));
            try {
              await submit(values);
              for (const input of inputs) /** @type {HTMLInputElement} */ (input).value = "";
              el.close();
            } catch (e) {
              error.textContent = String(/** @type {Error} */ (e).message ?? e);
            }
          },
        },
        h("h2", null, title),
        ...fields.map((f, i) => h("label", null, f.label, inputs[i])),
        error,
        h(
          "div",
          { class: "dialog-buttons" },
          h("button", { type: "button", onclick: () => el.close() }, "Cancel"),
          h("button", { type: "submit", class: "primary", "data-testid": "dialog-submit" }, "Create"),
        ),
      ),
    )
  );
  return el;
}
