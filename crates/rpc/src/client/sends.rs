//! The send path to the chat services. `send` queues synchronously onto one dispatcher, in
//! call order; the dispatcher (`dispatch`) hands each send to the pipeline of its chat's
//! owner; a pipeline keeps one gRPC stream open to its instance and writes sends to it in order,
//! every send waiting at that moment in one batch (one message, one HTTP/2 frame rather
//! than one per send), with as many in flight as the stream allows, and completes each as
//! its reply arrives.
//! A send answered `moved` or lost with a failed stream goes back to the dispatcher, which
//! tries it again within the reroute window, in order (the client_msg_id makes it safe);
//! past the window, or on any other error, the answer goes to the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_api::{Caller, ChatError, SendOutcome, SendRequest, TAKEOVER_RETRY};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::channels::Channels;
use super::dispatch::{Flights, Requeue};
use super::routes::Routes;
use crate::convert::{caller_to_pb, error_from_pb, error_from_status, outcome_from_pb};
use crate::pb;

pub(crate) type SendReply = oneshot::Sender<Result<SendOutcome, ChatError>>;

/// A send waiting to be dispatched.
pub(crate) struct QueuedSend {
    pub(crate) caller: Caller,
    pub(crate) request: SendRequest,
    pub(crate) reply: SendReply,
    /// The sender's trace context, taken where the send was made (empty when off).
    pub(crate) traceparent: String,
    /// When it was first tried, and how many times it was tried again since.
    pub(crate) since: Instant,
    pub(crate) attempt: u32,
    /// Its place in call order, given by the dispatcher.
    pub(crate) order: u64,
}

/// Sends waiting for one owner's stream; past it they are refused as unavailable.
const PIPELINE_QUEUE: usize = 8192;
/// Batches written to a stream but not yet taken by HTTP/2.
const STREAM_BUFFER: usize = 64;
/// Most sends in one batch (the rest wait for the next, which follows at once).
const MAX_BATCH_ITEMS: usize = 512;
/// Bytes of a send item besides its strings (ids, deadline, field tags).
const ITEM_OVERHEAD_BYTES: usize = 64;
/// How often a stream's pending sends are checked for expired deadlines.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn spawn_pipeline(
    pipeline: Pipeline,
    max_batch_bytes: usize,
) -> mpsc::Sender<QueuedSend> {
    let (tx, rx) = mpsc::channel(PIPELINE_QUEUE);
    tokio::spawn(pipeline.run(rx, max_batch_bytes));
    tx
}

/// Sends written to the stream, waiting for their replies, by id.
type Pending = Arc<Mutex<HashMap<u64, Waiting>>>;

struct Waiting {
    deadline: Instant,
    /// Kept whole, to be tried again elsewhere.
    send: QueuedSend,
}

pub(crate) struct Pipeline {
    url: String,
    routes: Arc<Routes>,
    channels: Arc<Channels>,
    requeue: Requeue,
    flights: Arc<Flights>,
    timeout: Duration,
    next_id: u64,
    pending: Pending,
    /// The open stream's request side and the token its reader cancels when the stream
    /// ends; `None` until opened.
    stream: Option<(mpsc::Sender<pb::SendBatch>, CancellationToken)>,
}

impl Pipeline {
    pub(crate) fn new(
        url: String,
        routes: Arc<Routes>,
        channels: Arc<Channels>,
        requeue: Requeue,
        flights: Arc<Flights>,
        timeout: Duration,
    ) -> Self {
        Pipeline {
            url,
            routes,
            channels,
            requeue,
            flights,
            timeout,
            next_id: 0,
            pending: Arc::default(),
            stream: None,
        }
    }

    /// Writes batches until the dispatcher goes away. A batch is every send waiting, up
    /// to `MAX_BATCH_ITEMS` and `max_batch_bytes`; a send that would overfill it starts
    /// the next one.
    async fn run(mut self, mut sends: mpsc::Receiver<QueuedSend>, max_batch_bytes: usize) {
        let mut carried: Option<QueuedSend> = None;
        loop {
            let first = match carried.take() {
                Some(send) => send,
                None => match sends.recv().await {
                    Some(send) => send,
                    None => return,
                },
            };
            let mut bytes = item_bytes(&first);
            let mut items = vec![self.register(first)];
            while items.len() < MAX_BATCH_ITEMS {
                let Ok(send) = sends.try_recv() else { break };
                bytes += item_bytes(&send);
                if bytes > max_batch_bytes {
                    carried = Some(send);
                    break;
                }
                items.push(self.register(send));
            }
            self.write(pb::SendBatch { items }).await;
        }
    }

    /// Gives the send its stream id and waits for its reply under that id.
    fn register(&mut self, send: QueuedSend) -> pb::SendItem {
        self.next_id += 1;
        let id = self.next_id;
        let item = pb::SendItem {
            id,
            caller: caller_to_pb(&send.caller),
            chat_id: send.request.chat_id.to_string(),
            client_msg_id: send.request.client_msg_id.clone(),
            body: send.request.body.clone(),
            deadline_ms: chat_protocol::now_ms() + self.timeout.as_millis() as i64,
            traceparent: send.traceparent.clone(),
        };
        let waiting = Waiting {
            deadline: Instant::now() + self.timeout,
            send,
        };
        self.pending
            .lock()
            .expect("pending lock")
            .insert(id, waiting);
        item
    }

    async fn write(&mut self, mut batch: pb::SendBatch) {
        // A stream that failed since the last write is noticed here, with the batch still
        // unsent: open a new one and write it there.
        for _ in 0..2 {
            let stream = match self.live_stream() {
                Some(stream) => stream,
                None => match self.open().await {
                    Ok(stream) => stream,
                    Err(e) => {
                        self.fail_all(e);
                        return;
                    }
                },
            };
            match stream.send(batch).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(unsent)) => {
                    self.stream = None;
                    batch = unsent;
                }
            }
        }
        self.fail_all(ChatError::unavailable_for(
            "chat service stream closed, retry",
            TAKEOVER_RETRY,
        ));
    }

    /// The open stream, unless its reader saw it end.
    fn live_stream(&mut self) -> Option<mpsc::Sender<pb::SendBatch>> {
        match &self.stream {
            Some((items, ended)) if !ended.is_cancelled() => Some(items.clone()),
            _ => {
                self.stream = None;
                None
            }
        }
    }

    /// Opens the stream and starts reading its replies.
    async fn open(&mut self) -> Result<mpsc::Sender<pb::SendBatch>, ChatError> {
        let mut client = self.channels.get(&self.url)?;
        let (items, outgoing) = mpsc::channel(STREAM_BUFFER);
        let replies = client
            .send(tonic::Request::new(ReceiverStream::new(outgoing)))
            .await
            .map_err(|status| {
                tracing::warn!(url = %self.url, %status, "cannot open a send stream");
                metrics::counter!("chat_internal_call_failures_total").increment(1);
                error_from_status(status)
            })?
            .into_inner();
        let ended = CancellationToken::new();
        tokio::spawn(read_replies(
            replies,
            self.completion(),
            self.url.clone(),
            ended.clone(),
        ));
        self.stream = Some((items.clone(), ended));
        Ok(items)
    }

    fn fail_all(&mut self, error: ChatError) {
        self.completion().fail_pending(&error);
    }

    fn completion(&self) -> Completion {
        Completion {
            pending: self.pending.clone(),
            routes: self.routes.clone(),
            requeue: self.requeue.clone(),
            flights: self.flights.clone(),
        }
    }
}

/// Completes each pending send as its reply comes; when the stream ends or fails, the
/// sends still pending are answered `unavailable`.
async fn read_replies(
    mut replies: tonic::Streaming<pb::SendReplies>,
    completion: Completion,
    url: String,
    stream_ended: CancellationToken,
) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let ended = loop {
        tokio::select! {
            reply = replies.message() => match reply {
                Ok(Some(batch)) => {
                    for reply in batch.replies {
                        completion.complete(reply);
                    }
                }
                Ok(None) => break ChatError::unavailable_for("chat service closed the send stream, retry", TAKEOVER_RETRY),
                Err(status) => {
                    tracing::warn!(%url, %status, "send stream failed");
                    metrics::counter!("chat_internal_call_failures_total").increment(1);
                    break ChatError::unavailable_for("chat service unreachable, retry", TAKEOVER_RETRY);
                }
            },
            _ = sweep.tick() => completion.expire(),
        }
    };
    // New writes go to a new stream from now on; what was written here is tried again.
    stream_ended.cancel();
    completion.fail_pending(&ended);
}

/// What a send adds to its batch, near enough to keep a batch under the message limit.
fn item_bytes(send: &QueuedSend) -> usize {
    let caller = &send.caller;
    ITEM_OVERHEAD_BYTES
        + send.request.body.len()
        + send.request.client_msg_id.len()
        + send.request.chat_id.as_str().len()
        + caller.user_id.as_str().len()
        + caller.device_id.as_str().len()
}

/// Where a stream's replies go: to the waiting callers, or back to the dispatcher.
struct Completion {
    pending: Pending,
    routes: Arc<Routes>,
    requeue: Requeue,
    flights: Arc<Flights>,
}

impl Completion {
    fn complete(&self, reply: pb::SendReply) {
        let Some(waiting) = self.pending.lock().expect("pending lock").remove(&reply.id) else {
            return;
        };
        self.flights.done(&waiting.send.request.chat_id);
        let result = match reply.result {
            Some(pb::send_reply::Result::Ok(outcome)) => Ok(outcome_from_pb(outcome)),
            Some(pb::send_reply::Result::Error(e)) => Err(error_from_pb(e)),
            None => Err(ChatError::internal("send reply without a result")),
        };
        match result {
            Err(moved @ ChatError::Moved { .. }) => {
                self.routes.forget(Some(&waiting.send.request.chat_id));
                self.requeue.again(waiting.send, moved);
            }
            result => {
                let _ = waiting.send.reply.send(result);
            }
        }
    }

    /// Gives up on sends whose deadline passed (the caller stopped waiting).
    fn expire(&self) {
        let now = Instant::now();
        let mut pending = self.pending.lock().expect("pending lock");
        pending.retain(|_, w| {
            let live = w.deadline > now;
            if !live {
                self.flights.done(&w.send.request.chat_id);
            }
            live
        });
    }

    /// The stream failed: whatever was waiting on it is tried again (its fate is unknown,
    /// which its client_msg_id makes harmless).
    fn fail_pending(&self, error: &ChatError) {
        let failed: Vec<Waiting> = self
            .pending
            .lock()
            .expect("pending lock")
            .drain()
            .map(|(_, w)| w)
            .collect();
        // In call order, so the dispatcher parks them in it.
        let mut failed = failed;
        failed.sort_by_key(|w| w.send.order);
        for waiting in failed {
            self.flights.done(&waiting.send.request.chat_id);
            self.routes.forget(Some(&waiting.send.request.chat_id));
            self.requeue.again(waiting.send, error.clone());
        }
    }
}
