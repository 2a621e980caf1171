//! The one writer of last-seen times in the scaled-out mode: reads presence transitions
//! from the seen stream (a consumer group, so several chat-presence instances share the
//! work and a dead one's entries are taken over) and records them in the store. Storing
//! keeps the latest time per user, so replays and reordering are harmless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::ids::UserId;
use chat_store::MessageStore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

use super::keys::SEEN_STREAM;

const GROUP: &str = "last-seen";
const BATCH: usize = 512;
/// Entries a dead recorder left unacknowledged this long are taken over.
const RECLAIM_AFTER: Duration = Duration::from_secs(30);

pub struct LastSeenRecorder {
    commands: ConnectionManager,
    blocking: ConnectionManager,
    consumer: String,
    store: Arc<dyn MessageStore>,
}

/// Why a round of recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("store: {0}")]
    Store(#[from] chat_store::StoreError),
}

impl LastSeenRecorder {
    pub async fn connect(
        url: &str,
        consumer: &str,
        store: Arc<dyn MessageStore>,
    ) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let commands = ConnectionManager::new(client.clone()).await?;
        let blocking_config =
            ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(35)));
        let blocking = ConnectionManager::new_with_config(client, blocking_config).await?;
        let recorder = LastSeenRecorder {
            commands,
            blocking,
            consumer: consumer.to_owned(),
            store,
        };
        recorder.ensure_group().await?;
        Ok(recorder)
    }

    async fn ensure_group(&self) -> redis::RedisResult<()> {
        let created: redis::RedisResult<()> = self
            .commands
            .clone()
            .xgroup_create_mkstream(SEEN_STREAM, GROUP, "0")
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    /// Records one batch (waiting up to `wait` for one); returns how many entries it took.
    pub async fn record_once(&self, wait: Duration) -> Result<usize, RecordError> {
        let entries = match self.next_batch(wait).await {
            Ok(entries) => entries,
            Err(e) if e.code() == Some("NOGROUP") => {
                tracing::warn!("last-seen consumer group missing; creating it again");
                self.ensure_group().await?;
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };
        if entries.is_empty() {
            return Ok(0);
        }
        let mut latest: HashMap<UserId, i64> = HashMap::new();
        for entry in &entries {
            let (Some(user), Some(ts)) = (entry.get::<String>("user"), entry.get::<i64>("ts"))
            else {
                continue;
            };
            let at = latest.entry(UserId::from(user)).or_insert(ts);
            *at = (*at).max(ts);
        }
        for (user, ts) in &latest {
            self.store.set_last_seen(user, *ts).await?;
        }
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: () = redis::pipe()
            .xack(SEEN_STREAM, GROUP, &ids)
            .ignore()
            .xdel(SEEN_STREAM, &ids)
            .ignore()
            .query_async(&mut self.commands.clone())
            .await?;
        metrics::counter!("chat_presence_last_seen_recorded_total").increment(latest.len() as u64);
        Ok(entries.len())
    }

    /// Entries a dead recorder left behind first, then new ones.
    async fn next_batch(&self, wait: Duration) -> redis::RedisResult<Vec<StreamId>> {
        let reclaimed: StreamAutoClaimReply = self
            .commands
            .clone()
            .xautoclaim_options(
                SEEN_STREAM,
                GROUP,
                &self.consumer,
                RECLAIM_AFTER.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(BATCH),
            )
            .await?;
        if !reclaimed.claimed.is_empty() {
            return Ok(reclaimed.claimed);
        }
        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(BATCH)
            .block(wait.as_millis().max(1) as usize);
        let read: Option<StreamReadReply> = self
            .blocking
            .clone()
            .xread_options(&[SEEN_STREAM], &[">"], &options)
            .await?;
        Ok(read
            .and_then(|r| r.keys.into_iter().next())
            .map(|k| k.ids)
            .unwrap_or_default())
    }

    /// Records until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let round = tokio::select! {
                _ = shutdown.cancelled() => return,
                round = self.record_once(Duration::from_secs(2)) => round,
            };
            if let Err(e) = round {
                tracing::warn!(error = %e, "recording last-seen times failed; retrying");
                metrics::counter!("chat_presence_last_seen_failures_total").increment(1);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
