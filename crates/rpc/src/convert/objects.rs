//! The protocol objects: chats, members, messages, list entries, presence.

use chat_protocol::{
    Chat, ChatKind, ChatListEntry, LastSeenVisibility, Member, Message, PresenceEntry,
    PrivacySettings, PushPlatform, Role, SyncedChat,
};
use tonic::Status;

use super::missing;
use crate::pb;

pub fn kind_to_pb(kind: ChatKind) -> i32 {
    match kind {
        ChatKind::Direct => pb::ChatKind::Direct as i32,
        ChatKind::Group => pb::ChatKind::Group as i32,
    }
}

pub fn kind_from_pb(kind: i32) -> Result<ChatKind, Status> {
    match pb::ChatKind::try_from(kind) {
        Ok(pb::ChatKind::Direct) => Ok(ChatKind::Direct),
        Ok(pb::ChatKind::Group) => Ok(ChatKind::Group),
        _ => Err(Status::invalid_argument(format!(
            "unknown chat kind {kind}"
        ))),
    }
}

fn role_from_pb(role: i32) -> Result<Role, Status> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Member) => Ok(Role::Member),
        _ => Err(Status::invalid_argument(format!("unknown role {role}"))),
    }
}

pub fn platform_to_pb(platform: PushPlatform) -> i32 {
    match platform {
        PushPlatform::Apns => pb::Platform::Apns as i32,
        PushPlatform::Fcm => pb::Platform::Fcm as i32,
    }
}

pub fn platform_from_pb(platform: i32) -> Result<PushPlatform, Status> {
    match pb::Platform::try_from(platform) {
        Ok(pb::Platform::Apns) => Ok(PushPlatform::Apns),
        Ok(pb::Platform::Fcm) => Ok(PushPlatform::Fcm),
        _ => Err(Status::invalid_argument(format!(
            "unknown platform {platform}"
        ))),
    }
}

pub fn chat_to_pb(chat: Chat) -> pb::Chat {
    pb::Chat {
        chat_id: chat.chat_id.into(),
        kind: kind_to_pb(chat.kind),
        title: chat.title,
        members: chat
            .members
            .into_iter()
            .map(|m| pb::Member {
                user_id: m.user_id.into(),
                role: match m.role {
                    Role::Admin => pb::Role::Admin as i32,
                    Role::Member => pb::Role::Member as i32,
                },
            })
            .collect(),
        created_at: chat.created_at,
        head_seq: chat.head_seq,
        version: chat.version,
    }
}

pub fn chat_from_pb(chat: pb::Chat) -> Result<Chat, Status> {
    Ok(Chat {
        chat_id: chat.chat_id.into(),
        kind: kind_from_pb(chat.kind)?,
        title: chat.title,
        members: chat
            .members
            .into_iter()
            .map(|m| {
                Ok(Member {
                    user_id: m.user_id.into(),
                    role: role_from_pb(m.role)?,
                })
            })
            .collect::<Result<_, Status>>()?,
        created_at: chat.created_at,
        head_seq: chat.head_seq,
        version: chat.version,
    })
}

pub fn message_to_pb(m: Message) -> pb::Message {
    pb::Message {
        chat_id: m.chat_id.into(),
        seq: m.seq,
        msg_id: m.msg_id,
        sender_id: m.sender_id.into(),
        client_msg_id: m.client_msg_id,
        body: m.body,
        ts: m.ts,
    }
}

pub fn message_from_pb(m: pb::Message) -> Message {
    Message {
        chat_id: m.chat_id.into(),
        seq: m.seq,
        msg_id: m.msg_id,
        sender_id: m.sender_id.into(),
        client_msg_id: m.client_msg_id,
        body: m.body,
        ts: m.ts,
    }
}

pub fn list_entry_to_pb(e: ChatListEntry) -> pb::ChatListEntry {
    pb::ChatListEntry {
        chat: Some(chat_to_pb(e.chat)),
        read_seq: e.read_seq,
        delivered_seq: e.delivered_seq,
        unread: e.unread,
        last_message: e.last_message.map(message_to_pb),
    }
}

pub fn list_entry_from_pb(e: pb::ChatListEntry) -> Result<ChatListEntry, Status> {
    Ok(ChatListEntry {
        chat: chat_from_pb(e.chat.ok_or_else(|| missing("chat"))?)?,
        read_seq: e.read_seq,
        delivered_seq: e.delivered_seq,
        unread: e.unread,
        last_message: e.last_message.map(message_from_pb),
    })
}

pub fn synced_to_pb(c: SyncedChat) -> pb::SyncedChat {
    pb::SyncedChat {
        chat_id: c.chat_id.into(),
        kind: kind_to_pb(c.kind),
        title: c.title,
        head_seq: c.head_seq,
        delivered_seq: c.delivered_seq,
        read_seq: c.read_seq,
        unread: c.unread,
    }
}

pub fn synced_from_pb(c: pb::SyncedChat) -> Result<SyncedChat, Status> {
    Ok(SyncedChat {
        chat_id: c.chat_id.into(),
        kind: kind_from_pb(c.kind)?,
        title: c.title,
        head_seq: c.head_seq,
        delivered_seq: c.delivered_seq,
        read_seq: c.read_seq,
        unread: c.unread,
    })
}

pub fn presence_to_pb(p: PresenceEntry) -> pb::PresenceEntry {
    pb::PresenceEntry {
        user_id: p.user_id.into(),
        online: p.online,
        last_seen: p.last_seen,
        error: p.error,
    }
}

pub fn presence_from_pb(p: pb::PresenceEntry) -> PresenceEntry {
    PresenceEntry {
        user_id: p.user_id.into(),
        online: p.online,
        last_seen: p.last_seen,
        error: p.error,
    }
}

pub fn privacy_to_pb(settings: PrivacySettings) -> pb::PrivacySettings {
    pb::PrivacySettings {
        last_seen: match settings.last_seen {
            LastSeenVisibility::Contacts => "contacts",
            LastSeenVisibility::Nobody => "nobody",
        }
        .to_owned(),
    }
}

pub fn privacy_from_pb(settings: &pb::PrivacySettings) -> Result<PrivacySettings, Status> {
    let last_seen = match settings.last_seen.as_str() {
        "contacts" => LastSeenVisibility::Contacts,
        "nobody" => LastSeenVisibility::Nobody,
        other => {
            return Err(Status::invalid_argument(format!(
                "unknown last_seen visibility `{other}`"
            )))
        }
    };
    Ok(PrivacySettings { last_seen })
}
