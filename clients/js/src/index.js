// The chat SDK: `ChatClient` and the storages it can keep its state in. Plain ES modules
// that browsers load as they are (chatd serves them at /sdk/) and Node >= 20 imports from
// the npm package; types in ../types, generated from the JSDoc.

export { ChatClient } from "./client.js";
export { ChatError } from "./errors.js";
export { MemoryStorage } from "./storage/memory.js";
export { IndexedDBStorage } from "./storage/indexeddb.js";
export * from "./types.js";
