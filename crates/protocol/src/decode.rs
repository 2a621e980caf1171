//! Decoding client frames with errors precise enough to send back (`re`, code, message).

use serde_json::Value;

use crate::error::ErrorCode;
use crate::frames::ClientFrame;
use crate::ids::is_valid_client_token;

/// Why a text frame could not be turned into a `ClientFrame`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// The request id, when the frame carried a usable one, so the error can answer it.
    pub re: Option<String>,
    pub code: ErrorCode,
    pub message: String,
}

/// Decodes one text frame. The fast path parses straight into the typed frame; only a
/// frame that fails is parsed again loosely, to find its `id` and say what is wrong.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, DecodeError> {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => {
            if let Some(id) = frame.id() {
                if !is_valid_client_token(id) {
                    return Err(DecodeError {
                        re: None,
                        code: ErrorCode::BadRequest,
                        message: "id must be 1-64 bytes".into(),
                    });
                }
            }
            Ok(frame)
        }
        Err(typed_err) => Err(diagnose(text, typed_err)),
    }
}

fn diagnose(text: &str, typed_err: serde_json::Error) -> DecodeError {
    let bad = |re: Option<String>, message: String| DecodeError {
        re,
        code: ErrorCode::BadRequest,
        message,
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return bad(None, format!("invalid JSON: {e}")),
    };
    let Some(object) = value.as_object() else {
        return bad(None, "a frame must be a JSON object".into());
    };
    let re = object
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| is_valid_client_token(id))
        .map(str::to_owned);
    match object.get("type") {
        None => bad(re, "missing field `type`".into()),
        Some(Value::String(t)) if !ClientFrame::KINDS.contains(&t.as_str()) => {
            bad(re, format!("unknown type `{t}`"))
        }
        Some(Value::String(_)) => bad(re, strip_position(&typed_err.to_string())),
        Some(_) => bad(re, "`type` must be a string".into()),
    }
}

/// serde_json appends "at line 1 column N"; clients gain nothing from it.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_send() {
        let f = decode_client_frame(
            r#"{"type":"send","id":"1","chat_id":"c","client_msg_id":"k","body":"hi"}"#,
        )
        .unwrap();
        assert_eq!(f.kind(), "send");
        assert_eq!(f.id(), Some("1"));
    }

    #[test]
    fn invalid_json_has_no_re() {
        let e = decode_client_frame("{not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(e.re, None);
    }

    #[test]
    fn unknown_type_keeps_the_id() {
        let e = decode_client_frame(r#"{"type":"dance","id":"7"}"#).unwrap_err();
        assert_eq!(e.re.as_deref(), Some("7"));
        assert!(e.message.contains("dance"));
    }

    #[test]
    fn wrong_field_type_is_named() {
        let e =
            decode_client_frame(r#"{"type":"recv","id":"8","chat_id":"c","seq":"x"}"#).unwrap_err();
        assert_eq!(e.re.as_deref(), Some("8"));
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }

    #[test]
    fn missing_field_is_named() {
        let e = decode_client_frame(r#"{"type":"ping"}"#).unwrap_err();
        assert!(e.message.contains("missing field `id`"), "{}", e.message);
    }

    #[test]
    fn overlong_id_is_refused() {
        let frame = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65));
        assert_eq!(
            decode_client_frame(&frame).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }
}
