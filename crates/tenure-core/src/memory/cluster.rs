//! Making clients: [`MemoryCluster`]'s constructors (`memory:` URLs, named
//! process-wide clusters) and the clients ("processes") they hand out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::backend::{SessionId, SessionState, SessionStatus};
use crate::error::Result;
use crate::url::BackendUrl;

use super::backend::{Client, Link, MemoryBackend};
use super::server::MemoryCluster;
use super::DEFAULT_TTL;

impl MemoryCluster {
    /// A new, empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cluster called `name` (a validated id), created on first
    /// use: every `memory:NAME` URL of the process reaches the same one.
    pub fn named(name: &str) -> Result<Self> {
        static NAMED: OnceLock<Mutex<HashMap<String, MemoryCluster>>> = OnceLock::new();
        crate::name::validate_id("memory cluster name", name)?;
        let mut named = NAMED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(named.entry(name.to_owned()).or_default().clone())
    }

    /// A client for a `memory:` URL: `memory:` is a new private cluster,
    /// `memory:NAME` the process-wide cluster NAME; option `ttl` (e.g. `?ttl=5s`)
    /// sets the session TTL.
    pub fn connect(url: &BackendUrl) -> Result<MemoryBackend> {
        url.check_scheme_and_options("memory", &["ttl"])?;
        url.check_no_hosts("memory URLs have no hosts: use memory: or memory:NAME")?;
        let ttl = url.duration_option("ttl")?.unwrap_or(DEFAULT_TTL);
        let cluster = match url.path() {
            "" => MemoryCluster::new(),
            name => MemoryCluster::named(name)?,
        };
        Ok(cluster.client_with_ttl(ttl))
    }

    /// A new client ("process") with its own session and the default TTL.
    pub fn client(&self) -> MemoryBackend {
        self.client_with_ttl(DEFAULT_TTL)
    }

    /// A new client whose session survives a partition for `ttl`.
    pub fn client_with_ttl(&self, ttl: Duration) -> MemoryBackend {
        let (id, session) = {
            let mut server = self.lock();
            server.next_client += 1;
            (server.next_client, server.open_session())
        };
        let (status, _) = watch::channel(SessionStatus {
            id: SessionId(session),
            state: SessionState::Connected,
            renew_deadline: None,
        });
        MemoryBackend {
            cluster: self.clone(),
            client: Arc::new(Client {
                id,
                status,
                link: Mutex::new(Link::Connected),
                ttl,
            }),
        }
    }
}

impl MemoryBackend {
    /// A client of a new cluster of its own: the quickest way to embed tenure.
    pub fn new() -> Self {
        MemoryCluster::new().client()
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}
