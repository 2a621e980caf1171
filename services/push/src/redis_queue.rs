//! The push queue on a Redis Stream with a consumer group: jobs survive restarts, each is
//! handed to one worker, a worker that dies mid-job leaves it pending and another worker
//! re-claims it after `reclaim_after`, and failed jobs go to a dead-letter stream. While a
//! job for a (user, chat) waits, later ones collapse into it (a burst key), and a user has
//! a bounded number waiting (a counter); both expire, so a lost claim cannot stick.

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::ids::DeviceId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};

use crate::{ClaimedJob, Enqueued, PushJob, PushQueue, QueueBounds, QueueError};

const GROUP: &str = "push-workers";
/// How long "this job reached this device" is remembered (longer than any re-claim).
const DELIVERED_MARK_SECS: u64 = 24 * 3600;

fn delivered_key(receipt: &str, device_id: &DeviceId) -> String {
    format!("chat:push:delivered:{receipt}:{device_id}")
}
const FIELD: &str = "job";

fn burst_key(job: &PushJob) -> String {
    // User ids cannot contain ':'.
    format!("chat:push:burst:{}:{}", job.user_id, job.chat_id)
}

fn user_key(job: &PushJob) -> String {
    format!("chat:push:waiting:{}", job.user_id)
}

/// 1 queued, 0 collapsed into a waiting job, -1 the user has too many waiting.
fn enqueue_script() -> Script {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
          local waiting = tonumber(redis.call('GET', KEYS[2]) or '0')
          if waiting >= tonumber(ARGV[2]) then return -1 end
          redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
          redis.call('INCR', KEYS[2])
          redis.call('PEXPIRE', KEYS[2], ARGV[1])
          redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', ARGV[4], ARGV[5])
          return 1",
    )
}

/// Ends a job's burst when it is first claimed (a re-claim finds no burst key).
fn release_script() -> Script {
    Script::new(
        r"if redis.call('DEL', KEYS[1]) == 1 then
            if redis.call('DECR', KEYS[2]) <= 0 then redis.call('DEL', KEYS[2]) end
          end
          return 0",
    )
}

#[derive(Debug, Clone)]
pub struct RedisQueueConfig {
    pub url: String,
    /// This worker's consumer name (unique per process).
    pub consumer: String,
    /// Stream of jobs.
    pub stream: String,
    /// Stream of jobs that failed for good.
    pub dead_stream: String,
    /// A job pending this long with its worker is assumed abandoned and re-claimed.
    pub reclaim_after: Duration,
    /// Approximate cap on the stream's length.
    pub max_len: usize,
    pub bounds: QueueBounds,
    /// How long a burst key and a user's count of waiting jobs live without a new job:
    /// the bound on how long a lost claim could hold back a user's notifications.
    pub burst_ttl: Duration,
}

impl RedisQueueConfig {
    pub fn new(url: &str, consumer: &str) -> Self {
        RedisQueueConfig {
            url: url.to_owned(),
            consumer: consumer.to_owned(),
            stream: "chat:push:jobs".into(),
            dead_stream: "chat:push:dead".into(),
            reclaim_after: Duration::from_secs(60),
            max_len: 1_000_000,
            bounds: QueueBounds::default(),
            burst_ttl: Duration::from_secs(600),
        }
    }
}

pub struct RedisPushQueue {
    config: RedisQueueConfig,
    /// For XADD / XACK and re-claims.
    commands: ConnectionManager,
    /// Only for the blocking XREADGROUP, which would hold up other commands on a shared
    /// multiplexed connection.
    blocking: ConnectionManager,
}

fn unavailable(e: redis::RedisError) -> QueueError {
    metrics::counter!("chat_redis_errors_total", "op" => "push_queue").increment(1);
    QueueError::Unavailable(e.to_string())
}

impl RedisPushQueue {
    pub async fn connect(config: RedisQueueConfig) -> Result<Self, QueueError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let commands = ConnectionManager::new(client.clone())
            .await
            .map_err(unavailable)?;
        // Blocking reads wait up to the caller's `wait`; let responses take that long.
        let blocking_config =
            ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(35)));
        let blocking = ConnectionManager::new_with_config(client, blocking_config)
            .await
            .map_err(unavailable)?;
        let queue = RedisPushQueue {
            config,
            commands,
            blocking,
        };
        queue.ensure_group().await?;
        Ok(queue)
    }

    /// Creates the stream and group unless they exist (also after Redis lost its data).
    async fn ensure_group(&self) -> Result<(), QueueError> {
        let created: redis::RedisResult<()> = self
            .commands
            .clone()
            .xgroup_create_mkstream(&self.config.stream, GROUP, "0")
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Ends the burst of a job just claimed, so the next message queues a new job.
    async fn release(&self, claimed: Option<ClaimedJob>) -> Option<ClaimedJob> {
        if let Some(claimed) = &claimed {
            let released: redis::RedisResult<i64> = release_script()
                .key(burst_key(&claimed.job))
                .key(user_key(&claimed.job))
                .invoke_async(&mut self.commands.clone())
                .await;
            if let Err(e) = released {
                // The burst key expires by itself (`burst_ttl`).
                tracing::warn!(error = %e, "push burst not released");
            }
        }
        claimed
    }

    fn parse(entry: &StreamId) -> Option<ClaimedJob> {
        let raw: String = entry.get(FIELD)?;
        match serde_json::from_str::<PushJob>(&raw) {
            Ok(job) => Some(ClaimedJob {
                job,
                receipt: entry.id.clone(),
            }),
            Err(e) => {
                tracing::error!(error = %e, id = %entry.id, "undecodable push job");
                None
            }
        }
    }

    /// Takes over one job left pending too long by another (presumably dead) worker.
    async fn reclaim(&self) -> redis::RedisResult<Option<ClaimedJob>> {
        let reply: StreamAutoClaimReply = self
            .commands
            .clone()
            .xautoclaim_options(
                &self.config.stream,
                GROUP,
                &self.config.consumer,
                self.config.reclaim_after.as_millis() as u64,
                "0-0",
                StreamAutoClaimOptions::default().count(1),
            )
            .await?;
        Ok(reply.claimed.first().and_then(Self::parse).inspect(|_| {
            metrics::counter!("chat_push_reclaimed_total").increment(1);
        }))
    }

    /// After a failed read: a missing group (Redis lost its data) is created again and the
    /// claim comes back empty; anything else is reported.
    async fn recover(&self, e: redis::RedisError) -> Result<Option<ClaimedJob>, QueueError> {
        if e.code() == Some("NOGROUP") {
            tracing::warn!("push consumer group missing; creating it again");
            self.ensure_group().await?;
            return Ok(None);
        }
        Err(unavailable(e))
    }

    /// How many jobs are waiting or in progress (for tests and metrics).
    pub async fn pending_len(&self) -> Result<usize, QueueError> {
        self.commands
            .clone()
            .xlen(&self.config.stream)
            .await
            .map_err(unavailable)
    }

    /// The jobs in the dead-letter stream.
    pub async fn dead_letters(&self) -> Result<Vec<PushJob>, QueueError> {
        let entries: redis::streams::StreamRangeReply = self
            .commands
            .clone()
            .xrange_all(&self.config.dead_stream)
            .await
            .map_err(unavailable)?;
        Ok(entries
            .ids
            .iter()
            .filter_map(Self::parse)
            .map(|c| c.job)
            .collect())
    }
}

#[async_trait]
impl PushQueue for RedisPushQueue {
    async fn enqueue(&self, job: PushJob) -> Result<Enqueued, QueueError> {
        let payload = serde_json::to_string(&job).expect("jobs serialize");
        let outcome: i64 = enqueue_script()
            .key(burst_key(&job))
            .key(user_key(&job))
            .key(&self.config.stream)
            .arg(self.config.burst_ttl.as_millis() as u64)
            .arg(self.config.bounds.max_pending_per_user)
            .arg(self.config.max_len)
            .arg(FIELD)
            .arg(payload)
            .invoke_async(&mut self.commands.clone())
            .await
            .map_err(unavailable)?;
        match outcome {
            1 => Ok(Enqueued::Queued),
            0 => Ok(Enqueued::Collapsed),
            _ => Err(QueueError::UserFull),
        }
    }

    async fn claim(&self, wait: Duration) -> Result<Option<ClaimedJob>, QueueError> {
        match self.reclaim().await {
            Ok(Some(job)) => return Ok(self.release(Some(job)).await),
            Ok(None) => {}
            Err(e) => return self.recover(e).await,
        }
        let options = StreamReadOptions::default()
            .group(GROUP, &self.config.consumer)
            .count(1)
            .block(wait.as_millis().max(1) as usize);
        let read: redis::RedisResult<Option<StreamReadReply>> = self
            .blocking
            .clone()
            .xread_options(&[&self.config.stream], &[">"], &options)
            .await;
        let reply = match read {
            Ok(reply) => reply,
            Err(e) => return self.recover(e).await,
        };
        let claimed = reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.first().and_then(Self::parse));
        Ok(self.release(claimed).await)
    }

    async fn ack(&self, job: &ClaimedJob) -> Result<(), QueueError> {
        let mut conn = self.commands.clone();
        // Acked and deleted: the stream holds only work still to do.
        let _: () = redis::pipe()
            .xack(&self.config.stream, GROUP, &[&job.receipt])
            .ignore()
            .xdel(&self.config.stream, &[&job.receipt])
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn dead_letter(&self, job: &PushJob, reason: &str) -> Result<(), QueueError> {
        let payload = serde_json::to_string(job).expect("jobs serialize");
        let _: String = self
            .commands
            .clone()
            .xadd(
                &self.config.dead_stream,
                "*",
                &[(FIELD, payload.as_str()), ("reason", reason)],
            )
            .await
            .map_err(unavailable)?;
        metrics::counter!("chat_push_dead_lettered_total").increment(1);
        Ok(())
    }

    async fn was_delivered(&self, job: &ClaimedJob, device_id: &DeviceId) -> bool {
        let key = delivered_key(&job.receipt, device_id);
        self.commands.clone().exists(key).await.unwrap_or(false)
    }

    async fn record_delivered(&self, job: &ClaimedJob, device_id: &DeviceId) {
        let key = delivered_key(&job.receipt, device_id);
        let recorded: redis::RedisResult<()> = self
            .commands
            .clone()
            .set_ex(key, 1, DELIVERED_MARK_SECS)
            .await;
        if let Err(e) = recorded {
            // Worst case a re-claimed job notifies this device twice.
            tracing::warn!(error = %e, "delivery mark not recorded");
        }
    }
}
