//! The bytes of a `BusMessage` on a networked bus: a flags byte, the optional skip
//! session (16 bytes), the optional skip user (length-prefixed), then the frame as is.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::BusMessage;

const HAS_SESSION: u8 = 1;
const HAS_USER: u8 = 2;

pub fn encode(message: &BusMessage) -> Bytes {
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

pub fn decode(bytes: Bytes) -> Option<BusMessage> {
    let flags = *bytes.first()?;
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
        let user = std::str::from_utf8(bytes.get(at + 1..at + 1 + len)?)
            .ok()?
            .to_owned();
        at += 1 + len;
        Some(user)
    } else {
        None
    };
    Some(BusMessage {
        frame: bytes.slice(at..),
        skip_session,
        skip_user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_shape() {
        for message in [
            BusMessage::to_all("{\"type\":\"msg\"}"),
            BusMessage {
                frame: Bytes::from("x"),
                skip_session: Some(Uuid::new_v4()),
                skip_user: None,
            },
            BusMessage {
                frame: Bytes::from("y"),
                skip_session: None,
                skip_user: Some("alice".into()),
            },
            BusMessage {
                frame: Bytes::new(),
                skip_session: Some(Uuid::new_v4()),
                skip_user: Some("b".into()),
            },
        ] {
            assert_eq!(decode(encode(&message)), Some(message));
        }
    }

    #[test]
    fn truncated_input_is_refused() {
        assert_eq!(decode(Bytes::new()), None);
        assert_eq!(decode(Bytes::from_static(&[HAS_SESSION, 1, 2])), None);
        assert_eq!(decode(Bytes::from_static(&[HAS_USER, 9, b'a'])), None);
    }
}
