//! The stored form of every HA record: a small versioned JSON envelope, and the
//! state it carries either inline or as a pointer into the blob store.
//!
//! ```json
//! {"format":"tenure-ha","version":1,"kind":"checkpoint","body":{...}}
//! ```
//!
//! A record that does not decode — not JSON, another format or kind, a newer
//! version, a body that does not fit, a checksum that does not match, a blob
//! pointer outside its job — is [`Error::Corrupted`] naming the key, and the
//! stores never overwrite it silently.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::blob::BlobPointer;
use crate::checksum::{crc32, from_hex, to_hex};
use crate::error::{Error, Result};

const FORMAT: &str = "tenure-ha";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: String,
    version: u32,
    kind: String,
    body: T,
}

/// Encodes `body` as a record of `kind`.
pub(crate) fn encode<T: Serialize>(kind: &'static str, body: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        format: FORMAT.to_owned(),
        version: VERSION,
        kind: kind.to_owned(),
        body,
    })
    .expect("HA records always serialize")
}

/// Decodes a record of `kind` stored at `key`.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, kind: &str, bytes: &[u8]) -> Result<T> {
    let corrupted = |reason: String| Error::Corrupted {
        key: key.to_owned(),
        reason,
    };
    let envelope: Envelope<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| corrupted(format!("not a tenure HA record: {e}")))?;
    if envelope.format != FORMAT {
        return Err(corrupted(format!(
            "format {:?}, expected {FORMAT:?}",
            envelope.format
        )));
    }
    if envelope.version != VERSION {
        return Err(corrupted(format!(
            "record version {}, this build reads version {VERSION}",
            envelope.version
        )));
    }
    if envelope.kind != kind {
        return Err(corrupted(format!(
            "a {:?} record where a {kind:?} record belongs",
            envelope.kind
        )));
    }
    serde_json::from_value(envelope.body)
        .map_err(|e| corrupted(format!("malformed {kind} record: {e}")))
}

/// State kept with a record: inline when small, otherwise in the blob store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "storage", rename_all = "snake_case")]
pub(crate) enum StoredState {
    /// The bytes, hex-encoded, with their CRC-32.
    Inline {
        /// Hex of the bytes.
        hex: String,
        /// CRC-32 of the bytes.
        crc32: u32,
    },
    /// A pointer into the blob store.
    Blob(BlobPointer),
}

impl StoredState {
    pub(crate) fn inline(data: &[u8]) -> Self {
        StoredState::Inline {
            hex: to_hex(data),
            crc32: crc32(data),
        }
    }

    /// The inline bytes, checked; `None` for a blob.
    pub(crate) fn inline_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let StoredState::Inline { hex, crc32: sum } = self else {
            return Ok(None);
        };
        let data = from_hex(hex).ok_or_else(|| Error::Corrupted {
            key: key.to_owned(),
            reason: "inline state is not hex".to_owned(),
        })?;
        if crc32(&data) != *sum {
            return Err(Error::Corrupted {
                key: key.to_owned(),
                reason: "inline state does not match its checksum".to_owned(),
            });
        }
        Ok(Some(data))
    }

    pub(crate) fn blob(&self) -> Option<&BlobPointer> {
        match self {
            StoredState::Blob(p) => Some(p),
            StoredState::Inline { .. } => None,
        }
    }
}

/// The blob a record of any kind points to, if any: for the orphan collector,
/// which must know every pointer and so fails on a record it cannot read.
pub(crate) fn blob_of(key: &str, bytes: &[u8]) -> Result<Option<BlobPointer>> {
    let corrupted = |reason: String| Error::Corrupted {
        key: key.to_owned(),
        reason,
    };
    let envelope: Envelope<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| corrupted(format!("not a tenure HA record: {e}")))?;
    if envelope.format != FORMAT || envelope.version != VERSION {
        return Err(corrupted(format!(
            "format {:?} version {}, expected {FORMAT:?} version {VERSION}",
            envelope.format, envelope.version
        )));
    }
    let Some(state) = envelope.body.get("state") else {
        return Ok(None);
    };
    let state: StoredState = serde_json::from_value(state.clone())
        .map_err(|e| corrupted(format!("malformed state: {e}")))?;
    Ok(state.blob().cloned())
}
