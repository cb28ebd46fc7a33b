//! Apache Flink's `connection_info` record, byte for byte.
//!
//! In ZooKeeper HA, Flink publishes the leader of each component at
//! `<root>/<cluster>/leader/<component>/connection_info`. Its writer,
//! `ZooKeeperUtils.writeLeaderInformationToZooKeeper`, does
//! `oos.writeUTF(address); oos.writeObject(leaderSessionID)` on a Java
//! `ObjectOutputStream`, so the data is a Java serialization stream:
//!
//! ```text
//! ac ed 00 05                      stream magic and version
//! 77 <u8 len> | 7a <u32 len> ...   block data records holding writeUTF(address):
//!                                  u16 length + modified UTF-8
//! 73 72 00 0e "java.util.UUID"     TC_OBJECT, TC_CLASSDESC, class name
//! bc 99 03 f7 98 6d 85 2f 02       serialVersionUID, SC_SERIALIZABLE
//! 00 02 4a 00 0c "leastSigBits"    two long fields, in this order
//!       4a 00 0b "mostSigBits"
//! 78 70                            TC_ENDBLOCKDATA, no superclass
//! <i64 least> <i64 most>           the UUID, big-endian
//! ```
//!
//! Empty data means that no leader is published.
//!
//! `ObjectOutputStream` buffers block data in 1024 bytes, so an address of
//! more than 1021 bytes is split over several block records, and a split can
//! fall inside a character; a record of more than 255 bytes uses the long
//! header `7a`. [`encode`] writes exactly what Java 17 writes; [`decode`]
//! accepts any split into non-empty block records (framing that Java's
//! reader treats alike, and that another buffer size would produce) and is
//! strict about everything else.

use uuid::Uuid;

use crate::error::{Error, Result};

/// The longest address [`encode`] accepts, in bytes of modified UTF-8: Java's
/// `writeUTF` prefixes the string with a 16-bit length and throws
/// `UTFDataFormatException` beyond it.
pub const MAX_ENCODED_ADDRESS_LEN: usize = 0xffff;

/// The first bytes of every Java serialization stream, and so of every Flink
/// record: the stream magic `ac ed` and version 5.
pub const MAGIC: [u8; 4] = [0xac, 0xed, 0x00, 0x05];
const TC_BLOCKDATA: u8 = 0x77;
const TC_BLOCKDATALONG: u8 = 0x7a;
/// `ObjectOutputStream`'s block buffer: Java drains a block record when full.
const MAX_BLOCK: usize = 1024;

/// What follows the block data up to the two longs, part by part, so that a
/// mismatch names the part.
const UUID_DESCRIPTOR: [(&[u8], &str); 10] = [
    (&[0x73], "TC_OBJECT (0x73)"),
    (&[0x72], "TC_CLASSDESC (0x72)"),
    (b"\x00\x0ejava.util.UUID", "class name java.util.UUID"),
    (
        &[0xbc, 0x99, 0x03, 0xf7, 0x98, 0x6d, 0x85, 0x2f],
        "serialVersionUID bc9903f7986d852f of java.util.UUID",
    ),
    (&[0x02], "class flags 0x02 (SC_SERIALIZABLE)"),
    (&[0x00, 0x02], "a field count of 2"),
    (b"J\x00\x0cleastSigBits", "field `long leastSigBits`"),
    (b"J\x00\x0bmostSigBits", "field `long mostSigBits`"),
    (&[0x78], "TC_ENDBLOCKDATA (0x78)"),
    (&[0x70], "TC_NULL (0x70) for the superclass"),
];

/// Encodes a `connection_info` record exactly as Flink's
/// `ObjectOutputStream` writes it: the stream header, `writeUTF(address)` in
/// block data records of at most 1024 bytes, then `session` as a
/// `java.util.UUID`.
///
/// Fails with [`Error::TooLarge`] (field `"address"`) when the address is
/// longer than [`MAX_ENCODED_ADDRESS_LEN`] bytes in modified UTF-8, where
/// NUL takes 2 bytes and a character beyond U+FFFF takes 6; Java throws
/// `UTFDataFormatException` for such an address.
pub fn encode(address: &str, session: Uuid) -> Result<Vec<u8>> {
    let text = to_modified_utf8(address);
    if text.len() > MAX_ENCODED_ADDRESS_LEN {
        return Err(Error::TooLarge {
            field: "address",
            size: text.len(),
            limit: MAX_ENCODED_ADDRESS_LEN,
        });
    }
    let mut payload = Vec::with_capacity(2 + text.len());
    payload.extend_from_slice(&(text.len() as u16).to_be_bytes());
    payload.extend_from_slice(&text);

    let blocks = payload.len().div_ceil(MAX_BLOCK);
    let mut out = Vec::with_capacity(4 + payload.len() + 5 * blocks + 80);
    out.extend_from_slice(&MAGIC);
    // Java's `writeBlockHeader`: the short header while the length fits a byte.
    for chunk in payload.chunks(MAX_BLOCK) {
        match u8::try_from(chunk.len()) {
            Ok(len) => out.extend_from_slice(&[TC_BLOCKDATA, len]),
            Err(_) => {
                out.push(TC_BLOCKDATALONG);
                out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(chunk);
    }
    for (part, _) in UUID_DESCRIPTOR {
        out.extend_from_slice(part);
    }
    let (most, least) = session.as_u64_pair();
    out.extend_from_slice(&least.to_be_bytes());
    out.extend_from_slice(&most.to_be_bytes());
    Ok(out)
}

/// Decodes the `connection_info` record stored at `node`: `Ok(None)` for
/// empty data (no leader), `Ok(Some((address, session)))` for a record in
/// the format [`encode`] writes.
///
/// Block data may be split differently than Java 17 splits it, as long as
/// no block record is empty. Everything else must match exactly: Flink's
/// class descriptor of `java.util.UUID`, an address in the modified UTF-8
/// Java writes (NUL as `C0 80`, characters beyond U+FFFF as surrogate
/// pairs, no overlong forms, no lone surrogates), and nothing after the
/// UUID. Any other input is an [`Error::Corrupted`] naming `node`, the byte
/// offset and what was expected there.
pub fn decode(node: &str, bytes: &[u8]) -> Result<Option<(String, Uuid)>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut reader = Reader {
        node,
        bytes,
        pos: 0,
    };
    reader.expect(&MAGIC, "the Java serialization header aced0005")?;
    let payload = reader.block_data()?;
    let address = reader.address(&payload)?;
    for (part, what) in UUID_DESCRIPTOR {
        reader.expect(part, what)?;
    }
    let least = reader.long("the UUID's leastSigBits")?;
    let most = reader.long("the UUID's mostSigBits")?;
    if reader.pos != bytes.len() {
        return Err(reader.corrupted(format!(
            "expected the end of the record after the UUID at byte {}, found {} more bytes",
            reader.pos,
            bytes.len() - reader.pos
        )));
    }
    Ok(Some((address, Uuid::from_u64_pair(most, least))))
}

/// Java's modified UTF-8, as `DataOutputStream.writeUTF` writes it.
fn to_modified_utf8(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 2);
    // Java strings are UTF-16: a character beyond U+FFFF is two surrogates,
    // each written as a 3-byte sequence.
    for unit in text.encode_utf16() {
        match unit {
            0x0001..=0x007f => out.push(unit as u8),
            0x0000..=0x07ff => {
                out.push(0xc0 | (unit >> 6) as u8);
                out.push(0x80 | (unit & 0x3f) as u8);
            }
            _ => {
                out.push(0xe0 | (unit >> 12) as u8);
                out.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                out.push(0x80 | (unit & 0x3f) as u8);
            }
        }
    }
    out
}

/// A cursor over a record, producing errors that name the node and offset.
struct Reader<'a> {
    node: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn corrupted(&self, what: String) -> Error {
        Error::Corrupted {
            key: self.node.to_owned(),
            reason: format!("not a Flink leader record: {what}"),
        }
    }

    /// The next `n` bytes, or an error naming what was expected there.
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(self.corrupted(format!(
                "expected {what} at byte {}, but the record ends at byte {}",
                self.pos,
                self.bytes.len()
            )));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.bytes[start..start + n])
    }

    fn expect(&mut self, part: &[u8], what: &str) -> Result<()> {
        let start = self.pos;
        if self.take(part.len(), what)? != part {
            return Err(self.corrupted(format!("expected {what} at byte {start}")));
        }
        Ok(())
    }

    fn long(&mut self, what: &str) -> Result<u64> {
        let raw = self.take(8, what)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(raw);
        Ok(u64::from_be_bytes(buf))
    }

    /// The concatenated contents of the block data records at the cursor.
    fn block_data(&mut self) -> Result<Vec<u8>> {
        let mut payload = Vec::new();
        while let Some(&tag) = self.bytes.get(self.pos) {
            let start = self.pos;
            let len = match tag {
                TC_BLOCKDATA => usize::from(self.take(2, "a block data header")?[1]),
                TC_BLOCKDATALONG => {
                    let raw = self.take(5, "a long block data header")?;
                    u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize
                }
                _ => break,
            };
            // ObjectOutputStream never drains an empty buffer.
            if len == 0 {
                return Err(self.corrupted(format!("empty block data record at byte {start}")));
            }
            // Bounded by the input: a length field never sizes an allocation.
            let data = self.take(len, "block data")?;
            payload.extend_from_slice(data);
        }
        if payload.is_empty() {
            return Err(self.corrupted(format!(
                "expected block data (0x77 or 0x7a) holding the address at byte {}",
                self.pos
            )));
        }
        Ok(payload)
    }

    /// The `writeUTF` string filling `payload` exactly.
    fn address(&self, payload: &[u8]) -> Result<String> {
        let Some((len, text)) = payload.split_first_chunk::<2>() else {
            return Err(self.corrupted(format!(
                "block data of {} byte is too short for an address length",
                payload.len()
            )));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if text.len() != len {
            return Err(self.corrupted(format!(
                "the address is {len} bytes long, but the block data holds {} after its length",
                text.len()
            )));
        }
        from_modified_utf8(text).map_err(|(at, what)| {
            self.corrupted(format!(
                "invalid modified UTF-8 at byte {at} of the address: {what}"
            ))
        })
    }
}

/// Decodes modified UTF-8 strictly: only what `writeUTF` writes for a valid
/// Rust string. Errors carry the offset and the problem.
fn from_modified_utf8(text: &[u8]) -> std::result::Result<String, (usize, &'static str)> {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let start = i;
        let unit = unit_at(text, &mut i)?;
        let c = match unit {
            0xd800..=0xdbff => {
                let high = unit;
                let low = match text.get(i) {
                    Some(0xe0..=0xef) => unit_at(text, &mut i)?,
                    _ => 0,
                };
                if !(0xdc00..=0xdfff).contains(&low) {
                    return Err((start, "high surrogate without a low surrogate"));
                }
                let code = 0x10000 + ((u32::from(high) - 0xd800) << 10) + (u32::from(low) - 0xdc00);
                char::from_u32(code).ok_or((start, "invalid surrogate pair"))?
            }
            0xdc00..=0xdfff => return Err((start, "low surrogate without a high surrogate")),
            _ => char::from_u32(u32::from(unit)).ok_or((start, "invalid code unit"))?,
        };
        out.push(c);
    }
    Ok(out)
}

/// One UTF-16 code unit from a 1-, 2- or 3-byte sequence at `*i`.
fn unit_at(text: &[u8], i: &mut usize) -> std::result::Result<u16, (usize, &'static str)> {
    let start = *i;
    let first = text[start];
    let (len, min, initial) = match first {
        0x00 => return Err((start, "raw NUL byte (Java writes NUL as C0 80)")),
        0x01..=0x7f => {
            *i += 1;
            return Ok(u16::from(first));
        }
        0xc0..=0xdf => (2, 0x80, u16::from(first & 0x1f)),
        0xe0..=0xef => (3, 0x800, u16::from(first & 0x0f)),
        _ => return Err((start, "byte that cannot start a character")),
    };
    let Some(tail) = text.get(start + 1..start + len) else {
        return Err((start, "truncated character"));
    };
    let mut unit = initial;
    for &b in tail {
        if b & 0xc0 != 0x80 {
            return Err((start, "missing continuation byte"));
        }
        unit = (unit << 6) | u16::from(b & 0x3f);
    }
    // Overlong forms are rejected, except C0 80: Java's only form of NUL.
    if unit < min && !(unit == 0 && len == 2) {
        return Err((start, "overlong form"));
    }
    *i += len;
    Ok(unit)
}

#[cfg(test)]
mod tests;
