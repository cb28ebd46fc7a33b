//! Validated names: the only way a caller's string reaches a backend key.
//!
//! Cluster ids, election and resource ids, component ids and job ids are checked
//! once, here, at the edge: 1–128 bytes of `[A-Za-z0-9._-]`, and not `.` or `..`.
//! A [`Path`] is built only from such segments, so no name can escape its
//! namespace in an etcd key, a ZooKeeper path or a file name.

use std::fmt;

use crate::error::{Error, Result};

/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// The rule every id follows, as shown in errors.
pub const ID_RULE: &str =
    "must be 1 to 128 bytes of A-Z, a-z, 0-9, '.', '_' or '-', and not '.' or '..'";

/// Checks `value` against the id rule; `field` names the input in the error.
pub fn validate_id(field: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, value, ID_RULE))
    }
}

/// A validated id: a cluster, election, resource, component or job id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

impl Id {
    /// Validates `value` as the input called `field` (used in the error).
    pub fn new(field: &'static str, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        validate_id(field, &value)?;
        Ok(Id(value))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A key or election name inside a backend's namespace: one or more validated
/// segments joined by `/`, with no leading or trailing `/`.
///
/// Backends map a path onto their own layout (an etcd key under the configured
/// prefix, a znode under the chroot, a file under the directory). A path may be a
/// prefix of another path (`a/b` and `a/b/c`); backends must keep them apart.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(String);

impl Path {
    /// A path of one segment; `field` names the input in the error.
    pub fn root(field: &'static str, segment: &str) -> Result<Self> {
        validate_id(field, segment)?;
        Ok(Path(segment.to_owned()))
    }

    /// Parses `a/b/c`, checking every segment; `field` names the input.
    pub fn parse(field: &'static str, value: &str) -> Result<Self> {
        if value.is_empty() {
            return Err(Error::invalid(
                field,
                value,
                format!("must be one or more '/'-separated segments, each of which {ID_RULE}"),
            ));
        }
        for segment in value.split('/') {
            validate_id(field, segment).map_err(|_| {
                Error::invalid(
                    field,
                    value,
                    format!("every '/'-separated segment {ID_RULE}; {segment:?} does not"),
                )
            })?;
        }
        if value.len() > 4 * MAX_ID_LEN + 3 {
            return Err(Error::invalid(field, value, "must be at most 515 bytes"));
        }
        Ok(Path(value.to_owned()))
    }

    /// This path with one more segment; `field` names the input in the error.
    pub fn child(&self, field: &'static str, segment: &str) -> Result<Self> {
        validate_id(field, segment)?;
        Ok(Path(format!("{}/{segment}", self.0)))
    }

    /// This path with an already validated id appended.
    pub fn join(&self, id: &Id) -> Self {
        Path(format!("{}/{}", self.0, id.0))
    }

    /// This path with a fixed, known-good segment appended (for tenure's own names).
    pub(crate) fn with(&self, segment: &'static str) -> Self {
        debug_assert!(validate_id("segment", segment).is_ok());
        Path(format!("{}/{segment}", self.0))
    }

    /// The path as a `/`-separated string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `key` lies at or below this path (`a/b` is below `a`; `ab` is not).
    pub fn contains(&self, key: &str) -> bool {
        key == self.0
            || (key.len() > self.0.len()
                && key.starts_with(&self.0)
                && key.as_bytes()[self.0.len()] == b'/')
    }
}

impl From<Id> for Path {
    fn from(id: Id) -> Self {
        Path(id.0)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_rule() {
        for good in ["a", "job-1", "A.b_c", &"x".repeat(128)] {
            assert!(validate_id("id", good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a\0", &"x".repeat(129)] {
            let err = validate_id("job_id", bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "job_id",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn paths_check_every_segment() {
        assert_eq!(
            Path::parse("election", "a/b.c/d").unwrap().as_str(),
            "a/b.c/d"
        );
        for bad in ["", "/a", "a/", "a//b", "a/../b", "a/./b", "a/b c"] {
            let err = Path::parse("election", bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "election",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn contains_respects_segment_boundaries() {
        let p = Path::parse("p", "a/b").unwrap();
        assert!(p.contains("a/b"));
        assert!(p.contains("a/b/c"));
        assert!(!p.contains("a/bc"));
        assert!(!p.contains("a"));
    }
}
