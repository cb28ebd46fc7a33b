//! Free loopback ports.
//!
//! Ports come from below the kernel's ephemeral range when it leaves room for
//! that: a port picked by binding `127.0.0.1:0` is an ephemeral port, and while a
//! member is down (killed, before its restart) any outgoing connection on the
//! host — the surviving members dial it every few milliseconds — may be given
//! that very port as its local address, and the restart then fails to bind.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

use crate::TestkitError;

/// The lowest port handed out.
const POOL_START: u16 = 10_000;

/// Ports this process has handed out; never handed out twice, so two clusters in
/// one test binary cannot race for the same port between probe and bind.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port on 127.0.0.1 that nothing listens on right now.
pub(crate) fn free_port() -> Result<u16, TestkitError> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(end) = ephemeral_start().filter(|&end| end > POOL_START + 1_000) {
        let random = RandomState::new();
        for attempt in 0u32..1_000 {
            let port = POOL_START + (random.hash_one(attempt) % u64::from(end - POOL_START)) as u16;
            if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    loop {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| TestkitError::io("cannot bind 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError::io("cannot read a bound port", e))?
            .port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable_and_distinct() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, b);
        TcpListener::bind(("127.0.0.1", a)).unwrap();
        TcpListener::bind(("127.0.0.1", b)).unwrap();
    }
}
