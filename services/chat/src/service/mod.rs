//! `ChatService`: the in-process implementation of `ChatApi` over a store, a bus, presence
//! and a push queue. Every method checks that the caller may do what it asks. The calls
//! live by subject: chats and membership, messages, receipts and typing, people.

mod blocking;
mod chats;
mod messages;
mod people;
mod receipts;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chat_api::{
    validate_seq, Caller, ChatApi, ChatError, ChatId, CreateChat, CreatedChat, DeviceId,
    HistoryQuery, SendOutcome, SendRequest, SyncRequest, SyncResult, UserId,
};
use chat_bus::Bus;
use chat_presence::PresenceView;
use chat_protocol::{
    now_ms, Chat, ChatListEntry, Message, PresenceEntry, PrivacySettings, PushPlatform,
};
use chat_push::PushQueue;
use chat_store::MessageStore;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use crate::blocks::BlockCache;
use crate::cache::ChatCache;
use crate::config::ChatConfig;
use crate::errors::store_error;
use crate::fanout::Fanout;
use crate::mutations::Mutations;
use crate::ownership::{AppendBarrier, Ownership};
use crate::sequencer::{Barrier, Heads, SendCommand, Sequencer};

pub struct ChatService {
    config: ChatConfig,
    store: Arc<dyn MessageStore>,
    presence: Arc<dyn PresenceView>,
    chats: Arc<ChatCache>,
    blocks: Arc<BlockCache>,
    fanout: Arc<Fanout>,
    heads: Arc<Heads>,
    ownership: Arc<dyn Ownership>,
    sequencer: mpsc::Sender<SendCommand>,
    barriers: mpsc::Sender<Barrier>,
    /// Changes of members, roles and blocks in progress (a handover waits for them).
    mutations: Arc<Mutations>,
}

impl ChatService {
    /// Starts the service and its sequencer task (so it must be called inside a runtime).
    pub fn start(
        config: ChatConfig,
        store: Arc<dyn MessageStore>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn PresenceView>,
        push: Arc<dyn PushQueue>,
        ownership: Arc<dyn Ownership>,
    ) -> Arc<Self> {
        let chats = Arc::new(ChatCache::new(config.sequencer_cached_chats));
        let fanout = Arc::new(Fanout::new(
            bus,
            presence.clone(),
            push,
            config.large_group_members,
        ));
        let heads = Arc::new(Heads::default());
        let blocks = Arc::new(BlockCache::new(config.sequencer_cached_chats));
        let sequencer = Sequencer::spawn(
            store.clone(),
            chats.clone(),
            blocks.clone(),
            fanout.clone(),
            heads.clone(),
            ownership.clone(),
            &config,
        );
        Arc::new(ChatService {
            config,
            store,
            presence,
            chats,
            blocks,
            fanout,
            heads,
            ownership,
            sequencer: sequencer.sends,
            barriers: sequencer.barriers,
            mutations: Arc::default(),
        })
    }

    /// Prunes dedup entries every hour until `shutdown`. Safe to run on every instance.
    pub async fn run_maintenance(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => match self.prune_dedup().await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "dedup entries past the window deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "dedup pruning failed"),
                },
            }
        }
    }

    /// Deletes dedup entries past the window (with an hour's margin); call periodically.
    pub async fn prune_dedup(&self) -> Result<u64, ChatError> {
        let margin = std::time::Duration::from_secs(3600);
        let cutoff = now_ms() - (self.config.dedup_window + margin).as_millis() as i64;
        self.store.prune_dedup(cutoff).await.map_err(store_error)
    }

    /// The chat if `caller` is a member; `not_found` / `forbidden` otherwise.
    async fn chat_for_member(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
    ) -> Result<Arc<Chat>, ChatError> {
        // Chat-scoped requests go to the chat's owner, whose membership view is current.
        let generation = self.ownership.owns(chat_id).ok_or_else(ChatError::moved)?;
        let chat = self
            .chats
            .get(self.store.as_ref(), chat_id, generation)
            .await
            .map_err(store_error)?
            .ok_or_else(ChatError::no_chat)?;
        if chat.member(&caller.user_id).is_none() {
            return Err(ChatError::not_member());
        }
        Ok(chat)
    }
}

impl AppendBarrier for ChatService {
    fn settled(&self) -> BoxFuture<'static, bool> {
        let (barriers, mutations) = (self.barriers.clone(), self.mutations.clone());
        Box::pin(async move {
            let (barrier, settled) = tokio::sync::oneshot::channel();
            if barriers.send(barrier).await.is_err() {
                // The sequencer died (it lives as long as the service): what it had in
                // flight is unknown.
                return false;
            }
            let appends_stored = settled.await.unwrap_or(false);
            mutations.settled().await;
            appends_stored
        })
    }
}

#[async_trait]
impl ChatApi for ChatService {
    fn send(
        &self,
        caller: &Caller,
        request: SendRequest,
    ) -> BoxFuture<'static, Result<SendOutcome, ChatError>> {
        self.queue_send(caller, request)
    }

    async fn create_chat(
        &self,
        caller: &Caller,
        request: CreateChat,
    ) -> Result<CreatedChat, ChatError> {
        self.create(caller, request).await
    }

    async fn list_chats(&self, caller: &Caller) -> Result<Vec<ChatListEntry>, ChatError> {
        self.list(caller).await
    }

    async fn get_chat(&self, caller: &Caller, chat_id: &ChatId) -> Result<Chat, ChatError> {
        self.get(caller, chat_id).await
    }

    async fn add_members(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_ids: Vec<UserId>,
    ) -> Result<Chat, ChatError> {
        self.add(caller, chat_id, user_ids).await
    }

    async fn remove_member(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_id: &UserId,
    ) -> Result<(), ChatError> {
        self.remove(caller, chat_id, user_id).await
    }

    async fn history(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ChatError> {
        for (name, seq) in [
            ("after_seq", query.after_seq),
            ("before_seq", query.before_seq),
        ] {
            seq.map(|seq| validate_seq(name, seq)).transpose()?;
        }
        self.read_history(caller, chat_id, query).await
    }

    async fn sync(&self, caller: &Caller, request: SyncRequest) -> Result<SyncResult, ChatError> {
        for seq in request.cursors.values() {
            validate_seq("cursor", *seq)?;
        }
        self.catch_up(caller, request).await
    }

    async fn mark_delivered(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
    ) -> Result<(), ChatError> {
        self.delivered(caller, chat_id, validate_seq("seq", seq)?)
            .await
    }

    async fn mark_read(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        seq: u64,
    ) -> Result<(), ChatError> {
        self.read(caller, chat_id, validate_seq("seq", seq)?).await
    }

    async fn typing(&self, caller: &Caller, chat_id: &ChatId) -> Result<(), ChatError> {
        self.is_typing(caller, chat_id).await
    }

    async fn visible_users(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<HashSet<UserId>, ChatError> {
        self.visible(caller, user_ids).await
    }

    async fn presence(
        &self,
        caller: &Caller,
        user_ids: &[UserId],
    ) -> Result<Vec<PresenceEntry>, ChatError> {
        self.presence_of(caller, user_ids).await
    }

    async fn register_device(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), ChatError> {
        self.register(caller, device_id, platform, token).await
    }

    async fn unregister_device(
        &self,
        caller: &Caller,
        device_id: &DeviceId,
    ) -> Result<bool, ChatError> {
        self.unregister(caller, device_id).await
    }

    async fn privacy(&self, caller: &Caller) -> Result<PrivacySettings, ChatError> {
        self.store
            .privacy(&caller.user_id)
            .await
            .map_err(store_error)
    }

    async fn set_privacy(
        &self,
        caller: &Caller,
        settings: PrivacySettings,
    ) -> Result<(), ChatError> {
        self.store
            .set_privacy(&caller.user_id, settings)
            .await
            .map_err(store_error)
    }

    async fn block(&self, caller: &Caller, user_id: &UserId) -> Result<(), ChatError> {
        self.block_user(caller, user_id).await
    }

    async fn unblock(&self, caller: &Caller, user_id: &UserId) -> Result<bool, ChatError> {
        self.unblock_user(caller, user_id).await
    }

    async fn blocks(&self, caller: &Caller) -> Result<Vec<UserId>, ChatError> {
        self.store
            .blocks_of(&caller.user_id)
            .await
            .map_err(store_error)
    }

    async fn large_groups(&self, caller: &Caller) -> Result<Vec<ChatId>, ChatError> {
        self.store
            .large_groups_of(&caller.user_id, self.config.large_group_members)
            .await
            .map_err(store_error)
    }

    async fn ready(&self) -> Result<(), ChatError> {
        self.store.ping().await.map_err(store_error)
    }

    fn max_body_bytes(&self) -> usize {
        self.config.contract.max_body_bytes
    }

    fn max_page_bytes(&self) -> usize {
        self.config.contract.max_page_bytes
    }
}
