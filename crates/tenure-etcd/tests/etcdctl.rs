//! Interop with etcd's own election recipe through the real `etcdctl elect`
//! (Debian's etcd-client 3.4): tenure and etcdctl candidates of
//! `<prefix>/<election>` share one queue and take turns, and each side sees the
//! other's leader.
//!
//! What etcdctl 3.4 does, as used here: `etcdctl elect NAME PROPOSAL` puts its
//! candidate at `NAME/<lease id hex>` on a lease of 60 s, waits to be first,
//! then prints the key and the proposal on two lines and leads until it gets
//! SIGINT or SIGTERM, which make it resign and exit. `etcdctl elect -l NAME`
//! prints the same two lines for the current leader and again for every new
//! one, and runs until killed.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tenure_core::conformance::cases::election;
use tenure_core::{follow_election, DynBackend, Election, LeaderRecord, Leadership, Path};
use tenure_etcd::{EtcdBackend, EtcdConfig};
use tenure_testkit::EtcdCluster;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a test waits for something that must happen before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The key prefix of every test here; etcdctl's NAME is `PREFIX/<election>`.
const PREFIX: &str = "interop";

/// Awaits `future`, failing with `what` after [`PATIENCE`].
async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

fn path(p: &str) -> Path {
    Path::parse("key", p).expect("a valid path")
}

async fn connect(etcd: &EtcdCluster) -> DynBackend {
    let config = EtcdConfig::new(&etcd.endpoints())
        .unwrap()
        .with_prefix(PREFIX)
        .unwrap()
        .with_ttl(Duration::from_secs(5))
        .unwrap();
    let backend = within("connecting", EtcdBackend::connect(config))
        .await
        .expect("connect to etcd");
    Arc::new(backend)
}

/// Waits until `name` has exactly `n` candidates (tenure's and etcdctl's both
/// queue in the background: there is no event to await).
async fn wait_queued(backend: &DynBackend, name: &str, n: usize) {
    let name = path(name);
    within(&format!("{n} candidates in {name}"), async {
        while !backend.candidates(&name).await.is_ok_and(|c| c.len() == n) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Campaigns in the background; the leadership arrives on the channel.
fn spawn_campaign(election: &Election) -> mpsc::UnboundedReceiver<Leadership> {
    let (tx, rx) = mpsc::unbounded_channel();
    let election = election.clone();
    tokio::spawn(async move {
        let leadership = election.campaign().await.expect("campaign");
        let _ = tx.send(leadership);
    });
    rx
}

/// The next leader record `follow` reports, skipping nothing.
async fn next_record(
    follow: &mut futures_util::stream::BoxStream<
        'static,
        tenure_core::Result<Option<LeaderRecord>>,
    >,
    what: &str,
) -> Option<LeaderRecord> {
    within(what, follow.next())
        .await
        .expect("the stream never ends")
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A running `etcdctl`, its stdout read line by line; killed (SIGKILL) and
/// reaped on drop if it still runs.
struct Etcdctl {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Set once the process was told to stop (or reaped): from then on it no
    /// longer believes it leads.
    stopping: bool,
    exited: Option<ExitStatus>,
}

impl Etcdctl {
    fn spawn(etcd: &EtcdCluster, args: &[&str]) -> Self {
        let mut child = etcd
            .etcdctl()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl starts (apt-get install etcd-client)");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        // Blocking reads on threads of their own; they end at EOF.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { return };
                let mut sink = sink.lock().unwrap();
                sink.push_str(&line);
                sink.push('\n');
            }
        });
        Etcdctl {
            child,
            lines,
            stderr,
            stopping: false,
            exited: None,
        }
    }

    /// The next line etcdctl prints.
    async fn line(&mut self, what: &str) -> String {
        let line = tokio::time::timeout(PATIENCE, self.lines.recv()).await;
        match line {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "etcdctl exited before printing {what}; stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
            Err(_) => panic!(
                "timed out after {PATIENCE:?} waiting for etcdctl to print {what}; stderr:\n{}",
                self.stderr.lock().unwrap()
            ),
        }
    }

    /// Whether etcdctl has printed nothing (more) so far.
    fn printed_nothing(&mut self) -> bool {
        matches!(self.lines.try_recv(), Err(mpsc::error::TryRecvError::Empty))
    }

    /// Sends SIGINT — etcdctl resigns and exits — and waits until it exited.
    async fn interrupt(&mut self) -> ExitStatus {
        assert!(self.exited.is_none(), "etcdctl already exited");
        self.stopping = true;
        // By PID, while the process is not reaped yet (so the PID is still
        // ours).
        let sent = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -INT failed");
        let status = within("etcdctl to exit after SIGINT", async {
            loop {
                if let Some(status) = self.child.try_wait().expect("waitpid") {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        self.exited = Some(status);
        status
    }
}

impl Drop for Etcdctl {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks the key line etcdctl prints: `<prefix>/<election>/<lease hex>`.
fn assert_candidate_key(line: &str, election: &str) {
    let lease = line
        .strip_prefix(&format!("{PREFIX}/{election}/"))
        .unwrap_or_else(|| panic!("{line:?} is not a candidate of {PREFIX}/{election}"));
    assert!(
        !lease.is_empty()
            && lease
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{line:?} does not end in a lease id in lower-case hex"
    );
}

/// tenure leads while etcdctl waits; tenure resigns and etcdctl leads, seen by
/// tenure with a higher term; etcdctl resigns and a waiting tenure candidate
/// leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_passes_from_tenure_to_etcdctl_and_back() {
    let etcd = EtcdCluster::single().unwrap();
    let (a, b) = (connect(&etcd).await, connect(&etcd).await);
    let mut follow = follow_election(a.clone(), path("handover"));
    assert_eq!(next_record(&mut follow, "nobody leading").await, None);

    let first = election(&a, "handover", "tenure-a");
    let leadership = within("tenure's grant", first.campaign()).await.unwrap();
    let record = next_record(&mut follow, "tenure leading").await;
    assert_eq!(
        record,
        Some(LeaderRecord {
            term: leadership.term(),
            value: b"tenure-a".to_vec(),
            session: Some(a.session().borrow().id),
        })
    );

    let mut ctl = Etcdctl::spawn(&etcd, &["elect", "interop/handover", "from-etcdctl"]);
    wait_queued(&a, "handover", 2).await;
    assert!(
        ctl.printed_nothing(),
        "etcdctl claims leadership while tenure leads"
    );
    assert!(leadership.is_held());

    within("tenure resigning", leadership.resign())
        .await
        .unwrap();
    let key = ctl.line("its candidate key once elected").await;
    assert_candidate_key(&key, "handover");
    assert_eq!(ctl.line("its proposal").await, "from-etcdctl");
    assert!(!leadership.is_held());

    let leader = a
        .leader(&path("handover"))
        .await
        .unwrap()
        .expect("etcdctl leads");
    assert_eq!(leader.value, b"from-etcdctl");
    assert!(
        leader.term > leadership.term(),
        "etcdctl's term {} after tenure's {}",
        leader.term,
        leadership.term()
    );
    assert_eq!(
        next_record(&mut follow, "etcdctl leading").await,
        Some(leader.clone()),
        "retrieval skipped etcdctl or reported something else first"
    );

    let second = election(&b, "handover", "tenure-b");
    let mut granted = spawn_campaign(&second);
    wait_queued(&a, "handover", 2).await;
    assert!(
        granted.try_recv().is_err(),
        "tenure was granted while etcdctl leads"
    );
    let stopped_at = Instant::now();
    ctl.interrupt().await;
    let successor = within("the waiting tenure candidate's grant", granted.recv())
        .await
        .expect("campaign task alive");
    assert!(successor.granted_at() > stopped_at);
    assert!(successor.term() > leader.term);
    assert_eq!(
        next_record(&mut follow, "tenure leading again").await,
        Some(LeaderRecord {
            term: successor.term(),
            value: b"tenure-b".to_vec(),
            session: Some(successor.grant().session),
        })
    );
}

/// `etcdctl elect -l` shows tenure's leader: its candidate key (the lease of
/// tenure's session) and its candidate id; and the next tenure leader after a
/// handover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_observes_tenures_leader() {
    let etcd = EtcdCluster::single().unwrap();
    let (a, b) = (connect(&etcd).await, connect(&etcd).await);
    let leadership = within(
        "tenure's grant",
        election(&a, "observed", "tenure-proposal-7").campaign(),
    )
    .await
    .unwrap();

    let mut ctl = Etcdctl::spawn(&etcd, &["elect", "-l", "interop/observed"]);
    let lease = a.session().borrow().id;
    assert_eq!(
        ctl.line("the leader's key").await,
        format!("interop/observed/{lease}")
    );
    assert_eq!(ctl.line("the leader's proposal").await, "tenure-proposal-7");

    let mut granted = spawn_campaign(&election(&b, "observed", "tenure-proposal-8"));
    wait_queued(&a, "observed", 2).await;
    assert!(
        ctl.printed_nothing(),
        "etcdctl reported a change while none happened"
    );
    within("resigning", leadership.resign()).await.unwrap();
    within("the second grant", granted.recv())
        .await
        .expect("campaign task alive");
    let lease = b.session().borrow().id;
    assert_eq!(
        ctl.line("the new leader's key").await,
        format!("interop/observed/{lease}")
    );
    assert_eq!(
        ctl.line("the new leader's proposal").await,
        "tenure-proposal-8"
    );
}

/// etcdctl leads first; a tenure candidate waits and is granted only after
/// etcdctl resigns. At every observation at most one of them believes it
/// leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenure_waits_for_etcdctl_to_resign() {
    let etcd = EtcdCluster::single().unwrap();
    let a = connect(&etcd).await;
    let mut ctl = Etcdctl::spawn(&etcd, &["elect", "interop/turns", "etcdctl-first"]);
    let key = ctl.line("its candidate key once elected").await;
    assert_candidate_key(&key, "turns");
    assert_eq!(ctl.line("its proposal").await, "etcdctl-first");
    let etcdctl_leader = a
        .leader(&path("turns"))
        .await
        .unwrap()
        .expect("etcdctl leads");
    assert_eq!(etcdctl_leader.value, b"etcdctl-first");

    let tenure = election(&a, "turns", "tenure");
    let mut granted = spawn_campaign(&tenure);
    wait_queued(&a, "turns", 2).await;
    // etcdctl believes it leads from printing its key until it is told to
    // stop; tenure from its grant until its token fires.
    let observe = |ctl: &Etcdctl, when: &str| {
        let etcdctl_leads = ctl.exited.is_none() && !ctl.stopping;
        let tenure_leads = tenure.leadership().is_some();
        assert!(
            !(etcdctl_leads && tenure_leads),
            "{when}: etcdctl and tenure both believe they lead"
        );
        (etcdctl_leads, tenure_leads)
    };
    // For a second, tenure must go on waiting: there is no event for
    // something that must not happen, so this lets time pass and looks.
    for _ in 0..10 {
        assert_eq!(observe(&ctl, "while etcdctl leads"), (true, false));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        granted.try_recv().is_err(),
        "tenure granted while etcdctl leads"
    );

    let signalled_at = Instant::now();
    let status = ctl.interrupt().await;
    observe(&ctl, &format!("after etcdctl exited ({status})"));
    let leadership = within("tenure's grant after etcdctl resigned", granted.recv())
        .await
        .expect("campaign task alive");
    assert_eq!(observe(&ctl, "after tenure's grant"), (false, true));
    assert!(leadership.granted_at() > signalled_at);
    assert!(leadership.term() > etcdctl_leader.term);
    let now = a
        .leader(&path("turns"))
        .await
        .unwrap()
        .expect("tenure leads");
    assert_eq!(now.value, b"tenure");
    assert_eq!(now.term, leadership.term());
}
