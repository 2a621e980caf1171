//! Sending (queued on the sequencer in call order), history, and sync.

use chat_api::{
    validate_send, Caller, ChatError, ChatId, HistoryQuery, SendOutcome, SendRequest, SyncRequest,
    SyncResult,
};
use chat_protocol::{Message, SyncedChat};
use chat_store::Page;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::ChatService;
use crate::errors::store_error;
use crate::sequencer::SendCommand;

const DEFAULT_HISTORY_LIMIT: u32 = 50;
const MAX_HISTORY_LIMIT: u32 = 200;
const DEFAULT_SYNC_LIMIT: u32 = 1000;

impl ChatService {
    /// Validates the send and queues it on the sequencer before returning, so sends issued
    /// in order keep that order; a full queue refuses at once rather than buffering.
    pub(super) fn queue_send(
        &self,
        caller: &Caller,
        request: SendRequest,
    ) -> BoxFuture<'static, Result<SendOutcome, ChatError>> {
        if let Err(e) = validate_send(&request, self.config.contract.max_body_bytes) {
            return futures_util::future::ready(Err(e)).boxed();
        }
        let (reply, outcome) = oneshot::channel();
        let command = SendCommand {
            queued: std::time::Instant::now(),
            sender_id: caller.user_id.clone(),
            session: caller.session,
            request,
            reply,
        };
        if self.sequencer.try_send(command).is_err() {
            metrics::counter!("chat_send_overload_total").increment(1);
            let error = ChatError::unavailable("chat service overloaded, retry later");
            return futures_util::future::ready(Err(error)).boxed();
        }
        async move {
            outcome
                .await
                .unwrap_or_else(|_| Err(ChatError::unavailable("chat service stopping")))
        }
        .boxed()
    }

    pub(super) async fn read_history(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ChatError> {
        self.chat_for_member(caller, chat_id).await?;
        let limit = query
            .limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .clamp(1, MAX_HISTORY_LIMIT) as usize;
        let page = Page::new(limit, self.config.contract.max_page_bytes);
        match (query.after_seq, query.before_seq) {
            (Some(after), before) => {
                let mut messages = self
                    .store
                    .messages_after(chat_id, after, page)
                    .await
                    .map_err(store_error)?;
                if let Some(before) = before {
                    messages.retain(|m| m.seq < before);
                }
                Ok(messages)
            }
            (None, before) => self
                .store
                .messages_before(chat_id, before.unwrap_or(u64::MAX), page)
                .await
                .map_err(store_error),
        }
    }

    pub(super) async fn catch_up(
        &self,
        caller: &Caller,
        request: SyncRequest,
    ) -> Result<SyncResult, ChatError> {
        let limit = request
            .limit
            .unwrap_or(DEFAULT_SYNC_LIMIT)
            .clamp(1, self.config.max_sync_limit) as usize;
        let states = self
            .store
            .chats_of_user(&caller.user_id, &caller.device_id)
            .await
            .map_err(store_error)?;
        let mut messages = Vec::new();
        // Bytes left in this reply; once spent, the remaining chats wait for the next sync.
        let mut bytes_left = self.config.contract.max_page_bytes;
        let mut complete = true;
        let mut chats = Vec::with_capacity(states.len());
        for state in states {
            let head = state.chat.head_seq;
            let cursor = request
                .cursors
                .get(&state.chat.chat_id)
                .copied()
                .unwrap_or(state.watermarks.device_delivered);
            if cursor < head {
                let room = limit - messages.len();
                if room == 0 || bytes_left == 0 {
                    complete = false;
                } else {
                    let page = self
                        .store
                        .messages_after(&state.chat.chat_id, cursor, Page::new(room, bytes_left))
                        .await
                        .map_err(store_error)?;
                    let spent: usize = page.iter().map(Page::cost).sum();
                    bytes_left = bytes_left.saturating_sub(spent);
                    if page.last().is_none_or(|m| m.seq < head) {
                        complete = false;
                    }
                    messages.extend(page);
                }
            }
            chats.push(SyncedChat {
                chat_id: state.chat.chat_id,
                kind: state.chat.kind,
                title: state.chat.title,
                head_seq: head,
                delivered_seq: state.watermarks.delivered,
                read_seq: state.watermarks.read,
                unread: state.unread,
            });
        }
        Ok(SyncResult {
            messages,
            complete,
            chats,
        })
    }
}
