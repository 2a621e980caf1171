//! Delivery and read watermarks (and the receipts they publish), and typing.

use chat_api::{Caller, ChatError, ChatId};
use chat_protocol::{Chat, ReceiptKind};

use super::ChatService;
use crate::errors::store_error;

impl ChatService {
    /// Refuses watermarks beyond the end of the chat's log.
    async fn check_seq_exists(&self, chat: &Chat, seq: u64) -> Result<(), ChatError> {
        if seq <= chat.head_seq || self.heads.get(&chat.chat_id).is_some_and(|h| seq <= h) {
            return Ok(());
        }
        let head = self
            .store
            .get_chat(&chat.chat_id)
            .await
            .map_err(store_error)?
            .map_or(0, |c| c.head_seq);
        if seq > head {
            return Err(ChatError::bad_request(format!(
                "seq {seq} is beyond the chat's head {head}"
            )));
        }
        Ok(())
    }

    pub(super) async fn delivered(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
    ) -> Result<(), ChatError> {
        self.advance(caller, chat_id, seq, ReceiptKind::Delivered)
            .await
    }

    pub(super) async fn read(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
    ) -> Result<(), ChatError> {
        self.advance(caller, chat_id, seq, ReceiptKind::Read).await
    }

    /// Raises the caller's watermark of `kind` and, when it rose, publishes the receipt.
    async fn advance(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
        kind: ReceiptKind,
    ) -> Result<(), ChatError> {
        let chat = self.chat_for_member(caller, chat_id).await?;
        self.check_seq_exists(&chat, seq).await?;
        let raised = match kind {
            ReceiptKind::Delivered => {
                self.store
                    .advance_delivered(chat_id, &caller.user_id, &caller.device_id, seq)
                    .await
            }
            ReceiptKind::Read => self.store.advance_read(chat_id, &caller.user_id, seq).await,
        };
        if let Some(new) = raised.map_err(store_error)? {
            self.fanout
                .receipt(&chat, &caller.user_id, kind, new, caller.session);
        }
        Ok(())
    }

    pub(super) async fn is_typing(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
    ) -> Result<(), ChatError> {
        let chat = self.chat_for_member(caller, chat_id).await?;
        self.fanout.typing(&chat, &caller.user_id);
        Ok(())
    }
}
