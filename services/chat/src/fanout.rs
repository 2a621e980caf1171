//! Fan-out: turns chat events into server frames, serialized once, and publishes them on
//! each member's user topic (or once on a large group's topic); tells gateways when a user
//! joins or leaves a large group (this service alone decides what "large" is); queues push
//! jobs for recipients with no device online.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use chat_api::{ChatId, UserId};
use chat_bus::{Bus, BusEvent, BusMessage, Topic};
use chat_ops::KeptCounter;
use chat_presence::PresenceView;
use chat_protocol::{
    Chat, ChatChange, ChatEvent, ChatHeader, ChatKind, Message, ReceiptKind, ServerFrame,
};
use chat_push::{Enqueued, PushJob, PushQueue};
use uuid::Uuid;

/// Bus publishes (one per recipient user per event): kept, as it counts every message.
static PUBLISHES: KeptCounter = KeptCounter::new("chat_fanout_publishes_total");

/// How many users one presence lookup asks about (one pipelined Redis round trip).
const PRESENCE_CHUNK: usize = 1024;
/// How many distinct recipients one pass of `push_offline` looks up and holds (plus the
/// members of one more message's chat).
const RECIPIENTS_PER_PASS: usize = 16 * 1024;

/// Users a pass over a batch reaches, hashed with seeded foldhash (one insert per
/// recipient of every message; SipHash cost several times more).
type Recipients<'a> = HashSet<&'a UserId, foldhash::fast::RandomState>;

/// Who gets `message` of `chat`: every member but its sender.
fn recipients_of<'a>(chat: &'a Chat, message: &'a Message) -> impl Iterator<Item = &'a UserId> {
    chat.members
        .iter()
        .map(|m| &m.user_id)
        .filter(move |user| **user != message.sender_id)
}

/// Dropped push jobs are logged at most this often, with their count.
static PUSH_DROPS: chat_ops::LogEvery = chat_ops::LogEvery::new(std::time::Duration::from_secs(10));

pub(crate) struct Fanout {
    bus: Arc<dyn Bus>,
    presence: Arc<dyn PresenceView>,
    push: Arc<dyn PushQueue>,
    /// Groups larger than this publish once on their group topic.
    large_group_members: usize,
}

impl Fanout {
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        presence: Arc<dyn PresenceView>,
        push: Arc<dyn PushQueue>,
        large_group_members: usize,
    ) -> Self {
        Fanout {
            bus,
            presence,
            push,
            large_group_members,
        }
    }

    pub(crate) fn is_large(&self, chat: &Chat) -> bool {
        chat.kind == ChatKind::Group && chat.members.len() > self.large_group_members
    }

    /// One publish per member's user topic, or a single one on the group topic of a
    /// large group; either way the frame is serialized once.
    fn to_members(
        &self,
        chat: &Chat,
        frame: &ServerFrame,
        skip_session: Option<Uuid>,
        skip_user: Option<&UserId>,
    ) {
        let frame = Bytes::from(frame.to_json());
        if self.is_large(chat) {
            let message = BusMessage {
                frame,
                skip_session,
                skip_user: skip_user.cloned(),
            };
            self.bus.publish(
                &Topic::Group(chat.chat_id.clone()),
                BusEvent::Frame(message),
            );
            PUBLISHES.increment(1);
            return;
        }
        for member in &chat.members {
            if skip_user != Some(&member.user_id) {
                self.to_user(&member.user_id, frame.clone(), skip_session);
            }
        }
    }

    /// One serialized frame to one user's devices, but the session `skip_session`.
    fn to_user(&self, user_id: &UserId, frame: Bytes, skip_session: Option<Uuid>) {
        let message = BusMessage {
            frame,
            skip_session,
            skip_user: None,
        };
        self.bus
            .publish(&Topic::User(user_id.clone()), BusEvent::Frame(message));
        PUBLISHES.increment(1);
    }

    /// A new message: every member's devices but the sending session get it.
    pub(crate) fn message(&self, chat: &Chat, message: &Message, origin: Option<Uuid>) {
        self.to_members(chat, &ServerFrame::Msg(message.clone()), origin, None);
    }

    /// Queues pushes for the recipients of `deliveries` who have no device online. Who is
    /// online is asked once per recipient of a whole pass over the batch, `PRESENCE_CHUNK`
    /// at a time: asked per message and member, it was one Redis round trip per recipient
    /// per message. A pass takes deliveries until they name `RECIPIENTS_PER_PASS` users,
    /// which bounds what it holds when a batch fans out to large groups.
    pub(crate) async fn push_offline(&self, deliveries: Vec<(Arc<Chat>, Message)>) {
        let mut rest = deliveries.as_slice();
        while !rest.is_empty() {
            let mut recipients: Recipients = HashSet::default();
            let mut taken = 0;
            for (chat, message) in rest {
                if taken > 0 && recipients.len() >= RECIPIENTS_PER_PASS {
                    break;
                }
                recipients.extend(recipients_of(chat, message));
                taken += 1;
            }
            let (pass, later) = rest.split_at(taken);
            let offline = self.offline_among(recipients).await;
            self.queue_pushes(pass, &offline).await;
            rest = later;
        }
    }

    /// The users of `recipients` with no device online.
    async fn offline_among<'a>(&self, recipients: Recipients<'a>) -> Recipients<'a> {
        let recipients: Vec<&UserId> = recipients.into_iter().collect();
        let mut offline = HashSet::default();
        for chunk in recipients.chunks(PRESENCE_CHUNK) {
            let users: Vec<UserId> = chunk.iter().map(|user| (*user).clone()).collect();
            let online = self.presence.online(&users).await;
            offline.extend(
                chunk
                    .iter()
                    .zip(online)
                    .filter(|(_, on)| !on)
                    .map(|(u, _)| *u),
            );
        }
        offline
    }

    /// One push job per message for each of its recipients in `offline`.
    async fn queue_pushes(&self, deliveries: &[(Arc<Chat>, Message)], offline: &Recipients<'_>) {
        if offline.is_empty() {
            return;
        }
        for (chat, message) in deliveries {
            for user in recipients_of(chat, message).filter(|user| offline.contains(user)) {
                let job = PushJob {
                    user_id: user.clone(),
                    chat_id: message.chat_id.clone(),
                    seq: message.seq,
                    sender_id: message.sender_id.clone(),
                    body: message.body.clone(),
                    attempt: 0,
                    devices: None,
                };
                self.queue_push(job).await;
            }
        }
    }

    async fn queue_push(&self, job: PushJob) {
        match self.push.enqueue(job).await {
            Ok(Enqueued::Queued) => {
                metrics::counter!("chat_push_queued_total").increment(1);
            }
            Ok(Enqueued::Collapsed) => {
                metrics::counter!("chat_push_collapsed_total").increment(1);
            }
            Err(e) => {
                metrics::counter!("chat_push_dropped_total", "reason" => e.reason()).increment(1);
                if let Some(dropped) = PUSH_DROPS.event() {
                    tracing::warn!(dropped, last_error = %e, "push jobs not queued (count since the last report)");
                }
            }
        }
    }

    pub(crate) fn receipt(
        &self,
        chat: &Chat,
        user_id: &UserId,
        kind: ReceiptKind,
        seq: u64,
        origin: Option<Uuid>,
    ) {
        let frame = ServerFrame::Receipt {
            chat_id: chat.chat_id.clone(),
            user_id: user_id.clone(),
            kind,
            seq,
        };
        if self.is_large(chat) {
            // Every member's receipt to every member is quadratic: in a 1,000-member group
            // the members' delivery acks alone came to six times the message frames and
            // throttled the group to 66 msgs/s (BENCHMARKS.md). Large groups keep the
            // watermarks but tell only the reader's own other devices, so unread counts
            // stay in step across them.
            if kind == ReceiptKind::Read {
                self.to_user(user_id, Bytes::from(frame.to_json()), origin);
            }
            metrics::counter!("chat_large_group_receipts_kept_local_total").increment(1);
            return;
        }
        match kind {
            // Delivery is news only to the others.
            ReceiptKind::Delivered => self.to_members(chat, &frame, None, Some(user_id)),
            // Read state also syncs the reader's other devices.
            ReceiptKind::Read => self.to_members(chat, &frame, origin, None),
        }
    }

    pub(crate) fn typing(&self, chat: &Chat, user_id: &UserId) {
        let frame = ServerFrame::Typing {
            chat_id: chat.chat_id.clone(),
            user_id: user_id.clone(),
        };
        self.to_members(chat, &frame, None, Some(user_id));
    }

    /// Sends a `chat` frame with `event` to the listed users' devices.
    /// A `chat` frame to `users`: the chat's header (no member list) and what changed.
    pub(crate) fn chat_event<'a>(
        &self,
        chat: &Chat,
        event: ChatEvent,
        changes: &[ChatChange],
        users: impl IntoIterator<Item = &'a UserId>,
    ) {
        let frame = Bytes::from(
            ServerFrame::Chat {
                event,
                chat: ChatHeader::from(chat),
                changes: changes.to_vec(),
            }
            .to_json(),
        );
        for user in users {
            self.to_user(user, frame.clone(), None);
        }
    }

    /// Tells the gateways of `users` whether they are now in the large group `chat_id`
    /// (its events come on the group's topic) or no longer.
    pub(crate) fn large_group<'a>(
        &self,
        chat_id: &ChatId,
        member: bool,
        users: impl IntoIterator<Item = &'a UserId>,
    ) {
        for user in users {
            self.bus.publish(
                &Topic::User(user.clone()),
                BusEvent::LargeGroup {
                    chat_id: chat_id.clone(),
                    member,
                },
            );
        }
    }

    /// `watcher` may no longer see `user`'s presence: their gateways end the watch.
    pub(crate) fn presence_revoked(&self, watcher: &UserId, user: &UserId) {
        self.bus.publish(
            &Topic::User(watcher.clone()),
            BusEvent::PresenceRevoked { user: user.clone() },
        );
    }

    /// After members changed: who must follow, or stop following, the group's topic.
    /// `before` and `after` are the group as it was and is.
    pub(crate) fn membership_changed(&self, before: &Chat, after: &Chat, removed: Option<&UserId>) {
        let (was_large, is_large) = (self.is_large(before), self.is_large(after));
        let members = || after.members.iter().map(|m| &m.user_id);
        match (was_large, is_large) {
            // The group crossed the line: everyone switches topic.
            (false, true) => self.large_group(&after.chat_id, true, members()),
            (true, false) => self.large_group(&after.chat_id, false, members()),
            // Large before and after: only the users who came or went.
            (true, true) => {
                let added = after
                    .members
                    .iter()
                    .filter(|m| before.member(&m.user_id).is_none())
                    .map(|m| &m.user_id);
                self.large_group(&after.chat_id, true, added);
            }
            (false, false) => {}
        }
        if let Some(user) = removed {
            if was_large {
                self.large_group(&after.chat_id, false, [user]);
            }
        }
    }
}
