//! Where to send a call: the owner of a chat's partition (from its lease), or any live
//! instance. Lookups are cached briefly and forgotten when an instance answers `moved` or
//! cannot be reached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chat_api::{ChatError, ChatId, TAKEOVER_RETRY};
use chat_protocol::now_ms;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use crate::placement::{
    instance_key, lease_holder, lease_key, partition_of, INSTANCES_KEY, PARTITIONS_KEY,
};

/// How long a looked-up route is trusted without asking Redis again.
const FRESH_FOR: Duration = Duration::from_millis(500);
/// How long "this partition has no owner" is believed: while a partition changes owner,
/// every parked send of it asks again on each retry pass, and one answer serves them all.
const NO_OWNER_FOR: Duration = Duration::from_millis(20);

pub(crate) struct Routes {
    conn: ConnectionManager,
    partitions: Mutex<Option<u32>>,
    owners: Mutex<HashMap<u32, (Instant, String)>>,
    no_owner: Mutex<HashMap<u32, (Instant, ChatError)>>,
    instances: Mutex<(Instant, Vec<String>, usize)>,
}

fn unavailable(what: &str) -> ChatError {
    ChatError::unavailable(format!("{what}; retry"))
}

fn redis_down(e: redis::RedisError) -> ChatError {
    metrics::counter!("chat_redis_errors_total", "op" => "routes").increment(1);
    tracing::warn!(error = %e, "route lookup failed");
    unavailable("routing unavailable")
}

impl Routes {
    pub(crate) async fn connect(url: &str) -> redis::RedisResult<Self> {
        let conn = ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(Routes {
            conn,
            partitions: Mutex::new(None),
            owners: Mutex::new(HashMap::new()),
            no_owner: Mutex::new(HashMap::new()),
            instances: Mutex::new((Instant::now() - FRESH_FOR, Vec::new(), 0)),
        })
    }

    async fn partitions(&self) -> Result<u32, ChatError> {
        if let Some(p) = *self.partitions.lock().expect("routes lock") {
            return Ok(p);
        }
        let stored: Option<u32> = self
            .conn
            .clone()
            .get(PARTITIONS_KEY)
            .await
            .map_err(redis_down)?;
        let p = stored.ok_or_else(|| unavailable("no chat service has started yet"))?;
        *self.partitions.lock().expect("routes lock") = Some(p);
        Ok(p)
    }

    /// The base URL of the instance that owns `chat_id`.
    pub(crate) async fn owner(&self, chat_id: &ChatId) -> Result<String, ChatError> {
        let partition = partition_of(chat_id, self.partitions().await?);
        if let Some((at, url)) = self.owners.lock().expect("routes lock").get(&partition) {
            if at.elapsed() < FRESH_FOR {
                return Ok(url.clone());
            }
        }
        if let Some((at, error)) = self.no_owner.lock().expect("routes lock").get(&partition) {
            if at.elapsed() < NO_OWNER_FOR {
                return Err(error.clone());
            }
        }
        let found = self.look_up(partition).await;
        let mut no_owner = self.no_owner.lock().expect("routes lock");
        match &found {
            Ok(_) => {
                no_owner.remove(&partition);
            }
            Err(e) => {
                no_owner.insert(partition, (Instant::now(), e.clone()));
            }
        }
        found
    }

    /// Asks Redis who owns `partition`, and remembers the answer.
    async fn look_up(&self, partition: u32) -> Result<String, ChatError> {
        let mut conn = self.conn.clone();
        let lease: Option<String> = conn.get(lease_key(partition)).await.map_err(redis_down)?;
        let lease = lease.ok_or_else(|| {
            ChatError::unavailable_for("chat has no owner at the moment; retry", TAKEOVER_RETRY)
        })?;
        let url: Option<String> = conn
            .get(instance_key(lease_holder(&lease)))
            .await
            .map_err(redis_down)?;
        let Some(url) = url else {
            // The owner stopped heartbeating: its lease runs out, then a survivor takes it.
            let left_ms: i64 = conn.pttl(lease_key(partition)).await.map_err(redis_down)?;
            let wait = Duration::from_millis(left_ms.max(0) as u64) + TAKEOVER_RETRY;
            return Err(ChatError::unavailable_for(
                "chat owner is gone; retry",
                wait,
            ));
        };
        self.owners
            .lock()
            .expect("routes lock")
            .insert(partition, (Instant::now(), url.clone()));
        Ok(url)
    }

    /// Some live instance, round robin.
    pub(crate) async fn any(&self) -> Result<String, ChatError> {
        {
            let mut cached = self.instances.lock().expect("routes lock");
            if cached.0.elapsed() < FRESH_FOR && !cached.1.is_empty() {
                cached.2 = cached.2.wrapping_add(1);
                return Ok(cached.1[cached.2 % cached.1.len()].clone());
            }
        }
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrangebyscore(INSTANCES_KEY, now_ms(), "+inf")
            .await
            .map_err(redis_down)?;
        let mut urls = Vec::with_capacity(ids.len());
        for id in ids {
            let url: Option<String> = conn.get(instance_key(&id)).await.map_err(redis_down)?;
            urls.extend(url);
        }
        let first = urls
            .first()
            .cloned()
            .ok_or_else(|| unavailable("no chat service is running"))?;
        *self.instances.lock().expect("routes lock") = (Instant::now(), urls, 0);
        Ok(first)
    }

    /// Drops cached routes after a `moved` answer or a failed request.
    pub(crate) fn forget(&self, chat_id: Option<&ChatId>) {
        let partitions = *self.partitions.lock().expect("routes lock");
        match (chat_id, partitions) {
            (Some(chat), Some(p)) => {
                self.owners
                    .lock()
                    .expect("routes lock")
                    .remove(&partition_of(chat, p));
            }
            _ => self.instances.lock().expect("routes lock").0 = Instant::now() - FRESH_FOR,
        }
    }
}
