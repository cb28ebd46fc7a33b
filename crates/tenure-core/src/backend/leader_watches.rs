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

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::queue::{queue, QueueSender};
use crate::backend::LeaderRecord;
use crate::error::{Error, Result};
use crate::name::Path;

type Item = Result<Option<LeaderRecord>>;

type Subscriber = QueueSender<Item>;

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

/// The shared part of one election's watch; dropping the last subscriber
/// drops it, which stops the task reading the backend's stream.
struct Hub {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

struct State {
    /// The last record the backend yielded, once it has yielded one.
    latest: Option<Option<LeaderRecord>>,
    subscribers: Vec<Subscriber>,
    /// The backend's stream ended or failed: nobody may join any more.
    ended: bool,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
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
    fn start(mut source: BoxStream<'static, Item>) -> Arc<Hub> {
        let state = Arc::new(Mutex::new(State {
            latest: None,
            subscribers: Vec::new(),
            ended: false,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let item = source.next().await;
                let mut state = lock(&shared);
                match item {
                    Some(Ok(record)) => {
                        state
                            .subscribers
                            .retain(|s| s.send(Ok(record.clone())).is_ok());
                        state.latest = Some(record);
                    }
                    Some(Err(e)) => {
                        state.ended = true;
                        for s in state.subscribers.drain(..) {
                            let _ = s.send(Err(e.duplicate()));
                        }
                        return;
                    }
                    None => {
                        state.ended = true;
                        state.subscribers.clear();
                        return;
                    }
                }
            }
        });
        Arc::new(Hub { state, task })
    }

    /// A new subscriber's stream, starting from the latest record; `None` if
    /// the backend's stream has ended.
    fn subscribe(hub: &Arc<Hub>) -> Option<BoxStream<'static, Item>> {
        let (tx, mut rx) = queue();
        {
            let mut state = lock(&hub.state);
            if state.ended {
                return None;
            }
            if let Some(latest) = &state.latest {
                let _ = tx.send(Ok(latest.clone()));
            }
            state.subscribers.push(tx);
        }
        let keep = hub.clone();
        Some(
            futures_util::stream::poll_fn(move |cx| {
                let _alive = &keep;
                rx.poll_recv(cx)
            })
            .boxed(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn record(term: u64) -> Option<LeaderRecord> {
        Some(LeaderRecord {
            term,
            value: b"x".to_vec(),
        })
    }

    fn path() -> Path {
        Path::parse("election", "e").expect("a valid path")
    }

    #[tokio::test]
    async fn followers_share_one_source_and_late_ones_start_from_the_latest() {
        let watches = LeaderWatches::new();
        let (tx, rx) = mpsc::unbounded_channel::<Item>();
        let source =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
            )
            .boxed();
        let mut first = watches
            .watch(&path(), || async { Ok(source) })
            .await
            .unwrap();
        tx.send(Ok(record(1))).unwrap();
        assert_eq!(first.next().await.unwrap().unwrap(), record(1));
        let mut second = watches
            .watch(&path(), || async {
                panic!("a second watch must not be opened")
            })
            .await
            .unwrap();
        assert_eq!(second.next().await.unwrap().unwrap(), record(1));
        tx.send(Ok(None)).unwrap();
        tx.send(Ok(record(2))).unwrap();
        for stream in [&mut first, &mut second] {
            assert_eq!(stream.next().await.unwrap().unwrap(), None);
            assert_eq!(stream.next().await.unwrap().unwrap(), record(2));
        }
        // An error reaches everyone and ends every stream; the next follower
        // opens a new watch.
        tx.send(Err(Error::unavailable("gone"))).unwrap();
        for stream in [&mut first, &mut second] {
            assert!(stream.next().await.unwrap().unwrap_err().is_retryable());
            assert!(stream.next().await.is_none());
        }
        let mut third = watches
            .watch(&path(), || async {
                Ok(futures_util::stream::iter([Ok(record(3))]).boxed())
            })
            .await
            .unwrap();
        assert_eq!(third.next().await.unwrap().unwrap(), record(3));
    }

    #[tokio::test]
    async fn followers_arriving_together_open_one_watch() {
        let watches = LeaderWatches::new();
        let opened = std::sync::atomic::AtomicUsize::new(0);
        let election = path();
        let streams = futures_util::future::join_all((0..50).map(|_| {
            watches.watch(&election, || async {
                opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(futures_util::stream::iter([Ok(record(1))])
                    .chain(futures_util::stream::pending())
                    .boxed())
            })
        }))
        .await;
        assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 1);
        for stream in streams {
            assert_eq!(stream.unwrap().next().await.unwrap().unwrap(), record(1));
        }
    }

    #[tokio::test]
    async fn the_source_is_dropped_with_the_last_follower() {
        let watches = LeaderWatches::new();
        let (tx, rx) = mpsc::unbounded_channel::<Item>();
        let source =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
            )
            .boxed();
        let a = watches
            .watch(&path(), || async { Ok(source) })
            .await
            .unwrap();
        let b = watches
            .watch(&path(), || async { panic!("shared") })
            .await
            .unwrap();
        drop(a);
        assert!(!tx.is_closed(), "one follower is left");
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(5), tx.closed())
            .await
            .expect("the backend's stream is dropped");
    }

    #[tokio::test]
    async fn at_most_opening_at_once_watches_are_opened_together() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let watches = Arc::new(LeaderWatches::new());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..OPENING_AT_ONCE + 16)
            .map(|i| {
                let (watches, in_flight, most) = (watches.clone(), in_flight.clone(), most.clone());
                let mut released = released.clone();
                tokio::spawn(async move {
                    let election = Path::parse("election", &format!("e{i}")).unwrap();
                    let opened = watches
                        .watch(&election, || async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            let _ = released.wait_for(|r| *r).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            Ok(futures_util::stream::pending().boxed())
                        })
                        .await;
                    opened.map(drop)
                })
            })
            .collect();
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while in_flight.load(Ordering::SeqCst) < OPENING_AT_ONCE {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the first openings to start");
        // Give every other waiting task its chances to start an opening.
        for _ in 0..OPENING_AT_ONCE * 4 {
            tokio::task::yield_now().await;
        }
        assert_eq!(in_flight.load(Ordering::SeqCst), OPENING_AT_ONCE);
        release.send_replace(true);
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), OPENING_AT_ONCE);
    }
}
