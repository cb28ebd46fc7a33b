//! [`ServerGroup`]: the server processes of one test — etcd members,
//! ZooKeeper servers, any [`ServerKind`] — with what every kind shares,
//! written once: starting on fresh ports (again, when a port was taken),
//! kill, restart, pause, resume, readiness waits, and kill-all on drop.

mod kind;
mod member;
mod ready;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

pub use kind::ServerKind;
pub use member::Member;
pub use ready::READY_TIMEOUT;

use crate::process::{self, Signal};
use crate::temp::TempDir;
use crate::TestkitError;

/// How many times a start or restart is tried when a port was taken between
/// probing it and the server binding it.
const BIND_ATTEMPTS: usize = 3;

/// What a server logs when a port it should listen on is taken, in any case:
/// the operating system's message, which Go (etcd: `address already in use`)
/// and Java (ZooKeeper: `java.net.BindException: Address already in use`)
/// both quote.
const ADDRESS_IN_USE: &str = "address already in use";

/// Real server processes of kind `K` on loopback ports, with their data,
/// configuration and logs in a temporary directory, owned by a test.
/// [`EtcdCluster`](crate::EtcdCluster) and [`ZkCluster`](crate::ZkCluster)
/// are server groups; their constructors start them.
///
/// Dropping it kills every member (SIGKILL, also when a test panics) and
/// removes the directory; a watchdog does it when the test process dies
/// without dropping it (a shared group in a `static`, a SIGKILL). Members are
/// numbered from 0 and keep their name, ports and directory across
/// [`kill`](Self::kill) and [`restart`](Self::restart).
///
/// These are the faults a test injects, all through `&self`: kill a member
/// (SIGKILL), restart it with its data, pause it (SIGSTOP) and resume it.
pub struct ServerGroup<K: ServerKind> {
    kind: K,
    members: Vec<Member<K::Ports>>,
    /// One slot per member. Behind a mutex so kill, restart, pause and resume
    /// work through `&self`, e.g. from a test's fault-injection thread.
    processes: Mutex<Vec<Slot>>,
    /// Dropped last, after `Drop` has killed the processes writing into it.
    dir: TempDir,
}

/// A member's process, if it runs.
#[derive(Debug, Default)]
struct Slot {
    child: Option<Child>,
    paused: bool,
    /// Length of the log when the process was launched: what it logged itself
    /// starts there.
    log_start: u64,
}

impl<K: ServerKind> ServerGroup<K> {
    /// Starts `members` members of `kind` in `dir` and waits (up to
    /// [`READY_TIMEOUT`]) until the group is ready; starts again on fresh
    /// ports when a member could not bind one.
    pub(crate) fn start_with(kind: K, dir: TempDir, members: usize) -> Result<Self, TestkitError> {
        let mut group = Self {
            kind,
            members: Vec::new(),
            processes: Mutex::new(Vec::new()),
            dir,
        };
        for attempt in 1..=BIND_ATTEMPTS {
            group.plan(members, attempt)?;
            let started = group.launch(&group.all()).and_then(|()| group.wait_ready());
            match started {
                Ok(()) => return Ok(group),
                Err(_) if attempt < BIND_ATTEMPTS && group.lost_a_port(&group.all()) => {
                    group.kill_all();
                }
                // Dropping the group kills what did start.
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Picks fresh ports, names and an empty state for every member.
    fn plan(&mut self, members: usize, attempt: usize) -> Result<(), TestkitError> {
        self.members = (0..members)
            .map(|i| Ok(Member::new(K::NAME_PREFIX, i, self.dir.path(), K::ports()?)))
            .collect::<Result<_, TestkitError>>()?;
        for member in &self.members {
            // A failed attempt's data would make the member rejoin the old
            // cluster (etcd), or carry its epochs into this one (ZooKeeper).
            let _ = std::fs::remove_dir_all(&member.dir);
            let _ = std::fs::remove_file(&member.log);
        }
        self.kind.configure(&self.members, attempt)?;
        *self.lock() = (0..members).map(|_| Slot::default()).collect();
        Ok(())
    }

    /// Launches those of `members` that have no process.
    fn launch(&self, members: &[usize]) -> Result<(), TestkitError> {
        let mut slots = self.lock();
        for &member in members {
            let slot = &mut slots[member];
            if slot.child.is_none() {
                let facts = &self.members[member];
                slot.log_start = facts.log_len();
                slot.child = Some(facts.spawn(self.kind.command(facts), K::PROGRAM)?);
                slot.paused = false;
            }
        }
        Ok(())
    }

    /// Every member's index.
    pub(crate) fn all(&self) -> Vec<usize> {
        (0..self.members.len()).collect()
    }

    /// Whether the current run of one of `members` failed to bind a port.
    fn lost_a_port(&self, members: &[usize]) -> bool {
        let slots = self.lock();
        members.iter().any(|&member| {
            self.members[member]
                .log_since(slots[member].log_start)
                .to_ascii_lowercase()
                .contains(ADDRESS_IN_USE)
        })
    }

    /// The kind, with what its members share.
    pub(crate) fn kind(&self) -> &K {
        &self.kind
    }

    /// How many members the group has, running or not.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The name, directory, log and ports of `member`.
    ///
    /// # Panics
    /// If there is no such member.
    pub fn member(&self, member: usize) -> &Member<K::Ports> {
        &self.members[member]
    }

    /// The temporary directory holding the members' directories and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file of `member` (every run of it, appended).
    ///
    /// # Panics
    /// If there is no such member.
    pub fn log_path(&self, member: usize) -> PathBuf {
        self.members[member].log.clone()
    }

    /// The process id of `member`, while it runs (paused counts as running).
    ///
    /// # Panics
    /// If there is no such member.
    pub fn pid(&self, member: usize) -> Option<u32> {
        self.lock()[member].child.as_ref().map(Child::id)
    }

    /// Kills `member` with SIGKILL and reaps it; its directory stays for
    /// [`restart`](Self::restart). Killing a member that is not running does
    /// nothing.
    ///
    /// # Panics
    /// If there is no such member.
    pub fn kill(&self, member: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[member];
        if let Some(mut child) = slot.child.take() {
            // SIGKILL also ends a stopped process.
            let _ = child.kill();
            let _ = child.wait();
        }
        slot.paused = false;
    }

    /// Starts `member` again with its name, ports and data, killing it first
    /// if it still runs, and waits until it is ready — which, in a group of
    /// several, needs a quorum to run (see [`restart_all`](Self::restart_all)).
    ///
    /// # Panics
    /// If there is no such member.
    pub fn restart(&self, member: usize) -> Result<(), TestkitError> {
        assert!(member < self.members.len(), "no {} {member}", K::NOUN);
        for attempt in 1..=BIND_ATTEMPTS {
            self.kill(member);
            self.launch(&[member])?;
            match self.wait_members(&[member], false) {
                Ok(()) => return Ok(()),
                Err(_) if attempt < BIND_ATTEMPTS && self.lost_a_port(&[member]) => {
                    // Whoever holds the port is usually a short-lived connection.
                    thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Starts every member that is not running (as [`restart`](Self::restart)
    /// does, but together, so a group that lost its quorum can get it back)
    /// and waits until the group is ready.
    pub fn restart_all(&self) -> Result<(), TestkitError> {
        self.launch(&self.all())?;
        self.wait_ready()
    }

    /// Kills every member and starts them all again on their data (a
    /// whole-group restart), then waits until the group is ready. Every
    /// member runs as a new process afterwards (checked).
    ///
    /// # Panics
    /// If a member kept its process.
    pub fn restart_every_member(&self) -> Result<(), TestkitError> {
        let before: Vec<_> = (0..self.members()).map(|m| self.pid(m)).collect();
        for member in 0..self.members() {
            self.kill(member);
        }
        self.restart_all()?;
        for (member, old) in before.into_iter().enumerate() {
            let new = self.pid(member);
            assert!(
                new.is_some() && new != old,
                "member {member} was not restarted"
            );
        }
        Ok(())
    }

    /// Freezes every member ([`pause`](Self::pause)): no client is served.
    pub fn pause_all(&self) {
        for member in 0..self.members() {
            self.pause(member);
        }
    }

    /// Resumes every member ([`resume`](Self::resume)).
    pub fn resume_all(&self) {
        for member in 0..self.members() {
            self.resume(member);
        }
    }

    /// Freezes `member` with SIGSTOP and returns once the kernel shows it
    /// stopped. Its sockets stay open: peers and clients see a member that does
    /// not answer, like a process stuck in a long GC pause or a swapped-out VM.
    ///
    /// # Panics
    /// If there is no such member or it is not running.
    pub fn pause(&self, member: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[member];
        let pid = slot
            .child
            .as_ref()
            .unwrap_or_else(|| {
                let name = &self.members[member].name;
                panic!("cannot pause {name}: it is not running")
            })
            .id();
        process::signal(pid, Signal::Stop);
        slot.paused = true;
    }

    /// Lets a paused `member` run again (SIGCONT); does nothing to a member
    /// that is not running.
    ///
    /// # Panics
    /// If there is no such member.
    pub fn resume(&self, member: usize) {
        let mut slots = self.lock();
        let slot = &mut slots[member];
        if let Some(child) = &slot.child {
            process::signal(child.id(), Signal::Cont);
        }
        slot.paused = false;
    }

    /// Members with a process that is not paused: the ones that can answer.
    pub(crate) fn serving(&self) -> Vec<usize> {
        self.lock()
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.child.is_some() && !slot.paused)
            .map(|(member, _)| member)
            .collect()
    }

    fn kill_all(&self) {
        for member in self.all() {
            self.kill(member);
        }
    }

    /// The process slots. A test that panicked while holding the lock must not
    /// stop `Drop` from killing the processes, hence no poisoning.
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: ServerKind> Drop for ServerGroup<K> {
    /// Kills every member; the temporary directory goes after (field drop).
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl<K: ServerKind> fmt::Debug for ServerGroup<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pids: Vec<Option<u32>> = self.all().into_iter().map(|m| self.pid(m)).collect();
        f.debug_struct("ServerGroup")
            .field("kind", &self.kind)
            .field("members", &self.members)
            .field("pids", &pids)
            .field("dir", &self.dir.path())
            .finish()
    }
}
