//! Between the contract's types (`chat_api`, `chat_protocol`) and their protobuf forms.
//! Every conversion from the wire checks what protobuf cannot (required messages, known
//! enum values) and says which field is wrong.

mod errors;
mod objects;
mod requests;

pub use errors::{error_from_pb, error_from_status, error_to_pb, status_from_error};
pub use objects::*;
pub use requests::*;

use tonic::Status;

/// A required message field that was absent.
pub(crate) fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("missing field `{field}`"))
}
