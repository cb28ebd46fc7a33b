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

    /// The tenure key of an etcd key in the key-value namespace.
    pub(crate) fn kv_name<'a>(&self, key: &'a [u8]) -> Option<&'a str> {
        let rest = key.strip_prefix(format!("{}/~kv/", self.prefix).as_bytes())?;
        std::str::from_utf8(rest).ok()
    }
}
