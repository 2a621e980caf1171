//! A connection's outbound queue: events the registry hands to it, read by the
//! connection's task. A bounded tokio channel allocates a 32-slot block when it is
//! created (~2 KB), which every idle connection held for nothing; this queue holds no
//! memory while empty and gives back what a burst grew.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Past this many slots, an emptied queue releases its buffer.
const KEEP_CAPACITY: usize = 8;

pub(crate) struct OutboundQueue<T> {
    items: Mutex<Slots<T>>,
    /// Wakes the reader; a wake with no reader waiting is kept for its next wait.
    ready: Notify,
    capacity: usize,
}

struct Slots<T> {
    queue: VecDeque<T>,
    closed: bool,
}

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    Closed,
}

impl<T> OutboundQueue<T> {
    /// A queue of at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        OutboundQueue {
            items: Mutex::new(Slots {
                queue: VecDeque::new(),
                closed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues `item` unless the queue is full or its reader has gone.
    pub(crate) fn try_push(&self, item: T) -> Result<(), Refused> {
        let mut slots = self.items.lock().expect("outbound queue lock");
        if slots.closed {
            return Err(Refused::Closed);
        }
        if slots.queue.len() >= self.capacity {
            return Err(Refused::Full);
        }
        slots.queue.push_back(item);
        drop(slots);
        self.ready.notify_one();
        Ok(())
    }

    /// The next item, without waiting.
    pub(crate) fn try_pop(&self) -> Option<T> {
        let mut slots = self.items.lock().expect("outbound queue lock");
        let item = slots.queue.pop_front();
        if slots.queue.is_empty() && slots.queue.capacity() > KEEP_CAPACITY {
            slots.queue = VecDeque::new();
        }
        item
    }

    /// The next item, waiting for one. Cancel-safe: an item is only taken when returned.
    pub(crate) async fn pop(&self) -> T {
        loop {
            if let Some(item) = self.try_pop() {
                return item;
            }
            // A push between the check above and this wait leaves a stored wake.
            self.ready.notified().await;
        }
    }

    /// The reader is gone: later pushes are refused and what is queued is dropped.
    pub(crate) fn close(&self) {
        let mut slots = self.items.lock().expect("outbound queue lock");
        slots.closed = true;
        slots.queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn holds_at_most_its_capacity_and_nothing_after_close() {
        let queue = OutboundQueue::new(2);
        assert_eq!(queue.try_push(1), Ok(()));
        assert_eq!(queue.try_push(2), Ok(()));
        assert_eq!(queue.try_push(3), Err(Refused::Full));
        assert_eq!(queue.try_pop(), Some(1));
        queue.close();
        assert_eq!(queue.try_pop(), None);
        assert_eq!(queue.try_push(4), Err(Refused::Closed));
    }

    #[test]
    fn an_emptied_queue_gives_its_buffer_back() {
        let queue = OutboundQueue::new(100);
        for i in 0..50 {
            queue.try_push(i).unwrap();
        }
        while queue.try_pop().is_some() {}
        assert_eq!(queue.items.lock().unwrap().queue.capacity(), 0);
    }

    #[tokio::test]
    async fn a_waiting_reader_gets_every_item_in_order() {
        let queue = Arc::new(OutboundQueue::new(1000));
        let reader = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 500 {
                    got.push(queue.pop().await);
                }
                got
            })
        };
        for i in 0..500 {
            while queue.try_push(i) == Err(Refused::Full) {
                tokio::task::yield_now().await;
            }
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let got = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the reader woke for every item")
            .unwrap();
        assert_eq!(got, (0..500).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_pop_dropped_while_waiting_loses_nothing() {
        let queue = OutboundQueue::new(10);
        // A select! that picks another branch drops the pending pop.
        assert!(tokio::time::timeout(Duration::from_millis(10), queue.pop())
            .await
            .is_err());
        queue.try_push(7).unwrap();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), queue.pop()).await,
            Ok(7)
        );
    }
}
