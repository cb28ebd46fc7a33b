//! `tenure demo`: the no-server tour of failover and fencing.

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tenure::{Error, LeaderInfo, Result};
use tokio::time::Instant;

pub(crate) mod contender;
pub(crate) mod local;
pub(crate) mod memory;

pub(crate) const CLUSTER: &str = "demo";
pub(crate) const COMPONENTS: [&str; 3] = ["dispatcher", "resource_manager", "rest_server"];
/// How long the demo waits for any one step before giving up.
const STEP: Duration = Duration::from_secs(30);

pub(crate) struct Timeline {
    pub(crate) start: Instant,
}

impl Timeline {
    pub(crate) fn say(&self, who: &str, what: impl AsRef<str>) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        println!("  {ms:>9.1} ms  {who:<8} {}", what.as_ref());
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) async fn step<T>(
    what: &str,
    future: impl std::future::Future<Output = Option<T>>,
) -> Result<T> {
    match tokio::time::timeout(STEP, future).await {
        Ok(Some(value)) => Ok(value),
        _ => Err(Error::unavailable(format!(
            "the demo gave up waiting for {what}"
        ))),
    }
}

pub(crate) type Views = BoxStream<'static, Result<Option<LeaderInfo>>>;

/// Prints what the retriever sees until it reports a leader with `term`.
pub(crate) async fn retriever_sees(
    timeline: &Timeline,
    views: &mut Views,
    term: u64,
) -> Result<()> {
    loop {
        match step("the retriever", views.next()).await? {
            Ok(Some(info)) => {
                timeline.say(
                    "client",
                    format!("follows dispatcher → {} (term {})", info.address, info.term),
                );
                if info.term == term {
                    return Ok(());
                }
            }
            Ok(None) => timeline.say("client", "sees no dispatcher leader"),
            Err(e) => timeline.say("client", format!("retrieval error: {e}")),
        }
    }
}
