//! Waiting until a group is ready: polling its members' probes, failing at
//! once when a process exits, and quoting the logs when time runs out.

use std::thread;
use std::time::{Duration, Instant};

use super::{ServerGroup, ServerKind};
use crate::TestkitError;

/// How long the kit waits for members to serve and for a leader, before it
/// gives up with the members' logs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a wait polls. Readiness of another process has no event to await.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

impl<K: ServerKind> ServerGroup<K> {
    /// The member that leads, as the running, unpaused members report it (see
    /// [`ServerKind::leader`]). `None` while there is no leader.
    pub fn leader(&self) -> Option<usize> {
        K::leader(self)
    }

    /// Waits (up to [`READY_TIMEOUT`]) until every running, unpaused member
    /// is ready and the group as a whole is — what that means is the kind's
    /// (see [`EtcdCluster`](crate::EtcdCluster), [`ZkCluster`](crate::ZkCluster)).
    /// Fails at once if a member's process exits meanwhile.
    pub fn wait_ready(&self) -> Result<(), TestkitError> {
        self.wait_members(&[], true)
    }

    /// Waits until `members` (or, if empty, every serving member at each poll)
    /// are ready, and if `settle`, until the group as a whole is.
    pub(super) fn wait_members(&self, members: &[usize], settle: bool) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let watched = if members.is_empty() {
                self.serving()
            } else {
                members.to_vec()
            };
            self.check_exits(&watched)?;
            let mut not_ready = Vec::new();
            let mut ready = Vec::new();
            for &member in &watched {
                match K::probe(self, member) {
                    Some(report) => ready.push(report),
                    None => not_ready.push(member),
                }
            }
            let waiting_for = if !not_ready.is_empty() {
                let names: Vec<&str> = not_ready
                    .iter()
                    .map(|&m| self.members[m].name.as_str())
                    .collect();
                format!("{}(s) {} to {}", K::NOUN, names.join(", "), K::READY)
            } else if !settle {
                return Ok(());
            } else if let Some(unsettled) = K::unsettled(self, &ready) {
                unsettled
            } else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let concerned = if not_ready.is_empty() {
                    watched
                } else {
                    not_ready
                };
                return Err(TestkitError::Timeout {
                    waiting_for,
                    after: READY_TIMEOUT,
                    log_tail: self.log_tails(&concerned),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Fails if one of `members` was running and its process has exited.
    fn check_exits(&self, members: &[usize]) -> Result<(), TestkitError> {
        let mut slots = self.lock();
        for &member in members {
            let slot = &mut slots[member];
            let Some(child) = slot.child.as_mut() else {
                continue;
            };
            let name = &self.members[member].name;
            let exited = child
                .try_wait()
                .map_err(|e| TestkitError::io(format!("cannot check on {name}"), e))?;
            if let Some(status) = exited {
                slot.child = None;
                slot.paused = false;
                // The kind's error may ask the group anything; not under the lock.
                drop(slots);
                let log_tail = self.members[member].log_tail();
                return Err(K::exited(self, member, status, log_tail));
            }
        }
        Ok(())
    }

    fn log_tails(&self, members: &[usize]) -> String {
        members
            .iter()
            .map(|&m| self.members[m].log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
