//! `ChatService`: the in-process implementation of `ChatApi` over a store, a bus, presence
//! and a push queue. Every method checks that the caller may do what it asks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chat_bus::Bus;
use chat_presence::Presence;
use chat_protocol::ids::{direct_chat_id, is_valid_client_token, is_valid_id};
use chat_protocol::{
    now_ms, Chat, ChatEvent, ChatKind, ChatListEntry, Member, Message, PushPlatform, ReceiptKind,
    Role, SyncedChat,
};
use chat_push::PushQueue;
use chat_store::{MessageStore, Page, PushDevice};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::api::{Caller, ChatApi, CreateChat, HistoryQuery, SendOutcome, SendRequest, SyncResult};
use crate::cache::ChatCache;
use crate::config::ChatConfig;
use crate::error::ChatError;
use crate::fanout::Fanout;
use crate::ownership::Ownership;
use crate::queued::queue_send;
use crate::sequencer::{Heads, SendCommand, Sequencer};

const MAX_TITLE_BYTES: usize = 256;
const DEFAULT_HISTORY_LIMIT: u32 = 50;
const MAX_HISTORY_LIMIT: u32 = 200;
const DEFAULT_SYNC_LIMIT: u32 = 1000;
const MAX_PUSH_TOKEN_BYTES: usize = 4096;

pub struct ChatService {
    config: ChatConfig,
    store: Arc<dyn MessageStore>,
    chats: Arc<ChatCache>,
    fanout: Arc<Fanout>,
    heads: Arc<Heads>,
    ownership: Arc<dyn Ownership>,
    sequencer: mpsc::Sender<SendCommand>,
}

impl ChatService {
    /// Starts the service and its sequencer task (so it must be called inside a runtime).
    pub fn start(
        config: ChatConfig,
        store: Arc<dyn MessageStore>,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        push: Arc<dyn PushQueue>,
        ownership: Arc<dyn Ownership>,
    ) -> Arc<Self> {
        let chats = Arc::new(ChatCache::new(config.sequencer_cached_chats));
        let fanout = Arc::new(Fanout::new(bus, presence, push, config.large_group_members));
        let heads = Arc::new(Heads::default());
        let sequencer = Sequencer::spawn(
            store.clone(),
            chats.clone(),
            fanout.clone(),
            heads.clone(),
            ownership.clone(),
            &config,
        );
        Arc::new(ChatService {
            config,
            store,
            chats,
            fanout,
            heads,
            ownership,
            sequencer,
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
        Ok(self.store.prune_dedup(cutoff).await?)
    }

    /// The chat if `caller` is a member; `not_found` / `forbidden` otherwise.
    async fn chat_for_member(
        &self,
        caller: &Caller,
        chat_id: &str,
    ) -> Result<Arc<Chat>, ChatError> {
        // Chat-scoped requests go to the chat's owner, whose membership view is current.
        let generation = self.ownership.owns(chat_id).ok_or_else(ChatError::moved)?;
        let chat = self
            .chats
            .get(self.store.as_ref(), chat_id, generation)
            .await?
            .ok_or_else(ChatError::no_chat)?;
        if chat.member(&caller.user_id).is_none() {
            return Err(ChatError::not_member());
        }
        Ok(chat)
    }

    /// Refuses watermarks beyond the end of the chat's log.
    async fn check_seq_exists(&self, chat: &Chat, seq: u64) -> Result<(), ChatError> {
        if seq <= chat.head_seq || self.heads.get(&chat.chat_id).is_some_and(|h| seq <= h) {
            return Ok(());
        }
        let head = self
            .store
            .get_chat(&chat.chat_id)
            .await?
            .map_or(0, |c| c.head_seq);
        if seq > head {
            return Err(ChatError::BadRequest(format!(
                "seq {seq} is beyond the chat's head {head}"
            )));
        }
        Ok(())
    }

    fn validate_new_members(&self, user_ids: &[String]) -> Result<(), ChatError> {
        if let Some(bad) = user_ids.iter().find(|u| !is_valid_id(u)) {
            return Err(ChatError::BadRequest(format!("invalid user id `{bad}`")));
        }
        Ok(())
    }

    async fn create_direct(
        &self,
        caller: &Caller,
        members: &[String],
    ) -> Result<(Chat, bool), ChatError> {
        let others: HashSet<&String> = members.iter().filter(|u| **u != caller.user_id).collect();
        if others.len() != 1 {
            return Err(ChatError::BadRequest(
                "a direct chat has exactly one other member".into(),
            ));
        }
        let other = others.into_iter().next().expect("one member");
        let chat_id = direct_chat_id(&caller.user_id, other);
        let chat = Chat {
            chat_id: chat_id.clone(),
            kind: ChatKind::Direct,
            title: None,
            members: [&caller.user_id, other]
                .into_iter()
                .map(|u| Member {
                    user_id: u.clone(),
                    role: Role::Member,
                })
                .collect(),
            created_at: now_ms(),
            head_seq: 0,
        };
        let created = self.store.create_chat(&chat).await?;
        let chat = self
            .store
            .get_chat(&chat_id)
            .await?
            .ok_or_else(ChatError::no_chat)?;
        if created {
            self.fanout
                .chat_event(&chat, ChatEvent::Added, member_ids(&chat));
        }
        Ok((chat, created))
    }

    async fn create_group(
        &self,
        caller: &Caller,
        title: Option<String>,
        members: &[String],
    ) -> Result<(Chat, bool), ChatError> {
        if title.as_ref().is_some_and(|t| t.len() > MAX_TITLE_BYTES) {
            return Err(ChatError::BadRequest(format!(
                "title is longer than {MAX_TITLE_BYTES} bytes"
            )));
        }
        let mut seen = HashSet::new();
        let mut member_list = vec![Member {
            user_id: caller.user_id.clone(),
            role: Role::Admin,
        }];
        seen.insert(caller.user_id.clone());
        for user in members {
            if seen.insert(user.clone()) {
                member_list.push(Member {
                    user_id: user.clone(),
                    role: Role::Member,
                });
            }
        }
        if member_list.len() > self.config.max_group_members {
            return Err(ChatError::BadRequest(format!(
                "a group has at most {} members",
                self.config.max_group_members
            )));
        }
        let chat = Chat {
            chat_id: Uuid::now_v7().to_string(),
            kind: ChatKind::Group,
            title,
            members: member_list,
            created_at: now_ms(),
            head_seq: 0,
        };
        self.store.create_chat(&chat).await?;
        self.fanout
            .chat_event(&chat, ChatEvent::Added, member_ids(&chat));
        Ok((chat, true))
    }
}

#[async_trait]
impl ChatApi for ChatService {
    fn send(
        &self,
        caller: &Caller,
        request: SendRequest,
    ) -> BoxFuture<'static, Result<SendOutcome, ChatError>> {
        let (sender_id, session) = (caller.user_id.clone(), caller.session);
        queue_send(
            &self.sequencer,
            request,
            self.config.max_body_bytes,
            "chat service",
            |request, reply| SendCommand {
                sender_id,
                session,
                request,
                reply,
            },
        )
    }

    async fn create_chat(
        &self,
        caller: &Caller,
        request: CreateChat,
    ) -> Result<(Chat, bool), ChatError> {
        self.validate_new_members(&request.members)?;
        match request.kind {
            ChatKind::Direct => self.create_direct(caller, &request.members).await,
            ChatKind::Group => {
                self.create_group(caller, request.title, &request.members)
                    .await
            }
        }
    }

    async fn list_chats(&self, caller: &Caller) -> Result<Vec<ChatListEntry>, ChatError> {
        let states = self
            .store
            .chats_of_user(&caller.user_id, &caller.device_id)
            .await?;
        Ok(states
            .into_iter()
            .map(|s| ChatListEntry {
                chat: s.chat,
                read_seq: s.watermarks.read,
                delivered_seq: s.watermarks.delivered,
                unread: s.unread,
                last_message: s.last_message,
            })
            .collect())
    }

    async fn get_chat(&self, caller: &Caller, chat_id: &str) -> Result<Chat, ChatError> {
        self.chat_for_member(caller, chat_id).await?;
        // Fresh from the store: the cached copy's head seq is not kept current.
        self.store
            .get_chat(chat_id)
            .await?
            .ok_or_else(ChatError::no_chat)
    }

    async fn add_members(
        &self,
        caller: &Caller,
        chat_id: &str,
        user_ids: Vec<String>,
    ) -> Result<Chat, ChatError> {
        self.validate_new_members(&user_ids)?;
        let chat = self.chat_for_member(caller, chat_id).await?;
        if chat.kind != ChatKind::Group {
            return Err(ChatError::Forbidden(
                "members of a direct chat cannot change".into(),
            ));
        }
        if !chat.is_admin(&caller.user_id) {
            return Err(ChatError::Forbidden(
                "only group admins may add members".into(),
            ));
        }
        let new: Vec<Member> = user_ids
            .iter()
            .filter(|u| chat.member(u).is_none())
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|u| Member {
                user_id: u.clone(),
                role: Role::Member,
            })
            .collect();
        if chat.members.len() + new.len() > self.config.max_group_members {
            return Err(ChatError::BadRequest(format!(
                "a group has at most {} members",
                self.config.max_group_members
            )));
        }
        self.store.add_members(chat_id, &new).await?;
        self.chats.invalidate(chat_id);
        let updated = self
            .store
            .get_chat(chat_id)
            .await?
            .ok_or_else(ChatError::no_chat)?;
        if !new.is_empty() {
            let is_new = |u: &str| new.iter().any(|m| m.user_id == u);
            let (added, existing): (Vec<&str>, Vec<&str>) =
                member_ids(&updated).partition(|u| is_new(u));
            self.fanout.chat_event(&updated, ChatEvent::Added, added);
            self.fanout
                .chat_event(&updated, ChatEvent::Updated, existing);
        }
        Ok(updated)
    }

    async fn remove_member(
        &self,
        caller: &Caller,
        chat_id: &str,
        user_id: &str,
    ) -> Result<(), ChatError> {
        let chat = self.chat_for_member(caller, chat_id).await?;
        if chat.kind != ChatKind::Group {
            return Err(ChatError::Forbidden(
                "members of a direct chat cannot change".into(),
            ));
        }
        if user_id != caller.user_id && !chat.is_admin(&caller.user_id) {
            return Err(ChatError::Forbidden(
                "only admins may remove other members".into(),
            ));
        }
        if chat.member(user_id).is_none() {
            return Err(ChatError::NotFound(format!("`{user_id}` is not a member")));
        }
        self.store.remove_member(chat_id, user_id).await?;
        self.chats.invalidate(chat_id);
        let updated = self
            .store
            .get_chat(chat_id)
            .await?
            .ok_or_else(ChatError::no_chat)?;
        self.fanout
            .chat_event(&updated, ChatEvent::Updated, member_ids(&updated));
        self.fanout
            .chat_event(&updated, ChatEvent::Removed, [user_id]);
        Ok(())
    }

    async fn history(
        &self,
        caller: &Caller,
        chat_id: &str,
        query: HistoryQuery,
    ) -> Result<Vec<Message>, ChatError> {
        self.chat_for_member(caller, chat_id).await?;
        let limit = query
            .limit
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .clamp(1, MAX_HISTORY_LIMIT) as usize;
        let page = Page::new(limit, self.config.max_page_bytes);
        match (query.after_seq, query.before_seq) {
            (Some(after), before) => {
                let mut messages = self.store.messages_after(chat_id, after, page).await?;
                if let Some(before) = before {
                    messages.retain(|m| m.seq < before);
                }
                Ok(messages)
            }
            (None, before) => Ok(self
                .store
                .messages_before(chat_id, before.unwrap_or(u64::MAX), page)
                .await?),
        }
    }

    async fn sync(
        &self,
        caller: &Caller,
        cursors: HashMap<String, u64>,
        limit: Option<u32>,
    ) -> Result<SyncResult, ChatError> {
        let limit = limit
            .unwrap_or(DEFAULT_SYNC_LIMIT)
            .clamp(1, self.config.max_sync_limit) as usize;
        let states = self
            .store
            .chats_of_user(&caller.user_id, &caller.device_id)
            .await?;
        let mut messages = Vec::new();
        // Bytes left in this reply; once spent, the remaining chats wait for the next sync.
        let mut bytes_left = self.config.max_page_bytes;
        let mut complete = true;
        let mut chats = Vec::with_capacity(states.len());
        for state in states {
            let head = state.chat.head_seq;
            let cursor = cursors
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
                        .await?;
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

    async fn mark_delivered(
        &self,
        caller: &Caller,
        chat_id: &str,
        seq: u64,
    ) -> Result<(), ChatError> {
        let chat = self.chat_for_member(caller, chat_id).await?;
        self.check_seq_exists(&chat, seq).await?;
        if let Some(new) = self
            .store
            .advance_delivered(chat_id, &caller.user_id, &caller.device_id, seq)
            .await?
        {
            self.fanout.receipt(
                &chat,
                &caller.user_id,
                ReceiptKind::Delivered,
                new,
                caller.session,
            );
        }
        Ok(())
    }

    async fn mark_read(&self, caller: &Caller, chat_id: &str, seq: u64) -> Result<(), ChatError> {
        let chat = self.chat_for_member(caller, chat_id).await?;
        self.check_seq_exists(&chat, seq).await?;
        if let Some(new) = self
            .store
            .advance_read(chat_id, &caller.user_id, seq)
            .await?
        {
            self.fanout.receipt(
                &chat,
                &caller.user_id,
                ReceiptKind::Read,
                new,
                caller.session,
            );
        }
        Ok(())
    }

    async fn typing(&self, caller: &Caller, chat_id: &str) -> Result<(), ChatError> {
        let chat = self.chat_for_member(caller, chat_id).await?;
        self.fanout.typing(&chat, &caller.user_id);
        Ok(())
    }

    async fn visible_users(
        &self,
        caller: &Caller,
        user_ids: &[String],
    ) -> Result<HashSet<String>, ChatError> {
        let contacts: HashSet<String> = self
            .store
            .contacts_of(&caller.user_id)
            .await?
            .into_iter()
            .collect();
        Ok(user_ids
            .iter()
            .filter(|u| **u == caller.user_id || contacts.contains(*u))
            .cloned()
            .collect())
    }

    async fn register_device(
        &self,
        caller: &Caller,
        device_id: &str,
        platform: PushPlatform,
        token: &str,
    ) -> Result<(), ChatError> {
        if !is_valid_id(device_id) {
            return Err(ChatError::BadRequest("invalid device_id".into()));
        }
        if token.is_empty() || token.len() > MAX_PUSH_TOKEN_BYTES {
            return Err(ChatError::BadRequest("token must be 1-4096 bytes".into()));
        }
        let device = PushDevice {
            user_id: caller.user_id.clone(),
            device_id: device_id.to_owned(),
            platform,
            token: token.to_owned(),
        };
        Ok(self.store.upsert_push_device(&device).await?)
    }

    async fn unregister_device(&self, caller: &Caller, device_id: &str) -> Result<bool, ChatError> {
        Ok(self
            .store
            .delete_push_device(&caller.user_id, device_id)
            .await?)
    }

    async fn large_groups(&self, caller: &Caller) -> Result<Vec<String>, ChatError> {
        Ok(self
            .store
            .large_groups_of(&caller.user_id, self.config.large_group_members)
            .await?)
    }

    async fn ready(&self) -> Result<(), ChatError> {
        Ok(self.store.ping().await?)
    }

    fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    fn max_page_bytes(&self) -> usize {
        self.config.max_page_bytes
    }

    fn large_group_members(&self) -> usize {
        self.config.large_group_members
    }
}

fn member_ids(chat: &Chat) -> impl Iterator<Item = &str> {
    chat.members.iter().map(|m| m.user_id.as_str())
}

pub(crate) fn validate_send(request: &SendRequest, max_body_bytes: usize) -> Result<(), ChatError> {
    if !is_valid_client_token(&request.chat_id) {
        return Err(ChatError::BadRequest("chat_id must be 1-64 bytes".into()));
    }
    if !is_valid_client_token(&request.client_msg_id) {
        return Err(ChatError::BadRequest(
            "client_msg_id must be 1-64 bytes".into(),
        ));
    }
    if request.body.len() > max_body_bytes {
        return Err(ChatError::TooLarge(format!(
            "body is larger than {max_body_bytes} bytes"
        )));
    }
    if request.body.is_empty() {
        return Err(ChatError::BadRequest("body must not be empty".into()));
    }
    Ok(())
}
