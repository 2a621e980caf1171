//! `RemoteChat`: the gateway's `ChatApi` in the scaled-out mode. Chat-scoped calls go to
//! the instance that owns the chat, others to any live instance; each call carries the
//! caller's deadline (`grpc-timeout`) and a service token. While a chat changes owner,
//! calls are tried again within the reroute window (see `reroute`): any call answered
//! `moved` or never sent for want of an owner; reads and idempotent calls also once after
//! a transport failure, not calls whose effect may have happened; sends as `sends` says.

mod channels;
mod dispatch;
mod reroute;
mod routes;
mod sends;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_api::{
    Caller, ChatApi, ChatError, ChatId, CreateChat, CreatedChat, DeviceId, ErrorKind, HistoryQuery,
    SendOutcome, SendRequest, SyncRequest, SyncResult, UserId,
};
use chat_protocol::ids::direct_chat_id;
use chat_protocol::{Chat, ChatListEntry, Message, PresenceEntry, PrivacySettings, PushPlatform};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::auth::Credentials;
use crate::convert::*;
use crate::limits::RpcLimits;
use crate::pb;
use channels::{Channels, Client};
use reroute::Reroute;
use routes::Routes;
use sends::QueuedSend;

#[derive(Clone)]
pub struct RemoteChatConfig {
    pub redis_url: String,
    pub max_body_bytes: usize,
    /// Must match the chat services' `CHAT_MAX_PAGE_BYTES`.
    pub max_page_bytes: usize,
    /// Deadline of one call (a send includes an fsync).
    pub request_timeout: Duration,
    /// Sends waiting to be dispatched before new ones are refused as unavailable.
    pub send_queue: usize,
    /// How long a call may be tried again while its chat changes owner.
    pub reroute_window: Duration,
    pub limits: RpcLimits,
    pub credentials: Credentials,
}

/// Why the client could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect Redis for routing: {0}")]
    Redis(#[source] redis::RedisError),
}

pub struct RemoteChat {
    routes: Arc<Routes>,
    channels: Arc<Channels>,
    sends: mpsc::Sender<QueuedSend>,
    reroute: Reroute,
    timeout: Duration,
    max_body_bytes: usize,
    max_page_bytes: usize,
}

impl RemoteChat {
    pub async fn connect(config: RemoteChatConfig) -> Result<Arc<Self>, ConnectError> {
        let routes = Arc::new(
            Routes::connect(&config.redis_url)
                .await
                .map_err(ConnectError::Redis)?,
        );
        let max_batch_bytes = config.limits.max_message_bytes;
        let channels = Arc::new(Channels::new(config.credentials, config.limits));
        let (sends, queued) = mpsc::channel(config.send_queue.max(1));
        let reroute = Reroute::new(config.reroute_window);
        tokio::spawn(dispatch::Dispatcher::run(
            routes.clone(),
            channels.clone(),
            reroute,
            config.request_timeout,
            max_batch_bytes,
            queued,
        ));
        Ok(Arc::new(RemoteChat {
            routes,
            channels,
            sends,
            reroute,
            timeout: config.request_timeout,
            max_body_bytes: config.max_body_bytes,
            max_page_bytes: config.max_page_bytes,
        }))
    }

    /// A request with the caller's deadline.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Makes a call at the chat's owner (or any instance). Tried again within the reroute
    /// window when it was answered `moved` or never sent; once after a transport failure
    /// when `retryable`.
    async fn call<T, F, Fut>(
        &self,
        chat: Option<&ChatId>,
        retryable: bool,
        f: F,
    ) -> Result<T, ChatError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let since = Instant::now();
        let mut transport_retried = false;
        for attempt in 0.. {
            let (error, sent) = match self.try_call(chat, &f).await {
                Ok(answer) => return Ok(answer),
                Err(failed) => failed,
            };
            let again = match error.kind() {
                ErrorKind::Moved => true,
                ErrorKind::Unavailable if sent => {
                    let again = retryable && !transport_retried;
                    transport_retried = true;
                    again
                }
                ErrorKind::Unavailable => true,
                _ => false,
            };
            if !again {
                return Err(error);
            }
            if sent && error.kind() == ErrorKind::Unavailable {
                metrics::counter!("chat_internal_call_failures_total").increment(1);
            }
            self.routes.forget(chat);
            match self.reroute.pause(since, attempt) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => return Err(error),
            }
        }
        unreachable!("the loop returns")
    }

    /// One try; an error says whether the call reached a chat service.
    async fn try_call<T, F, Fut>(
        &self,
        chat: Option<&ChatId>,
        f: &F,
    ) -> Result<T, (ChatError, bool)>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let url = match chat {
            Some(chat) => self.routes.owner(chat).await,
            None => self.routes.any().await,
        }
        .map_err(|e| (e, false))?;
        let client = self.channels.get(&url).map_err(|e| (e, false))?;
        match f(client).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err((error_from_status(status), true)),
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
        if let Err(e) = chat_api::validate_send(&request, self.max_body_bytes) {
            return futures_util::future::ready(Err(e)).boxed();
        }
        let (reply, outcome) = oneshot::channel();
        let queued = QueuedSend {
            caller: caller.clone(),
            request,
            reply,
            traceparent: chat_ops::trace_context::current_traceparent(),
            since: Instant::now(),
            attempt: 0,
            order: 0,
        };
        if self.sends.try_send(queued).is_err() {
            metrics::counter!("chat_send_overload_total").increment(1);
            let full = ChatError::unavailable("gateway send queue full, retry");
            return futures_util::future::ready(Err(full)).boxed();
        }
        let timeout = self.timeout;
        async move {
            match tokio::time::timeout(timeout, outcome).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ChatError::unavailable("send pipeline stopped, retry")),
                Err(_) => Err(ChatError::unavailable("chat service too slow, retry")),
            }
        }
        .boxed()
    }

    async fn create_chat(
        &self,
        caller: &Caller,
        request: CreateChat,
    ) -> Result<CreatedChat, ChatError> {
        let message = pb::CreateChatRequest {
            caller: caller_to_pb(caller),
            kind: kind_to_pb(request.kind),
            title: request.title,
            members: request.members.into_iter().map(String::from).collect(),
        };
        let created = self
            .call(None, false, |mut c| {
                let r = self.request(message.clone());
                async move { c.create_chat(r).await }
            })
            .await?;
        let chat = created.chat.ok_or_else(|| missing_reply("chat"))?;
        Ok(CreatedChat {
            chat: chat_from_pb(chat).map_err(bad_reply)?,
            created: created.created,
        })
    }

    async fn list_chats(&self, caller: &Caller) -> Result<Vec<ChatListEntry>, ChatError> {
        let message = pb::CallerOnly {
            caller: caller_to_pb(caller),
        };
        let list = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.list_chats(r).await }
            })
            .await?;
        list.chats
            .into_iter()
            .map(list_entry_from_pb)
            .collect::<Result<_, _>>()
            .map_err(bad_reply)
    }

    async fn get_chat(&self, caller: &Caller, chat_id: &ChatId) -> Result<Chat, ChatError> {
        let message = pb::ChatRequest {
            caller: caller_to_pb(caller),
            chat_id: chat_id.to_string(),
        };
        let chat = self
            .call(Some(chat_id), true, |mut c| {
                let r = self.request(message.clone());
                async move { c.get_chat(r).await }
            })
            .await?;
        chat_from_pb(chat).map_err(bad_reply)
    }

    async fn add_members(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_ids: Vec<UserId>,
    ) -> Result<Chat, ChatError> {
        let message = pb::AddMembersRequest {
            caller: caller_to_pb(caller),
            chat_id: chat_id.to_string(),
            user_ids: user_ids.into_iter().map(String::from).collect(),
        };
        let chat = self
            .call(Some(chat_id), false, |mut c| {
                let r = self.request(message.clone());
                async move { c.add_members(r).await }
            })
            .await?;
        chat_from_pb(chat).map_err(bad_reply)
    }

    async fn remove_member(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_id: &UserId,
    ) -> Result<(), ChatError> {
        let message = pb::RemoveMemberRequest {
            caller: caller_to_pb(caller),
            chat_id: chat_id.to_string(),
            user_id: user_id.to_string(),
        };
        self.call(Some(chat_id), false, |mut c| {
            let r = self.request(message.clone());
            async move { c.remove_member(r).await }
        })
        .await?;
        Ok(())
    }

    async fn history(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ChatError> {
        let message = pb::HistoryRequest {
            caller: caller_to_pb(caller),
            chat_id: chat_id.to_string(),
            before_seq: query.before_seq,
            after_seq: query.after_seq,
            limit: query.limit,
        };
        let messages = self
            .call(Some(chat_id), true, |mut c| {
                let r = self.request(message.clone());
                async move { c.history(r).await }
            })
            .await?;
        Ok(messages.messages.into_iter().map(message_from_pb).collect())
    }

    async fn sync(&self, caller: &Caller, request: SyncRequest) -> Result<SyncResult, ChatError> {
        let message = pb::SyncRequest {
            caller: caller_to_pb(caller),
            cursors: request
                .cursors
                .into_iter()
                .map(|(chat, seq)| (chat.into(), seq))
                .collect(),
            limit: request.limit,
        };
        let reply = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.sync(r).await }
            })
            .await?;
        sync_from_pb(reply).map_err(bad_reply)
    }

    async fn mark_delivered(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
    ) -> Result<(), ChatError> {
        let message = watermark(caller, chat_id, seq);
        self.call(Some(chat_id), true, |mut c| {
            let r = self.request(message.clone());
            async move { c.mark_delivered(r).await }
        })
        .await?;
        Ok(())
    }

    async fn mark_read(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
    ) -> Result<(), ChatError> {
        let message = watermark(caller, chat_id, seq);
        self.call(Some(chat_id), true, |mut c| {
            let r = self.request(message.clone());
            async move { c.mark_read(r).await }
        })
        .await?;
        Ok(())
    }

    async fn typing(&self, caller: &Caller, chat_id: &ChatId) -> Result<(), ChatError> {
        let message = pb::ChatRequest {
            caller: caller_to_pb(caller),
            chat_id: chat_id.to_string(),
        };
        self.call(Some(chat_id), true, |mut c| {
            let r = self.request(message.clone());
            async move { c.typing(r).await }
        })
        .await?;
        Ok(())
    }

    async fn visible_users(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<HashSet<UserId>, ChatError> {
        let message = users(caller, user_ids);
        let visible = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.visible_users(r).await }
            })
            .await?;
        Ok(visible.user_ids.into_iter().map(UserId::from).collect())
    }

    async fn presence(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<Vec<PresenceEntry>, ChatError> {
        let message = users(caller, user_ids);
        let list = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.presence(r).await }
            })
            .await?;
        Ok(list.users.into_iter().map(presence_from_pb).collect())
    }

    async fn register_device(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), ChatError> {
        let message = pb::RegisterDeviceRequest {
            caller: caller_to_pb(caller),
            device_id: device_id.to_string(),
            platform: platform_to_pb(platform),
            token: token.to_owned(),
        };
        self.call(None, true, |mut c| {
            let r = self.request(message.clone());
            async move { c.register_device(r).await }
        })
        .await?;
        Ok(())
    }

    async fn unregister_device(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
    ) -> Result<bool, ChatError> {
        let message = pb::DeviceRequest {
            caller: caller_to_pb(caller),
            device_id: device_id.to_string(),
        };
        let existed = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.unregister_device(r).await }
            })
            .await?;
        Ok(existed.existed)
    }

    async fn privacy(&self, caller: &Caller) -> Result<PrivacySettings, ChatError> {
        let message = pb::CallerOnly {
            caller: caller_to_pb(caller),
        };
        let settings = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.privacy(r).await }
            })
            .await?;
        privacy_from_pb(&settings).map_err(|s| ChatError::internal(s.message().to_owned()))
    }

    async fn set_privacy(
        &self,
        caller: &Caller,
        settings: PrivacySettings,
    ) -> Result<(), ChatError> {
        let message = pb::SetPrivacyRequest {
            caller: caller_to_pb(caller),
            settings: Some(privacy_to_pb(settings)),
        };
        self.call(None, true, |mut c| {
            let r = self.request(message.clone());
            async move { c.set_privacy(r).await }
        })
        .await?;
        Ok(())
    }

    async fn block(&self, caller: &Caller, user_id: &UserId) -> Result<(), ChatError> {
        let message = block_request(caller, user_id);
        let owner = direct_chat_id(&caller.user_id, user_id);
        self.call(Some(&owner), true, |mut c| {
            let r = self.request(message.clone());
            async move { c.block(r).await }
        })
        .await?;
        Ok(())
    }

    async fn unblock(&self, caller: &Caller, user_id: &UserId) -> Result<bool, ChatError> {
        let message = block_request(caller, user_id);
        let owner = direct_chat_id(&caller.user_id, user_id);
        let existed = self
            .call(Some(&owner), true, |mut c| {
                let r = self.request(message.clone());
                async move { c.unblock(r).await }
            })
            .await?;
        Ok(existed.existed)
    }

    async fn blocks(&self, caller: &Caller) -> Result<Vec<UserId>, ChatError> {
        let message = pb::CallerOnly {
            caller: caller_to_pb(caller),
        };
        let users = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.blocks(r).await }
            })
            .await?;
        Ok(users.user_ids.into_iter().map(UserId::from).collect())
    }

    async fn large_groups(&self, caller: &Caller) -> Result<Vec<ChatId>, ChatError> {
        let message = pb::CallerOnly {
            caller: caller_to_pb(caller),
        };
        let groups = self
            .call(None, true, |mut c| {
                let r = self.request(message.clone());
                async move { c.large_groups(r).await }
            })
            .await?;
        Ok(groups.chat_ids.into_iter().map(ChatId::from).collect())
    }

    async fn ready(&self) -> Result<(), ChatError> {
        self.call(None, true, |mut c| {
            let r = self.request(pb::Empty {});
            async move { c.ready(r).await }
        })
        .await?;
        Ok(())
    }

    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn max_page_bytes(&self) -> usize {
        self.max_page_bytes
    }
}

fn watermark(caller: &Caller, chat_id: &ChatId, seq: u64) -> pb::WatermarkRequest {
    pb::WatermarkRequest {
        caller: caller_to_pb(caller),
        chat_id: chat_id.to_string(),
        seq,
    }
}

fn users(caller: &Caller, user_ids: &[UserId]) -> pb::UsersRequest {
    pb::UsersRequest {
        caller: caller_to_pb(caller),
        user_ids: user_ids.iter().map(|u| u.to_string()).collect(),
    }
}

/// A reply the chat service should never send.
fn bad_reply(status: Status) -> ChatError {
    ChatError::internal(format!(
        "malformed reply from the chat service: {}",
        status.message()
    ))
}

fn missing_reply(field: &str) -> ChatError {
    ChatError::internal(format!("reply from the chat service lacks `{field}`"))
}

fn block_request(caller: &Caller, user_id: &UserId) -> pb::BlockRequest {
    pb::BlockRequest {
        caller: caller_to_pb(caller),
        user_id: user_id.to_string(),
    }
}
