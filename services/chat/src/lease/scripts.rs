//! The lease operations that must be atomic in Redis, as Lua scripts. A lease's value is
//! `{instance}:{nonce}`, fresh on every acquisition, so a holder only ever touches its own.
//! They are sent whole (EVAL), so they can go in pipelines and work on a Redis that just
//! restarted with an empty script cache.

/// One script run, ready for a pipeline or to query on its own.
pub(super) fn eval(script: &str, keys: &[&str], args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    cmd
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Renewal {
    /// Still ours: the TTL runs again from now.
    Renewed,
    /// The key was gone (Redis lost its data) and we set it again, as allowed.
    Reclaimed,
    /// Someone else's, or gone when reclaiming was not allowed.
    Lost,
}

/// KEYS: lease, handover marker. ARGV: our value, TTL ms, "1" if a vanished key may be
/// set again. A reclaim also drops any handover marker (one restored from a snapshot, or
/// left from before): it vouches for a release that is not the one that follows.
pub(super) const RENEW: &str = r"local current = redis.call('GET', KEYS[1])
          if current == ARGV[1] then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return 1
          end
          if not current and ARGV[3] == '1' then
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            redis.call('DEL', KEYS[2])
            return 2
          end
          return 0";

pub(super) fn renewal(answer: i64) -> Renewal {
    match answer {
        1 => Renewal::Renewed,
        2 => Renewal::Reclaimed,
        _ => Renewal::Lost,
    }
}

/// What an acquisition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acquired {
    /// Someone holds it.
    No,
    /// Ours; how its last owner let it go is unknown (it may have died mid-append).
    Yes,
    /// Ours, and its last owner handed it over cleanly.
    HandedOver,
}

/// KEYS: lease, handover marker. ARGV: our value, TTL ms. Takes the marker with the lease,
/// so only the first owner after a clean handover skips the wait.
pub(super) const ACQUIRE: &str = r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            local handed = redis.call('GET', KEYS[2])
            redis.call('DEL', KEYS[2])
            if handed then return 2 end
            return 1
          end
          return 0";

pub(super) fn acquired(answer: i64) -> Acquired {
    match answer {
        1 => Acquired::Yes,
        2 => Acquired::HandedOver,
        _ => Acquired::No,
    }
}

/// KEYS: lease, handover marker. ARGV: our value, marker TTL ms, "1" for a clean handover.
pub(super) const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('DEL', KEYS[1])
            if ARGV[3] == '1' then
              redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
            end
            return 1
          end
          return 0";
