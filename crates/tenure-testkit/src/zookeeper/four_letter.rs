//! ZooKeeper's four-letter words (`ruok`, `srvr`, `mntr`, …) over a raw TCP
//! connection to a client port, and parsing `srvr`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one probe may take. A live server answers in about a millisecond;
/// a paused one accepts the connection (the kernel does) and never answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `word` to the client port `port` and returns everything the server
/// writes before it closes the connection, as it does after each word.
pub(crate) fn ask(port: u16, word: &str) -> io::Result<String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    stream.write_all(word.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The role a ZooKeeper server reports in its `srvr` answer (`Mode: …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZkMode {
    /// The only server: no quorum.
    Standalone,
    /// The ensemble's leader.
    Leader,
    /// A follower of the leader.
    Follower,
    /// `observer` or `read-only`: serves, but takes no part in the quorum.
    Other,
}

/// What the kit reads from `srvr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Srvr {
    /// `3.8.0` out of `Zookeeper version: 3.8.0-<commit>, built on …`.
    pub(crate) version: String,
    /// The last zxid the server has seen; a leader's carries its epoch in the
    /// high 32 bits.
    pub(crate) zxid: u64,
    pub(crate) mode: ZkMode,
}

/// Parses a `srvr` answer; `None` for a server that does not serve yet (it
/// answers "This ZooKeeper instance is not currently serving requests").
pub(crate) fn parse_srvr(answer: &str) -> Option<Srvr> {
    let field = |name: &str| {
        answer
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let version = field("Zookeeper version")?;
    let version = version
        .split(|c: char| c == '-' || c == ',' || c.is_whitespace())
        .next()?
        .to_owned();
    let zxid = u64::from_str_radix(field("Zxid")?.strip_prefix("0x")?, 16).ok()?;
    let mode = match field("Mode")? {
        "standalone" => ZkMode::Standalone,
        "leader" => ZkMode::Leader,
        "follower" => ZkMode::Follower,
        _ => ZkMode::Other,
    };
    Some(Srvr {
        version,
        zxid,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_3_8_leader() {
        let answer =
            "Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC\n\
                      Latency min/avg/max: 0/0.0/0\nReceived: 7\nSent: 6\nConnections: 1\n\
                      Outstanding: 0\nZxid: 0x200000003\nMode: leader\nNode count: 5\n\
                      Proposal sizes last/min/max: -1/-1/-1\n";
        assert_eq!(
            parse_srvr(answer),
            Some(Srvr {
                version: "3.8.0".into(),
                zxid: 0x2_0000_0003,
                mode: ZkMode::Leader,
            })
        );
    }

    #[test]
    fn a_server_that_does_not_serve_has_no_mode() {
        let answer = "This ZooKeeper instance is not currently serving requests\n";
        assert_eq!(parse_srvr(answer), None);
        assert_eq!(parse_srvr(""), None);
    }
}
