//! Hearing that another instance let partitions go: a subscription to `RELEASED_CHANNEL`
//! that wakes the lease loop, so free partitions are taken at once rather than at the next
//! round. Only a shortcut: a missed notice costs one round (a third of the TTL).

use std::sync::Arc;
use std::time::Duration;

use chat_rpc::placement::RELEASED_CHANNEL;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Follows the channel until `shutdown`, reconnecting with backoff when Redis goes away,
/// and wakes `wake` on every notice (and after every reconnect, when notices may have been
/// missed).
pub(super) async fn follow(client: redis::Client, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut backoff = FIRST_BACKOFF;
    while !shutdown.is_cancelled() {
        match listen(&client, &wake, &shutdown, &mut backoff).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "partition notices lost; reconnecting"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn listen(
    client: &redis::Client,
    wake: &Notify,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) -> redis::RedisResult<()> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(RELEASED_CHANNEL).await?;
    let subscribed = std::time::Instant::now();
    wake.notify_one();
    let mut notices = pubsub.on_message();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            notice = notices.next() => match notice {
                Some(_) => wake.notify_one(),
                None => {
                    // Back off afresh only after a subscription that lasted: a Redis that
                    // drops each one at once is retried ever more slowly.
                    if subscribed.elapsed() > MAX_BACKOFF {
                        *backoff = FIRST_BACKOFF;
                    }
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "subscription closed",
                    )))
                }
            },
        }
    }
}
