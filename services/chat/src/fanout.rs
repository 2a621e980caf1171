//! Fan-out: turns chat events into server frames, serialized once, and publishes them on
//! each member's user topic (or once on a large group's topic); queues push jobs for
//! recipients with no device online.

use std::sync::Arc;

use bytes::Bytes;
use chat_bus::{group_topic, user_topic, Bus, BusMessage};
use chat_presence::Presence;
use chat_protocol::{Chat, ChatEvent, ChatKind, Message, ReceiptKind, ServerFrame};
use chat_push::{Enqueued, PushJob, PushQueue};
use uuid::Uuid;

/// Dropped push jobs are logged at most this often, with their count.
static PUSH_DROPS: chat_ops::LogEvery = chat_ops::LogEvery::new(std::time::Duration::from_secs(10));

pub(crate) struct Fanout {
    bus: Arc<dyn Bus>,
    presence: Arc<dyn Presence>,
    push: Arc<dyn PushQueue>,
    /// Groups larger than this publish once on their group topic.
    large_group_members: usize,
}

impl Fanout {
    pub(crate) fn new(
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
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
        skip_user: Option<&str>,
    ) {
        let frame = Bytes::from(frame.to_json());
        if self.is_large(chat) {
            let message = BusMessage {
                frame,
                skip_session,
                skip_user: skip_user.map(str::to_owned),
            };
            self.bus.publish(&group_topic(&chat.chat_id), message);
            metrics::counter!("chat_fanout_publishes_total").increment(1);
            return;
        }
        let mut publishes = 0;
        for member in &chat.members {
            if skip_user == Some(member.user_id.as_str()) {
                continue;
            }
            let message = BusMessage {
                frame: frame.clone(),
                skip_session,
                skip_user: None,
            };
            self.bus.publish(&user_topic(&member.user_id), message);
            publishes += 1;
        }
        metrics::counter!("chat_fanout_publishes_total").increment(publishes);
    }

    /// A new message: every member's devices but the sending session get it.
    pub(crate) fn message(&self, chat: &Chat, message: &Message, origin: Option<Uuid>) {
        self.to_members(chat, &ServerFrame::Msg(message.clone()), origin, None);
    }

    /// Queues pushes for the recipients of `messages` who have no device online.
    pub(crate) async fn push_offline(&self, deliveries: Vec<(Arc<Chat>, Message)>) {
        for (chat, message) in deliveries {
            for member in &chat.members {
                if member.user_id == message.sender_id
                    || self.presence.is_online(&member.user_id).await
                {
                    continue;
                }
                let job = PushJob {
                    user_id: member.user_id.clone(),
                    chat_id: message.chat_id.clone(),
                    seq: message.seq,
                    sender_id: message.sender_id.clone(),
                    body: message.body.clone(),
                    attempt: 0,
                    devices: None,
                };
                match self.push.enqueue(job).await {
                    Ok(Enqueued::Queued) => {
                        metrics::counter!("chat_push_queued_total").increment(1);
                    }
                    Ok(Enqueued::Collapsed) => {
                        metrics::counter!("chat_push_collapsed_total").increment(1);
                    }
                    Err(e) => {
                        metrics::counter!("chat_push_dropped_total", "reason" => e.reason())
                            .increment(1);
                        if let Some(dropped) = PUSH_DROPS.event() {
                            tracing::warn!(dropped, last_error = %e, "push jobs not queued (count since the last report)");
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn receipt(
        &self,
        chat: &Chat,
        user_id: &str,
        kind: ReceiptKind,
        seq: u64,
        origin: Option<Uuid>,
    ) {
        let frame = ServerFrame::Receipt {
            chat_id: chat.chat_id.clone(),
            user_id: user_id.to_owned(),
            kind,
            seq,
        };
        match kind {
            // Delivery is news only to the others.
            ReceiptKind::Delivered => self.to_members(chat, &frame, None, Some(user_id)),
            // Read state also syncs the reader's other devices.
            ReceiptKind::Read => self.to_members(chat, &frame, origin, None),
        }
    }

    pub(crate) fn typing(&self, chat: &Chat, user_id: &str) {
        let frame = ServerFrame::Typing {
            chat_id: chat.chat_id.clone(),
            user_id: user_id.to_owned(),
        };
        self.to_members(chat, &frame, None, Some(user_id));
    }

    /// Sends a `chat` frame with `event` to the listed users' devices.
    pub(crate) fn chat_event<'a>(
        &self,
        chat: &Chat,
        event: ChatEvent,
        users: impl IntoIterator<Item = &'a str>,
    ) {
        let frame = Bytes::from(
            ServerFrame::Chat {
                event,
                chat: chat.clone(),
            }
            .to_json(),
        );
        for user in users {
            self.bus.publish(
                &user_topic(user),
                BusMessage {
                    frame: frame.clone(),
                    skip_session: None,
                    skip_user: None,
                },
            );
        }
    }
}
