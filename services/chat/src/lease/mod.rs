//! Partition leases: how chat-service instances agree on one owner per partition of chats.
//!
//! Each instance registers itself (`chat:instances`, `chat:instance:{id}` → its URL) and
//! holds leases `chat:lease:{p}` = `{instance}:{nonce}` with a TTL, renewed every third of
//! it. An instance takes free partitions up to its fair share and hands extras over.
//! Safety rests on these rules, analysed in docs/architecture.md:
//!
//! - an owner serves a partition only until `renewed_at + ttl - margin`, measured on its own
//!   clock from *before* the renewal was sent, so it stops before Redis can expire the key;
//! - a new owner waits `takeover_wait` after acquiring before it serves: a full `ttl` on a
//!   store that cannot fence appends (so even if Redis lost the key early, any previous
//!   owner has stopped), nothing on one that can (SQLite), where a stale owner's append
//!   collides with the new owner's and fails instead of being acked;
//! - no wait either after a clean handover (`handover`): the old owner stopped taking
//!   sends and saw every append it had accepted finish before it let the lease go;
//! - when Redis lost the key (a restart without persistence), the holder sets it again
//!   with its old value only while its own validity lasts: nobody else can have served the
//!   partition meanwhile, so the order it holds in memory is still the truth.
//!
//! A new acquisition gets a new generation; state cached under an older one is reloaded.

mod handover;
mod notices;
mod scripts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chat_protocol::now_ms;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use chat_api::ChatId;
use chat_rpc::placement::{
    handover_key, instance_key, lease_key, partition_of, INSTANCES_KEY, PARTITIONS_KEY,
};

use crate::ownership::{AppendBarrier, Ownership};
use scripts::{eval, Acquired, Renewal};

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
    /// How long a new owner waits before serving a partition it took (unless it was
    /// handed over cleanly).
    pub takeover_wait: Duration,
}

impl LeaseConfig {
    /// Safety margin subtracted from the TTL for local validity (clock drift, pauses).
    fn margin(&self) -> Duration {
        self.ttl / 4
    }

    fn ttl_ms(&self) -> String {
        self.ttl.as_millis().to_string()
    }
}

struct Held {
    value: String,
    generation: u64,
    serve_from: Instant,
    valid_until: Instant,
    /// Being handed over: no new work, but what was accepted is finished and acked.
    draining: bool,
    /// Past its takeover wait when the handover began: only then can a release be clean.
    vouched: bool,
}

impl Held {
    fn valid(&self, now: Instant) -> bool {
        now >= self.serve_from && now < self.valid_until
    }
}

pub struct PartitionLeases {
    config: LeaseConfig,
    client: redis::Client,
    conn: ConnectionManager,
    held: Mutex<HashMap<u32, Held>>,
    generations: AtomicU64,
    /// What a handover waits for; without one, handovers are not clean.
    barrier: OnceLock<Arc<dyn AppendBarrier>>,
    /// Woken when another instance lets partitions go.
    wake: Arc<Notify>,
}

impl PartitionLeases {
    /// Connects and checks that every instance agrees on the number of partitions.
    pub async fn connect(url: &str, config: LeaseConfig) -> Result<Self, LeaseError> {
        let client = redis::Client::open(url)?;
        let mut conn = ConnectionManager::new(client.clone()).await?;
        let agreed = agree_on_partitions(&mut conn, config.partitions).await?;
        if agreed != config.partitions {
            return Err(LeaseError::PartitionMismatch {
                cluster: agreed,
                configured: config.partitions,
            });
        }
        Ok(PartitionLeases {
            config,
            client,
            conn,
            held: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            barrier: OnceLock::new(),
            wake: Arc::new(Notify::new()),
        })
    }

    /// What handovers wait for before letting a partition go (the chat service).
    pub fn set_barrier(&self, barrier: Arc<dyn AppendBarrier>) {
        let _ = self.barrier.set(barrier);
    }

    /// Partitions this instance may serve right now.
    pub fn serving(&self) -> Vec<u32> {
        let now = Instant::now();
        let held = self.held.lock().expect("lease lock");
        let mut serving: Vec<u32> = held
            .iter()
            .filter(|(_, h)| !h.draining && h.valid(now))
            .map(|(p, _)| *p)
            .collect();
        serving.sort_unstable();
        serving
    }

    /// Renews, balances and heartbeats until `shutdown`, then hands every partition over.
    pub async fn run(&self, shutdown: CancellationToken) {
        let notices = tokio::spawn(notices::follow(
            self.client.clone(),
            self.wake.clone(),
            shutdown.clone(),
        ));
        let mut ticker = tokio::time::interval(self.config.ttl / 3);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
                _ = self.wake.notified() => {}
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "lease round failed; leases lapse unless renewed");
                metrics::counter!("chat_redis_errors_total", "op" => "lease").increment(1);
            }
        }
        self.leave().await;
        let _ = notices.await;
    }

    /// One round: register, renew what is held, take or give partitions toward a fair share.
    pub async fn tick(&self) -> redis::RedisResult<()> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let ttl_ms = self.config.ttl.as_millis() as u64;
        // The partition count is asserted every round: after Redis lost its data, the
        // first instance to come by writes it again, and one that disagrees steps back.
        let agreed = agree_on_partitions(&mut conn, self.config.partitions).await?;
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
        if agreed != self.config.partitions {
            tracing::error!(
                cluster = agreed,
                configured = self.config.partitions,
                "the cluster's partition count changed under this instance; serving nothing"
            );
            metrics::counter!("chat_partition_count_conflicts_total").increment(1);
            // Not clean: the other instances map chats to partitions differently.
            let all = self.held_partitions();
            self.let_go(&mut conn, all).await;
            return Ok(());
        }
        let reclaimed = self.renew(&mut conn, started).await?;
        if reclaimed > 0 {
            // Redis lost its data. Take nothing new this round, so every instance first
            // gets its own partitions back rather than the quickest taking them all.
            tracing::warn!(
                reclaimed,
                "partition leases vanished from Redis; set again, still serving"
            );
            metrics::counter!("chat_partition_leases_reclaimed_total").increment(reclaimed);
            return Ok(());
        }
        let live: usize = conn.zcount(INSTANCES_KEY, now_ms(), "+inf").await?;
        let fair_share = self.config.partitions.div_ceil(live.max(1) as u32) as usize;
        let held = self.held.lock().expect("lease lock").len();
        if held < fair_share {
            self.acquire(&mut conn, started, fair_share - held).await?;
        } else if held > fair_share {
            let extra: Vec<u32> = self
                .held_partitions()
                .into_iter()
                .take(held - fair_share)
                .collect();
            self.hand_over(&mut conn, extra).await;
        }
        metrics::gauge!("chat_partitions_held")
            .set(self.held.lock().expect("lease lock").len() as f64);
        Ok(())
    }

    fn held_partitions(&self) -> Vec<u32> {
        self.held
            .lock()
            .expect("lease lock")
            .keys()
            .copied()
            .collect()
    }

    /// Renews every held lease in one round trip; returns how many had to be set again.
    async fn renew(
        &self,
        conn: &mut ConnectionManager,
        started: Instant,
    ) -> redis::RedisResult<u64> {
        let held: Vec<(u32, String, bool)> = {
            let held = self.held.lock().expect("lease lock");
            held.iter()
                .map(|(p, h)| (*p, h.value.clone(), started < h.valid_until))
                .collect()
        };
        if held.is_empty() {
            return Ok(0);
        }
        let ttl_ms = self.config.ttl_ms();
        let mut pipe = redis::pipe();
        for (partition, value, may_reclaim) in &held {
            let reclaim = if *may_reclaim { "1" } else { "0" };
            pipe.add_command(eval(
                scripts::RENEW,
                &[&lease_key(*partition), &handover_key(*partition)],
                &[value, &ttl_ms, reclaim],
            ));
        }
        let answers: Vec<i64> = pipe.query_async(conn).await?;
        let valid_until = started + self.config.ttl - self.config.margin();
        let mut reclaimed = 0;
        let mut leases = self.held.lock().expect("lease lock");
        for ((partition, value, _), answer) in held.iter().zip(answers) {
            // Skip entries released or re-acquired while the renewal was out.
            let Some(h) = leases.get_mut(partition).filter(|h| &h.value == value) else {
                continue;
            };
            match scripts::renewal(answer) {
                Renewal::Renewed => h.valid_until = valid_until,
                Renewal::Reclaimed => {
                    if Instant::now() >= h.valid_until {
                        // The answer came back after our validity ended: someone may have
                        // held the key meanwhile. Start over as a new owner would.
                        h.generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                        // From the answer, as a new owner's wait (see `acquire`).
                        h.serve_from = Instant::now() + self.config.takeover_wait;
                    }
                    h.valid_until = valid_until;
                    reclaimed += 1;
                }
                Renewal::Lost => {
                    leases.remove(partition);
                    tracing::warn!(partition, "lease lost; no longer serving this partition");
                    metrics::counter!("chat_partition_leases_lost_total").increment(1);
                }
            }
        }
        Ok(reclaimed)
    }

    async fn acquire(
        &self,
        conn: &mut ConnectionManager,
        started: Instant,
        wanted: usize,
    ) -> redis::RedisResult<()> {
        let partitions = self.config.partitions;
        let ttl_ms = self.config.ttl_ms();
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
            let answer: i64 = eval(
                scripts::ACQUIRE,
                &[&lease_key(partition), &handover_key(partition)],
                &[&value, &ttl_ms],
            )
            .query_async(conn)
            .await?;
            let wait = match scripts::acquired(answer) {
                Acquired::No => continue,
                Acquired::Yes => self.config.takeover_wait,
                Acquired::HandedOver => Duration::ZERO,
            };
            let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
            self.held.lock().expect("lease lock").insert(
                partition,
                Held {
                    value,
                    generation,
                    // From the answer, not the round's start: the wait is for the previous
                    // owner's writes, which may land until about `wait` after its lease
                    // ended, no earlier than this answer; a slow round must not shorten it.
                    serve_from: Instant::now() + wait,
                    valid_until: started + self.config.ttl - self.config.margin(),
                    draining: false,
                    vouched: false,
                },
            );
            taken += 1;
            tracing::info!(
                partition,
                generation,
                wait_ms = wait.as_millis() as u64,
                "partition lease acquired"
            );
        }
        Ok(())
    }
}

/// Writes the partition count unless one is there, and returns the one that is.
async fn agree_on_partitions(
    conn: &mut ConnectionManager,
    partitions: u32,
) -> redis::RedisResult<u32> {
    let (agreed,): (u32,) = redis::pipe()
        .set_nx(PARTITIONS_KEY, partitions)
        .ignore()
        .get(PARTITIONS_KEY)
        .query_async(conn)
        .await?;
    Ok(agreed)
}

impl Ownership for PartitionLeases {
    fn owns(&self, chat_id: &ChatId) -> Option<u64> {
        let partition = partition_of(chat_id, self.config.partitions);
        let held = self.held.lock().expect("lease lock");
        let h = held.get(&partition)?;
        (!h.draining && h.valid(Instant::now())).then_some(h.generation)
    }

    fn holds(&self, chat_id: &ChatId, generation: u64) -> bool {
        let partition = partition_of(chat_id, self.config.partitions);
        let held = self.held.lock().expect("lease lock");
        held.get(&partition)
            .is_some_and(|h| h.generation == generation && h.valid(Instant::now()))
    }
}
