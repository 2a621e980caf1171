//! Creating chats, listing and reading them, and changing a group's members.

use std::collections::HashSet;

use chat_api::{Caller, ChatError, ChatId, CreateChat, CreatedChat, UserId};
use chat_protocol::ids::{direct_chat_id, is_valid_id};
use chat_protocol::{now_ms, Chat, ChatChange, ChatEvent, ChatKind, ChatListEntry, Member, Role};
use uuid::Uuid;

use super::ChatService;
use crate::errors::store_error;

const MAX_TITLE_BYTES: usize = 256;

fn member_ids(chat: &Chat) -> impl Iterator<Item = &UserId> {
    chat.members.iter().map(|m| &m.user_id)
}

fn validate_new_members(user_ids: &[UserId]) -> Result<(), ChatError> {
    if let Some(bad) = user_ids.iter().find(|u| !is_valid_id(u)) {
        return Err(ChatError::bad_request(format!("invalid user id `{bad}`")));
    }
    Ok(())
}

impl ChatService {
    pub(super) async fn create(
        &self,
        caller: &Caller,
        request: CreateChat,
    ) -> Result<CreatedChat, ChatError> {
        validate_new_members(&request.members)?;
        match request.kind {
            ChatKind::Direct => self.create_direct(caller, &request.members).await,
            ChatKind::Group => {
                self.create_group(caller, request.title, &request.members)
                    .await
            }
        }
    }

    async fn create_direct(
        &self,
        caller: &Caller,
        members: &[UserId],
    ) -> Result<CreatedChat, ChatError> {
        let others: HashSet<&UserId> = members.iter().filter(|u| **u != caller.user_id).collect();
        if others.len() != 1 {
            return Err(ChatError::bad_request(
                "a direct chat has exactly one other member",
            ));
        }
        let other = others.into_iter().next().expect("one member");
        if self.blocked_between(&caller.user_id, other).await? {
            return Err(ChatError::forbidden(
                "you cannot start a chat with this user",
            ));
        }
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
            version: 0,
        };
        let created = self.store.create_chat(&chat).await.map_err(store_error)?;
        let chat = self
            .store
            .get_chat(&chat_id)
            .await
            .map_err(store_error)?
            .ok_or_else(ChatError::no_chat)?;
        if created {
            self.fanout
                .chat_event(&chat, ChatEvent::Added, &[], member_ids(&chat));
        }
        Ok(CreatedChat { chat, created })
    }

    async fn create_group(
        &self,
        caller: &Caller,
        title: Option<String>,
        members: &[UserId],
    ) -> Result<CreatedChat, ChatError> {
        if title.as_ref().is_some_and(|t| t.len() > MAX_TITLE_BYTES) {
            return Err(ChatError::bad_request(format!(
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
            return Err(ChatError::bad_request(format!(
                "a group has at most {} members",
                self.config.max_group_members
            )));
        }
        let chat = Chat {
            chat_id: ChatId::from(Uuid::now_v7().to_string()),
            kind: ChatKind::Group,
            title,
            members: member_list,
            created_at: now_ms(),
            head_seq: 0,
            version: 0,
        };
        self.store.create_chat(&chat).await.map_err(store_error)?;
        self.fanout
            .chat_event(&chat, ChatEvent::Added, &[], member_ids(&chat));
        if self.fanout.is_large(&chat) {
            self.fanout
                .large_group(&chat.chat_id, true, member_ids(&chat));
        }
        Ok(CreatedChat {
            chat,
            created: true,
        })
    }

    pub(super) async fn list(&self, caller: &Caller) -> Result<Vec<ChatListEntry>, ChatError> {
        let states = self
            .store
            .chats_of_user(&caller.user_id, &caller.device_id)
            .await
            .map_err(store_error)?;
        let hidden = self
            .store
            .hidden_chats(&caller.user_id)
            .await
            .map_err(store_error)?;
        Ok(states
            .into_iter()
            // A hidden chat shows again once a message newer than the hiding arrives.
            .filter(|s| {
                hidden
                    .get(&s.chat.chat_id)
                    .is_none_or(|at| s.chat.head_seq > *at)
            })
            .map(|s| ChatListEntry {
                chat: s.chat,
                read_seq: s.watermarks.read,
                delivered_seq: s.watermarks.delivered,
                unread: s.unread,
                last_message: s.last_message,
            })
            .collect())
    }

    pub(super) async fn get(&self, caller: &Caller, chat_id: &ChatId) -> Result<Chat, ChatError> {
        self.chat_for_member(caller, chat_id).await?;
        // Fresh from the store: the cached copy's head seq is not kept current.
        self.store
            .get_chat(chat_id)
            .await
            .map_err(store_error)?
            .ok_or_else(ChatError::no_chat)
    }

    pub(super) async fn add(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_ids: Vec<UserId>,
    ) -> Result<Chat, ChatError> {
        validate_new_members(&user_ids)?;
        let _changing = self.mutations.begin();
        let chat = self.chat_for_member(caller, chat_id).await?;
        if chat.kind != ChatKind::Group {
            return Err(ChatError::forbidden(
                "members of a direct chat cannot change",
            ));
        }
        if !chat.is_admin(&caller.user_id) {
            return Err(ChatError::forbidden("only group admins may add members"));
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
            return Err(ChatError::bad_request(format!(
                "a group has at most {} members",
                self.config.max_group_members
            )));
        }
        if new.is_empty() {
            return self.reloaded(chat_id).await;
        }
        self.store
            .add_members(chat_id, &new)
            .await
            .map_err(store_error)?;
        self.store
            .bump_chat_version(chat_id)
            .await
            .map_err(store_error)?;
        let updated = self.reloaded(chat_id).await?;
        let is_new = |u: &UserId| new.iter().any(|m| m.user_id == *u);
        let (added, existing): (Vec<&UserId>, Vec<&UserId>) =
            member_ids(&updated).partition(|u| is_new(u));
        let changes: Vec<ChatChange> = new
            .iter()
            .map(|m| ChatChange::MemberAdded {
                user_id: m.user_id.clone(),
                role: m.role,
            })
            .collect();
        // The new members fetch the list if they want it; the others get what changed.
        self.fanout
            .chat_event(&updated, ChatEvent::Added, &[], added);
        self.fanout
            .chat_event(&updated, ChatEvent::Updated, &changes, existing);
        self.fanout.membership_changed(&chat, &updated, None);
        Ok(updated)
    }

    pub(super) async fn remove(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        user_id: &UserId,
    ) -> Result<(), ChatError> {
        let _changing = self.mutations.begin();
        let chat = self.chat_for_member(caller, chat_id).await?;
        if chat.kind != ChatKind::Group && *user_id == caller.user_id {
            return self.hide(caller, chat_id).await;
        }
        if chat.kind != ChatKind::Group {
            return Err(ChatError::forbidden(
                "members of a direct chat cannot change",
            ));
        }
        if *user_id != caller.user_id && !chat.is_admin(&caller.user_id) {
            return Err(ChatError::forbidden("only admins may remove other members"));
        }
        if chat.member(user_id).is_none() {
            return Err(ChatError::not_found(format!("`{user_id}` is not a member")));
        }
        self.store
            .remove_member(chat_id, user_id)
            .await
            .map_err(store_error)?;
        let mut changes = vec![ChatChange::MemberRemoved {
            user_id: user_id.clone(),
        }];
        let remaining = self.reloaded(chat_id).await?;
        // A group is never left without an admin (nobody could add members again): the
        // longest-standing member becomes one.
        if !remaining.members.iter().any(|m| m.role == Role::Admin) {
            if let Some(heir) = remaining.members.first().map(|m| m.user_id.clone()) {
                self.store
                    .set_role(chat_id, &heir, Role::Admin)
                    .await
                    .map_err(store_error)?;
                tracing::info!(%chat_id, %heir, "last admin left; longest-standing member promoted");
                changes.push(ChatChange::RoleChanged {
                    user_id: heir,
                    role: Role::Admin,
                });
            }
        }
        self.store
            .bump_chat_version(chat_id)
            .await
            .map_err(store_error)?;
        let updated = self.reloaded(chat_id).await?;
        self.fanout
            .chat_event(&updated, ChatEvent::Updated, &changes, member_ids(&updated));
        self.fanout
            .chat_event(&updated, ChatEvent::Removed, &[], [user_id]);
        self.fanout
            .membership_changed(&chat, &updated, Some(user_id));
        self.revoke_presence(user_id, &updated).await;
        Ok(())
    }

    /// "Leaving" a direct chat hides it from the caller's chat list until a newer message
    /// arrives; the chat, its history and the other member are untouched.
    async fn hide(&self, caller: &Caller, chat_id: &ChatId) -> Result<(), ChatError> {
        let head_seq = self
            .store
            .get_chat(chat_id)
            .await
            .map_err(store_error)?
            .ok_or_else(ChatError::no_chat)?
            .head_seq;
        self.store
            .hide_chat(&caller.user_id, chat_id, head_seq)
            .await
            .map_err(store_error)
    }

    /// `user` left `chat`: the members they no longer share any chat with stop seeing
    /// their presence, and they stop seeing those members'.
    async fn revoke_presence(&self, user: &UserId, chat: &Chat) {
        let contacts: HashSet<UserId> = match self.store.contacts_of(user).await {
            Ok(contacts) => contacts.into_iter().collect(),
            Err(e) => {
                // Watches then end when the watcher reconnects; presence_sub re-checks.
                tracing::warn!(error = %e, %user, "cannot re-check presence watches");
                return;
            }
        };
        for member in chat.members.iter().map(|m| &m.user_id) {
            if member != user && !contacts.contains(member) {
                self.fanout.presence_revoked(member, user);
                self.fanout.presence_revoked(user, member);
            }
        }
    }

    /// The chat as stored now, after a change to its members (the cache forgets it).
    async fn reloaded(&self, chat_id: &ChatId) -> Result<Chat, ChatError> {
        self.chats.invalidate(chat_id);
        self.store
            .get_chat(chat_id)
            .await
            .map_err(store_error)?
            .ok_or_else(ChatError::no_chat)
    }
}
