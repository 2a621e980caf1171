//! Presence over Redis for the scaled-out services. Each gateway records its sessions
//! (`chat:presence:user:{id}` → session → gateway, and `chat:presence:gw:{gw}` → its
//! sessions) and heartbeats its liveness in `chat:presence:gateways` (gateway → expiry).
//! Transitions are published on the bus and their times appended to the stream
//! `chat:presence:seen`, which the chat-presence service turns into last-seen times in the
//! store; it also sweeps the users of gateways whose heartbeat expired offline.

mod keys;
mod last_seen;
mod sessions;
mod sweeper;
mod view;

pub use last_seen::LastSeenRecorder;
pub use sessions::RedisSessions;
pub use sweeper::PresenceSweeper;
pub use view::RedisPresenceView;
