//! One leader watch per election per client, shared by every local follower.
//!
//! A process that follows one election from many places (a thousand
//! retrievers, or every component of a Flink-style process) would otherwise
//! open a thousand watches on the server — each with its own server-side
//! buffer and, on some backends, its own reads per event. [`LeaderWatches`]
//! opens the backend's watch once and fans its records out locally.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use std::collections::VecDeque;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::{BoxStream, Stream};
use futures_util::StreamExt;

use crate::backend::LeaderRecord;
use crate::error::{Error, Result};
use crate::name::Path;

type Item = Result<Option<LeaderRecord>>;

/// Shares [`Backend::watch_leader`](crate::Backend::watch_leader) streams per
/// election within one client: a backend keeps one of these and routes its
/// `watch_leader` through [`watch`](Self::watch).
///
/// Every subscriber sees what the backend's own stream promises: the current
/// leader first, then every change in order, never the same record twice in a
/// row. A subscriber that joins later starts from the latest record. When the
/// backend's stream errors, every subscriber gets the error and its stream
/// ends (callers re-open, as the contract says); when the last subscriber is
/// dropped, the backend's stream is dropped too.
///
/// At most [`OPENING_AT_ONCE`] watches are being opened at a time; the others
/// wait their turn holding a small future, not a backend request's: a process
/// that wins thousands of elections at once opens a watch for each.
pub struct LeaderWatches {
    slots: Mutex<Slots>,
    opening: tokio::sync::Semaphore,
}

/// How many backend watches a [`LeaderWatches`] opens at once.
pub const OPENING_AT_ONCE: usize = 64;

impl Default for LeaderWatches {
    fn default() -> Self {
        LeaderWatches {
            slots: Mutex::default(),
            opening: tokio::sync::Semaphore::new(OPENING_AT_ONCE),
        }
    }
}

/// Each election's shared watch, behind a lock of its own so that followers
/// arriving together open one watch between them, while other elections'
/// watches open in parallel.
#[derive(Default)]
struct Slots {
    elections: HashMap<Path, Slot>,
    /// Slots of ended watches are dropped when the map grows past this.
    prune_at: usize,
}

type Slot = Arc<tokio::sync::Mutex<Weak<Hub>>>;

impl std::fmt::Debug for LeaderWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderWatches")
            .field("elections", &lock(&self.slots).elections.len())
            .finish()
    }
}

/// The shared part of one election's watch, read by its subscribers
/// themselves — no task of its own: a process may follow thousands of
/// elections. Whichever subscriber needs the next record polls the backend's
/// stream until it has nothing more to give, and hands every record to all
/// subscribers; the stream is polled with a waker that wakes them all, so any
/// subscriber still interested reads on, whatever the others do. Dropping the
/// last subscriber drops the hub and with it the backend's stream.
struct Hub {
    state: Mutex<State>,
    /// Wakes every waiting subscriber; the waker given to the backend's stream.
    wake_all: Arc<WakeAll>,
}

struct State {
    /// The backend's stream; taken out while a subscriber polls it, and gone
    /// once it ended.
    source: Option<BoxStream<'static, Item>>,
    /// The last record the backend yielded, once it has yielded one.
    latest: Option<Option<LeaderRecord>>,
    /// Each subscriber's unread records and waker, by index.
    subscribers: Vec<Option<Subscriber>>,
    /// The backend's stream ended or failed: nobody may join any more.
    ended: bool,
    /// The backend's stream woke the subscribers while one of them had it
    /// out: that one wakes them again when it puts the stream back, so the
    /// wakeup is not lost if it stops reading.
    woken_while_out: bool,
}

#[derive(Default)]
struct Subscriber {
    unread: VecDeque<Item>,
    waker: Option<Waker>,
}

struct WakeAll {
    hub: Weak<Hub>,
}

impl Wake for WakeAll {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(hub) = self.hub.upgrade() {
            let wakers = {
                let mut state = lock(&hub.state);
                if state.source.is_none() {
                    state.woken_while_out = true;
                }
                state.take_wakers()
            };
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

impl State {
    fn take_wakers(&mut self) -> Vec<Waker> {
        self.subscribers
            .iter_mut()
            .flatten()
            .filter_map(|s| s.waker.take())
            .collect()
    }

    /// Hands `item` to every subscriber.
    fn deliver(&mut self, item: &Item) {
        for subscriber in self.subscribers.iter_mut().flatten() {
            // Mostly one record waits at a time: keep room for one, not four.
            if subscriber.unread.capacity() == 0 {
                subscriber.unread.reserve_exact(1);
            }
            subscriber.unread.push_back(match item {
                Ok(record) => Ok(record.clone()),
                Err(e) => Err(e.duplicate()),
            });
        }
        match item {
            Ok(record) => self.latest = Some(record.clone()),
            Err(_) => self.ended = true,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LeaderWatches {
    /// A new, empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of `election`'s leader: joins the election's shared watch if
    /// one is running, or opens one with `open()` (the backend's own watch)
    /// and shares it.
    pub async fn watch<F, O>(
        &self,
        election: &Path,
        open: F,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>>
    where
        F: FnOnce() -> O,
        O: Future<Output = Result<BoxStream<'static, Result<Option<LeaderRecord>>>>>,
    {
        let slot = lock(&self.slots).slot(election);
        let mut running = slot.lock().await;
        if let Some(stream) = running.upgrade().and_then(|hub| Hub::subscribe(&hub)) {
            return Ok(stream);
        }
        let source = {
            // Never closed, so acquiring cannot fail.
            let _turn = self.opening.acquire().await;
            // Boxed once it is our turn: the waiting futures stay small.
            Box::pin(open()).await?
        };
        let hub = Hub::start(source);
        let stream =
            Hub::subscribe(&hub).ok_or_else(|| Error::unavailable("leader watch ended"))?;
        *running = Arc::downgrade(&hub);
        Ok(stream)
    }
}

impl Slots {
    /// `election`'s slot, made if missing; drops unused slots of ended watches
    /// whenever the map has doubled since the last time.
    fn slot(&mut self, election: &Path) -> Slot {
        if self.elections.len() >= self.prune_at {
            self.elections.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot.try_lock().map_or(true, |hub| hub.strong_count() > 0)
            });
            self.prune_at = (self.elections.len() * 2).max(64);
        }
        self.elections.entry(election.clone()).or_default().clone()
    }
}

impl Hub {
    fn start(source: BoxStream<'static, Item>) -> Arc<Hub> {
        Arc::new_cyclic(|hub| Hub {
            state: Mutex::new(State {
                source: Some(source),
                latest: None,
                subscribers: Vec::new(),
                ended: false,
                woken_while_out: false,
            }),
            wake_all: Arc::new(WakeAll { hub: hub.clone() }),
        })
    }

    /// A new subscriber's stream, starting from the latest record; `None` if
    /// the backend's stream has ended.
    fn subscribe(hub: &Arc<Hub>) -> Option<BoxStream<'static, Item>> {
        let index = {
            let mut state = lock(&hub.state);
            if state.ended {
                return None;
            }
            let mut subscriber = Subscriber::default();
            if let Some(latest) = &state.latest {
                subscriber.unread.reserve_exact(1);
                subscriber.unread.push_back(Ok(latest.clone()));
            }
            match state.subscribers.iter().position(Option::is_none) {
                Some(free) => {
                    state.subscribers[free] = Some(subscriber);
                    free
                }
                None => {
                    state.subscribers.push(Some(subscriber));
                    state.subscribers.len() - 1
                }
            }
        };
        Some(
            Subscription {
                hub: hub.clone(),
                index,
            }
            .boxed(),
        )
    }
}

/// One subscriber's stream of a [`Hub`].
struct Subscription {
    hub: Arc<Hub>,
    index: usize,
}

impl Stream for Subscription {
    type Item = Item;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let hub = &self.hub;
        let mut source = {
            let mut state = lock(&hub.state);
            let ended = state.ended;
            let Some(me) = state.subscribers[self.index].as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(item) = me.unread.pop_front() {
                return Poll::Ready(Some(item));
            }
            if ended {
                return Poll::Ready(None);
            }
            me.waker = Some(cx.waker().clone());
            match state.source.take() {
                Some(source) => {
                    state.woken_while_out = false;
                    source
                }
                // Another subscriber is polling it and hands on what it reads.
                None => return Poll::Pending,
            }
        };
        // Poll without the lock (the stream may wake us at once), until it has
        // nothing more: then it holds the waker of all, and a record that comes
        // later wakes whoever still waits.
        let waker = Waker::from(hub.wake_all.clone());
        let mut read = Vec::new();
        let ended = loop {
            match source.as_mut().poll_next(&mut Context::from_waker(&waker)) {
                Poll::Ready(Some(item)) => {
                    let failed = item.is_err();
                    read.push(item);
                    if failed {
                        break true;
                    }
                }
                Poll::Ready(None) => break true,
                Poll::Pending => break false,
            }
        };
        let (mine, wakers, ended_source) = {
            let mut state = lock(&hub.state);
            // Woken while we held the stream out: the subscribers it woke
            // found no stream to poll. Wake them again now that it is back,
            // so one polls it even if we stop reading.
            let woken = std::mem::take(&mut state.woken_while_out);
            for item in &read {
                state.deliver(item);
            }
            // An ended stream is dropped after the lock is released.
            let ended_source = if ended {
                state.ended = true;
                Some(source)
            } else {
                state.source = Some(source);
                None
            };
            let me = state.subscribers[self.index]
                .as_mut()
                .expect("a subscriber's entry lasts as long as it");
            let mine = match me.unread.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None if ended => Poll::Ready(None),
                None => Poll::Pending,
            };
            if mine.is_ready() {
                me.waker = None;
            }
            // Others have something to read (or the end) only if we read.
            let wakers = if read.is_empty() && !ended && !woken {
                Vec::new()
            } else {
                state.take_wakers()
            };
            (mine, wakers, ended_source)
        };
        drop(ended_source);
        wakers.into_iter().for_each(Waker::wake);
        mine
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = lock(&self.hub.state);
        state.subscribers[self.index] = None;
        while state.subscribers.last().is_some_and(Option::is_none) {
            state.subscribers.pop();
        }
    }
}

#[cfg(test)]
mod tests;
