//! Taking a cluster's HA data down: per-job cleanup, orphaned blobs, and
//! closing the services with or without their data — fenced by a leadership,
//! every step attempted, all failures reported together.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::cleanup::{CleanupError, OrphanReport, Steps};
use super::record;
use super::services::HaServices;
use super::JobId;
use crate::backend::{Condition, Guard};
use crate::error::{Error, Result};
use crate::leader_info::PublishedInfo;
use crate::leadership::Leadership;
use crate::name::Path;

/// The `store` label of this store's fenced writes (metrics, logs).
const STORE: &str = "cleanup";

impl HaServices {
    /// Removes everything of `job` — its execution plan, checkpoints, counter,
    /// registry entry, blobs and published job master leader — except its job
    /// result, fenced by `fence`. Pointers go first, then (only if none is
    /// left) the job's blobs. Safe to run concurrently for different jobs;
    /// idempotent, so a cleanup interrupted by a crash is finished by running
    /// it again. Every step is attempted; all failures are reported together.
    ///
    /// Close the job master's own leader election first: while it leads, it
    /// republishes its leader information.
    pub async fn cleanup_job_data(
        &self,
        fence: &Leadership,
        job: &JobId,
    ) -> Result<(), CleanupError> {
        let mut steps = Steps::default();
        if !steps.record("fence", self.ctx.check_fence(fence)) {
            return steps.finish();
        }
        let layout = &self.ctx.layout;
        let pointers = [layout.plan(job), layout.job(job)];
        for prefix in &pointers {
            self.delete_below(fence, prefix, &mut steps).await;
        }
        if let Some(blobs) = &self.ctx.blobs {
            match self.remaining(&pointers).await {
                Ok(0) => {
                    steps.record(format!("blobs of job {job}"), blobs.remove_job(job).await);
                }
                Ok(n) => {
                    steps.record(
                        format!("blobs of job {job}"),
                        Err::<(), _>(Error::Backend {
                            message: format!("kept: {n} pointer(s) of the job remain"),
                            source: None,
                        }),
                    );
                }
                Err(e) => {
                    steps.record(format!("blobs of job {job}"), Err::<(), _>(e));
                }
            }
        }
        let info = layout.job_leader(job).with("connection_info");
        let outcome = self.remove_leader_info(fence, &info).await;
        steps.record(format!("leader information {info}"), outcome);
        self.plans.forget(job);
        steps.finish()
    }

    /// Deletes every key at or below `prefix`, fenced, recording failures.
    async fn delete_below(&self, fence: &Leadership, prefix: &Path, steps: &mut Steps) {
        let keys = match self.ctx.backend.list(prefix).await {
            Ok(keys) => keys,
            Err(e) => {
                steps.record(format!("listing {prefix}"), Err::<(), _>(e));
                return;
            }
        };
        for (key, _) in keys {
            let outcome = match Path::parse("key", &key) {
                Ok(path) => self.ctx.delete(STORE, fence, &path, Condition::Any).await,
                Err(e) => Err(e),
            };
            steps.record(format!("deleting {key}"), outcome);
        }
    }

    /// How many keys are left at or below `prefixes`.
    async fn remaining(&self, prefixes: &[Path]) -> Result<usize> {
        let mut n = 0;
        for prefix in prefixes {
            n += self.ctx.backend.list(prefix).await?.len();
        }
        Ok(n)
    }

    /// Removes published leader information at `key`, fenced by `fence` and
    /// conditional on the version read: always when it was published under
    /// the fence's own election or is stale (its term no longer leads, so it
    /// can never lead again) or does not decode; never while another
    /// election's current leader publishes it.
    async fn remove_leader_info(&self, fence: &Leadership, key: &Path) -> Result<()> {
        let Some(stored) = self.ctx.backend.get(key).await? else {
            return Ok(());
        };
        if let Ok(published) = PublishedInfo::decode(key, &stored.value) {
            if published.election != fence.election().as_str() {
                let election = Path::parse("election", &published.election)?;
                let leader = self.ctx.backend.leader(&election).await?;
                if leader.is_some_and(|l| l.term == published.info.term) {
                    return Err(Error::invalid(
                        "leader information",
                        key.as_str(),
                        format!("is published by the current leader of {election}; close that leader election first"),
                    ));
                }
            }
        }
        match self
            .ctx
            .delete(STORE, fence, key, Condition::Version(stored.version))
            .await
        {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes blobs that no pointer references and that are older than
    /// `grace` (a blob younger than that may belong to a write whose pointer
    /// has not landed yet). Blobs are listed before pointers, so a blob whose
    /// pointer lands meanwhile is either seen as referenced or young. Requires
    /// a current leadership, and reads every record that may hold a pointer:
    /// one that does not decode fails the collection before anything is
    /// deleted.
    pub async fn collect_orphans(
        &self,
        fence: &Leadership,
        grace: Duration,
    ) -> Result<OrphanReport> {
        self.ctx.check_fence(fence)?;
        let Some(blobs) = &self.ctx.blobs else {
            return Ok(OrphanReport::default());
        };
        let files = blobs.list().await?;
        let mut referenced = HashSet::new();
        for prefix in [self.ctx.layout.plans(), self.ctx.layout.jobs()] {
            for (key, stored) in self.ctx.backend.list(&prefix).await? {
                if let Some(pointer) = record::blob_of(&key, &stored.value)? {
                    referenced.insert(pointer.name().to_owned());
                }
            }
        }
        let now = SystemTime::now();
        let mut report = OrphanReport::default();
        for file in files {
            if referenced.contains(&file.name) {
                report.referenced += 1;
                continue;
            }
            let age = now.duration_since(file.modified).unwrap_or(Duration::ZERO);
            if age < grace {
                report.young.push(file.name);
                continue;
            }
            self.ctx.check_fence(fence)?;
            blobs.delete_name(&file.name).await?;
            report.removed.push(file.name);
        }
        Ok(report)
    }

    /// Closes the services and keeps every piece of data, for the next leader
    /// (Flink's `close()`): the leader elections of this process are closed.
    pub async fn close(&self) -> Result<(), CleanupError> {
        self.elections.close().await;
        Ok(())
    }

    /// Closes the services and deletes all data of this cluster, fenced by
    /// `fence` (Flink's `closeAndCleanupAllData()`): pointers first (execution
    /// plans, job data, job results, published leaders), then — only if no
    /// pointer is left — the cluster's blob directory, and nothing outside
    /// this cluster's namespace. Every step is attempted; all failures are
    /// reported together; running it again resumes an interrupted cleanup.
    ///
    /// Leader information that this process's own components republish while
    /// the elections close is removed afterwards, once provably stale (its
    /// term no longer leads, so it can never lead again), with a delete
    /// conditional on the exact version judged stale — the one write here not
    /// fenced, since this process no longer leads then.
    pub async fn close_and_cleanup_all_data(&self, fence: &Leadership) -> Result<(), CleanupError> {
        let mut steps = Steps::default();
        if !steps.record("fence", self.ctx.check_fence(fence)) {
            self.elections.close().await;
            return steps.finish();
        }
        let layout = &self.ctx.layout;
        let data = [layout.plans(), layout.jobs(), layout.results()];
        for prefix in &data {
            self.delete_below(fence, prefix, &mut steps).await;
        }
        if let Some(blobs) = &self.ctx.blobs {
            match self.remaining(&data).await {
                Ok(0) => {
                    steps.record("blob directory", blobs.remove_all().await);
                }
                Ok(n) => {
                    steps.record(
                        "blob directory",
                        Err::<(), _>(Error::Backend {
                            message: format!("kept: {n} pointer(s) remain"),
                            source: None,
                        }),
                    );
                }
                Err(e) => {
                    steps.record("blob directory", Err::<(), _>(e));
                }
            }
        }
        for key in self.leader_infos(&mut steps).await {
            let outcome = self.remove_leader_info(fence, &key).await;
            steps.record(format!("leader information {key}"), outcome);
        }
        self.elections.close().await;
        for key in self.leader_infos(&mut steps).await {
            let outcome = self.remove_stale_leader_info(&key).await;
            steps.record(format!("leader information {key}"), outcome);
        }
        steps.finish()
    }

    /// [`close`](Self::close) when `cleanup` is `None`,
    /// [`close_and_cleanup_all_data`](Self::close_and_cleanup_all_data) fenced
    /// by the given leadership otherwise (Flink's
    /// `closeWithOptionalClean(boolean)`).
    pub async fn close_with_optional_clean(
        &self,
        cleanup: Option<&Leadership>,
    ) -> Result<(), CleanupError> {
        match cleanup {
            None => self.close().await,
            Some(fence) => self.close_and_cleanup_all_data(fence).await,
        }
    }

    /// Every `connection_info` key of the cluster.
    async fn leader_infos(&self, steps: &mut Steps) -> Vec<Path> {
        let prefix = self.ctx.layout.leaders();
        match self.ctx.backend.list(&prefix).await {
            Ok(keys) => keys
                .into_iter()
                .filter(|(k, _)| k.ends_with("/connection_info"))
                .filter_map(|(k, _)| Path::parse("key", &k).ok())
                .collect(),
            Err(e) => {
                steps.record(format!("listing {prefix}"), Err::<(), _>(e));
                Vec::new()
            }
        }
    }

    /// Deletes leader information whose term no longer leads, at the version
    /// judged stale; leaves anything else.
    async fn remove_stale_leader_info(&self, key: &Path) -> Result<()> {
        let Some(stored) = self.ctx.backend.get(key).await? else {
            return Ok(());
        };
        let published = PublishedInfo::decode(key, &stored.value)?;
        let election = Path::parse("election", &published.election)?;
        let leader = self.ctx.backend.leader(&election).await?;
        if leader.is_some_and(|l| l.term == published.info.term) {
            return Ok(()); // someone leads and publishes it now: theirs
        }
        match self
            .ctx
            .backend
            .delete(key, Guard::when(Condition::Version(stored.version)))
            .await
        {
            Ok(_) | Err(Error::NotFound { .. } | Error::VersionMismatch { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
