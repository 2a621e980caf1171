//! `RemoteChat`: the gateway's `ChatApi` in the scaled-out mode. Calls go over HTTP to the
//! chat-service instance that owns the chat (or any instance for calls that are not about
//! one chat). Sends keep their order: `send` queues synchronously onto one dispatcher,
//! which hands them, still in order, to one pipeline per instance; a pipeline posts one
//! batch at a time. Sends are never retried here (a reply might have been lost after the
//! message was stored); clients retry with the same client_msg_id, which is safe.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::{Chat, ChatListEntry, Message, PushPlatform};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::routes::Routes;
use super::wire::{Answer, Call, SendItem, SendResult, WireError, CALL_PATH, SEND_BATCH_PATH};
use crate::api::{Caller, ChatApi, CreateChat, HistoryQuery, SendOutcome, SendRequest, SyncResult};
use crate::error::ChatError;
use crate::queued::{queue_send, SendReply};

#[derive(Debug, Clone)]
pub struct RemoteChatConfig {
    pub redis_url: String,
    pub max_body_bytes: usize,
    /// Must match the chat services' `CHAT_MAX_PAGE_BYTES`.
    pub max_page_bytes: usize,
    /// Must match the chat services' `CHAT_LARGE_GROUP_MEMBERS`.
    pub large_group_members: usize,
    /// Deadline of one internal request (a send batch includes an fsync).
    pub request_timeout: Duration,
    /// Sends waiting to be dispatched before new ones are refused as unavailable.
    pub send_queue: usize,
}

struct QueuedSend {
    item: SendItem,
    reply: SendReply,
}

pub struct RemoteChat {
    http: reqwest::Client,
    routes: Arc<Routes>,
    sends: mpsc::Sender<QueuedSend>,
    max_body_bytes: usize,
    max_page_bytes: usize,
    large_group_members: usize,
}

const MAX_SEND_BATCH: usize = 512;

impl RemoteChat {
    pub async fn connect(config: RemoteChatConfig) -> Result<Arc<Self>, String> {
        let routes = Arc::new(
            Routes::connect(&config.redis_url)
                .await
                .map_err(|e| e.to_string())?,
        );
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let (sends, queued) = mpsc::channel(config.send_queue.max(1));
        tokio::spawn(dispatch_sends(queued, routes.clone(), http.clone()));
        Ok(Arc::new(RemoteChat {
            http,
            routes,
            sends,
            max_body_bytes: config.max_body_bytes,
            max_page_bytes: config.max_page_bytes,
            large_group_members: config.large_group_members,
        }))
    }

    async fn call(&self, call: Call) -> Result<Answer, ChatError> {
        let attempts = if call.retryable() { 2 } else { 1 };
        let mut last = ChatError::Unavailable("chat service unavailable, retry".into());
        for _ in 0..attempts {
            let url = match call.chat() {
                Some(chat) => self.routes.owner(chat).await?,
                None => self.routes.any().await?,
            };
            let sent = self
                .http
                .post(format!("{url}{CALL_PATH}"))
                .json(&call)
                .send()
                .await;
            let answer = match sent {
                Ok(response) => response.json::<Result<Answer, WireError>>().await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(wire)) => {
                    let error = ChatError::from(wire);
                    if !matches!(error, ChatError::Moved(_)) {
                        return Err(error);
                    }
                    self.routes.forget(call.chat());
                    last = error;
                }
                Err(e) => {
                    tracing::warn!(error = %e, %url, "internal call failed");
                    metrics::counter!("chat_internal_call_failures_total").increment(1);
                    self.routes.forget(call.chat());
                }
            }
        }
        Err(last)
    }
}

/// Unpacks the one answer variant a call must produce; anything else is a bug.
macro_rules! answer {
    ($answer:expr, $variant:pat => $value:expr) => {
        match $answer {
            $variant => Ok($value),
            other => Err(unexpected(other)),
        }
    };
}

fn unexpected(answer: Answer) -> ChatError {
    ChatError::Internal(format!("unexpected answer from chat service: {answer:?}"))
}

/// Takes sends in call order and hands each to the pipeline of its chat's owner.
async fn dispatch_sends(
    mut queued: mpsc::Receiver<QueuedSend>,
    routes: Arc<Routes>,
    http: reqwest::Client,
) {
    let mut pipelines: HashMap<String, mpsc::UnboundedSender<QueuedSend>> = HashMap::new();
    while let Some(send) = queued.recv().await {
        let url = match routes.owner(&send.item.request.chat_id).await {
            Ok(url) => url,
            Err(e) => {
                let _ = send.reply.send(Err(e));
                continue;
            }
        };
        let pipeline = pipelines.entry(url.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(post_batches(url.clone(), rx, routes.clone(), http.clone()));
            tx
        });
        if let Err(mpsc::error::SendError(send)) = pipeline.send(send) {
            let _ = send
                .reply
                .send(Err(ChatError::Unavailable("send pipeline closed".into())));
        }
    }
}

/// One instance's send pipeline: one batch in flight at a time, so order is kept.
async fn post_batches(
    url: String,
    mut rx: mpsc::UnboundedReceiver<QueuedSend>,
    routes: Arc<Routes>,
    http: reqwest::Client,
) {
    let mut batch = Vec::with_capacity(MAX_SEND_BATCH);
    while rx.recv_many(&mut batch, MAX_SEND_BATCH).await > 0 {
        let (items, replies): (Vec<SendItem>, Vec<_>) =
            batch.drain(..).map(|q| (q.item, q.reply)).unzip();
        let response = http
            .post(format!("{url}{SEND_BATCH_PATH}"))
            .json(&items)
            .send()
            .await;
        let results = match response {
            Ok(r) => r.json::<Vec<SendResult>>().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match results {
            Ok(results) if results.len() == replies.len() => {
                for ((item, reply), result) in items.iter().zip(replies).zip(results) {
                    let result = result.map_err(ChatError::from);
                    if matches!(result, Err(ChatError::Moved(_))) {
                        routes.forget(Some(&item.request.chat_id));
                    }
                    let _ = reply.send(result);
                }
            }
            other => {
                let reason = other
                    .err()
                    .unwrap_or_else(|| "reply of the wrong length".into());
                tracing::warn!(%url, %reason, "send batch failed");
                metrics::counter!("chat_internal_call_failures_total").increment(1);
                for (item, reply) in items.iter().zip(replies) {
                    routes.forget(Some(&item.request.chat_id));
                    let _ = reply.send(Err(ChatError::Unavailable(
                        "chat service unreachable, retry".into(),
                    )));
                }
            }
        }
    }
}

#[async_trait]
impl ChatApi for RemoteChat {
    fn send(
        &self,
        caller: &Caller,
        request: SendRequest,
    ) -> BoxFuture<'static, Result<SendOutcome, ChatError>> {
        let caller = caller.clone();
        queue_send(
            &self.sends,
            request,
            self.max_body_bytes,
            "gateway send queue",
            |request, reply| QueuedSend {
                item: SendItem { caller, request },
                reply,
            },
        )
    }

    async fn create_chat(
        &self,
        caller: &Caller,
        request: CreateChat,
    ) -> Result<(Chat, bool), ChatError> {
        answer!(self
            .call(Call::CreateChat {
                caller: caller.clone(),
                request,
            })
            .await?, Answer::Created { chat, created } => (chat, created))
    }

    async fn list_chats(&self, caller: &Caller) -> Result<Vec<ChatListEntry>, ChatError> {
        answer!(self
            .call(Call::ListChats {
                caller: caller.clone(),
            })
            .await?, Answer::Chats(chats) => chats)
    }

    async fn get_chat(&self, caller: &Caller, chat_id: &str) -> Result<Chat, ChatError> {
        answer!(self
            .call(Call::GetChat {
                caller: caller.clone(),
                chat_id: chat_id.into(),
            })
            .await?, Answer::Chat(chat) => chat)
    }

    async fn add_members(
        &self,
        caller: &Caller,
        chat_id: &str,
        user_ids: Vec<String>,
    ) -> Result<Chat, ChatError> {
        answer!(self
            .call(Call::AddMembers {
                caller: caller.clone(),
                chat_id: chat_id.into(),
                user_ids,
            })
            .await?, Answer::Chat(chat) => chat)
    }

    async fn remove_member(
        &self,
        caller: &Caller,
        chat_id: &str,
        user_id: &str,
    ) -> Result<(), ChatError> {
        let call = Call::RemoveMember {
            caller: caller.clone(),
            chat_id: chat_id.into(),
            user_id: user_id.into(),
        };
        answer!(self.call(call).await?, Answer::Done => ())
    }

    async fn history(
        &self,
        caller: &Caller,
        chat_id: &str,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ChatError> {
        answer!(self
            .call(Call::History {
                caller: caller.clone(),
                chat_id: chat_id.into(),
                query,
            })
            .await?, Answer::Messages(messages) => messages)
    }

    async fn sync(
        &self,
        caller: &Caller,
        cursors: HashMap<String, u64>,
        limit: Option<u32>,
    ) -> Result<SyncResult, ChatError> {
        answer!(self
            .call(Call::Sync {
                caller: caller.clone(),
                cursors,
                limit,
            })
            .await?, Answer::Synced(result) => result)
    }

    async fn mark_delivered(
        &self,
        caller: &Caller,
        chat_id: &str,
        seq: u64,
    ) -> Result<(), ChatError> {
        answer!(self
            .call(Call::MarkDelivered {
                caller: caller.clone(),
                chat_id: chat_id.into(),
                seq,
            })
            .await?, Answer::Done => ())
    }

    async fn mark_read(&self, caller: &Caller, chat_id: &str, seq: u64) -> Result<(), ChatError> {
        answer!(self
            .call(Call::MarkRead {
                caller: caller.clone(),
                chat_id: chat_id.into(),
                seq,
            })
            .await?, Answer::Done => ())
    }

    async fn typing(&self, caller: &Caller, chat_id: &str) -> Result<(), ChatError> {
        answer!(self
            .call(Call::Typing {
                caller: caller.clone(),
                chat_id: chat_id.into(),
            })
            .await?, Answer::Done => ())
    }

    async fn visible_users(
        &self,
        caller: &Caller,
        user_ids: &[String],
    ) -> Result<HashSet<String>, ChatError> {
        answer!(self
            .call(Call::VisibleUsers {
                caller: caller.clone(),
                user_ids: user_ids.to_vec(),
            })
            .await?, Answer::Users(users) => users)
    }

    async fn register_device(
        &self,
        caller: &Caller,
        device_id: &str,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), ChatError> {
        let call = Call::RegisterDevice {
            caller: caller.clone(),
            device_id: device_id.into(),
            platform,
            token: token.into(),
        };
        answer!(self.call(call).await?, Answer::Done => ())
    }

    async fn unregister_device(&self, caller: &Caller, device_id: &str) -> Result<bool, ChatError> {
        answer!(self
            .call(Call::UnregisterDevice {
                caller: caller.clone(),
                device_id: device_id.into(),
            })
            .await?, Answer::Existed(existed) => existed)
    }

    async fn large_groups(&self, caller: &Caller) -> Result<Vec<String>, ChatError> {
        answer!(self
            .call(Call::LargeGroups {
                caller: caller.clone(),
            })
            .await?, Answer::ChatIds(ids) => ids)
    }

    async fn ready(&self) -> Result<(), ChatError> {
        answer!(self.call(Call::Ready).await?, Answer::Done => ())
    }

    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn max_page_bytes(&self) -> usize {
        self.max_page_bytes
    }

    fn large_group_members(&self) -> usize {
        self.large_group_members
    }
}
