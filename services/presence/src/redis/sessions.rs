//! A gateway's sessions in Redis: connect and disconnect scripts, the liveness heartbeat,
//! and registering every session again when Redis forgot them. Needs no store: the times
//! of transitions go on the seen stream for the chat-presence service to record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_bus::Bus;
use chat_protocol::ids::UserId;
use chat_protocol::now_ms;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::keys::{
    connect_script, disconnect_script, gateway_key, member, user_key, GATEWAYS_KEY, SEEN_STREAM,
    SEEN_STREAM_MAX,
};
use crate::announce::announce;
use crate::policy::LastSeenPolicy;
use crate::SessionTracker;

/// The longest pause between heartbeats, so presence is rebuilt within about that after
/// Redis loses its data.
const MAX_HEARTBEAT: Duration = Duration::from_secs(1);

pub struct RedisSessions {
    conn: ConnectionManager,
    gateway_id: String,
    gateway_ttl: Duration,
    bus: Arc<dyn Bus>,
    policy: Arc<dyn LastSeenPolicy>,
    /// This gateway's sessions, to register again if Redis forgets them.
    local: Mutex<HashMap<Uuid, UserId>>,
}

impl RedisSessions {
    pub async fn connect(
        url: &str,
        gateway_id: &str,
        gateway_ttl: Duration,
        bus: Arc<dyn Bus>,
        policy: Arc<dyn LastSeenPolicy>,
    ) -> redis::RedisResult<Arc<Self>> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(Arc::new(RedisSessions {
            conn,
            gateway_id: gateway_id.to_owned(),
            gateway_ttl,
            bus,
            policy,
            local: Mutex::new(HashMap::new()),
        }))
    }

    /// Heartbeats this gateway's liveness every third of the TTL, and at least every
    /// `MAX_HEARTBEAT` (the beat notices that Redis lost its data and registers this
    /// gateway's sessions again), until `shutdown`.
    pub fn spawn_heartbeat(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let sessions = self.clone();
        tokio::spawn(async move {
            let every = (sessions.gateway_ttl / 3).min(MAX_HEARTBEAT);
            let mut interval = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = interval.tick() => {
                        if let Err(e) = sessions.heartbeat().await {
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
            let sessions: Vec<(Uuid, UserId)> = self
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

    async fn register(&self, user_id: &UserId, session: Uuid) -> redis::RedisResult<()> {
        let ts = now_ms();
        let count: i64 = connect_script()
            .key(user_key(user_id))
            .key(gateway_key(&self.gateway_id))
            .key(SEEN_STREAM)
            .arg(session.to_string())
            .arg(&self.gateway_id)
            .arg(member(user_id, session))
            .arg(user_id.as_str())
            .arg(ts)
            .arg(SEEN_STREAM_MAX)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if count == 1 {
            announce(self.bus.as_ref(), self.policy.as_ref(), user_id, true, ts).await;
        }
        Ok(())
    }
}

#[async_trait]
impl SessionTracker for RedisSessions {
    async fn connected(&self, user_id: &UserId, session: Uuid) {
        self.local
            .lock()
            .expect("presence lock")
            .insert(session, user_id.clone());
        if let Err(e) = self.register(user_id, session).await {
            tracing::warn!(error = %e, "presence connect not recorded; the heartbeat will retry");
        }
    }

    async fn disconnected(&self, user_id: &UserId, session: Uuid) {
        self.local.lock().expect("presence lock").remove(&session);
        let ts = now_ms();
        let went_offline: redis::RedisResult<i64> = disconnect_script()
            .key(user_key(user_id))
            .key(gateway_key(&self.gateway_id))
            .key(SEEN_STREAM)
            .arg(session.to_string())
            .arg(member(user_id, session))
            .arg(user_id.as_str())
            .arg(ts)
            .arg(SEEN_STREAM_MAX)
            .invoke_async(&mut self.conn.clone())
            .await;
        match went_offline {
            Ok(1) => announce(self.bus.as_ref(), self.policy.as_ref(), user_id, false, ts).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "presence disconnect not recorded; the sweeper will catch it")
            }
        }
    }
}
