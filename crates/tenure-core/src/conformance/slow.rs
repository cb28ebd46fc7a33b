//! [`Slow`]: a real backend behind a network that is slow for some answers.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::sync::watch;

use crate::backend::{
    Backend, Candidate, Capabilities, DynBackend, Grant, Guard, KvEvent, LeaderRecord, SessionId,
    SessionStatus, Versioned,
};
use crate::error::Result;
use crate::name::Path;

/// A real backend whose resigns are held back `resign_delay` before they are
/// sent, and whose grants are held back `grant_delay` after the backend made
/// them: a network that loses deletes for a while (a cluster changing
/// leader), or delivers an answer long after the server gave it (across a
/// partition). Everything else goes straight through. For tests of what the
/// elections on top do with such answers.
#[derive(Debug)]
pub struct Slow {
    inner: DynBackend,
    resign_delay: Duration,
    grant_delay: Duration,
}

impl Slow {
    /// `inner`, with no delay yet.
    pub fn new(inner: DynBackend) -> Self {
        Slow {
            inner,
            resign_delay: Duration::ZERO,
            grant_delay: Duration::ZERO,
        }
    }

    /// Holds every resign back `delay` before sending it.
    pub fn with_resign_delay(mut self, delay: Duration) -> Self {
        self.resign_delay = delay;
        self
    }

    /// Holds every grant back `delay` after the backend made it.
    pub fn with_grant_delay(mut self, delay: Duration) -> Self {
        self.grant_delay = delay;
        self
    }
}

#[async_trait]
impl Backend for Slow {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn session(&self) -> watch::Receiver<SessionStatus> {
        self.inner.session()
    }
    async fn session_alive(&self, id: SessionId) -> Result<bool> {
        self.inner.session_alive(id).await
    }
    async fn campaign(&self, election: &Path, session: SessionId, value: &[u8]) -> Result<Grant> {
        let grant = self.inner.campaign(election, session, value).await?;
        tokio::time::sleep(self.grant_delay).await;
        Ok(grant)
    }
    async fn resign(&self, grant: &Grant) -> Result<()> {
        tokio::time::sleep(self.resign_delay).await;
        self.inner.resign(grant).await
    }
    async fn leader(&self, election: &Path) -> Result<Option<LeaderRecord>> {
        self.inner.leader(election).await
    }
    async fn candidates(&self, election: &Path) -> Result<Vec<Candidate>> {
        self.inner.candidates(election).await
    }
    async fn watch_leader(
        &self,
        election: &Path,
    ) -> Result<BoxStream<'static, Result<Option<LeaderRecord>>>> {
        self.inner.watch_leader(election).await
    }
    async fn get(&self, key: &Path) -> Result<Option<Versioned>> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &Path) -> Result<Vec<(String, Versioned)>> {
        self.inner.list(prefix).await
    }
    async fn watch(&self, prefix: &Path) -> Result<BoxStream<'static, Result<KvEvent>>> {
        self.inner.watch(prefix).await
    }
    async fn put(&self, key: &Path, value: &[u8], guard: Guard<'_>) -> Result<u64> {
        self.inner.put(key, value, guard).await
    }
    async fn delete(&self, key: &Path, guard: Guard<'_>) -> Result<bool> {
        self.inner.delete(key, guard).await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}
