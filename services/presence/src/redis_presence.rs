//! Presence over Redis for the scaled-out services. Each gateway records its sessions
//! (`chat:presence:user:{id}` → session → gateway, and `chat:presence:gw:{gw}` → its
//! sessions) and heartbeats its liveness in `chat:presence:gateways` (gateway → expiry).
//! `PresenceSweeper` (run by chat-presence) takes the users of gateways whose heartbeat
//! expired offline. A gateway that finds itself missing from the liveness set (Redis lost
//! its data, or it was swept while paused) registers its sessions again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_bus::Bus;
use chat_protocol::{now_ms, PresenceEntry};
use chat_store::MessageStore;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::announce::announce;
use crate::Presence;

const GATEWAYS_KEY: &str = "chat:presence:gateways";

fn user_key(user_id: &str) -> String {
    format!("chat:presence:user:{user_id}")
}

fn gateway_key(gateway_id: &str) -> String {
    format!("chat:presence:gw:{gateway_id}")
}

/// `user\nsession`: '\n' cannot occur in a user id.
fn member(user_id: &str, session: Uuid) -> String {
    format!("{user_id}\n{session}")
}

/// Registers a session; returns the user's session count afterwards (1 = came online).
fn connect_script() -> Script {
    Script::new(
        r"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
          redis.call('SADD', KEYS[2], ARGV[3])
          return redis.call('HLEN', KEYS[1])",
    )
}

/// Removes a session; returns 1 when it was the user's last.
fn disconnect_script() -> Script {
    Script::new(
        r"local removed = redis.call('HDEL', KEYS[1], ARGV[1])
          redis.call('SREM', KEYS[2], ARGV[2])
          if removed == 1 and redis.call('HLEN', KEYS[1]) == 0 then return 1 end
          return 0",
    )
}

/// The presence a gateway uses: its own sessions, recorded in Redis.
pub struct RedisPresence {
    conn: ConnectionManager,
    gateway_id: String,
    gateway_ttl: Duration,
    store: Arc<dyn MessageStore>,
    bus: Arc<dyn Bus>,
    /// This gateway's sessions, to register again if Redis forgets them.
    local: Mutex<HashMap<Uuid, String>>,
}

impl RedisPresence {
    pub async fn connect(
        url: &str,
        gateway_id: &str,
        gateway_ttl: Duration,
        store: Arc<dyn MessageStore>,
        bus: Arc<dyn Bus>,
    ) -> redis::RedisResult<Arc<Self>> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(Arc::new(RedisPresence {
            conn,
            gateway_id: gateway_id.to_owned(),
            gateway_ttl,
            store,
            bus,
            local: Mutex::new(HashMap::new()),
        }))
    }

    /// Heartbeats this gateway's liveness every third of the TTL until `shutdown`.
    pub fn spawn_heartbeat(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let presence = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(presence.gateway_ttl / 3);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = interval.tick() => {
                        if let Err(e) = presence.heartbeat().await {
                            tracing::warn!(error = %e, "presence heartbeat failed");
                            metrics::counter!("chat_redis_errors_total", "op" => "presence_heartbeat").increment(1);
                        }
                    }
                }
            }
        })
    }

    async fn heartbeat(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let known: Option<f64> = conn.zscore(GATEWAYS_KEY, &self.gateway_id).await?;
        let expires = now_ms() + self.gateway_ttl.as_millis() as i64;
        let _: () = conn.zadd(GATEWAYS_KEY, &self.gateway_id, expires).await?;
        if known.is_none() {
            let sessions: Vec<(Uuid, String)> = self
                .local
                .lock()
                .expect("presence lock")
                .iter()
                .map(|(s, u)| (*s, u.clone()))
                .collect();
            if !sessions.is_empty() {
                tracing::info!(
                    sessions = sessions.len(),
                    "presence: registering this gateway's sessions again"
                );
            }
            for (session, user) in sessions {
                self.register(&user, session).await?;
            }
        }
        Ok(())
    }

    async fn register(&self, user_id: &str, session: Uuid) -> redis::RedisResult<()> {
        let count: i64 = connect_script()
            .key(user_key(user_id))
            .key(gateway_key(&self.gateway_id))
            .arg(session.to_string())
            .arg(&self.gateway_id)
            .arg(member(user_id, session))
            .invoke_async(&mut self.conn.clone())
            .await?;
        if count == 1 {
            announce(
                self.store.as_ref(),
                self.bus.as_ref(),
                user_id,
                true,
                now_ms(),
            )
            .await;
        }
        Ok(())
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connected(&self, user_id: &str, session: Uuid) {
        self.local
            .lock()
            .expect("presence lock")
            .insert(session, user_id.to_owned());
        if let Err(e) = self.register(user_id, session).await {
            tracing::warn!(error = %e, "presence connect not recorded; the heartbeat will retry");
        }
    }

    async fn disconnected(&self, user_id: &str, session: Uuid) {
        self.local.lock().expect("presence lock").remove(&session);
        let went_offline: redis::RedisResult<i64> = disconnect_script()
            .key(user_key(user_id))
            .key(gateway_key(&self.gateway_id))
            .arg(session.to_string())
            .arg(member(user_id, session))
            .invoke_async(&mut self.conn.clone())
            .await;
        match went_offline {
            Ok(1) => {
                announce(
                    self.store.as_ref(),
                    self.bus.as_ref(),
                    user_id,
                    false,
                    now_ms(),
                )
                .await
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "presence disconnect not recorded; the sweeper will catch it")
            }
        }
    }

    async fn is_online(&self, user_id: &str) -> bool {
        let mut conn = self.conn.clone();
        conn.exists(user_key(user_id)).await.unwrap_or(false)
    }

    async fn query(&self, user_ids: &[String]) -> Vec<PresenceEntry> {
        query(&self.conn, self.store.as_ref(), user_ids).await
    }
}

/// Online state from Redis, last seen from the store.
async fn query(
    conn: &ConnectionManager,
    store: &dyn MessageStore,
    user_ids: &[String],
) -> Vec<PresenceEntry> {
    let mut pipe = redis::pipe();
    for user in user_ids {
        pipe.exists(user_key(user));
    }
    let online: Vec<bool> = if user_ids.is_empty() {
        Vec::new()
    } else {
        pipe.query_async(&mut conn.clone())
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "presence query failed; reporting offline");
                vec![false; user_ids.len()]
            })
    };
    let last_seen = store.last_seen(user_ids).await.unwrap_or_default();
    user_ids
        .iter()
        .zip(online)
        .map(|(u, online)| PresenceEntry {
            user_id: u.clone(),
            online,
            last_seen: last_seen.get(u).copied(),
            error: None,
        })
        .collect()
}

/// Takes the users of dead gateways offline; run by the chat-presence service.
pub struct PresenceSweeper {
    conn: ConnectionManager,
    store: Arc<dyn MessageStore>,
    bus: Arc<dyn Bus>,
}

impl PresenceSweeper {
    pub async fn connect(
        url: &str,
        store: Arc<dyn MessageStore>,
        bus: Arc<dyn Bus>,
    ) -> redis::RedisResult<Self> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(PresenceSweeper { conn, store, bus })
    }

    /// One sweep: every gateway whose heartbeat expired loses its sessions. Returns how
    /// many users went offline.
    pub async fn sweep(&self) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let dead: Vec<String> = conn.zrangebyscore(GATEWAYS_KEY, "-inf", now_ms()).await?;
        let mut offline = 0;
        for gateway in dead {
            let members: HashSet<String> = conn.smembers(gateway_key(&gateway)).await?;
            for entry in members {
                let Some((user, session)) = entry.split_once('\n') else {
                    continue;
                };
                let went_offline: i64 = disconnect_script()
                    .key(user_key(user))
                    .key(gateway_key(&gateway))
                    .arg(session)
                    .arg(&entry)
                    .invoke_async(&mut conn)
                    .await?;
                if went_offline == 1 {
                    offline += 1;
                    announce(
                        self.store.as_ref(),
                        self.bus.as_ref(),
                        user,
                        false,
                        now_ms(),
                    )
                    .await;
                }
            }
            let _: () = conn.zrem(GATEWAYS_KEY, &gateway).await?;
            tracing::info!(gateway, "swept a dead gateway's sessions");
            metrics::counter!("chat_presence_gateways_swept_total").increment(1);
        }
        Ok(offline)
    }

    /// Sweeps every `interval` until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "presence sweep failed");
                        metrics::counter!("chat_redis_errors_total", "op" => "presence_sweep").increment(1);
                    }
                }
            }
        }
    }
}
