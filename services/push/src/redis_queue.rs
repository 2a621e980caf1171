//! The push queue on a Redis Stream with a consumer group: jobs survive restarts, each is
//! handed to one worker, a worker that dies mid-job leaves it pending and another worker
//! re-claims it after `reclaim_after`, and failed jobs go to a dead-letter stream. While a
//! job for a (user, chat) waits, later ones collapse into it (a burst key), and a user has
//! a bounded number waiting (a counter); both expire, so a lost claim cannot stick.
//! A worker keeps its claim while it works a job (so it is never re-claimed from a live
//! worker), takes a per-device send right before notifying (so two workers never notify
//! one device for one job), and re-queues failed devices through a sorted set of
//! delayed jobs that `claim` moves back into the stream when they are due.

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::ids::DeviceId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};

use crate::{ClaimedJob, Enqueued, PushJob, PushQueue, QueueBounds, QueueError, SendRight};

const GROUP: &str = "push-workers";
/// How long "this job reached this device" is remembered (longer than any re-claim).
const DELIVERED_MARK_SECS: u64 = 24 * 3600;

/// At most this many due retries move into the stream per claim.
const PROMOTE_BATCH: usize = 100;
/// A delayed job's member in the sorted set: a random id (so equal jobs stay distinct),
/// a separator, then the job. The scripts strip the first `MEMBER_PREFIX` bytes.
const MEMBER_PREFIX: usize = 17;

fn send_key(receipt: &str, device_id: &DeviceId) -> String {
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

/// Moves due retries from the sorted set into the stream; returns how many moved.
fn promote_script() -> Script {
    Script::new(
        r"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
          for _, member in ipairs(due) do
            redis.call('ZREM', KEYS[1], member)
            redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', ARGV[4], string.sub(member, ARGV[5] + 1))
          end
          return #due",
    )
}

/// 1 when the entry is still pending with this consumer (its idle time is reset), 0 when
/// another consumer has it or it is gone.
fn keep_claim_script() -> Script {
    Script::new(
        r"local mine = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1, ARGV[3])
          if #mine == 0 then return 0 end
          redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
          return 1",
    )
}

/// 0 granted (the key now says 'sending' for ARGV[1] ms), 1 someone is sending, 2 done.
fn begin_send_script() -> Script {
    Script::new(
        r"local state = redis.call('GET', KEYS[1])
          if state == 'done' then return 2 end
          if state then return 1 end
          redis.call('SET', KEYS[1], 'sending', 'PX', ARGV[1])
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
    /// Sorted set of retries by due time (ms since the epoch).
    pub delayed: String,
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
            delayed: "chat:push:delayed".into(),
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
    /// Where the next re-claim scan starts in the pending list: Redis scans a few entries
    /// per call, so starting from the front each time would only ever see the first ones
    /// (jobs that keep failing there would hide a dead worker's jobs behind them).
    reclaim_from: std::sync::Mutex<String>,
}

/// The start of a stream's pending list, for XAUTOCLAIM.
const START_OF_PENDING: &str = "0-0";

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
            reclaim_from: std::sync::Mutex::new(START_OF_PENDING.to_owned()),
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

    /// Takes over one job left pending too long by another (presumably dead) worker, going
    /// round the pending list across calls.
    async fn reclaim(&self) -> redis::RedisResult<Option<ClaimedJob>> {
        let from = self.reclaim_from.lock().expect("reclaim cursor").clone();
        let reply: StreamAutoClaimReply = self
            .commands
            .clone()
            .xautoclaim_options(
                &self.config.stream,
                GROUP,
                &self.config.consumer,
                self.config.reclaim_after.as_millis() as u64,
                from.as_str(),
                StreamAutoClaimOptions::default().count(1),
            )
            .await?;
        // "0-0" once the scan has gone round.
        *self.reclaim_from.lock().expect("reclaim cursor") = reply.next_stream_id.clone();
        let Some(entry) = reply.claimed.first() else {
            return Ok(None);
        };
        Ok(self.decoded(entry).await.inspect(|_| {
            metrics::counter!("chat_push_reclaimed_total").increment(1);
        }))
    }

    /// The job of a claimed entry. One that cannot be decoded never will be: it is acked
    /// and deleted (and counted), or it would be re-claimed for ever.
    async fn decoded(&self, entry: &StreamId) -> Option<ClaimedJob> {
        let claimed = Self::parse(entry);
        if claimed.is_none() {
            metrics::counter!("chat_push_dropped_total", "reason" => "undecodable").increment(1);
            if let Err(e) = self.remove(&entry.id).await {
                tracing::warn!(error = %e, id = %entry.id, "undecodable push job not removed");
            }
        }
        claimed
    }

    /// Acks and deletes an entry: the stream holds only work still to do.
    async fn remove(&self, id: &str) -> redis::RedisResult<()> {
        redis::pipe()
            .xack(&self.config.stream, GROUP, &[id])
            .ignore()
            .xdel(&self.config.stream, &[id])
            .ignore()
            .query_async(&mut self.commands.clone())
            .await
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

    /// Moves retries that are due into the stream.
    async fn promote_due(&self) {
        let moved: redis::RedisResult<i64> = promote_script()
            .key(&self.config.delayed)
            .key(&self.config.stream)
            .arg(now_ms())
            .arg(PROMOTE_BATCH)
            .arg(self.config.max_len)
            .arg(FIELD)
            .arg(MEMBER_PREFIX)
            .invoke_async(&mut self.commands.clone())
            .await;
        if let Err(e) = moved {
            // They stay in the set and move on a later claim.
            tracing::warn!(error = %e, "due push retries not moved");
        }
    }

    /// How many retries wait for their time (for tests and metrics).
    pub async fn delayed_len(&self) -> Result<usize, QueueError> {
        self.commands
            .clone()
            .zcard(&self.config.delayed)
            .await
            .map_err(unavailable)
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
        self.promote_due().await;
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
        let entry = reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next());
        let claimed = match entry {
            Some(entry) => self.decoded(&entry).await,
            None => None,
        };
        Ok(self.release(claimed).await)
    }

    async fn ack(&self, job: &ClaimedJob) -> Result<(), QueueError> {
        self.remove(&job.receipt).await.map_err(unavailable)
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

    async fn retry(&self, job: PushJob, delay: Duration) -> Result<(), QueueError> {
        let member = format!(
            "{:016x}|{}",
            rand::random::<u64>(),
            serde_json::to_string(&job).expect("jobs serialize")
        );
        debug_assert_eq!(member.find('|'), Some(MEMBER_PREFIX - 1));
        let due = now_ms() + delay.as_millis() as u64;
        let _: () = self
            .commands
            .clone()
            .zadd(&self.config.delayed, member, due)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn keep_claim(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        let kept: i64 = keep_claim_script()
            .key(&self.config.stream)
            .arg(GROUP)
            .arg(&job.receipt)
            .arg(&self.config.consumer)
            .invoke_async(&mut self.commands.clone())
            .await
            .map_err(unavailable)?;
        Ok(kept == 1)
    }

    async fn begin_send(
        &self,
        job: &ClaimedJob,
        device_id: &DeviceId,
        hold: Duration,
    ) -> SendRight {
        let state: redis::RedisResult<i64> = begin_send_script()
            .key(send_key(&job.receipt, device_id))
            .arg(hold.as_millis().max(1) as u64)
            .invoke_async(&mut self.commands.clone())
            .await;
        match state {
            Ok(0) => SendRight::Granted,
            Ok(2) => SendRight::AlreadyDelivered,
            Ok(_) => SendRight::Busy,
            Err(e) => {
                // Unknown: sending now could notify twice; the device is retried later.
                metrics::counter!("chat_redis_errors_total", "op" => "push_queue").increment(1);
                tracing::warn!(error = %e, "push send right not taken");
                SendRight::Busy
            }
        }
    }

    async fn end_send(&self, job: &ClaimedJob, device_id: &DeviceId, delivered: bool) {
        let key = send_key(&job.receipt, device_id);
        let mut conn = self.commands.clone();
        let ended: redis::RedisResult<()> = if delivered {
            conn.set_ex(key, "done", DELIVERED_MARK_SECS).await
        } else {
            conn.del(key).await
        };
        if let Err(e) = ended {
            // Delivered: worst case a re-claimed job notifies this device twice. Not
            // delivered: the right lapses by itself after its hold.
            tracing::warn!(error = %e, delivered, "push send right not ended");
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
