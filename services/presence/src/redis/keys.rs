//! Redis key names and the Lua scripts that make session transitions exact.

use chat_protocol::ids::UserId;
use redis::Script;
use uuid::Uuid;

pub(crate) const GATEWAYS_KEY: &str = "chat:presence:gateways";
/// Stream of (user, ts) transitions, consumed by the last-seen recorder.
pub(crate) const SEEN_STREAM: &str = "chat:presence:seen";
/// Approximate cap on the seen stream, should the recorder stop for long.
pub(crate) const SEEN_STREAM_MAX: usize = 1_000_000;

pub(crate) fn user_key(user_id: &UserId) -> String {
    format!("chat:presence:user:{user_id}")
}

pub(crate) fn gateway_key(gateway_id: &str) -> String {
    format!("chat:presence:gw:{gateway_id}")
}

/// `user\nsession`: '\n' cannot occur in a user id.
pub(crate) fn member(user_id: &UserId, session: Uuid) -> String {
    format!("{user_id}\n{session}")
}

/// Registers a session; returns the user's session count afterwards (1 = came online),
/// and records the transition time on the seen stream when it is one.
/// KEYS: user, gateway set, seen stream. ARGV: session, gateway, member, user, ts, max.
pub(crate) fn connect_script() -> Script {
    Script::new(
        r"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
          redis.call('SADD', KEYS[2], ARGV[3])
          local count = redis.call('HLEN', KEYS[1])
          if count == 1 then
            redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'user', ARGV[4], 'ts', ARGV[5])
          end
          return count",
    )
}

/// Removes a session; returns 1 when it was the user's last (and records the time).
/// KEYS: user, gateway set, seen stream. ARGV: session, member, user, ts, max.
pub(crate) fn disconnect_script() -> Script {
    Script::new(
        r"local removed = redis.call('HDEL', KEYS[1], ARGV[1])
          redis.call('SREM', KEYS[2], ARGV[2])
          if removed == 1 and redis.call('HLEN', KEYS[1]) == 0 then
            redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'user', ARGV[3], 'ts', ARGV[4])
            return 1
          end
          return 0",
    )
}
