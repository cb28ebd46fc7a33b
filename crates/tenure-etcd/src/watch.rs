//! One etcd watch stream per process, shared by every watch of the process:
//! a leadership monitor per election costs a watch id, not a gRPC stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

use etcd_client::{Client, Event, WatchOptions, WatchRequestSender, WatchResponseStream};
use tenure_core::backend::support::{queue, QueueReceiver, QueueSender};
use tenure_core::{Error, Result};
use tokio::sync::{mpsc, oneshot};

use crate::error::map_err;

/// A watch's events: a light queue, since a process may hold thousands.
type Events = QueueSender<Result<Vec<Event>>>;

/// Each watch's event channel, and its creation's answer until etcd confirms.
type Watchers = HashMap<i64, (Events, Option<oneshot::Sender<Result<()>>>)>;

enum Command {
    Add {
        id: i64,
        key: Vec<u8>,
        options: WatchOptions,
        events: Events,
        created: oneshot::Sender<Result<()>>,
    },
    Cancel(i64),
}

/// Multiplexes watches over one stream, opened on first use and re-opened after
/// it fails (the watches on a failed stream end with an error; their owners
/// re-read and re-watch).
#[derive(Debug)]
pub(crate) struct WatchHub {
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicI64,
}

/// One watch on the hub; cancelled when dropped.
#[derive(Debug)]
pub(crate) struct HubWatch {
    id: i64,
    events: QueueReceiver<Result<Vec<Event>>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl HubWatch {
    /// The events of the next response; `None` or an error ends the watch.
    pub(crate) async fn next(&mut self) -> Option<Result<Vec<Event>>> {
        self.events.recv().await
    }
}

impl Drop for HubWatch {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Cancel(self.id));
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add { id, .. } => write!(f, "Add({id})"),
            Command::Cancel(id) => write!(f, "Cancel({id})"),
        }
    }
}

impl WatchHub {
    pub(crate) fn new(client: Client) -> Self {
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx));
        WatchHub {
            commands,
            next_id: AtomicI64::new(1),
        }
    }

    /// Watches `key` with `options`; returns once etcd confirmed the watch, so
    /// every change after that is delivered.
    pub(crate) async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        options: WatchOptions,
    ) -> Result<HubWatch> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (events, events_rx) = queue();
        let (created, created_rx) = oneshot::channel();
        self.commands
            .send(Command::Add {
                id,
                key: key.into(),
                options: options.with_watch_id(id),
                events,
                created,
            })
            .map_err(|_| Error::Closed {
                what: "etcd watch hub",
            })?;
        let watch = HubWatch {
            id,
            events: events_rx,
            commands: self.commands.clone(),
        };
        created_rx
            .await
            .map_err(|_| Error::unavailable("the etcd watch stream closed"))??;
        Ok(watch)
    }
}

/// The open stream: a queue of requests, written by a task of its own, and
/// the responses, read by the hub. Reading never waits for writing: if it did,
/// etcd (waiting to send us responses) and we (waiting to send it requests)
/// could wait on each other forever.
struct Stream {
    requests: mpsc::UnboundedSender<Request>,
    responses: WatchResponseStream,
}

enum Request {
    Watch(Vec<u8>, WatchOptions),
    Cancel(i64),
}

impl Stream {
    fn start(sender: WatchRequestSender, responses: WatchResponseStream) -> Stream {
        let (requests, mut queue) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut sender = sender;
            while let Some(request) = queue.recv().await {
                let sent = match request {
                    Request::Watch(key, options) => sender.watch(key, Some(options)).await,
                    Request::Cancel(id) => sender.cancel(id).await,
                };
                if sent.is_err() {
                    return; // the response side sees the stream fail
                }
            }
        });
        Stream {
            requests,
            responses,
        }
    }
}

async fn run(client: Client, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut stream: Option<Stream> = None;
    let mut watchers: Watchers = HashMap::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Add { id, key, options, events, created }) => {
                    let sent = match stream.as_mut() {
                        Some(open) => open
                            .requests
                            .send(Request::Watch(key, options))
                            .map_err(|_| Error::unavailable("the etcd watch stream failed")),
                        None => match client.watch_client().watch(key, Some(options)).await {
                            Ok(opened) => {
                                let (sender, responses) = opened.split();
                                stream = Some(Stream::start(sender, responses));
                                Ok(())
                            }
                            Err(e) => Err(map_err(e)),
                        },
                    };
                    match sent {
                        Ok(()) => {
                            watchers.insert(id, (events, Some(created)));
                        }
                        Err(e) => {
                            let _ = created.send(Err(e));
                            fail_all(&mut watchers, &mut stream, "the etcd watch stream failed");
                        }
                    }
                }
                Some(Command::Cancel(id)) => {
                    if watchers.remove(&id).is_some() {
                        if let Some(open) = stream.as_ref() {
                            let _ = open.requests.send(Request::Cancel(id));
                        }
                    }
                }
            },
            response = next(&mut stream) => match response {
                Ok(Some(response)) => {
                    let id = response.watch_id();
                    let Some((events, created)) = watchers.get_mut(&id) else { continue };
                    if response.created() {
                        if let Some(created) = created.take() {
                            let _ = created.send(Ok(()));
                        }
                    }
                    if response.canceled() {
                        let reason = format!(
                            "etcd cancelled the watch ({}); read again and re-watch",
                            response.cancel_reason()
                        );
                        if let Some(created) = created.take() {
                            let _ = created.send(Err(Error::unavailable(reason.clone())));
                        }
                        let _ = events.send(Err(Error::unavailable(reason)));
                        watchers.remove(&id);
                        continue;
                    }
                    if !response.events().is_empty()
                        && events.send(Ok(response.events().to_vec())).is_err()
                    {
                        watchers.remove(&id);
                        if let Some(open) = stream.as_ref() {
                            let _ = open.requests.send(Request::Cancel(id));
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    fail_all(&mut watchers, &mut stream, "the etcd watch stream ended");
                }
            },
        }
    }
}

fn fail_all(watchers: &mut Watchers, stream: &mut Option<Stream>, why: &str) {
    *stream = None;
    for (_, (events, created)) in watchers.drain() {
        if let Some(created) = created {
            let _ = created.send(Err(Error::unavailable(why)));
        }
        let _ = events.send(Err(Error::unavailable(why)));
    }
}

async fn next(
    stream: &mut Option<Stream>,
) -> std::result::Result<Option<etcd_client::WatchResponse>, etcd_client::Error> {
    match stream {
        Some(open) => open.responses.message().await,
        None => std::future::pending().await,
    }
}
