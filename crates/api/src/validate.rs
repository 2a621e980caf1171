//! Checks of a request that need no state, made by whichever side sees it first.

use chat_protocol::ids::is_valid_client_token;

use crate::error::ChatError;
use crate::types::SendRequest;

/// A send's ids and body are within the protocol's bounds.
pub fn validate_send(request: &SendRequest, max_body_bytes: usize) -> Result<(), ChatError> {
    if !is_valid_client_token(&request.chat_id) {
        return Err(ChatError::bad_request("chat_id must be 1-64 bytes"));
    }
    if !is_valid_client_token(&request.client_msg_id) {
        return Err(ChatError::bad_request("client_msg_id must be 1-64 bytes"));
    }
    if request.body.len() > max_body_bytes {
        return Err(ChatError::too_large(format!(
            "body is larger than {max_body_bytes} bytes"
        )));
    }
    if request.body.is_empty() {
        return Err(ChatError::bad_request("body must not be empty"));
    }
    Ok(())
}

/// The largest seq a request may name: seqs are stored as signed 64-bit integers, and a
/// larger one would wrap to a negative number and select the wrong messages.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// `seq` (the request's `name` parameter) is at most [`MAX_SEQ`].
pub fn validate_seq(name: &str, seq: u64) -> Result<u64, ChatError> {
    if seq > MAX_SEQ {
        return Err(ChatError::bad_request(format!(
            "{name} must be at most {MAX_SEQ}"
        )));
    }
    Ok(seq)
}
