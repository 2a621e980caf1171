// How times and names are shown: message times, "last seen", chat titles.

/** @param {number} ts ms since the epoch */
export function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * A short time for the chat list: the clock today, the date otherwise.
 * @param {number} ts
 */
export function shortTime(ts) {
  const date = new Date(ts);
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return clock(ts);
  return date.toLocaleDateString([], { month: "short", day: "numeric" });
}

/**
 * @param {{online: boolean, last_seen: number | null} | undefined} presence
 * @param {number} [now]
 */
export function lastSeen(presence, now = Date.now()) {
  if (!presence) return "";
  if (presence.online) return "online";
  if (!presence.last_seen) return "offline";
  const seconds = Math.max(0, Math.round((now - presence.last_seen) / 1000));
  if (seconds < 60) return "last seen just now";
  if (seconds < 3600) return `last seen ${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `last seen today at ${clock(presence.last_seen)}`;
  return `last seen ${new Date(presence.last_seen).toLocaleDateString()}`;
}

/**
 * A chat's name as this user sees it: the other member of a direct chat, a group's title.
 * @param {{kind: string, title: string | null, members?: {user_id: string}[]}} chat
 * @param {string} me
 */
export function chatTitle(chat, me) {
  if (chat.kind === "group") return chat.title || "Untitled group";
  return otherMember(chat, me) ?? "Direct chat";
}

/**
 * @param {{kind: string, members?: {user_id: string}[]}} chat
 * @param {string} me
 */
export function otherMember(chat, me) {
  if (chat.kind !== "direct") return undefined;
  return chat.members?.find((m) => m.user_id !== me)?.user_id ?? me;
}

/** @param {string} name */
export function initials(name) {
  return (name.match(/[A-Za-z0-9]/g) ?? ["?"]).slice(0, 2).join("").toUpperCase();
}
