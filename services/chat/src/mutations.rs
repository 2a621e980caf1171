//! Owner-scoped changes in progress (members, roles, blocks). A handover waits for them as
//! it waits for appends, so the next owner loads what they wrote rather than caching the
//! state from before them.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct Mutations {
    in_progress: AtomicUsize,
    idle: Notify,
}

/// Counts one change as in progress until dropped.
pub(crate) struct MutationGuard<'a>(&'a Mutations);

impl Mutations {
    /// Call before the ownership check: a change that passes it is then sure to be waited
    /// for by a handover that starts after it.
    pub(crate) fn begin(&self) -> MutationGuard<'_> {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        MutationGuard(self)
    }

    /// Resolves once no change is in progress.
    pub(crate) async fn settled(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.in_progress.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for MutationGuard<'_> {
    fn drop(&mut self) {
        if self.0.in_progress.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn settles_only_once_every_change_has_ended() {
        let mutations = Mutations::default();
        mutations.settled().await;
        let guard = mutations.begin();
        let waiting = tokio::time::timeout(Duration::from_millis(50), mutations.settled()).await;
        assert!(waiting.is_err(), "settled while a change was in progress");
        drop(guard);
        tokio::time::timeout(Duration::from_secs(1), mutations.settled())
            .await
            .expect("settles after the last change ends");
    }
}
