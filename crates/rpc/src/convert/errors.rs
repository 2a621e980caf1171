//! `ChatError` on the wire. Unary calls fail with a gRPC status whose code approximates the
//! error and whose details carry the exact `pb::Error`; a send's error rides in its reply.
//! Statuses that did not come from a `ChatError` (the transport failed, the server does not
//! know the call, authentication failed) become errors that say so.

use chat_api::{ChatError, ErrorKind, TAKEOVER_RETRY};
use prost::Message as _;
use tonic::{Code, Status};

use crate::pb;

pub fn error_to_pb(e: &ChatError) -> pb::Error {
    let kind = match e.kind() {
        ErrorKind::BadRequest => pb::ErrorKind::BadRequest,
        ErrorKind::TooLarge => pb::ErrorKind::TooLarge,
        ErrorKind::Forbidden => pb::ErrorKind::Forbidden,
        ErrorKind::NotFound => pb::ErrorKind::NotFound,
        ErrorKind::Moved => pb::ErrorKind::Moved,
        ErrorKind::Unavailable => pb::ErrorKind::Unavailable,
        ErrorKind::Internal => pb::ErrorKind::Internal,
    };
    pb::Error {
        kind: kind as i32,
        // Internal detail stays in the chat service's log.
        message: e.client_message(),
        retry_after_ms: e.retry_after_ms(),
    }
}

pub fn error_from_pb(e: pb::Error) -> ChatError {
    let message = e.message;
    match pb::ErrorKind::try_from(e.kind).unwrap_or(pb::ErrorKind::Unspecified) {
        pb::ErrorKind::BadRequest => ChatError::BadRequest { message },
        pb::ErrorKind::TooLarge => ChatError::TooLarge { message },
        pb::ErrorKind::Forbidden => ChatError::Forbidden { message },
        pb::ErrorKind::NotFound => ChatError::NotFound { message },
        pb::ErrorKind::Moved => ChatError::Moved { message },
        pb::ErrorKind::Unavailable => ChatError::Unavailable {
            message,
            retry_after_ms: e.retry_after_ms,
        },
        pb::ErrorKind::Internal | pb::ErrorKind::Unspecified => ChatError::Internal { message },
    }
}

pub fn status_from_error(e: &ChatError) -> Status {
    let code = match e.kind() {
        ErrorKind::BadRequest | ErrorKind::TooLarge => Code::InvalidArgument,
        ErrorKind::Forbidden => Code::PermissionDenied,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Moved => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    let detail = error_to_pb(e);
    Status::with_details(code, detail.message.clone(), detail.encode_to_vec().into())
}

pub fn error_from_status(status: Status) -> ChatError {
    if let Ok(detail) = pb::Error::decode(status.details()) {
        if detail.kind != pb::ErrorKind::Unspecified as i32 {
            return error_from_pb(detail);
        }
    }
    match status.code() {
        Code::Unimplemented => ChatError::internal(format!(
            "the chat service does not know this call (a version mismatch?): {}",
            status.message()
        )),
        Code::Unauthenticated | Code::PermissionDenied => ChatError::internal(format!(
            "the chat service refused this gateway's credentials: {}",
            status.message()
        )),
        Code::InvalidArgument => ChatError::bad_request(status.message()),
        Code::ResourceExhausted | Code::OutOfRange => ChatError::too_large(status.message()),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            ChatError::unavailable_for("chat service unreachable, retry", TAKEOVER_RETRY)
        }
        _ => ChatError::internal(format!(
            "chat service call failed: {} {}",
            status.code(),
            status.message()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_error_survives_a_status_with_its_kind() {
        for error in [
            ChatError::bad_request("b"),
            ChatError::too_large("t"),
            ChatError::forbidden("f"),
            ChatError::not_found("n"),
            ChatError::moved(),
            ChatError::unavailable_for("u", Duration::from_millis(900)),
        ] {
            assert_eq!(error_from_status(status_from_error(&error)), error);
        }
        let internal = error_from_status(status_from_error(&ChatError::internal("db path")));
        assert_eq!(
            internal,
            ChatError::internal("internal error"),
            "no detail leaks"
        );
    }

    #[test]
    fn foreign_statuses_say_what_happened() {
        let unknown = error_from_status(Status::unimplemented("no such method"));
        assert!(
            unknown.to_string().contains("does not know this call"),
            "{unknown}"
        );
        assert_eq!(
            error_from_status(Status::unavailable("connection refused")).kind(),
            ErrorKind::Unavailable
        );
        assert!(error_from_status(Status::unauthenticated("bad token"))
            .to_string()
            .contains("credentials"));
    }
}
