//! chat-gateway
