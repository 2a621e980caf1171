//! A connection's outbound queue: events the registry hands to it, read by the
//! connection's task. A bounded tokio channel allocates a 32-slot block when it is
//! created (~2 KB), which every idle connection held for nothing; this queue holds no
//! memory while empty and gives back what a burst grew. It also carries the one reason
//! the server may end the connection from outside its task (too slow, replaced, shutting
//! down), so an idle connection needs no cancellation tokens, nor a wait on the server's.

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
    stop: Option<Stop>,
}

/// Why the server ends a connection from outside its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its queue (or the server's outbound memory) went over its bytes.
    TooSlow,
    /// A newer connection of the same device took its place.
    Replaced,
    /// The server is shutting down: write what is owed, then tell the client to reconnect.
    Drain,
    /// The server's bus lost events the client must sync: as `Drain`, for that reason.
    Resync,
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
                stop: None,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues `item` unless the queue is full or its reader has gone.
    pub(crate) fn try_push(&self, item: T) -> Result<(), Refused> {
        let mut slots = self.items.lock().expect("outbound queue lock");
        if slots.closed || slots.stop.is_some() {
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
        take_front(&mut self.items.lock().expect("outbound queue lock").queue)
    }

    /// The next item, waiting for one, or why the connection must end (which comes
    /// before any item still queued). Cancel-safe: an item is only taken when returned.
    pub(crate) async fn pop(&self) -> Result<T, Stop> {
        loop {
            {
                let mut slots = self.items.lock().expect("outbound queue lock");
                if let Some(stop) = slots.stop {
                    return Err(stop);
                }
                if let Some(item) = take_front(&mut slots.queue) {
                    return Ok(item);
                }
            }
            // A push or stop between the check above and this wait leaves a stored wake.
            self.ready.notified().await;
        }
    }

    /// Tells the reader to end the connection for `stop`; later pushes are refused. The
    /// first reason given is the one the reader sees.
    pub(crate) fn stop(&self, stop: Stop) {
        let mut slots = self.items.lock().expect("outbound queue lock");
        slots.stop.get_or_insert(stop);
        drop(slots);
        self.ready.notify_one();
    }

    /// Whether the connection has been told to end.
    pub(crate) fn is_stopped(&self) -> bool {
        self.items
            .lock()
            .expect("outbound queue lock")
            .stop
            .is_some()
    }

    /// The reader is gone: later pushes are refused and what is queued is dropped.
    pub(crate) fn close(&self) {
        let mut slots = self.items.lock().expect("outbound queue lock");
        slots.closed = true;
        slots.queue = VecDeque::new();
    }
}

/// Pops the front item, releasing a grown buffer once the queue is empty.
fn take_front<T>(queue: &mut VecDeque<T>) -> Option<T> {
    let item = queue.pop_front();
    if queue.is_empty() && queue.capacity() > KEEP_CAPACITY {
        *queue = VecDeque::new();
    }
    item
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
                    got.push(queue.pop().await.unwrap());
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
            Ok(Ok(7))
        );
    }

    #[tokio::test]
    async fn a_stop_wakes_the_reader_before_queued_items_and_refuses_pushes() {
        let queue = Arc::new(OutboundQueue::<u32>::new(10));
        let reader = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.pop().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        queue.stop(Stop::TooSlow);
        let woke = tokio::time::timeout(Duration::from_secs(1), reader).await;
        assert_eq!(
            woke.expect("the stop woke the reader").unwrap(),
            Err(Stop::TooSlow)
        );

        let queue = OutboundQueue::new(10);
        queue.try_push(1).unwrap();
        queue.stop(Stop::Replaced);
        queue.stop(Stop::TooSlow);
        assert!(queue.is_stopped());
        assert_eq!(
            queue.pop().await,
            Err(Stop::Replaced),
            "the first reason stands"
        );
        assert_eq!(queue.try_push(2), Err(Refused::Closed));
    }
}
