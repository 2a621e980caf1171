//! The bytes of a `BusEvent` on a networked bus. A frame: a flags byte, the optional skip
//! session (16 bytes), the optional skip user (length-prefixed), then the frame as is. A
//! control event: the `CONTROL` flag with its kind, then its chat id (or user id).

use bytes::{BufMut, Bytes, BytesMut};
use chat_protocol::ids::ChatId;
use uuid::Uuid;

use crate::{BusEvent, BusMessage};

const HAS_SESSION: u8 = 1;
const HAS_USER: u8 = 2;
const CONTROL: u8 = 0x80;
const JOINED_LARGE_GROUP: u8 = CONTROL | 1;
const LEFT_LARGE_GROUP: u8 = CONTROL | 2;
const PRESENCE_REVOKED: u8 = CONTROL | 3;

pub fn encode(event: &BusEvent) -> Bytes {
    match event {
        BusEvent::Frame(message) => encode_frame(message),
        BusEvent::LargeGroup { chat_id, member } => {
            let mut out = BytesMut::with_capacity(1 + chat_id.len());
            out.put_u8(if *member {
                JOINED_LARGE_GROUP
            } else {
                LEFT_LARGE_GROUP
            });
            out.put_slice(chat_id.as_bytes());
            out.freeze()
        }
        BusEvent::PresenceRevoked { user } => {
            let mut out = BytesMut::with_capacity(1 + user.len());
            out.put_u8(PRESENCE_REVOKED);
            out.put_slice(user.as_bytes());
            out.freeze()
        }
    }
}

fn encode_frame(message: &BusMessage) -> Bytes {
    let user = message.skip_user.as_deref().unwrap_or("");
    let mut out = BytesMut::with_capacity(1 + 16 + 1 + user.len() + message.frame.len());
    let flags = (message.skip_session.is_some() as u8 * HAS_SESSION)
        | (message.skip_user.is_some() as u8 * HAS_USER);
    out.put_u8(flags);
    if let Some(session) = message.skip_session {
        out.put_slice(session.as_bytes());
    }
    if message.skip_user.is_some() {
        // User ids are at most 64 bytes, so one length byte is enough.
        out.put_u8(user.len() as u8);
        out.put_slice(user.as_bytes());
    }
    out.put_slice(&message.frame);
    out.freeze()
}

pub fn decode(bytes: Bytes) -> Option<BusEvent> {
    let flags = *bytes.first()?;
    if flags & CONTROL != 0 {
        let id = std::str::from_utf8(bytes.get(1..)?).ok()?;
        if flags == PRESENCE_REVOKED {
            return Some(BusEvent::PresenceRevoked { user: id.into() });
        }
        let chat_id = ChatId::from(id);
        return match flags {
            JOINED_LARGE_GROUP => Some(BusEvent::LargeGroup {
                chat_id,
                member: true,
            }),
            LEFT_LARGE_GROUP => Some(BusEvent::LargeGroup {
                chat_id,
                member: false,
            }),
            _ => None,
        };
    }
    let mut at = 1;
    let skip_session = if flags & HAS_SESSION != 0 {
        let raw: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
        at += 16;
        Some(Uuid::from_bytes(raw))
    } else {
        None
    };
    let skip_user = if flags & HAS_USER != 0 {
        let len = *bytes.get(at)? as usize;
        let user = std::str::from_utf8(bytes.get(at + 1..at + 1 + len)?).ok()?;
        at += 1 + len;
        Some(user.into())
    } else {
        None
    };
    Some(BusEvent::Frame(BusMessage {
        frame: bytes.slice(at..),
        skip_session,
        skip_user,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_shape() {
        for event in [
            BusEvent::Frame(BusMessage::to_all("{\"type\":\"msg\"}")),
            BusEvent::Frame(BusMessage {
                frame: Bytes::from("x"),
                skip_session: Some(Uuid::new_v4()),
                skip_user: None,
            }),
            BusEvent::Frame(BusMessage {
                frame: Bytes::from("y"),
                skip_session: None,
                skip_user: Some("alice".into()),
            }),
            BusEvent::Frame(BusMessage {
                frame: Bytes::new(),
                skip_session: Some(Uuid::new_v4()),
                skip_user: Some("b".into()),
            }),
            BusEvent::LargeGroup {
                chat_id: "c-1".into(),
                member: true,
            },
            BusEvent::LargeGroup {
                chat_id: "c-2".into(),
                member: false,
            },
            BusEvent::PresenceRevoked {
                user: "frank".into(),
            },
        ] {
            assert_eq!(decode(encode(&event)), Some(event));
        }
    }

    #[test]
    fn truncated_or_unknown_input_is_refused() {
        assert_eq!(decode(Bytes::new()), None);
        assert_eq!(decode(Bytes::from_static(&[HAS_SESSION, 1, 2])), None);
        assert_eq!(decode(Bytes::from_static(&[HAS_USER, 9, b'a'])), None);
        assert_eq!(decode(Bytes::from_static(&[CONTROL | 9, b'c'])), None);
    }
}
