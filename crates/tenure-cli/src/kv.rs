//! `tenure put` and `tenure get`: fenced writes and reads from a shell.
//!
//! Keys live in the election's own namespace, one key-value path per election:
//!
//! ```text
//! tenure/kv/<election>/<key>   value = "tkv1" + the writer's term (u64, big-endian) + the bytes
//! ```
//!
//! so a reader learns which leadership wrote what it reads, and a key can never
//! reach outside its election (every segment is a validated name).

use std::io::{Read, Write};

use serde::Serialize;
use tenure::{DynBackend, Error, Guard, Path, Result};

use crate::fence::Fence;
use crate::{GetArgs, PutArgs};

/// The long help of `tenure put`.
pub(crate) const PUT_HELP: &str = "\
Writes VALUE (or standard input) at KEY in the election's namespace, only if
the leadership of --fence is still its election's current one — checked by the
backend atomically with the write. A stale fence (a paused or partitioned
leader whose successor was granted meanwhile, or a token replayed later) is
rejected with exit code 75 and nothing is written.

The child of `tenure run` has TENURE_FENCE and TENURE_BACKEND in its
environment, so in a leader's script:

  tenure put --fence \"$TENURE_FENCE\" last-run \"$(date -Is)\" || exit $?

Exit codes: 0 written; 75 fenced: that leadership is over; 64 bad input
(malformed token, a token of another backend, an invalid key, a value over
the backend's limit); 69 backend unavailable (the outcome may be unknown).";

/// The long help of `tenure get`.
pub(crate) const GET_HELP: &str = "\
Prints the value of KEY in the election's namespace (as `tenure put` wrote it)
on standard output, and on standard error the term of the leadership that
wrote it. With --json: one object with key, value (text, or value_base64 for
bytes that are not UTF-8), term and version.

Exit codes: 0 found; 1 no such key; 64 bad input; 69 backend unavailable.";

/// The first bytes of every value `tenure put` stores.
const MAGIC: &[u8; 4] = b"tkv1";
const HEADER: usize = MAGIC.len() + 8;

/// The backend key of `key` in `election`'s namespace.
fn path(election: &Path, key: &str) -> Result<Path> {
    let key = Path::parse("KEY", key)?;
    Path::parse("KEY", &format!("tenure/kv/{election}/{key}"))
}

fn encode(term: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(key: &Path, stored: &[u8]) -> Result<(u64, Vec<u8>)> {
    match stored.strip_prefix(MAGIC.as_slice()) {
        Some(rest) if rest.len() >= 8 => {
            let (term, value) = rest.split_at(8);
            Ok((
                u64::from_be_bytes(term.try_into().expect("8 bytes")),
                value.to_vec(),
            ))
        }
        _ => Err(Error::Corrupted {
            key: key.to_string(),
            reason: "not a value written by `tenure put`".into(),
        }),
    }
}

#[derive(Debug, Serialize)]
struct Written<'a> {
    key: &'a str,
    election: String,
    term: u64,
    version: u64,
}

/// Runs `tenure put`.
pub(crate) async fn put(args: PutArgs) -> Result<u8> {
    let fence = Fence::decode(&args.fence)?;
    fence.check_backend(&args.backend.backend)?;
    let grant = fence.grant();
    let key = path(&grant.election, &args.key)?;
    let backend = crate::common::connect(&args.backend.backend, None).await?;
    let outcome = write(&backend, &key, grant, args.value).await;
    let _ = backend.close().await;
    let version = outcome?;
    if args.json {
        let written = Written {
            key: &args.key,
            election: grant.election.to_string(),
            term: grant.term,
            version,
        };
        println!("{}", serde_json::to_string(&written).expect("serializes"));
    }
    Ok(0)
}

/// Writes `value` (or standard input, when `None`), fenced by `grant`.
async fn write(
    backend: &DynBackend,
    key: &Path,
    grant: &tenure::Grant,
    value: Option<String>,
) -> Result<u64> {
    let limit = backend.capabilities().max_value_size.saturating_sub(HEADER);
    let value = match value {
        Some(value) => value.into_bytes(),
        None => {
            let mut value = Vec::new();
            std::io::stdin()
                .take(limit as u64 + 1)
                .read_to_end(&mut value)
                .map_err(|e| Error::invalid("VALUE", "standard input", e))?;
            value
        }
    };
    if value.len() > limit {
        // Counted before anything is sent: nothing half-written.
        return Err(Error::TooLarge {
            field: "VALUE",
            size: value.len(),
            limit,
        });
    }
    backend
        .put(key, &encode(grant.term, &value), Guard::fenced(grant))
        .await
}

#[derive(Debug, Serialize)]
struct Found<'a> {
    key: &'a str,
    election: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    term: u64,
    version: u64,
}

/// Runs `tenure get`.
pub(crate) async fn get(args: GetArgs) -> Result<u8> {
    let election = Path::parse("--election", &args.election)?;
    let key = path(&election, &args.key)?;
    let backend = crate::common::connect(&args.backend.backend, None).await?;
    let outcome = backend.get(&key).await;
    let _ = backend.close().await;
    let Some(stored) = outcome? else {
        eprintln!("tenure: no key {} in election {election}", args.key);
        return Ok(1);
    };
    let (term, value) = decode(&key, &stored.value)?;
    if args.json {
        let text = String::from_utf8(value.clone()).ok();
        let read = Found {
            key: &args.key,
            election: &args.election,
            value_base64: text.is_none().then(|| crate::fence::base64url(&value)),
            value: text,
            term,
            version: stored.version,
        };
        println!("{}", serde_json::to_string(&read).expect("serializes"));
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&value).and_then(|()| out.flush());
        eprintln!("tenure: {} written by term {term}", args.key);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_term_and_foreign_bytes_are_corrupt() {
        let key = Path::parse("k", "tenure/kv/jobs/state").unwrap();
        assert_eq!(decode(&key, &encode(7, b"v")).unwrap(), (7, b"v".to_vec()));
        assert_eq!(decode(&key, &encode(9, b"")).unwrap(), (9, vec![]));
        for foreign in [&b""[..], b"tkv1", b"tkv1short", b"{\"json\":1}"] {
            let err = decode(&key, foreign).unwrap_err();
            assert!(
                matches!(&err, Error::Corrupted { key, .. } if key == "tenure/kv/jobs/state"),
                "{err}"
            );
        }
    }

    #[test]
    fn keys_stay_inside_their_election() {
        let jobs = Path::parse("e", "jobs").unwrap();
        assert_eq!(path(&jobs, "a/b").unwrap().as_str(), "tenure/kv/jobs/a/b");
        for bad in [
            "",
            "/a",
            "a/../../x",
            "..",
            "a//b",
            "a b",
            "../holders/jobs",
        ] {
            let err = path(&jobs, bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { field: "KEY", .. }),
                "{bad}: {err}"
            );
        }
    }
}
