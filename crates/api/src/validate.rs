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
