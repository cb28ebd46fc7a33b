//! The znode layout, shared with Apache Curator's LeaderLatch (and so with
//! Flink's ZooKeeper HA services):
//!
//! ```text
//! /<chroot>/<election>/_c_<uuid>-latch-<10-digit sequence>   a candidate
//!                                     (EPHEMERAL_SEQUENTIAL; data = its participant id)
//! /<chroot>/<key>                     a value: data = VALUE_HEADER + the bytes
//! /<chroot>/<a>/<b>                   a directory: empty data, never a value
//! ```
//!
//! The leader of an election is its candidate with the lowest sequence; the
//! term is that node's czxid, which grows with every creation in the ensemble
//! and never repeats, even if the election's znode is removed and made again.

use tenure_core::{Error, Layout, Path, Result};

/// The first bytes of every value tenure stores, so that a directory (empty
/// data) and foreign data are told apart from values.
pub(crate) const VALUE_HEADER: [u8; 2] = [b't', 1];

/// The name part that Curator's LeaderLatch gives its nodes.
const LATCH: &str = "-latch-";

/// The znode of a key or election directory, relative to the chroot.
pub(crate) fn node(path: &Path) -> String {
    format!("/{path}")
}

/// The prefix of a new protected candidate node; the server appends the sequence.
pub(crate) fn candidate_prefix(election: &Path, protection: &uuid::Uuid) -> String {
    format!("/{election}/_c_{protection}{LATCH}")
}

/// The sequence of a latch node named `name`, or `None` if the name is not a
/// LeaderLatch node (`[_c_<uuid>-]latch-<digits>`).
pub(crate) fn latch_sequence(name: &str) -> Option<u64> {
    let (before, digits) = name.rsplit_once("latch-")?;
    let protected_ok = before.is_empty()
        || (before.starts_with("_c_") && before.ends_with('-') && before.len() > 4);
    if !protected_ok || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `name` is reserved for election candidates (and so never a key).
pub(crate) fn is_latch_name(name: &str) -> bool {
    latch_sequence(name).is_some()
}

/// Whether `grant`'s node is a candidate of its own election: the fence check
/// looks at that node alone, so a grant from another process (`tenure put
/// --fence`) must not name a node of another election.
pub(crate) fn is_candidate_of(grant: &tenure_core::Grant) -> bool {
    grant
        .key
        .strip_prefix(&node(&grant.election))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.contains('/') && is_latch_name(name))
}

/// Refuses a key whose last segment looks like a candidate node.
pub(crate) fn check_key(key: &Path) -> Result<()> {
    let last = key.as_str().rsplit('/').next().unwrap_or_default();
    if is_latch_name(last) {
        return Err(Error::invalid(
            "key",
            key.as_str(),
            "must not end in a segment named like a LeaderLatch candidate ([_c_<uuid>-]latch-<digits>)",
        ));
    }
    Ok(())
}

/// The candidates among `children` of an election's znode, sorted by sequence.
/// Other children are values stored below the election's name (a key
/// `<election>/state` lives beside the candidates), not candidates.
pub(crate) fn sorted_candidates(children: Vec<String>) -> Vec<(u64, String)> {
    let mut candidates: Vec<_> = children
        .into_iter()
        .filter_map(|child| latch_sequence(&child).map(|sequence| (sequence, child)))
        .collect();
    candidates.sort();
    candidates
}

// How values are stored in znodes, by the client's [`Layout`]:
// - `Tenure` (the default): data = a two-byte header + the value, so that
//   directories (empty data) and foreign data are told apart from values.
// - `Flink`: data = the value's bytes alone, as Apache Flink's ZooKeeper HA
//   services store theirs (its `connection_info` records, say), so that
//   tenure and Flink read each other's nodes. Empty data means "no value"
//   there, so an empty value cannot be stored.

/// Decodes a value node's data: `None` for a directory, the bytes for a value.
pub(crate) fn decode_value(layout: Layout, node: &str, data: &[u8]) -> Result<Option<Vec<u8>>> {
    if data.is_empty() {
        return Ok(None);
    }
    if layout == Layout::Flink {
        return Ok(Some(data.to_vec()));
    }
    match data.strip_prefix(&VALUE_HEADER[..]) {
        Some(value) => Ok(Some(value.to_vec())),
        None if data.starts_with(&tenure_core::flink::MAGIC) => Err(Error::Corrupted {
            key: node.to_owned(),
            reason: "holds a Java-serialized record (Apache Flink's?), not a tenure value; \
                     connect with layout=flink to read Flink's nodes"
                .into(),
        }),
        None => Err(Error::Corrupted {
            key: node.to_owned(),
            reason: format!(
                "data does not start with tenure's value header {VALUE_HEADER:?} (a node written by someone else?)"
            ),
        }),
    }
}

/// Encodes a value for storing.
pub(crate) fn encode_value(layout: Layout, value: &[u8]) -> Result<Vec<u8>> {
    if layout == Layout::Flink {
        if value.is_empty() {
            return Err(Error::invalid(
                "value",
                "",
                "must not be empty in the flink layout, where empty data means no value",
            ));
        }
        return Ok(value.to_vec());
    }
    let mut data = Vec::with_capacity(VALUE_HEADER.len() + value.len());
    data.extend_from_slice(&VALUE_HEADER);
    data.extend_from_slice(value);
    Ok(data)
}

/// The tenure key of a znode path below the chroot, if it is one.
pub(crate) fn key_of(node: &str) -> Option<&str> {
    let key = node.strip_prefix('/')?;
    Path::parse("key", key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latch_names_are_curators() {
        assert_eq!(
            latch_sequence("_c_3f1e3d4a-8b8e-4c1f-9a59-1c8e2f0d6a11-latch-0000000042"),
            Some(42)
        );
        assert_eq!(latch_sequence("latch-0000000007"), Some(7));
        for bad in [
            "latch-",
            "x-latch-1",
            "_c_-latch-1",
            "lock-0000000001",
            "a",
            "_c_x-latch-1a",
        ] {
            assert_eq!(latch_sequence(bad), None, "{bad}");
        }
    }

    #[test]
    fn candidates_sort_by_sequence_and_values_beside_them_are_not_candidates() {
        let sorted = sorted_candidates(vec![
            "_c_b-latch-0000000010".into(),
            "state".into(),
            "_c_a-latch-0000000009".into(),
        ]);
        let names: Vec<_> = sorted.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["_c_a-latch-0000000009", "_c_b-latch-0000000010"]);
    }

    #[test]
    fn values_round_trip_and_foreign_data_is_corrupt() {
        assert_eq!(
            decode_value(
                Layout::Tenure,
                "/k",
                &encode_value(Layout::Tenure, b"v").unwrap()
            )
            .unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(
            decode_value(
                Layout::Tenure,
                "/k",
                &encode_value(Layout::Tenure, b"").unwrap()
            )
            .unwrap(),
            Some(vec![])
        );
        assert_eq!(decode_value(Layout::Tenure, "/k", b"").unwrap(), None);
        let err = decode_value(Layout::Tenure, "/k", b"java-serialized").unwrap_err();
        assert!(
            matches!(err, Error::Corrupted { ref key, .. } if key == "/k"),
            "{err}"
        );
    }

    #[test]
    fn the_flink_layout_stores_bare_bytes_and_no_empty_values() {
        let java = [0xac, 0xed, 0x00, 0x05, 0x77];
        let stored = encode_value(Layout::Flink, &java).unwrap();
        assert_eq!(stored, java);
        assert_eq!(
            decode_value(Layout::Flink, "/k", &stored).unwrap(),
            Some(java.to_vec())
        );
        assert_eq!(decode_value(Layout::Flink, "/k", b"").unwrap(), None);
        let err = encode_value(Layout::Flink, b"").unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(Layout::parse("curator").is_err());
        assert_eq!(Layout::parse("flink").unwrap(), Layout::Flink);
    }
}
