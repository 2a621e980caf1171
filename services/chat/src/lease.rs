//! Partition leases: how chat-service instances agree on one owner per partition of chats.
//!
//! Each instance registers itself (`chat:instances`, `chat:instance:{id}` → its URL) and
//! holds leases `chat:lease:{p}` = `{instance}:{nonce}` with a TTL, renewed every third of
//! it. An instance takes free partitions up to its fair share and releases extras. Safety
//! rests on two rules, analysed in docs/architecture.md:
//!
//! - an owner serves a partition only until `renewed_at + ttl - margin`, measured on its own
//!   clock from *before* the renewal was sent, so it stops before Redis can expire the key;
//! - a new owner waits `takeover_wait` after acquiring before it serves: a full `ttl` on a
//!   store that cannot fence appends (so even if Redis lost the key early, any previous
//!   owner has stopped), nothing on one that can (SQLite), where a stale owner's append
//!   collides with the new owner's and fails instead of being acked.
//!
//! A new acquisition gets a new generation; state cached under an older one is reloaded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_protocol::now_ms;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio_util::sync::CancellationToken;

use chat_api::ChatId;
use chat_rpc::placement::{instance_key, lease_key, partition_of, INSTANCES_KEY, PARTITIONS_KEY};

use crate::ownership::Ownership;

/// Why leasing could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    #[error(
        "the cluster uses {cluster} partitions, this instance was configured with {configured}"
    )]
    PartitionMismatch { cluster: u32, configured: u32 },
}

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub instance_id: String,
    /// The base URL other processes reach this instance's internal API at.
    pub advertise_url: String,
    pub partitions: u32,
    pub ttl: Duration,
    /// How long a new owner waits before serving a partition it took.
    pub takeover_wait: Duration,
}

impl LeaseConfig {
    /// Safety margin subtracted from the TTL for local validity (clock drift, pauses).
    fn margin(&self) -> Duration {
        self.ttl / 4
    }
}

struct Held {
    value: String,
    generation: u64,
    serve_from: Instant,
    valid_until: Instant,
}

pub struct PartitionLeases {
    config: LeaseConfig,
    conn: ConnectionManager,
    held: Mutex<HashMap<u32, Held>>,
    generations: AtomicU64,
}

fn renew_script() -> Script {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
          end
          return 0",
    )
}

fn release_script() -> Script {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
}

impl PartitionLeases {
    /// Connects and checks that every instance agrees on the number of partitions.
    pub async fn connect(url: &str, config: LeaseConfig) -> Result<Self, LeaseError> {
        let client = redis::Client::open(url)?;
        let mut conn = ConnectionManager::new(client).await?;
        let _: bool = conn.set_nx(PARTITIONS_KEY, config.partitions).await?;
        let agreed: u32 = conn.get(PARTITIONS_KEY).await?;
        if agreed != config.partitions {
            return Err(LeaseError::PartitionMismatch {
                cluster: agreed,
                configured: config.partitions,
            });
        }
        Ok(PartitionLeases {
            config,
            conn,
            held: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
        })
    }

    /// Partitions this instance may serve right now.
    pub fn serving(&self) -> Vec<u32> {
        let now = Instant::now();
        let held = self.held.lock().expect("lease lock");
        let mut serving: Vec<u32> = held
            .iter()
            .filter(|(_, h)| now >= h.serve_from && now < h.valid_until)
            .map(|(p, _)| *p)
            .collect();
        serving.sort_unstable();
        serving
    }

    /// Renews, balances and heartbeats until `shutdown`, then releases every lease.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.config.ttl / 3);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    if let Err(e) = self.tick().await {
                        tracing::warn!(error = %e, "lease round failed; leases lapse unless renewed");
                        metrics::counter!("chat_redis_errors_total", "op" => "lease").increment(1);
                    }
                }
            }
        }
        self.release_all().await;
    }

    /// One round: register, renew what is held, take or give partitions toward a fair share.
    pub async fn tick(&self) -> redis::RedisResult<()> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let ttl_ms = self.config.ttl.as_millis() as u64;
        let _: () = redis::pipe()
            .zadd(
                INSTANCES_KEY,
                &self.config.instance_id,
                now_ms() + ttl_ms as i64,
            )
            .ignore()
            .set_options(
                instance_key(&self.config.instance_id),
                &self.config.advertise_url,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms)),
            )
            .ignore()
            .zrembyscore(INSTANCES_KEY, "-inf", now_ms())
            .ignore()
            .query_async(&mut conn)
            .await?;
        self.renew(&mut conn, started).await?;
        let live: usize = conn.zcount(INSTANCES_KEY, now_ms(), "+inf").await?;
        let fair_share = self.config.partitions.div_ceil(live.max(1) as u32) as usize;
        let held = self.held.lock().expect("lease lock").len();
        if held < fair_share {
            self.acquire(&mut conn, started, fair_share - held).await?;
        } else if held > fair_share {
            self.release(&mut conn, held - fair_share).await;
        }
        metrics::gauge!("chat_partitions_held")
            .set(self.held.lock().expect("lease lock").len() as f64);
        Ok(())
    }

    async fn renew(
        &self,
        conn: &mut ConnectionManager,
        started: Instant,
    ) -> redis::RedisResult<()> {
        let held: Vec<(u32, String)> = self
            .held
            .lock()
            .expect("lease lock")
            .iter()
            .map(|(p, h)| (*p, h.value.clone()))
            .collect();
        let valid_until = started + self.config.ttl - self.config.margin();
        for (partition, value) in held {
            let renewed: i64 = renew_script()
                .key(lease_key(partition))
                .arg(&value)
                .arg(self.config.ttl.as_millis() as u64)
                .invoke_async(conn)
                .await?;
            let mut held = self.held.lock().expect("lease lock");
            if renewed == 1 {
                if let Some(h) = held.get_mut(&partition) {
                    h.valid_until = valid_until;
                }
            } else {
                held.remove(&partition);
                tracing::warn!(partition, "lease lost; no longer serving this partition");
                metrics::counter!("chat_partition_leases_lost_total").increment(1);
            }
        }
        Ok(())
    }

    async fn acquire(
        &self,
        conn: &mut ConnectionManager,
        started: Instant,
        wanted: usize,
    ) -> redis::RedisResult<()> {
        let partitions = self.config.partitions;
        // Start at a random partition so instances starting together do not collide.
        let offset = rand::random_range(0..partitions);
        let mut taken = 0;
        for i in 0..partitions {
            if taken == wanted {
                break;
            }
            let partition = (offset + i) % partitions;
            if self
                .held
                .lock()
                .expect("lease lock")
                .contains_key(&partition)
            {
                continue;
            }
            let value = format!("{}:{:016x}", self.config.instance_id, rand::random::<u64>());
            let options = redis::SetOptions::default()
                .conditional_set(redis::ExistenceCheck::NX)
                .with_expiration(redis::SetExpiry::PX(self.config.ttl.as_millis() as u64));
            let acquired: Option<String> = conn
                .set_options(lease_key(partition), &value, options)
                .await?;
            if acquired.is_none() {
                continue;
            }
            let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
            self.held.lock().expect("lease lock").insert(
                partition,
                Held {
                    value,
                    generation,
                    serve_from: started + self.config.takeover_wait,
                    valid_until: started + self.config.ttl - self.config.margin(),
                },
            );
            taken += 1;
            tracing::info!(
                partition,
                generation,
                wait_ms = self.config.takeover_wait.as_millis() as u64,
                "partition lease acquired"
            );
        }
        Ok(())
    }

    /// Gives back `count` partitions (to rebalance onto a new instance).
    async fn release(&self, conn: &mut ConnectionManager, count: usize) {
        let victims: Vec<(u32, String)> = {
            let mut held = self.held.lock().expect("lease lock");
            let chosen: Vec<u32> = held.keys().take(count).copied().collect();
            // Stop serving before the lease goes, never after.
            chosen
                .into_iter()
                .filter_map(|p| held.remove(&p).map(|h| (p, h.value)))
                .collect()
        };
        for (partition, value) in victims {
            let released: redis::RedisResult<i64> = release_script()
                .key(lease_key(partition))
                .arg(&value)
                .invoke_async(conn)
                .await;
            if let Err(e) = released {
                tracing::warn!(error = %e, partition, "lease release failed; it will expire");
            } else {
                tracing::info!(partition, "partition released for rebalancing");
            }
        }
    }

    async fn release_all(&self) {
        let count = self.held.lock().expect("lease lock").len();
        let mut conn = self.conn.clone();
        self.release(&mut conn, count).await;
        let _: redis::RedisResult<()> = redis::pipe()
            .zrem(INSTANCES_KEY, &self.config.instance_id)
            .ignore()
            .del(instance_key(&self.config.instance_id))
            .ignore()
            .query_async(&mut conn)
            .await;
    }
}

impl Ownership for PartitionLeases {
    fn owns(&self, chat_id: &ChatId) -> Option<u64> {
        let partition = partition_of(chat_id, self.config.partitions);
        let now = Instant::now();
        let held = self.held.lock().expect("lease lock");
        let h = held.get(&partition)?;
        (now >= h.serve_from && now < h.valid_until).then_some(h.generation)
    }
}
