// The chat SDK (placeholder until the client is written).
export {};
