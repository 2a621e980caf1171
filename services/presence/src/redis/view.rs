//! Who is online, read from the gateways' session records (chat services, push workers).

use async_trait::async_trait;
use chat_protocol::ids::UserId;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::keys::user_key;
use crate::PresenceView;

pub struct RedisPresenceView {
    conn: ConnectionManager,
}

impl RedisPresenceView {
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(RedisPresenceView { conn })
    }
}

fn redis_failed(e: redis::RedisError) {
    metrics::counter!("chat_redis_errors_total", "op" => "presence_view").increment(1);
    tracing::warn!(error = %e, "presence lookup failed; reporting offline");
}

#[async_trait]
impl PresenceView for RedisPresenceView {
    async fn is_online(&self, user_id: &UserId) -> bool {
        let mut conn = self.conn.clone();
        conn.exists(user_key(user_id))
            .await
            .inspect_err(|e| redis_failed(e.clone()))
            .unwrap_or(false)
    }

    async fn online(&self, user_ids: &[UserId]) -> Vec<bool> {
        if user_ids.is_empty() {
            return Vec::new();
        }
        let mut pipe = redis::pipe();
        for user in user_ids {
            pipe.exists(user_key(user));
        }
        pipe.query_async(&mut self.conn.clone())
            .await
            .unwrap_or_else(|e| {
                redis_failed(e);
                vec![false; user_ids.len()]
            })
    }
}
