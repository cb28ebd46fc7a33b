//! The state file: everything the backend stores, written whole and atomically.
//!
//! Format: a header line `tenure-local-state 1 <crc32 of body, hex> <body length>
//! <revision>` then a JSON body. The header alone tells readers whether the file
//! changed since they last read it (the revision grows with every change). A write goes to a temporary file, is fsynced, renamed over
//! the state file, and the directory is fsynced: a reader sees the old state or
//! the new one, never a torn one, and an acknowledged write survives a crash.
//! The checksum catches a file damaged on disk or edited by hand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use tenure_core::checksum::crc32;
use tenure_core::Error;

const MAGIC: &str = "tenure-local-state";
const VERSION: u32 = 1;
/// Recent key-value changes kept for watchers in other processes, which read
/// them every poll (5 ms by default); one that falls further behind re-lists.
/// The whole state is rewritten on every change, so the log is kept short: at
/// 4,096 entries of 256-byte values each write rewrote megabytes.
const LOG_MAX_ENTRIES: usize = 256;
/// ... and at most this many bytes of values in them.
const LOG_MAX_BYTES: usize = 1024 * 1024;

/// Everything the backend stores.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// Bumped by every change: terms and versions are revisions, so they only
    /// grow, and survive restarts because they are stored here.
    pub(crate) revision: u64,
    /// The last session id handed out; session ids are never reused.
    pub(crate) last_session: u64,
    /// Sessions registered and not yet found dead.
    pub(crate) sessions: BTreeSet<u64>,
    /// Election name → candidates in arrival order; the first leads.
    pub(crate) elections: BTreeMap<String, Vec<Entry>>,
    /// Key → value.
    pub(crate) kv: BTreeMap<String, Stored>,
    /// Recent key-value changes, oldest first, for watchers.
    pub(crate) log: VecDeque<Change>,
    /// Changes at or below this revision may have been dropped from `log`.
    pub(crate) log_floor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) term: u64,
    pub(crate) session: u64,
    #[serde(with = "hex")]
    pub(crate) value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    #[serde(with = "hex")]
    pub(crate) value: Vec<u8>,
    pub(crate) version: u64,
    /// The session an ephemeral value ends with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Change {
    pub(crate) revision: u64,
    pub(crate) key: String,
    /// `None` for a delete.
    pub(crate) value: Option<Stored>,
}

impl State {
    pub(crate) fn bump(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    /// Records a key-value change for watchers, trimming the oldest.
    pub(crate) fn record(&mut self, key: &str, value: Option<Stored>) {
        self.log.push_back(Change {
            revision: self.revision,
            key: key.to_owned(),
            value,
        });
        let mut bytes: usize = self
            .log
            .iter()
            .map(|c| c.value.as_ref().map_or(0, |v| v.value.len()))
            .sum();
        while self.log.len() > LOG_MAX_ENTRIES || (bytes > LOG_MAX_BYTES && self.log.len() > 1) {
            let dropped = self.log.pop_front().expect("log is not empty");
            bytes -= dropped.value.as_ref().map_or(0, |v| v.value.len());
            self.log_floor = dropped.revision;
        }
    }

    /// Removes every candidate and ephemeral value of `session`; returns
    /// whether anything was removed.
    pub(crate) fn drop_session(&mut self, session: u64) -> bool {
        let mut changed = self.sessions.remove(&session);
        let owned: Vec<String> = self
            .kv
            .iter()
            .filter(|(_, v)| v.owner == Some(session))
            .map(|(k, _)| k.clone())
            .collect();
        for key in owned {
            self.kv.remove(&key);
            self.bump();
            self.record(&key, None);
            changed = true;
        }
        for queue in self.elections.values_mut() {
            let before = queue.len();
            queue.retain(|e| e.session != session);
            changed |= queue.len() != before;
        }
        self.elections.retain(|_, q| !q.is_empty());
        changed
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("state always serializes");
        let mut out = format!(
            "{MAGIC} {VERSION} {:08x} {} {}\n",
            crc32(&body),
            body.len(),
            self.revision
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a state file; `file` names it in errors.
    pub(crate) fn decode(file: &str, bytes: &[u8]) -> Result<Self, Error> {
        let corrupted = |reason: String| Error::Corrupted {
            key: file.to_owned(),
            reason,
        };
        let newline = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupted("no header line".into()))?;
        let header = std::str::from_utf8(&bytes[..newline])
            .map_err(|_| corrupted("header is not text".into()))?;
        let body = &bytes[newline + 1..];
        let fields: Vec<&str> = header.split(' ').collect();
        if fields.first() == Some(&MAGIC) && fields.get(1) != Some(&VERSION.to_string().as_str()) {
            return Err(Error::Unsupported {
                backend: "local",
                what:
                    "a state file of another format version; use the tenure release that wrote it",
            });
        }
        let [magic, _version, crc, len, revision] = fields[..] else {
            return Err(corrupted(format!("malformed header {header:?}")));
        };
        if magic != MAGIC {
            return Err(corrupted(format!(
                "not a tenure state file (header {header:?})"
            )));
        }
        let len: usize = len
            .parse()
            .map_err(|_| corrupted(format!("malformed length in header {header:?}")))?;
        if len != body.len() {
            return Err(corrupted(format!(
                "truncated or extended: header says {len} bytes, file has {}",
                body.len()
            )));
        }
        let crc = u32::from_str_radix(crc, 16)
            .map_err(|_| corrupted(format!("malformed checksum in header {header:?}")))?;
        if crc != crc32(body) {
            return Err(corrupted(
                "checksum mismatch: the file was damaged or edited".into(),
            ));
        }
        let state: State = serde_json::from_slice(body)
            .map_err(|e| corrupted(format!("undecodable body: {e}")))?;
        if revision != state.revision.to_string() {
            return Err(corrupted(format!(
                "header says revision {revision}, body says {}",
                state.revision
            )));
        }
        Ok(state)
    }

    /// The header line of an encoded state (what [`Dir`](crate::dir) compares to
    /// tell whether the file changed).
    pub(crate) fn header_of(bytes: &[u8]) -> &[u8] {
        let end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        &bytes[..end]
    }
}

/// Bytes as lower-case hex strings in JSON.
mod hex {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use tenure_core::checksum::{from_hex, to_hex};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        from_hex(<&str>::deserialize(d)?).ok_or_else(|| D::Error::custom("invalid hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let mut state = State::default();
        state.bump();
        state.kv.insert(
            "a/b".into(),
            Stored {
                value: vec![0, 1, 254, 255],
                version: 1,
                owner: Some(7),
            },
        );
        let bytes = state.encode();
        assert_eq!(State::decode("state", &bytes).unwrap(), state);

        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x01;
        let truncated = &bytes[..bytes.len() - 1];
        for (bad, what) in [
            (&flipped[..], "checksum"),
            (truncated, "truncated"),
            (&b"hello"[..], "header"),
            (&b"other 1 0 0 0\n"[..], "not a tenure state file"),
        ] {
            let err = State::decode("/x/state", bad).unwrap_err();
            assert!(
                matches!(&err, Error::Corrupted { key, reason } if key == "/x/state" && reason.contains(what)),
                "{what}: {err}"
            );
        }
        let newer = b"tenure-local-state 2 0 0 0\n";
        assert!(matches!(
            State::decode("s", newer),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn the_log_is_bounded() {
        let mut state = State::default();
        for i in 0..(LOG_MAX_ENTRIES + 10) {
            state.bump();
            state.record(&format!("k{i}"), None);
        }
        assert_eq!(state.log.len(), LOG_MAX_ENTRIES);
        assert_eq!(state.log_floor, 10);
    }
}
