//! client-go's LeaseLock rules, as pure functions: which Lease an election
//! is, when a candidate may take it, and what taking, renewing and releasing
//! write — so that a tenure candidate and a client-go `leaderelection`
//! candidate share one Lease and agree on who holds it.
//!
//! What client-go writes (measured on 1.20, see the crate docs): while held,
//! `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime`
//! (MicroTime from the holder's clock) and `leaseTransitions`; a takeover by
//! another identity increments `leaseTransitions` and resets `acquireTime`;
//! a release writes `holderIdentity: ""`, `leaseDurationSeconds: 1` and
//! `acquireTime` = `renewTime` = now, `leaseTransitions` unchanged.
//!
//! Expiry is judged as client-go judges it: not from `renewTime` (another
//! host's clock) but from when *this* observer last saw the record change,
//! on its own monotonic clock, plus the lease duration.

use std::time::{Duration, Instant, SystemTime};

use tenure_core::checksum::crc32;
use tenure_core::Path;

use crate::api::{LeaseSpec, MicroTime};

/// The longest Kubernetes object name (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// The Lease of `election`: its name when that is already a valid object
/// name (a single segment, lowercase letters, digits, `-` and `.`, starting
/// and ending alphanumeric), so that a client-go candidate configured with
/// that name shares it; otherwise `tenure-` + a lowercase rendering + a
/// checksum of the exact name, so that names differing only in case or in
/// `/` vs `-` stay apart.
pub(crate) fn lease_name(election: &Path) -> String {
    let name = election.as_str();
    if is_object_name(name) {
        return name.to_owned();
    }
    let readable: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let readable = readable.trim_matches(|c: char| c == '-' || c == '.');
    let suffix = format!("{:08x}", crc32(name.as_bytes()));
    let room = MAX_NAME - "tenure-".len() - 1 - suffix.len();
    let readable = &readable[..readable.len().min(room)];
    format!("tenure-{readable}-{suffix}")
}

/// Whether `name` is a valid Kubernetes object name (DNS-1123 subdomain).
pub(crate) fn is_object_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

/// What an observer knows of a Lease: the record it last read and when, on
/// its own monotonic clock, it last saw that record change.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub(crate) spec: LeaseSpec,
    pub(crate) changed_at: Instant,
}

impl Observed {
    /// The holder, `None` when released (or never held).
    pub(crate) fn holder(&self) -> Option<&str> {
        self.spec
            .holder_identity
            .as_deref()
            .filter(|h| !h.is_empty())
    }

    /// Whether the holder's lease ran out by `now`, judged as client-go does:
    /// the lease duration since this observer last saw the record change.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        let duration = self.spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
        now >= self.changed_at + Duration::from_secs(duration)
    }

    /// The record to write to take the Lease as `me`, or `None` while
    /// another holder's lease runs.
    pub(crate) fn take(
        &self,
        me: &str,
        duration: Duration,
        now: Instant,
        wall: SystemTime,
    ) -> Option<LeaseSpec> {
        match self.holder() {
            Some(holder) if holder == me => Some(renewed(&self.spec, duration, wall)),
            Some(_) if !self.expired(now) => None,
            _ => Some(taken(Some(&self.spec), me, duration, wall)),
        }
    }
}

/// The record of a Lease taken by `me` from `previous` (none: a new Lease).
pub(crate) fn taken(
    previous: Option<&LeaseSpec>,
    me: &str,
    duration: Duration,
    wall: SystemTime,
) -> LeaseSpec {
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    let changed_hands = previous
        .and_then(|p| p.holder_identity.as_deref())
        .is_some_and(|h| h != me);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(seconds(duration)),
        acquire_time: Some(MicroTime(wall)),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(transitions + i32::from(changed_hands)),
    }
}

/// The record of a renewal by its holder.
pub(crate) fn renewed(spec: &LeaseSpec, duration: Duration, wall: SystemTime) -> LeaseSpec {
    LeaseSpec {
        lease_duration_seconds: Some(seconds(duration)),
        renew_time: Some(MicroTime(wall)),
        ..spec.clone()
    }
}

/// The record of a release, as client-go's `ReleaseOnCancel` writes it.
pub(crate) fn released(spec: &LeaseSpec, wall: SystemTime) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(wall)),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: spec.lease_transitions,
    }
}

/// Whole seconds, at least one (the field's unit; client-go rounds down).
fn seconds(duration: Duration) -> i32 {
    duration.as_secs().clamp(1, i32::MAX as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> Path {
        Path::parse("election", name).unwrap()
    }

    #[test]
    fn election_names_that_are_object_names_are_the_lease_name() {
        assert_eq!(lease_name(&path("my-controller")), "my-controller");
        assert_eq!(lease_name(&path("kube.scheduler")), "kube.scheduler");
        for odd in ["jobs/nightly", "Jobs", "a_b", "-x", "jobs/nightly/2"] {
            let name = lease_name(&path(odd));
            assert!(is_object_name(&name), "{odd} → {name}");
            assert!(name.starts_with("tenure-"), "{odd} → {name}");
        }
        // Names that render alike stay apart.
        assert_ne!(lease_name(&path("a/b")), lease_name(&path("a-b-x")));
        assert_ne!(lease_name(&path("Jobs")), lease_name(&path("jobs-")));
        let long = "x".repeat(128);
        let long = format!("{long}/{long}");
        assert!(lease_name(&path(&long)).len() <= MAX_NAME);
    }

    #[test]
    fn a_running_lease_is_not_taken_an_expired_or_released_one_is() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let held = taken(None, "a", Duration::from_secs(15), wall);
        assert_eq!(held.lease_transitions, Some(0));
        let seen = Observed {
            spec: held.clone(),
            changed_at: t0,
        };
        let ttl = Duration::from_secs(15);
        assert_eq!(
            seen.take("b", ttl, t0 + Duration::from_secs(14), wall),
            None
        );
        let took = seen
            .take("b", ttl, t0 + Duration::from_secs(15), wall)
            .expect("expired");
        assert_eq!(took.holder_identity.as_deref(), Some("b"));
        assert_eq!(took.lease_transitions, Some(1), "another identity took it");
        // The holder renews at any time, without a transition.
        let renew = seen.take("a", ttl, t0, wall).unwrap();
        assert_eq!(renew.lease_transitions, Some(0));
        assert_eq!(renew.acquire_time, held.acquire_time);
        // Released: anyone takes it at once.
        let free = Observed {
            spec: released(&held, wall),
            changed_at: t0,
        };
        assert_eq!(free.holder(), None);
        assert_eq!(free.spec.lease_duration_seconds, Some(1));
        let took = free.take("b", ttl, t0, wall).unwrap();
        assert_eq!(took.lease_transitions, Some(1));
    }
}
