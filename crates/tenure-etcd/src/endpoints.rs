//! Keeps dead cluster members out of the client's load balancing.
//!
//! The etcd client spreads requests over every endpoint it was given and keeps
//! sending some to a member that is down, so a third of the requests of a
//! 3-member cluster with one member dead would fail. This probes each member
//! (a TCP connect) every second, and at once when a keep-alive fails, and takes
//! dead members out of the balance until they answer again. It never takes the
//! last one out.

use std::collections::HashSet;
use std::time::Duration;

use etcd_client::Client;
use tokio::sync::Mutex;

pub(crate) struct Endpoints {
    client: Client,
    urls: Vec<String>,
    removed: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("urls", &self.urls)
            .finish()
    }
}

/// How long a member may take to accept a connection before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

impl Endpoints {
    pub(crate) fn new(client: Client, urls: Vec<String>) -> Self {
        Endpoints {
            client,
            urls,
            removed: Mutex::new(HashSet::new()),
        }
    }

    /// Probes every member and updates the balance.
    pub(crate) async fn refresh(&self) {
        if self.urls.len() < 2 {
            return;
        }
        let mut removed = self.removed.lock().await;
        let alive = futures_util::future::join_all(self.urls.iter().map(|u| answers(u))).await;
        if !alive.iter().any(|a| *a) {
            return; // nobody answers: keep them all, and let requests fail
        }
        for (url, up) in self.urls.iter().zip(alive) {
            if !up && !removed.contains(url) {
                tracing::warn!(endpoint = %url, "etcd member not answering; taken out of the balance");
                if self.client.remove_endpoint(url).await.is_ok() {
                    removed.insert(url.clone());
                }
            } else if up && removed.contains(url) {
                tracing::info!(endpoint = %url, "etcd member answering again");
                if self.client.add_endpoint(url).await.is_ok() {
                    removed.remove(url);
                }
            }
        }
    }
}

async fn answers(url: &str) -> bool {
    let address = url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}
