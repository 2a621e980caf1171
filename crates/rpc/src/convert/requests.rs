//! The caller, and the requests and replies with types of their own.

use chat_api::{Caller, SendOutcome, SyncResult};
use tonic::Status;
use uuid::Uuid;

use super::missing;
use super::objects::{message_from_pb, message_to_pb, synced_from_pb, synced_to_pb};
use crate::pb;

pub fn caller_to_pb(caller: &Caller) -> Option<pb::Caller> {
    Some(pb::Caller {
        user_id: caller.user_id.to_string(),
        device_id: caller.device_id.to_string(),
        session: caller.session.map(|s| s.as_bytes().to_vec()),
    })
}

pub fn caller_from_pb(caller: Option<pb::Caller>) -> Result<Caller, Status> {
    let caller = caller.ok_or_else(|| missing("caller"))?;
    let session = match caller.session {
        None => None,
        Some(bytes) => Some(
            Uuid::from_slice(&bytes)
                .map_err(|_| Status::invalid_argument("session must be 16 bytes"))?,
        ),
    };
    Ok(Caller {
        user_id: caller.user_id.into(),
        device_id: caller.device_id.into(),
        session,
    })
}

pub fn outcome_to_pb(o: SendOutcome) -> pb::SendOutcome {
    pb::SendOutcome {
        chat_id: o.chat_id.into(),
        client_msg_id: o.client_msg_id,
        msg_id: o.msg_id,
        seq: o.seq,
        ts: o.ts,
        created: o.created,
    }
}

pub fn outcome_from_pb(o: pb::SendOutcome) -> SendOutcome {
    SendOutcome {
        chat_id: o.chat_id.into(),
        client_msg_id: o.client_msg_id,
        msg_id: o.msg_id,
        seq: o.seq,
        ts: o.ts,
        created: o.created,
    }
}

pub fn sync_to_pb(r: SyncResult) -> pb::SyncReply {
    pb::SyncReply {
        messages: r.messages.into_iter().map(message_to_pb).collect(),
        complete: r.complete,
        chats: r.chats.into_iter().map(synced_to_pb).collect(),
    }
}

pub fn sync_from_pb(r: pb::SyncReply) -> Result<SyncResult, Status> {
    Ok(SyncResult {
        messages: r.messages.into_iter().map(message_from_pb).collect(),
        complete: r.complete,
        chats: r
            .chats
            .into_iter()
            .map(synced_from_pb)
            .collect::<Result<_, _>>()?,
    })
}
