//! chat-testkit
