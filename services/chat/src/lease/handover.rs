//! Letting partitions go: to rebalance onto a new instance, or all of them at shutdown.
//! A handover stops new work in the partitions, waits for the appends already accepted
//! (the chat service's barrier), releases the leases marked clean when all of them
//! finished, and announces it so another instance takes the partitions at once, without
//! a takeover wait.

use redis::aio::ConnectionManager;

use chat_rpc::placement::{handover_key, instance_key, lease_key, INSTANCES_KEY, RELEASED_CHANNEL};

use super::scripts::{self, eval};
use super::PartitionLeases;

impl PartitionLeases {
    /// Hands `partitions` over (see the module doc); errors only cost the clean marker or
    /// the announcement, since an unreleased lease expires by itself.
    pub(super) async fn hand_over(&self, conn: &mut ConnectionManager, partitions: Vec<u32>) {
        if partitions.is_empty() {
            return;
        }
        let clean = self.drain(&partitions).await;
        let pipe = self.releases(&partitions, clean);
        self.send_release(conn, pipe, partitions.len(), clean).await;
    }

    /// Hands `partitions` over without the clean mark: the next owner waits as after a
    /// crash (for when this instance cannot vouch for what it wrote).
    pub(super) async fn let_go(&self, conn: &mut ConnectionManager, partitions: Vec<u32>) {
        self.drain(&partitions).await;
        let pipe = self.releases(&partitions, false);
        self.send_release(conn, pipe, partitions.len(), false).await;
    }

    /// At shutdown: hands everything over and leaves the instance registry in one step, so
    /// the instances that hear of it count one fewer when they take their new share.
    pub(super) async fn leave(&self) {
        let partitions = self.held_partitions();
        let clean = self.drain(&partitions).await;
        let mut pipe = self.releases(&partitions, clean);
        pipe.zrem(INSTANCES_KEY, &self.config.instance_id)
            .ignore()
            .del(instance_key(&self.config.instance_id))
            .ignore();
        let mut conn = self.conn.clone();
        self.send_release(&mut conn, pipe, partitions.len(), clean)
            .await;
    }

    /// Stops new work in `partitions` and waits, at most for what is left of their
    /// validity, for the appends accepted so far; true when all of them were stored.
    /// A partition still in its takeover wait is never vouched for (`vouched`): the owner
    /// before this one may still be writing to it.
    async fn drain(&self, partitions: &[u32]) -> bool {
        {
            let now = std::time::Instant::now();
            let mut held = self.held.lock().expect("lease lock");
            for partition in partitions {
                if let Some(h) = held.get_mut(partition) {
                    h.draining = true;
                    h.vouched = now >= h.serve_from;
                }
            }
        }
        let Some(barrier) = self.barrier.get() else {
            return false;
        };
        let limit = self.config.ttl - self.config.margin();
        tokio::time::timeout(limit, barrier.settled())
            .await
            .unwrap_or(false)
    }

    /// Forgets `partitions` (serving stops before the lease goes, never after) and builds
    /// the pipeline that releases them and announces it.
    fn releases(&self, partitions: &[u32], clean: bool) -> redis::Pipeline {
        let marker_ttl_ms = (self.config.ttl * 10).as_millis().to_string();
        let clean = if clean { "1" } else { "0" };
        let mut pipe = redis::pipe();
        let mut held = self.held.lock().expect("lease lock");
        for partition in partitions {
            let Some(h) = held.remove(partition) else {
                continue;
            };
            let mark = if h.vouched { clean } else { "0" };
            pipe.add_command(eval(
                scripts::RELEASE,
                &[&lease_key(*partition), &handover_key(*partition)],
                &[&h.value, &marker_ttl_ms, mark],
            ))
            .ignore();
        }
        pipe.publish(RELEASED_CHANNEL, &self.config.instance_id)
            .ignore();
        pipe
    }

    async fn send_release(
        &self,
        conn: &mut ConnectionManager,
        pipe: redis::Pipeline,
        count: usize,
        clean: bool,
    ) {
        match pipe.query_async::<()>(conn).await {
            Ok(()) => {
                tracing::info!(partitions = count, clean, "partitions handed over");
                metrics::counter!("chat_partition_handovers_total", "clean" => clean.to_string())
                    .increment(count as u64);
            }
            Err(e) => {
                tracing::warn!(error = %e, partitions = count, "partition release failed; the leases will expire");
                metrics::counter!("chat_redis_errors_total", "op" => "lease").increment(1);
            }
        }
    }
}
