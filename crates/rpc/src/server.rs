//! Serving a `ChatApi` over gRPC: the `chat.v1.ChatService` service (behind the service-token
//! check), the standard health service and reflection, as one axum router.

use std::pin::Pin;
use std::sync::Arc;

use chat_api::{ChatApi, ChatId, DeviceId, HistoryQuery, SendRequest, SyncRequest, UserId};
use chat_ops::trace_context::{set_remote_parent, traceparent_of};
use chat_ops::TRACE_TARGET;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::auth::{InternalAuth, Verifier};
use crate::convert::*;
use crate::limits::RpcLimits;
use crate::pb;
use crate::pb::chat_service_server::{ChatService as Chat, ChatServiceServer as ChatServer};

/// The gRPC routes of the internal API over `chat`. Once `closing` is cancelled, send
/// streams stop reading, answer what they took and end, so the gateways move their sends
/// elsewhere and a graceful shutdown does not wait on streams that never end.
pub async fn router(
    chat: Arc<dyn ChatApi>,
    auth: InternalAuth,
    limits: RpcLimits,
    closing: CancellationToken,
) -> axum::Router {
    let service = ChatServer::new(ChatRpc {
        chat,
        max_sends_in_flight: limits.max_sends_in_flight,
        closing,
    })
    .max_decoding_message_size(limits.max_message_bytes)
    .max_encoding_message_size(limits.max_message_bytes);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ChatServer<ChatRpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled descriptor set is valid");
    tonic::service::Routes::new(tonic::service::interceptor::InterceptedService::new(
        service,
        Verifier::new(auth),
    ))
    .add_service(health_service)
    .add_service(reflection)
    .prepare()
    .into_axum_router()
    .layer(axum::middleware::from_fn(track_rpc))
}

struct ChatRpc {
    chat: Arc<dyn ChatApi>,
    max_sends_in_flight: usize,
    closing: CancellationToken,
}

type Reply<T> = Result<Response<T>, Status>;

fn ok<T>(value: T) -> Reply<T> {
    Ok(Response::new(value))
}

fn failed(e: chat_api::ChatError) -> Status {
    status_from_error(&e)
}

#[tonic::async_trait]
impl Chat for ChatRpc {
    type SendStream = Pin<Box<dyn Stream<Item = Result<pb::SendReplies, Status>> + Send>>;

    /// Queues each send as it is read (so their order is the stream's), answers each as it
    /// becomes durable (all that are durable at once in one batch), and stops reading
    /// while `max_sends_in_flight` are unanswered.
    async fn send(&self, request: Request<Streaming<pb::SendBatch>>) -> Reply<Self::SendStream> {
        let mut inbound = request.into_inner();
        let (replies, outbound) = mpsc::channel(self.max_sends_in_flight.max(1));
        let chat = self.chat.clone();
        let max = self.max_sends_in_flight.max(1);
        let closing = self.closing.clone();
        tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            let mut reading = true;
            while reading || !pending.is_empty() {
                tokio::select! {
                    _ = closing.cancelled(), if reading => reading = false,
                    item = inbound.message(), if reading && pending.len() < max => match item {
                        Ok(Some(batch)) => {
                            for item in batch.items {
                                pending.push(start_send(chat.as_ref(), item));
                            }
                        }
                        Ok(None) | Err(_) => reading = false,
                    },
                    Some(reply) = pending.next(), if !pending.is_empty() => {
                        let mut ready = vec![reply];
                        while let Some(Some(reply)) = pending.next().now_or_never() {
                            ready.push(reply);
                        }
                        if replies.send(Ok(pb::SendReplies { replies: ready })).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        ok(Box::pin(ReceiverStream::new(outbound)) as Self::SendStream)
    }

    async fn create_chat(&self, request: Request<pb::CreateChatRequest>) -> Reply<pb::CreatedChat> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let create = chat_api::CreateChat {
            kind: kind_from_pb(r.kind)?,
            title: r.title,
            members: r.members.into_iter().map(UserId::from).collect(),
        };
        let created = self
            .chat
            .create_chat(&caller, create)
            .await
            .map_err(failed)?;
        ok(pb::CreatedChat {
            chat: Some(chat_to_pb(created.chat)),
            created: created.created,
        })
    }

    async fn list_chats(&self, request: Request<pb::CallerOnly>) -> Reply<pb::ChatList> {
        let caller = caller_from_pb(request.into_inner().caller)?;
        let chats = self.chat.list_chats(&caller).await.map_err(failed)?;
        ok(pb::ChatList {
            chats: chats.into_iter().map(list_entry_to_pb).collect(),
        })
    }

    async fn get_chat(&self, request: Request<pb::ChatRequest>) -> Reply<pb::Chat> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let chat = self
            .chat
            .get_chat(&caller, &ChatId::from(r.chat_id))
            .await
            .map_err(failed)?;
        ok(chat_to_pb(chat))
    }

    async fn add_members(&self, request: Request<pb::AddMembersRequest>) -> Reply<pb::Chat> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let users = r.user_ids.into_iter().map(UserId::from).collect();
        let chat = self
            .chat
            .add_members(&caller, &ChatId::from(r.chat_id), users)
            .await
            .map_err(failed)?;
        ok(chat_to_pb(chat))
    }

    async fn remove_member(&self, request: Request<pb::RemoveMemberRequest>) -> Reply<pb::Empty> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        self.chat
            .remove_member(&caller, &ChatId::from(r.chat_id), &UserId::from(r.user_id))
            .await
            .map_err(failed)?;
        ok(pb::Empty {})
    }

    async fn history(&self, request: Request<pb::HistoryRequest>) -> Reply<pb::Messages> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let query = HistoryQuery {
            before_seq: r.before_seq,
            after_seq: r.after_seq,
            limit: r.limit,
        };
        let messages = self
            .chat
            .history(&caller, &ChatId::from(r.chat_id), query)
            .await
            .map_err(failed)?;
        ok(pb::Messages {
            messages: messages.into_iter().map(message_to_pb).collect(),
        })
    }

    async fn sync(&self, request: Request<pb::SyncRequest>) -> Reply<pb::SyncReply> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let sync = SyncRequest {
            cursors: r
                .cursors
                .into_iter()
                .map(|(chat, seq)| (ChatId::from(chat), seq))
                .collect(),
            limit: r.limit,
        };
        let result = self.chat.sync(&caller, sync).await.map_err(failed)?;
        ok(sync_to_pb(result))
    }

    async fn mark_delivered(&self, request: Request<pb::WatermarkRequest>) -> Reply<pb::Empty> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        self.chat
            .mark_delivered(&caller, &ChatId::from(r.chat_id), r.seq)
            .await
            .map_err(failed)?;
        ok(pb::Empty {})
    }

    async fn mark_read(&self, request: Request<pb::WatermarkRequest>) -> Reply<pb::Empty> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        self.chat
            .mark_read(&caller, &ChatId::from(r.chat_id), r.seq)
            .await
            .map_err(failed)?;
        ok(pb::Empty {})
    }

    async fn typing(&self, request: Request<pb::ChatRequest>) -> Reply<pb::Empty> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        self.chat
            .typing(&caller, &ChatId::from(r.chat_id))
            .await
            .map_err(failed)?;
        ok(pb::Empty {})
    }

    async fn visible_users(&self, request: Request<pb::UsersRequest>) -> Reply<pb::Users> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let users: Vec<UserId> = r.user_ids.into_iter().map(UserId::from).collect();
        let visible = self
            .chat
            .visible_users(&caller, &users)
            .await
            .map_err(failed)?;
        ok(pb::Users {
            user_ids: visible.into_iter().map(String::from).collect(),
        })
    }

    async fn presence(&self, request: Request<pb::UsersRequest>) -> Reply<pb::PresenceList> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let users: Vec<UserId> = r.user_ids.into_iter().map(UserId::from).collect();
        let entries = self.chat.presence(&caller, &users).await.map_err(failed)?;
        ok(pb::PresenceList {
            users: entries.into_iter().map(presence_to_pb).collect(),
        })
    }

    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> Reply<pb::Empty> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let platform = platform_from_pb(r.platform)?;
        self.chat
            .register_device(&caller, &DeviceId::from(r.device_id), platform, &r.token)
            .await
            .map_err(failed)?;
        ok(pb::Empty {})
    }

    async fn unregister_device(&self, request: Request<pb::DeviceRequest>) -> Reply<pb::Existed> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let existed = self
            .chat
            .unregister_device(&caller, &DeviceId::from(r.device_id))
            .await
            .map_err(failed)?;
        ok(pb::Existed { existed })
    }

    async fn privacy(&self, request: Request<pb::CallerOnly>) -> Reply<pb::PrivacySettings> {
        let caller = caller_from_pb(request.into_inner().caller)?;
        let settings = self.chat.privacy(&caller).await.map_err(failed)?;
        ok(privacy_to_pb(settings))
    }

    async fn set_privacy(&self, request: Request<pb::SetPrivacyRequest>) -> Reply<pb::Empty> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let settings = r
            .settings
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("settings missing"))
            .and_then(privacy_from_pb)?;
        self.chat
            .set_privacy(&caller, settings)
            .await
            .map_err(failed)?;
        ok(pb::Empty {})
    }

    async fn block(&self, request: Request<pb::BlockRequest>) -> Reply<pb::Empty> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        self.chat
            .block(&caller, &UserId::from(r.user_id))
            .await
            .map_err(failed)?;
        ok(pb::Empty {})
    }

    async fn unblock(&self, request: Request<pb::BlockRequest>) -> Reply<pb::Existed> {
        let r = request.into_inner();
        let caller = caller_from_pb(r.caller)?;
        let existed = self
            .chat
            .unblock(&caller, &UserId::from(r.user_id))
            .await
            .map_err(failed)?;
        ok(pb::Existed { existed })
    }

    async fn blocks(&self, request: Request<pb::CallerOnly>) -> Reply<pb::Users> {
        let caller = caller_from_pb(request.into_inner().caller)?;
        let blocked = self.chat.blocks(&caller).await.map_err(failed)?;
        ok(pb::Users {
            user_ids: blocked.into_iter().map(String::from).collect(),
        })
    }

    async fn large_groups(&self, request: Request<pb::CallerOnly>) -> Reply<pb::ChatIds> {
        let caller = caller_from_pb(request.into_inner().caller)?;
        let groups = self.chat.large_groups(&caller).await.map_err(failed)?;
        ok(pb::ChatIds {
            chat_ids: groups.into_iter().map(String::from).collect(),
        })
    }

    async fn ready(&self, _request: Request<pb::Empty>) -> Reply<pb::Empty> {
        self.chat.ready().await.map_err(failed)?;
        ok(pb::Empty {})
    }
}

/// Queues one send with the chat service now and returns the future of its reply. A send
/// read after the gateway's deadline is not queued: the gateway answered it already.
fn start_send(
    chat: &dyn ChatApi,
    item: pb::SendItem,
) -> futures_util::future::BoxFuture<'static, pb::SendReply> {
    let id = item.id;
    let reply = move |result: Result<chat_api::SendOutcome, chat_api::ChatError>| pb::SendReply {
        id,
        result: Some(match result {
            Ok(outcome) => pb::send_reply::Result::Ok(outcome_to_pb(outcome)),
            Err(e) => pb::send_reply::Result::Error(error_to_pb(&e)),
        }),
    };
    if item.deadline_ms > 0 && item.deadline_ms < chat_protocol::now_ms() {
        metrics::counter!("chat_internal_sends_expired_total").increment(1);
        let late = chat_api::ChatError::unavailable("deadline passed before the send was read");
        return futures_util::future::ready(reply(Err(late))).boxed();
    }
    let caller = match caller_from_pb(item.caller) {
        Ok(caller) => caller,
        Err(status) => {
            let bad = chat_api::ChatError::bad_request(status.message());
            return futures_util::future::ready(reply(Err(bad))).boxed();
        }
    };
    let span = tracing::info_span!(target: TRACE_TARGET, "chat.send", chat_id = %item.chat_id);
    set_remote_parent(&span, &item.traceparent);
    let request = SendRequest {
        chat_id: item.chat_id.into(),
        client_msg_id: item.client_msg_id,
        body: item.body,
    };
    let sent = span.in_scope(|| chat.send(&caller, request));
    if span.is_disabled() {
        sent.map(reply).boxed()
    } else {
        sent.map(reply).instrument(span).boxed()
    }
}

/// Runs each call in an `rpc.server` span (the caller's trace as its parent) and times it
/// by method and gRPC status. A `Send` stream is timed until its reply stream starts;
/// each send in it has its own span.
async fn track_rpc(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("rpc.server", %method);
    set_remote_parent(&span, traceparent_of(request.headers()));
    let response = next.run(request).instrument(span).await;
    // A failed call's status is a header when it fails at once, else in the trailers.
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_owned();
    metrics::histogram!("chat_rpc_server_seconds", "method" => method, "code" => code)
        .record(started.elapsed().as_secs_f64());
    response
}
