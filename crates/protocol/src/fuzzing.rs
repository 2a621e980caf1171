//! What the fuzz targets (`fuzz/`) run, kept here so the stable test suite replays their
//! corpus through the same code: decoding never panics, and what it accepts is valid.

use crate::decode::decode_client_frame;
use crate::ids::is_valid_client_token;
use crate::rest::{parse_query, HistoryParams, PresenceParams, MAX_PRESENCE_USERS};

/// One client frame, as raw bytes off a socket.
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client_frame(text) {
        Ok(frame) => {
            if let Some(id) = frame.id() {
                assert!(is_valid_client_token(id), "an invalid id was accepted");
            }
            let _ = frame.kind();
        }
        Err(e) => {
            if let Some(re) = &e.re {
                assert!(is_valid_client_token(re), "an invalid id is echoed");
            }
            assert!(!e.message.is_empty());
        }
    }
}

/// One REST query string, parsed as each endpoint parses it.
pub fn rest_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_query::<HistoryParams>(query);
    if let Ok(presence) = parse_query::<PresenceParams>(query) {
        let ids = presence.user_ids();
        assert!(ids.iter().all(|id| !id.is_empty()));
        let _ = ids.len() > MAX_PRESENCE_USERS;
    }
}
