//! `tenure observe`: follow who leads, without campaigning.

use std::io::Write;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde::Serialize;
use tenure::{DynBackend, Error, KvEvent, LeaderRecord, LeaderRetrieval, Path, Result};

use crate::common::{self, Signals};
use crate::holder::{self, Holder};
use crate::time::{now_ms, rfc3339};
use crate::{metrics_http, ObserveArgs};

/// One line of output: who leads now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct View {
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    election: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<String>,
    term: Option<u64>,
    leader: Option<String>,
    address: Option<String>,
}

impl View {
    fn same_leader(&self, other: &View) -> bool {
        (self.term, &self.leader, &self.address) == (other.term, &other.leader, &other.address)
    }
}

/// Prints views, one per line, skipping repeats.
struct Printer {
    json: bool,
    last: Option<View>,
}

impl Printer {
    /// Prints `view` if it differs from the last; false once stdout is gone.
    fn print(&mut self, view: View) -> bool {
        if self.last.as_ref().is_some_and(|l| l.same_leader(&view)) {
            return true;
        }
        let line = if self.json {
            serde_json::to_string(&view).expect("a view always serializes")
        } else {
            match (&view.term, &view.leader) {
                (Some(term), Some(leader)) => format!(
                    "{}  term {term}  leader {leader}  address {}",
                    view.time,
                    view.address.as_deref().unwrap_or("-")
                ),
                _ => format!("{}  no leader", view.time),
            }
        };
        self.last = Some(view);
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    }
}

/// Runs `tenure observe` until SIGTERM/SIGINT or until standard output closes.
pub(crate) async fn run(args: ObserveArgs) -> Result<u8> {
    let mut signals = Signals::new()?;
    if let Some(addr) = args.metrics_addr {
        metrics_http::serve(addr).await?;
    }
    let backend = common::connect(&args.backend.backend, None).await?;
    let mut printer = Printer {
        json: args.json,
        last: None,
    };
    let following = async {
        match (&args.election, &args.cluster, &args.component) {
            (Some(election), _, _) => follow_election(&backend, election, &mut printer).await,
            (None, Some(cluster), Some(component)) => {
                follow_component(&backend, cluster, component, &mut printer).await
            }
            _ => Err(Error::invalid(
                "arguments",
                "",
                "give --election NAME, or --cluster ID with --component ID",
            )),
        }
    };
    let outcome = tokio::select! {
        r = following => r,
        _ = signals.stop() => Ok(()),
    };
    let _ = backend.close().await;
    outcome.map(|()| 0)
}

async fn follow_election(backend: &DynBackend, name: &str, printer: &mut Printer) -> Result<()> {
    let election = Path::parse("election", name)?;
    let mut leaders = tenure::follow_election(backend.clone(), election);
    let mut holders = HolderFollower::open(backend, name).await;
    let mut leader: Option<Option<LeaderRecord>> = None;
    loop {
        if let Some(current) = &leader {
            let holder = holders.holder.as_ref();
            let view = View {
                time: rfc3339(now_ms()),
                election: Some(name.to_owned()),
                cluster: None,
                component: None,
                term: current.as_ref().map(|l| l.term),
                leader: current
                    .as_ref()
                    .map(|l| String::from_utf8_lossy(&l.value).into_owned()),
                address: current.as_ref().and_then(|l| {
                    holder
                        .filter(|h| h.term == l.term)
                        .and_then(|h| h.address.clone())
                }),
            };
            if !printer.print(view) {
                return Ok(());
            }
        }
        tokio::select! {
            item = leaders.next() => match item {
                Some(Ok(record)) => leader = Some(record),
                Some(Err(e)) => tracing::warn!(error = %e, "following the leader"),
                None => return Err(Error::unavailable("the leader stream ended")),
            },
            () = holders.next(backend, name) => {}
        }
    }
}

/// Follows an election's holder record (for the address `tenure run
/// --address` publishes), reopening its watch when it fails.
struct HolderFollower {
    holder: Option<Holder>,
    events: Option<BoxStream<'static, Result<KvEvent>>>,
}

impl HolderFollower {
    async fn open(backend: &DynBackend, name: &str) -> Self {
        let mut follower = HolderFollower {
            holder: None,
            events: None,
        };
        follower.reopen(backend, name).await;
        follower
    }

    async fn reopen(&mut self, backend: &DynBackend, name: &str) {
        let Ok(key) = holder::holder_key(name) else {
            return;
        };
        self.events = backend.watch(&key).await.ok();
        self.holder = holder::read(backend, name).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the holder record");
            None
        });
    }

    /// Waits for the next change of the record and applies it.
    async fn next(&mut self, backend: &DynBackend, name: &str) {
        let event = match &mut self.events {
            Some(events) => events.next().await,
            None => None,
        };
        match event {
            Some(Ok(KvEvent::Put { key, value })) => {
                self.holder = Path::parse("key", &key)
                    .and_then(|key| holder::decode(&key, &value.value))
                    .map_err(|e| tracing::warn!(error = %e, "reading the holder record"))
                    .ok();
            }
            Some(Ok(KvEvent::Delete { .. })) => self.holder = None,
            Some(Err(_)) | None => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.reopen(backend, name).await;
            }
        }
    }
}

async fn follow_component(
    backend: &DynBackend,
    cluster: &str,
    component: &str,
    printer: &mut Printer,
) -> Result<()> {
    let mut views = LeaderRetrieval::new(backend.clone(), cluster, component)?.stream();
    while let Some(item) = views.next().await {
        match item {
            Ok(info) => {
                let view = View {
                    time: rfc3339(now_ms()),
                    election: None,
                    cluster: Some(cluster.to_owned()),
                    component: Some(component.to_owned()),
                    term: info.as_ref().map(|i| i.term),
                    leader: info.as_ref().map(|i| i.session_id.to_string()),
                    address: info.map(|i| i.address),
                };
                if !printer.print(view) {
                    return Ok(());
                }
            }
            Err(e) => tracing::warn!(error = %e, "following the component's leader"),
        }
    }
    Err(Error::unavailable("the leader stream ended"))
}
