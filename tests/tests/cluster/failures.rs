//! Losing a process: a gateway, a chat-service instance mid-storm, Redis mid-storm.
