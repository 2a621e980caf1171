//! Taking the users of dead gateways offline; run by the chat-presence service.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_bus::Bus;
use chat_protocol::ids::UserId;
use chat_protocol::now_ms;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::keys::{
    disconnect_script, gateway_key, user_key, GATEWAYS_KEY, SEEN_STREAM, SEEN_STREAM_MAX,
};
use crate::announce::announce;
use crate::policy::LastSeenPolicy;

pub struct PresenceSweeper {
    conn: ConnectionManager,
    bus: Arc<dyn Bus>,
    policy: Arc<dyn LastSeenPolicy>,
}

impl PresenceSweeper {
    pub async fn connect(
        url: &str,
        bus: Arc<dyn Bus>,
        policy: Arc<dyn LastSeenPolicy>,
    ) -> redis::RedisResult<Self> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(PresenceSweeper { conn, bus, policy })
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
                let user = UserId::from(user);
                let ts = now_ms();
                let went_offline: i64 = disconnect_script()
                    .key(user_key(&user))
                    .key(gateway_key(&gateway))
                    .key(SEEN_STREAM)
                    .arg(session)
                    .arg(&entry)
                    .arg(user.as_str())
                    .arg(ts)
                    .arg(SEEN_STREAM_MAX)
                    .invoke_async(&mut conn)
                    .await?;
                if went_offline == 1 {
                    offline += 1;
                    announce(self.bus.as_ref(), self.policy.as_ref(), &user, false, ts).await;
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
