//! Flink failover: the leading JobManager of a real Apache Flink 2.3 cluster
//! in ZooKeeper HA mode is killed (SIGKILL), and two observers of the
//! cluster's `rest_server` time when they report the standby: tenure's
//! [`LeaderRetrieval`] in this process, on a `zk://…?layout=flink` client, and
//! Flink's own retrieval (`ZooKeeperLeaderRetrievalDriver`, run by the test
//! kit's [`FlinkRetrievalProbe`] in a JVM of its own).
//!
//! Both are timed in the same trial from the same kill instant, both waiting
//! before the kill, so the two rows differ only by what each retrieval adds
//! after ZooKeeper and Flink have done their part. That part dominates: the
//! killed JobManager's latch node and `connection_info` live until its
//! session expires, `FlinkOptions::session_timeout_ms` after the server last
//! heard from it (not after the kill: an idle client pings every third of the
//! timeout); then the standby's Curator `LeaderLatch` takes over and Flink
//! publishes its address.
//!
//! Each trial starts a fresh standby beside the leader (the previous trial's
//! standby), so every kill finds exactly two JobManagers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tenure::{LeaderInfo, LeaderRetrieval};
use tenure_testkit::{
    FlinkComponent, FlinkJobManager, FlinkOptions, FlinkRetrievalProbe, TestkitError, ZkCluster,
};

use crate::plan::{zk_options, Plan};
use crate::report::{num, Report, Row, Stat};

/// The scenario's slug: its table in `BENCHMARKS.md` and `flink.json`.
const SCENARIO: &str = "flink";
const MEASURE: &str = "JobManager SIGKILL → standby seen";
const TENURE: &str = "tenure LeaderRetrieval";
const FLINK: &str = "Flink ZooKeeperLeaderRetrievalDriver";
const BACKEND: &str = "zookeeper";

/// How long a JobManager may take to start or to be seen leading: JVMs
/// starting beside each other on two cores take tens of seconds.
const PATIENCE: Duration = Duration::from_secs(120);

/// Quiet after a standby serves, so that the kill does not land on the JIT
/// and collector work of its start-up (which would slow the takeover).
const SETTLE: Duration = Duration::from_secs(1);

/// How much later than Flink's own retrieval tenure's may report the
/// standby, at the median.
const SLACK_MS: f64 = 50.0;

type Retrieval = BoxStream<'static, tenure::Result<Option<LeaderInfo>>>;

/// Runs a blocking test kit call off the async workers.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, TestkitError> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

pub(crate) async fn run(report: &mut Report, plan: &Plan) -> Result<(), String> {
    // Flink's jars come from PyPI on first use; without them the rows say
    // why, as a peer that cannot be set up does.
    if let Err(why) = blocking(tenure_testkit::flink_lib_dir).await {
        for implementation in [TENURE, FLINK] {
            let why = format!("Flink cannot be installed: {why}");
            report.unavailable(SCENARIO, implementation, BACKEND, MEASURE, why);
        }
        return Ok(());
    }
    let zk = blocking(|| ZkCluster::start(zk_options(1))).await?;
    let version = zk.version().map_err(|e| e.to_string())?;
    report.add_server(format!(
        "ZooKeeper {version} (standalone, tickTime {} ms, started by the test kit)",
        zk.options().tick_time_ms
    ));
    let connect = zk.connect_string();
    let options = FlinkOptions::default();
    let timeout_ms = options.session_timeout_ms;
    let url = format!(
        "zk://{connect}/{}?layout=flink&session_timeout={timeout_ms}ms",
        options.path_root.trim_start_matches('/')
    );
    let backend = tenure::connect(&url).await.map_err(|e| e.to_string())?;
    let mut retrieval = LeaderRetrieval::new(backend.clone(), &options.cluster_id, "rest_server")
        .map_err(|e| e.to_string())?
        .stream();
    let probe = Arc::new(
        blocking({
            let (connect, options) = (connect.clone(), options.clone());
            move || FlinkRetrievalProbe::start(&connect, &options, FlinkComponent::RestServer)
        })
        .await?,
    );

    // The first leader, known to both observers before any trial.
    let mut leader = jobmanager(&connect, &options).await?;
    let first = leader.rest_url();
    let flink_saw = flink_sees(&probe, first.clone());
    seen(&mut retrieval, &first).await?;
    flink_saw.await.map_err(|e| e.to_string())??;

    let (mut tenure_ms, mut flink_ms) = (Vec::new(), Vec::new());
    let mut flink_version = None;
    for _ in 0..plan.flink {
        let standby = jobmanager(&connect, &options).await?;
        let overview = blocking({
            let standby = standby.clone();
            move || standby.wait_serving(PATIENCE)
        })
        .await?;
        flink_version.get_or_insert_with(|| version_of(&overview));
        tokio::time::sleep(SETTLE).await;

        // Each observer stamps a report as it comes, not when asked for it:
        // Flink's waits from before the kill, tenure's from just after, and
        // nothing changes until the killed session expires seconds later.
        let target = standby.rest_url();
        let flink_saw = flink_sees(&probe, target.clone());
        let doomed = std::mem::replace(&mut leader, standby);
        let killed = blocking(move || {
            let at = Instant::now();
            doomed.kill();
            Ok(at)
        })
        .await?;
        let (tenure_at, info) = seen(&mut retrieval, &target).await?;
        let (flink_at, flink_session) = flink_saw.await.map_err(|e| e.to_string())??;

        // Both saw the same leadership as the standby was granted.
        let session = blocking({
            let leader = leader.clone();
            move || leader.wait_leader(PATIENCE)
        })
        .await?;
        if info.session_id.to_string() != session || flink_session != session {
            return Err(format!(
                "flink: {target} was granted session {session}, but tenure saw {} and Flink {flink_session}",
                info.session_id
            ));
        }
        tenure_ms.push(tenure_at.duration_since(killed).as_secs_f64() * 1000.0);
        flink_ms.push(flink_at.duration_since(killed).as_secs_f64() * 1000.0);
    }
    let _ = backend.close().await;

    report.add_server(format!(
        "Apache Flink {} JobManagers (PyPI apache-flink-libraries; ZooKeeper HA, session \
         timeout {timeout_ms} ms; started by the test kit)",
        flink_version.unwrap_or_else(|| "2.3".into())
    ));
    let both = format!(
        "both rows wait for the killed JobManager's ZooKeeper session to expire \
         ({timeout_ms} ms, high-availability.zookeeper.client.session-timeout, counted from \
         its last ping, which an idle client sends every third of it: so 2/3 to all of it \
         after the kill), which deletes its latch node and connection_info; then the \
         standby's LeaderLatch takes over and publishes its address; both are timed in the \
         same trials from the same kill"
    );
    let gaps: Vec<f64> = tenure_ms
        .iter()
        .zip(&flink_ms)
        .map(|(t, f)| t - f)
        .collect();
    let gap = Row::new(SCENARIO, "", BACKEND, "", "ms", gaps);
    let flink = Row::new(SCENARIO, FLINK, BACKEND, MEASURE, "ms", flink_ms).note(format!(
        "Flink's ZooKeeperUtils.createLeaderRetrievalService in a JVM of its own (the test \
         kit's FlinkRetrievalProbe), timed when its notification line is read here; {both}"
    ));
    let mut tenure = Row::new(SCENARIO, TENURE, BACKEND, MEASURE, "ms", tenure_ms);
    let mut note =
        format!("in this process, on a zk://…?layout=flink client following rest_server; {both}");
    if let (Some(median), Some(low), Some(high)) = (
        gap.stat(Stat::Median),
        gap.stat(Stat::Min),
        gap.stat(Stat::Max),
    ) {
        note.push_str(&format!(
            "; per trial tenure − Flink: median {} ms ({} to {} ms)",
            num(median),
            num(low),
            num(high)
        ));
    }
    if let Some(median) = flink.stat(Stat::Median) {
        note.push_str(&format!(
            "; target: Flink's median in this run + {SLACK_MS:.0} ms"
        ));
        tenure = tenure.below(Stat::Median, median + SLACK_MS);
    }
    report.add(tenure.note(note));
    report.add(flink);
    Ok(())
}

/// Starts a JobManager of the cluster; it has joined the election (queued
/// behind the leader, if there is one) when this returns.
async fn jobmanager(connect: &str, options: &FlinkOptions) -> Result<Arc<FlinkJobManager>, String> {
    let (connect, options) = (connect.to_owned(), options.clone());
    blocking(move || FlinkJobManager::start(&connect, &options))
        .await
        .map(Arc::new)
}

/// Flink's probe waiting, on a blocking thread, for `address` to lead: the
/// instant it reported it, and the leader session it named.
fn flink_sees(
    probe: &Arc<FlinkRetrievalProbe>,
    address: String,
) -> tokio::task::JoinHandle<Result<(Instant, String), String>> {
    let probe = probe.clone();
    tokio::task::spawn_blocking(move || {
        let leader = probe
            .wait_for_leader(PATIENCE, |leader| leader.address == address)
            .map_err(|e| e.to_string())?;
        Ok((Instant::now(), leader.session))
    })
}

/// Awaits tenure's report of `address` leading (skipping "nobody leads" and
/// other leaders): the instant it came, and what it said.
async fn seen(retrieval: &mut Retrieval, address: &str) -> Result<(Instant, LeaderInfo), String> {
    let wait = async {
        loop {
            match retrieval.next().await {
                Some(Ok(Some(info))) if info.address == address => {
                    return Ok((Instant::now(), info));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("flink: tenure's retrieval failed: {e}")),
                None => return Err("flink: tenure's retrieval stream ended".into()),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.map_err(|_| {
        format!("flink: tenure's retrieval did not report {address} in {PATIENCE:?}")
    })?
}

/// The version in a JobManager's `GET /overview` (`"flink-version":"2.3.0"`).
fn version_of(overview: &str) -> String {
    overview
        .split_once(r#""flink-version":""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or_else(|| "2.3".into(), |(version, _)| version.to_owned())
}
