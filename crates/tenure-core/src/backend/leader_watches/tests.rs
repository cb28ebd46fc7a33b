//! Tests of the shared leader watch: the interleavings of followers taking
//! and returning the stream.

use super::*;
use tokio::sync::mpsc;

fn record(term: u64) -> Option<LeaderRecord> {
    Some(LeaderRecord {
        term,
        value: b"x".to_vec(),
        session: None,
    })
}

fn path() -> Path {
    Path::parse("election", "e").expect("a valid path")
}

/// A backend stream fed by hand.
fn source() -> (mpsc::UnboundedSender<Item>, BoxStream<'static, Item>) {
    let (tx, rx) = mpsc::unbounded_channel::<Item>();
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) })
            .boxed();
    (tx, stream)
}

#[tokio::test]
async fn followers_share_one_source_and_late_ones_start_from_the_latest() {
    let watches = LeaderWatches::new();
    let (tx, source) = source();
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
    let (tx, source) = source();
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

#[tokio::test]
async fn a_follower_that_stops_reading_does_not_hold_up_the_others() {
    use futures_util::FutureExt;
    let watches = LeaderWatches::new();
    let (tx, source) = source();
    let mut a = watches
        .watch(&path(), || async { Ok(source) })
        .await
        .unwrap();
    let mut b = watches
        .watch(&path(), || async { panic!("shared") })
        .await
        .unwrap();
    tx.send(Ok(record(1))).unwrap();
    let (got_first, first) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        let _ = got_first.send(b.next().await);
        b.next().await
    });
    assert_eq!(first.await.unwrap().unwrap().unwrap(), record(1));
    // b now waits for the next record; a reads the backend's stream last,
    // once, and then never again.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        a.next().now_or_never().unwrap().unwrap().unwrap(),
        record(1)
    );
    assert!(a.next().now_or_never().is_none());
    tx.send(Ok(record(2))).unwrap();
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("b to be woken for the next record")
        .unwrap();
    assert_eq!(second.unwrap().unwrap(), record(2));
    drop(a);
}

/// Counts its wakeups.
struct Counter(std::sync::atomic::AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_wakeup_while_one_follower_polls_reaches_the_others() {
    type Shared = Arc<Mutex<Option<BoxStream<'static, Item>>>>;
    // The backend's stream, first polled by a: a record arrives while a
    // holds it (the stream wakes everyone), and b, woken, looks before a
    // has put the stream back.
    let b_slot: Shared = Arc::default();
    let b_counter = Arc::new(Counter(Default::default()));
    let (slot, counter) = (b_slot.clone(), b_counter.clone());
    let mut polls = 0;
    let source = futures_util::stream::poll_fn(move |cx| {
        polls += 1;
        match polls {
            1 => {}
            2 => return Poll::Ready(Some(Ok(record(1)))),
            _ => return Poll::Pending,
        }
        cx.waker().wake_by_ref();
        let b_waker = Waker::from(counter.clone());
        let b = lock(&slot)
            .as_mut()
            .unwrap()
            .poll_next_unpin(&mut Context::from_waker(&b_waker));
        assert!(b.is_pending(), "b has nothing to read yet");
        Poll::Pending
    })
    .boxed();
    let watches = LeaderWatches::new();
    let mut a = watches
        .watch(&path(), || async { Ok(source) })
        .await
        .unwrap();
    let b = watches
        .watch(&path(), || async { panic!("shared") })
        .await
        .unwrap();
    *lock(&b_slot) = Some(b);
    let noop = Waker::from(Arc::new(Counter(Default::default())));
    assert!(a
        .poll_next_unpin(&mut Context::from_waker(&noop))
        .is_pending());
    // a stops reading; b must have been woken to poll the stream itself.
    drop(a);
    assert_eq!(b_counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    let mut b = lock(&b_slot).take().unwrap();
    assert_eq!(b.next().await.unwrap().unwrap(), record(1));
}
