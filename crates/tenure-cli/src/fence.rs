//! `TENURE_FENCE`: a leadership, handed to a script so that its writes are
//! fenced by it (`tenure put --fence`).
//!
//! The token names the backend (scheme and namespace — never hosts or
//! credentials), the election, the candidate (the backend's own key and
//! session) and the term. It is not a secret and grants nothing by itself:
//! whoever can reach the backend can write there anyway. What it carries is
//! the condition: the backend accepts a write made with it only while that
//! leadership is its election's current one, checked atomically with the write
//! — from any process, at any later time.
//!
//! Format: `tenure-fence-v1.` followed by the URL-safe base64 (no padding) of a
//! small JSON object.

use serde::{Deserialize, Serialize};
use tenure::{BackendUrl, Error, Grant, Path, Result, SessionId};

const PREFIX: &str = "tenure-fence-v1.";

/// What a token holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Token {
    /// The backend's scheme.
    scheme: String,
    /// Its namespace: the etcd prefix, the ZooKeeper chroot, the directory.
    namespace: String,
    election: String,
    term: u64,
    /// The session, in hex.
    session: String,
    /// The backend's name for the candidate.
    key: String,
}

/// A decoded fence token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fence {
    scheme: String,
    namespace: String,
    grant: Grant,
}

impl Fence {
    /// The fence of `grant`, on the backend of `url`.
    pub(crate) fn new(url: &str, grant: &Grant) -> Result<Fence> {
        let url = BackendUrl::parse(url)?;
        Ok(Fence {
            scheme: url.scheme().to_owned(),
            namespace: url.path().to_owned(),
            grant: grant.clone(),
        })
    }

    /// The leadership the fence stands for.
    pub(crate) fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The token, as `TENURE_FENCE` carries it.
    pub(crate) fn encode(&self) -> String {
        let token = Token {
            scheme: self.scheme.clone(),
            namespace: self.namespace.clone(),
            election: self.grant.election.to_string(),
            term: self.grant.term,
            session: format!("{:x}", self.grant.session.0),
            key: self.grant.key.clone(),
        };
        let json = serde_json::to_vec(&token).expect("a token serializes");
        format!("{PREFIX}{}", base64url(&json))
    }

    /// Reads a token; anything that is not one tenure made is an error naming
    /// `--fence`.
    pub(crate) fn decode(text: &str) -> Result<Fence> {
        let bad = |rule: &str| Error::invalid("--fence", text, rule);
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("is not a fence token: pass the TENURE_FENCE that `tenure run` or `tenure campaign --fence` gave"))?;
        let json = unbase64url(body).ok_or_else(|| bad("is a damaged fence token (not base64)"))?;
        let token: Token = serde_json::from_slice(&json)
            .map_err(|_| bad("is a damaged fence token (its contents do not decode)"))?;
        let election = Path::parse("--fence election", &token.election)?;
        let session = u64::from_str_radix(&token.session, 16)
            .map_err(|_| bad("is a damaged fence token (bad session)"))?;
        if token.term == 0 || token.key.is_empty() {
            return Err(bad("is a damaged fence token (no term or candidate)"));
        }
        Ok(Fence {
            scheme: token.scheme,
            namespace: token.namespace,
            grant: Grant {
                election,
                term: token.term,
                session: SessionId(session),
                key: token.key,
            },
        })
    }

    /// Refuses the fence on a backend other than the one it was made on.
    pub(crate) fn check_backend(&self, url: &str) -> Result<()> {
        let url = BackendUrl::parse(url)?;
        if url.scheme() != self.scheme || url.path() != self.namespace {
            return Err(Error::invalid(
                "--fence",
                &format!("{} {}", self.scheme, self.namespace),
                format!(
                    "was made on another backend than --backend ({} {}): a fence holds only where its leadership lives",
                    url.scheme(),
                    url.path()
                ),
            ));
        }
        Ok(())
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub(crate) fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn unbase64url(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence() -> Fence {
        Fence::new(
            "etcd://127.0.0.1:2379/apps",
            &Grant {
                election: Path::parse("e", "jobs").unwrap(),
                term: 42,
                session: SessionId(0x694d8a1b2c),
                key: "apps/jobs/694d8a1b2c".into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = base64url(&bytes);
            assert!(!text.contains(['+', '/', '=']), "{text}");
            assert_eq!(unbase64url(&text).unwrap(), bytes);
        }
        assert_eq!(base64url(b"tenure"), "dGVudXJl");
        assert_eq!(unbase64url("a"), None);
        assert_eq!(unbase64url("a*bc"), None);
    }

    #[test]
    fn a_token_round_trips_and_names_its_backend() {
        let fence = fence();
        let token = fence.encode();
        assert!(token.starts_with(PREFIX));
        assert_eq!(Fence::decode(&token).unwrap(), fence);
        assert_eq!(Fence::decode(&format!(" {token}\n")).unwrap(), fence);
        fence.check_backend("etcd://other-host:2379/apps").unwrap();
        for other in ["etcd://127.0.0.1:2379/other", "zk://127.0.0.1:2181/apps"] {
            let err = fence.check_backend(other).unwrap_err();
            assert!(err.to_string().contains("another backend"), "{err}");
        }
    }

    #[test]
    fn malformed_tokens_are_invalid_input_naming_the_flag() {
        let good = fence().encode();
        let cut = &good[..good.len() - 7];
        let bad_json = format!("{PREFIX}{}", base64url(b"{\"term\":1}"));
        let bad_election = format!(
            "{PREFIX}{}",
            base64url(
                br#"{"scheme":"etcd","namespace":"/a","election":"../x","term":1,"session":"1","key":"k"}"#
            )
        );
        for token in [
            "",
            "42",
            "tenure-fence-v1.",
            "tenure-fence-v1.%%%",
            cut,
            &bad_json,
            &bad_election,
        ] {
            let err = Fence::decode(token).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{token}: {err}");
        }
    }
}
