//! The key layout, shared with etcd's own election recipe
//! (`go.etcd.io/etcd/client/v3/concurrency`, and so `etcdctl elect`):
//!
//! ```text
//! <prefix>/<election>/<lease id, lower-case hex>   a candidate; value = its proposal
//! <prefix>/~kv/<key>                               tenure's key-value namespace
//! ```
//!
//! The leader of an election is its candidate with the lowest create revision,
//! and that revision is the term. `~` cannot appear in an id, so no election can
//! collide with the key-value namespace.

use tenure_core::Path;

#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &Path) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// `<prefix>/<election>/`: what `etcdctl elect <prefix>/<election>` uses.
    pub(crate) fn election(&self, election: &Path) -> String {
        format!("{}/{election}/", self.prefix)
    }

    pub(crate) fn candidate(&self, election: &Path, lease: i64) -> String {
        format!("{}{lease:x}", self.election(election))
    }

    /// Whether `key` (under `election_prefix`) is a candidate of that very
    /// election, not of one nested below it.
    pub(crate) fn is_candidate(election_prefix: &str, key: &[u8]) -> bool {
        key.strip_prefix(election_prefix.as_bytes())
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(&b'/'))
    }

    pub(crate) fn kv(&self, key: &Path) -> String {
        format!("{}/~kv/{key}", self.prefix)
    }

    /// Whether the last segment of a candidate key is a lease id as etcd's
    /// recipe writes it.
    pub(crate) fn is_lease_name(name: &[u8]) -> bool {
        !name.is_empty()
            && name.len() <= 16
            && name.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The tenure key of an etcd key in the key-value namespace, or why it is
    /// not one (someone else wrote it).
    pub(crate) fn kv_name<'a>(&self, key: &'a [u8]) -> Result<&'a str, String> {
        let rest = key
            .strip_prefix(format!("{}/~kv/", self.prefix).as_bytes())
            .ok_or_else(|| "outside the key-value namespace".to_owned())?;
        let name = std::str::from_utf8(rest).map_err(|_| "not UTF-8".to_owned())?;
        Path::parse("key", name).map_err(|e| format!("not a valid key: {e}"))?;
        Ok(name)
    }
}
