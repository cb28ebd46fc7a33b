//! A light unbounded queue from one sender to one receiver.
//!
//! A process may hold thousands of elections, each with a watch or two; a
//! tokio channel's first block holds 32 items and is allocated up front
//! (about 2 KiB for a watch item), where these queues hold what is queued.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    /// The sender is gone: once the items are read, the queue ends.
    closed: bool,
    /// The receiver is gone.
    receiver_gone: bool,
    /// A sender waiting in [`QueueSender::closed`].
    sender_waker: Option<Waker>,
}

/// The sending half of [`queue`]; dropping it ends the queue once the receiver
/// has read what was sent.
pub struct QueueSender<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// The receiving half of [`queue`].
pub struct QueueReceiver<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> std::fmt::Debug for QueueSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueSender")
    }
}

impl<T> std::fmt::Debug for QueueReceiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueReceiver")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new queue: unbounded, in order, allocating only for what it holds.
pub fn queue<T>() -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Mutex::new(Shared {
        items: VecDeque::new(),
        waker: None,
        closed: false,
        receiver_gone: false,
        sender_waker: None,
    }));
    (
        QueueSender {
            shared: shared.clone(),
        },
        QueueReceiver { shared },
    )
}

impl<T> QueueSender<T> {
    /// Queues `item`; gives it back if the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        if self.is_closed() {
            return Err(item);
        }
        let waker = {
            let mut shared = lock(&self.shared);
            // A watch queue mostly holds one item at a time: room for four
            // (the default) would be kept for the life of the queue.
            if shared.items.capacity() == 0 {
                shared.items.reserve_exact(1);
            }
            shared.items.push_back(item);
            shared.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }

    /// Resolves once the receiver is gone.
    pub async fn closed(&self) {
        poll_fn(|cx| {
            let mut shared = lock(&self.shared);
            if shared.receiver_gone {
                return Poll::Ready(());
            }
            shared.sender_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl<T> Drop for QueueSender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut shared = lock(&self.shared);
            shared.closed = true;
            shared.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        // Mark and take the waker under the lock the sender checks under: it
        // either sees the mark or is woken.
        let waker = {
            let mut shared = lock(&self.shared);
            shared.receiver_gone = true;
            shared.sender_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> QueueReceiver<T> {
    /// The next item, or `None` once the sender is gone and all was read.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut shared = lock(&self.shared);
        if let Some(item) = shared.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if shared.closed {
            return Poll::Ready(None);
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Waits for the next item; `None` once the sender is gone and all was read.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_and_the_queue_ends_with_its_sender() {
        let (tx, mut rx) = queue();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let waiter = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(i) = rx.recv().await {
                seen.push(i);
            }
            seen
        });
        tokio::task::yield_now().await;
        tx.send(3).unwrap();
        drop(tx);
        assert_eq!(waiter.await.unwrap(), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn closed_resolves_when_the_receiver_is_dropped() {
        let (tx, rx) = queue::<u8>();
        let waiting = tokio::spawn(async move { tx.closed().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("closed() to resolve")
            .unwrap();
    }

    #[test]
    fn sending_to_a_dropped_receiver_gives_the_item_back() {
        let (tx, rx) = queue();
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(7), Err(7));
    }
}
