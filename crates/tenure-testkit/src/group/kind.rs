//! [`ServerKind`]: what differs between the kinds of server a group runs.

use std::fmt;
use std::process::{Command, ExitStatus};

use super::{Member, ServerGroup};
use crate::TestkitError;

/// A kind of server a [`ServerGroup`] runs: how a member is configured and
/// launched, how it is asked whether it is ready, and who leads. Everything
/// else — ports, directories, logs, kill, restart, pause, resume, waiting and
/// cleanup — is the group's, the same for every kind.
///
/// The kit's kinds implement it: [`Etcd`](crate::Etcd) (an
/// [`EtcdCluster`](crate::EtcdCluster)) and [`ZooKeeper`](crate::ZooKeeper) (a
/// [`ZkCluster`](crate::ZkCluster)); each kind's constructors start its
/// groups. Code written for any `K: ServerKind` — a fault campaign that kills,
/// pauses and restarts members — works on every kind.
///
/// # Contract
/// A kind runs one process per member, listening on 127.0.0.1 only, with
/// everything it writes in the member's [`dir`](Member::dir) and its output in
/// the member's [`log`](Member::log). Probes are bounded: a frozen (paused)
/// member makes them fail within seconds, never hang.
pub trait ServerKind: fmt::Debug + Sized {
    /// A member's ports, picked by [`ports`](Self::ports) for each start
    /// attempt and kept across restarts.
    type Ports: fmt::Debug;
    /// What a ready member reports about itself, for
    /// [`unsettled`](Self::unsettled) to judge the group by (etcd: nothing,
    /// ZooKeeper: its mode).
    type Ready;

    /// The program [`command`](Self::command) runs; a missing one fails with
    /// its install hint ([`TestkitError::NotInstalled`]).
    const PROGRAM: &'static str;
    /// Member names are this and the index: `m` names `m0`, `m1`, ….
    const NAME_PREFIX: &'static str;
    /// How messages name one member, e.g. `etcd member`.
    const NOUN: &'static str;
    /// What a member does once ready, in "waiting for etcd member(s) m1 to
    /// become healthy".
    const READY: &'static str;

    /// Picks a member's ports: each MUST be free on 127.0.0.1 now and handed
    /// out by nothing else (the kit's `ports::free_port`).
    fn ports() -> Result<Self::Ports, TestkitError>;

    /// Prepares a fresh start of `members`: called once per start attempt
    /// (`attempt` counts from 1) after their directories and logs were removed
    /// and before any of them runs. Writes configuration files, remembers what
    /// every command line shares.
    fn configure(
        &mut self,
        members: &[Member<Self::Ports>],
        attempt: usize,
    ) -> Result<(), TestkitError>;

    /// The command that runs `member` — program, arguments, environment,
    /// working directory; the group adds stdio and spawns it. Its arguments
    /// MUST name `member.dir`: the watchdog recognises the process by it. A
    /// member that finds its own data in `member.dir` MUST come back with it
    /// (a restart), not start afresh.
    fn command(&self, member: &Member<Self::Ports>) -> Command;

    /// Asks `member`, which runs and is not paused, once whether it is ready;
    /// `None` if it is not (yet).
    fn probe(group: &ServerGroup<Self>, member: usize) -> Option<Self::Ready>;

    /// What the group as a whole still waits for once every running, unpaused
    /// member is ready and reported `ready` — e.g. "the etcd cluster to elect
    /// a leader" — or `None` when the group is ready.
    fn unsettled(group: &ServerGroup<Self>, ready: &[Self::Ready]) -> Option<String>;

    /// The member that leads, as the running, unpaused members report it; if
    /// a deposed leader has not noticed yet, the one of the newest term.
    /// `None` while there is no leader.
    fn leader(group: &ServerGroup<Self>) -> Option<usize>;

    /// The error for `member`'s process having exited with `status` while the
    /// group waited for it: [`TestkitError::Exited`] naming it, unless the kind
    /// has its own.
    fn exited(
        group: &ServerGroup<Self>,
        member: usize,
        status: ExitStatus,
        log_tail: String,
    ) -> TestkitError {
        TestkitError::Exited {
            process: format!("{} {}", Self::NOUN, group.member(member).name),
            status,
            log_tail,
        }
    }
}
