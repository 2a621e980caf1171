//! Sending through a queue: both the in-process service (onto its sequencer) and the
//! remote client (onto its dispatcher) queue a send synchronously, so sends keep their call
//! order, and hand back the future of its outcome.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::api::{SendOutcome, SendRequest};
use crate::error::ChatError;
use crate::service::validate_send;

pub(crate) type SendReply = oneshot::Sender<Result<SendOutcome, ChatError>>;

/// Validates `request`, queues the command `build` makes of it and its reply channel, and
/// returns the outcome's future. A full queue refuses at once rather than buffering
/// without bound; `who` names the queue's owner in those errors.
pub(crate) fn queue_send<C: Send + 'static>(
    queue: &mpsc::Sender<C>,
    request: SendRequest,
    max_body_bytes: usize,
    who: &'static str,
    build: impl FnOnce(SendRequest, SendReply) -> C,
) -> BoxFuture<'static, Result<SendOutcome, ChatError>> {
    if let Err(e) = validate_send(&request, max_body_bytes) {
        return futures_util::future::ready(Err(e)).boxed();
    }
    let (reply, outcome) = oneshot::channel();
    if queue.try_send(build(request, reply)).is_err() {
        metrics::counter!("chat_send_overload_total").increment(1);
        let error = ChatError::Unavailable(format!("{who} overloaded, retry later"));
        return futures_util::future::ready(Err(error)).boxed();
    }
    async move {
        outcome
            .await
            .unwrap_or_else(|_| Err(ChatError::Unavailable(format!("{who} stopping"))))
    }
    .boxed()
}
