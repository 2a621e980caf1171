//! The contract between the gateways and the chat service, defined once: who is calling,
//! each call's request and reply types, the errors (with their kinds), and `ChatApi`, the
//! trait both the in-process `ChatService` and the networked client implement. Typed ids
//! (`UserId`, `DeviceId`, `ChatId`) keep arguments from being swapped.
#![forbid(unsafe_code)]

mod api;
mod error;
mod types;
mod validate;

pub use api::ChatApi;
pub use chat_protocol::ids::{ChatId, DeviceId, UserId};
pub use error::{ChatError, ErrorKind, MOVED_RETRY_MS, TAKEOVER_RETRY};
pub use types::{
    Caller, ContractLimits, CreateChat, CreatedChat, HistoryQuery, SendOutcome, SendRequest,
    SyncRequest, SyncResult,
};
pub use validate::{validate_send, validate_seq, MAX_SEQ};
