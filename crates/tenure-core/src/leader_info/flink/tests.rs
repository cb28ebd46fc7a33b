//! Tests of the Flink `connection_info` codec: golden records written by Java,
//! round trips, each rejection, and a seeded fuzz.

use uuid::Uuid;

use super::{decode, encode, MAX_ENCODED_ADDRESS_LEN};
use crate::checksum::{crc32, from_hex};
use crate::error::Error;

const NODE: &str = "/flink/c1/leader/dispatcher/connection_info";
const U1: Uuid = Uuid::from_u128(0x0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0);
const U_ZERO: Uuid = Uuid::nil();
const U_ONES: Uuid = Uuid::max();

fn hex(text: &str) -> Vec<u8> {
    from_hex(text).expect("valid hex")
}

#[track_caller]
fn bad(bytes: impl AsRef<[u8]>, needle: &str) {
    match decode(NODE, bytes.as_ref()) {
        Err(Error::Corrupted { key, reason }) => {
            assert_eq!(key, NODE);
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
        }
        other => panic!("expected Corrupted with {needle:?}, got {other:?}"),
    }
}

/// The golden records: address, session, what Java wrote.
fn golden() -> Vec<(String, Uuid, &'static str)> {
    let straddle = format!("{}€😀{}€", "a".repeat(1020), "b".repeat(1000));
    vec![
        (
            "pekko.tcp://flink@127.0.0.1:6123/user/rpc/dispatcher_1".into(),
            U1,
            JAVA_ASCII,
        ),
        ("http://127.0.0.1:8081".into(), U_ZERO, JAVA_REST),
        ("a\0b".into(), U_ONES, JAVA_NUL),
        ("hé€😀!".into(), U1, JAVA_EMOJI),
        (String::new(), U1, JAVA_EMPTY),
        ("a".repeat(253), U1, JAVA_A253),
        ("a".repeat(254), U1, JAVA_A254),
        ("a".repeat(300), U1, JAVA_A300),
        ("a".repeat(1023), U1, JAVA_A1023),
        (straddle, U1, JAVA_STRADDLE),
    ]
}

#[test]
fn encodes_and_decodes_what_java_writes() {
    for (address, session, java) in golden() {
        let java = hex(java);
        let ours = encode(&address, session).unwrap();
        assert!(
            ours == java,
            "encode differs from Java for {:.40?}",
            address
        );
        let decoded = decode(NODE, &java).unwrap();
        assert_eq!(decoded, Some((address, session)));
    }
}

/// The block records (header byte, length) of a record.
fn blocks(record: &[u8]) -> Vec<(u8, usize)> {
    let mut found = Vec::new();
    let mut pos = 4;
    loop {
        let (header, len) = match record[pos] {
            0x77 => (2, usize::from(record[pos + 1])),
            0x7a => (
                5,
                u32::from_be_bytes(record[pos + 1..pos + 5].try_into().unwrap()) as usize,
            ),
            _ => return found,
        };
        found.push((record[pos], len));
        pos += header + len;
    }
}

#[test]
fn splits_block_data_like_java() {
    // Java's headers: one byte of length up to 255, four beyond.
    assert_eq!(blocks(&hex(JAVA_A253)), [(0x77, 255)]);
    assert_eq!(blocks(&hex(JAVA_A254)), [(0x7a, 256)]);
    assert_eq!(blocks(&hex(JAVA_A1023)), [(0x7a, 1024), (0x77, 1)]);
    // The euro sign at bytes 1022..1025 of the block data is split by a header.
    let straddle = hex(JAVA_STRADDLE);
    assert_eq!(blocks(&straddle), [(0x7a, 1024), (0x7a, 1010)]);
    assert_eq!(
        straddle[4 + 5 + 1022..4 + 5 + 1024 + 5 + 1],
        hex("e2827a000003f2ac")
    );
    // The longest addresses Java writes (65535 bytes of 'a', 21845 euro signs):
    // 64 full blocks and a last one of a byte. Java's length and CRC-32.
    for (address, len, crc) in [
        ("a".repeat(65535), 65939, 0xc964_132a),
        ("€".repeat(21845), 65939, 0x8964_a9ae),
    ] {
        let ours = encode(&address, U1).unwrap();
        assert_eq!((ours.len(), crc32(&ours)), (len, crc));
        let mut expected = vec![(0x7a, 1024); 64];
        expected.push((0x77, 1));
        assert_eq!(blocks(&ours), expected);
        assert_eq!(decode(NODE, &ours).unwrap(), Some((address, U1)));
    }
}

#[test]
fn rejects_addresses_java_cannot_write() {
    // Java 17 throws UTFDataFormatException for each of these.
    for (address, size) in [
        ("a".repeat(65536), 65536),
        ("a".repeat(70_000), 70_000),
        ("€".repeat(21846), 65538),
        ("\0".repeat(32768), 65536),
        ("😀".repeat(10923), 65538),
    ] {
        let err = encode(&address, U1).unwrap_err();
        let Error::TooLarge {
            field,
            size: s,
            limit,
        } = err
        else {
            panic!("{err}");
        };
        assert_eq!(
            (field, s, limit),
            ("address", size, MAX_ENCODED_ADDRESS_LEN)
        );
    }
    assert!(encode(&"\0".repeat(32767), U1).is_ok());
}

#[test]
fn empty_data_is_no_leader() {
    assert_eq!(decode(NODE, &[]).unwrap(), None);
}

/// `record` with its block data reframed into blocks of `sizes` (the last
/// one takes the rest), long headers when `long`.
fn reframe(record: &[u8], sizes: &[usize], long: bool) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut pos = 4;
    for (tag, len) in blocks(record) {
        pos += if tag == 0x77 { 2 } else { 5 };
        payload.extend_from_slice(&record[pos..pos + len]);
        pos += len;
    }
    let mut out = record[..4].to_vec();
    let mut rest = &payload[..];
    for &size in sizes.iter().chain(std::iter::repeat(&usize::MAX)) {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        if long || chunk.len() > 255 {
            out.push(0x7a);
            out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&[0x77, chunk.len() as u8]);
        }
        out.extend_from_slice(chunk);
        rest = tail;
    }
    out.extend_from_slice(&record[pos..]);
    out
}

#[test]
fn accepts_block_data_split_anywhere() {
    // Java's ObjectInputStream reads all of these alike (checked with Java 17).
    let record = hex(JAVA_STRADDLE);
    let expected = decode(NODE, &record).unwrap();
    for (sizes, long) in [
        (&[1usize; 2100][..], false),
        (&[7, 1, 300][..], true),
        (&[2, 1022][..], false),
        (&[][..], true),
        (&[65_000][..], false),
    ] {
        let reframed = reframe(&record, sizes, long);
        assert_ne!(reframed.len(), 0);
        assert_eq!(decode(NODE, &reframed).unwrap(), expected);
    }
}

/// `bytes` with `remove` bytes at `at` replaced by `insert` (hex).
fn sp(bytes: &[u8], at: usize, remove: usize, insert: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.splice(at..at + remove, hex(insert));
    out
}

/// The record of `abc`: block data at 4..11, the descriptor at 11..71, the
/// longs at 71..87.
fn abc() -> Vec<u8> {
    let abc = encode("abc", U1).unwrap();
    assert_eq!(abc[4..11], hex("77050003616263"));
    abc
}

/// Each record must be corrupted with a reason containing the text after `=>`.
macro_rules! rejects {
    ($($bytes:expr => $needle:expr;)*) => {
        $(bad($bytes, $needle);)*
    };
}

#[test]
fn rejects_bad_framing() {
    let abc = abc();
    let no_address = "expected block data (0x77 or 0x7a) holding the address at byte 4";
    rejects! {
        sp(&abc, 0, 4, "aced0006") => "expected the Java serialization header aced0005 at byte 0";
        hex("aced") => "header aced0005 at byte 0, but the record ends at byte 2";
        hex("aced0005") => no_address;
        [&hex("aced0005")[..], &abc[11..]].concat() => no_address;
        sp(&abc, 4, 0, "79") => no_address; // TC_RESET
        hex("aced000577") => "expected a block data header at byte 4, but the record ends at byte";
        hex("aced00057a0000") => "expected a long block data header at byte 4";
        hex("aced0005771000") => "expected block data at byte 6, but the record ends at byte 7";
        hex("aced00057affffffff0003616263") => "expected block data at byte 9";
        sp(&abc, 4, 0, "7700") => "empty block data record at byte 4";
        sp(&abc, 11, 0, "7a00000000") => "empty block data record at byte 11";
        sp(&abc, 4, 7, "770100") => "block data of 1 byte is too short";
        sp(&abc, 4, 7, "77050004616263") => "is 4 bytes long, but the block data holds 3";
        sp(&abc, 4, 7, "7706000361626364") => "is 3 bytes long, but the block data holds 4";
        sp(&abc, 87, 0, "00") => "end of the record after the UUID at byte 87, found 1 more";
        sp(&abc, 87, 0, "77010078") => "after the UUID at byte 87, found 4 more bytes";
    }
    // Every proper prefix of a record is corrupted, not a shorter record.
    let record = hex(JAVA_A1023);
    for len in 1..record.len() {
        assert!(decode(NODE, &record[..len]).is_err(), "{len}");
    }
}

#[test]
fn rejects_bad_modified_utf8() {
    let abc = abc();
    let text = |text: &str| {
        let len = text.len() / 2;
        sp(&abc, 4, 7, &format!("77{:02x}{len:04x}{text}", len + 2))
    };
    rejects! {
        text("610062") => "invalid modified UTF-8 at byte 1 of the address: raw NUL byte";
        text("c181") => "at byte 0 of the address: overlong form";
        text("e08181") => "overlong form";
        text("e080bf") => "overlong form";
        text("eda0bd") => "at byte 0 of the address: high surrogate without a low";
        text("eda0bd61") => "high surrogate without a low";
        text("eda0bdeda0bd") => "high surrogate without a low";
        text("eda0bde282ac") => "high surrogate without a low";
        text("61edb880") => "at byte 1 of the address: low surrogate without a high";
        text("f09f9880") => "byte that cannot start a character"; // 4-byte UTF-8
        text("80") => "byte that cannot start a character";
        text("ff") => "byte that cannot start a character";
        text("61e282") => "at byte 1 of the address: truncated character";
        text("c341") => "missing continuation byte";
        text("e2c2ac") => "missing continuation byte";
    }
    // What Java writes for NUL and for an astral character is fine.
    let ok = decode(NODE, &text("c080eda0bdedb880")).unwrap();
    assert_eq!(ok, Some(("\0😀".into(), U1)));
}

#[test]
fn rejects_other_objects() {
    let abc = abc();
    // Java would read swapped fields, taking the first long as mostSigBits.
    let swapped = "4a000b6d6f7374536967426974734a000c6c6561737453696742697473";
    rejects! {
        sp(&abc, 11, 76, "740003616263") => "expected TC_OBJECT (0x73) at byte 11"; // a String
        sp(&abc, 11, 76, "70") => "expected TC_OBJECT (0x73) at byte 11"; // null
        sp(&abc, 12, 1, "71007e0000") => "expected TC_CLASSDESC (0x72) at byte 12";
        sp(&abc, 28, 1, "45") => "expected class name java.util.UUID at byte 13";
        sp(&abc, 13, 16, "000d6a6176612e7574696c2e555549") => "class name java.util.UUID at";
        sp(&abc, 36, 1, "2e") => "expected serialVersionUID bc9903f7986d852f of java.util.UUID";
        sp(&abc, 37, 1, "03") => "expected class flags 0x02 (SC_SERIALIZABLE) at byte 37";
        sp(&abc, 38, 2, "0003") => "expected a field count of 2 at byte 38";
        sp(&abc, 38, 2, "0001") => "expected a field count of 2 at byte 38";
        sp(&abc, 40, 29, swapped) => "expected field `long leastSigBits` at byte 40";
        sp(&abc, 40, 1, "49") => "expected field `long leastSigBits` at byte 40";
        sp(&abc, 55, 1, "4c") => "expected field `long mostSigBits` at byte 55";
        sp(&abc, 69, 0, "4a000178") => "expected TC_ENDBLOCKDATA (0x78) at byte 69";
        sp(&abc, 70, 1, "72") => "expected TC_NULL (0x70) for the superclass at byte 70";
        &abc[..75] => "expected the UUID's leastSigBits at byte 71, but the record ends at byte 75";
        &abc[..86] => "expected the UUID's mostSigBits at byte 79";
    }
}

/// xorshift64*: a seeded generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Up to `max` characters mixing every width of modified UTF-8: ASCII,
    /// NUL, 2-byte, 3-byte (around the surrogates) and astral characters.
    fn address(&mut self, max: usize) -> String {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| {
                let code = match self.below(6) {
                    0 => 0,
                    1 | 2 => 0x20 + self.below(0x5f) as u32,
                    3 => 0x80 + self.below(0x780) as u32,
                    4 => [0x800, 0xd7ff, 0xe000, 0xffff][self.below(4)] + self.below(16) as u32,
                    _ => 0x10000 + self.below(0x100000) as u32,
                };
                char::from_u32(code).unwrap_or('\u{fffd}')
            })
            .collect()
    }
}

#[test]
fn fuzz_round_trips_and_never_panics() {
    let mut rng = Rng(0x7e4a_2c19_d3b5_8f61);

    // Random addresses round-trip, also reframed anyhow.
    for _ in 0..20_000 {
        let address = rng.address(24);
        let session = Uuid::from_u128(u128::from(rng.next()) << 64 | u128::from(rng.next()));
        let record = encode(&address, session).unwrap();
        let expected = Some((address, session));
        assert_eq!(decode(NODE, &record).unwrap(), expected);
        let sizes: Vec<usize> = (0..4).map(|_| 1 + rng.below(40)).collect();
        let reframed = reframe(&record, &sizes, rng.below(2) == 0);
        assert_eq!(decode(NODE, &reframed).unwrap(), expected);
    }

    // Random bytes, half of them behind a valid header and block header.
    for i in 0..200_000 {
        let mut bytes = if i % 2 == 0 {
            hex("aced000577")
        } else {
            Vec::new()
        };
        let len = rng.below(48);
        bytes.extend(rng.bytes(len));
        let _ = decode(NODE, &bytes);
    }

    // Mutations of valid records, short and split over several blocks.
    let pool: Vec<Vec<u8>> = (0..64)
        .map(|i| encode(&rng.address(if i < 4 { 700 } else { 12 }), U1).unwrap())
        .collect();
    let mut accepted = 0;
    for _ in 0..200_000 {
        let mut bytes = pool[rng.below(pool.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
                1 => bytes.truncate(at),
                2 => bytes.insert(at, rng.next() as u8),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        // Whatever a damaged record decodes to must be a record we can write.
        if let Ok(Some((address, session))) = decode(NODE, &bytes) {
            accepted += 1;
            let again = encode(&address, session).unwrap();
            assert_eq!(decode(NODE, &again).unwrap(), Some((address, session)));
        }
    }
    // Flips inside the address or the UUID's longs stay valid records.
    assert!(accepted > 1_000, "{accepted}");
}

// Golden records, written by OpenJDK 17.0.15 (Debian 17.0.15+6-1deb12u1):
// `ObjectOutputStream oos = new ObjectOutputStream(bytes);
// oos.writeUTF(address); oos.writeObject(session); oos.close();`, as Flink's
// `ZooKeeperUtils.writeLeaderInformationToZooKeeper` does. U1 is
// 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.
const JAVA_ASCII: &str = concat!(
    "aced00057738003670656b6b6f2e7463703a2f2f666c696e6b403132372e302e302e313a363132332f757365",
    "722f7270632f646973706174636865725f317372000e6a6176612e7574696c2e55554944bc9903f7986d852f",
    "0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378708796a5b4c3d2e1f00f1e",
    "2d3c4b5a6978",
);
const JAVA_REST: &str = concat!(
    "aced000577170015687474703a2f2f3132372e302e302e313a383038317372000e6a6176612e7574696c2e55",
    "554944bc9903f7986d852f0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378",
    "7000000000000000000000000000000000",
);
const JAVA_NUL: &str = concat!(
    "aced00057706000461c080627372000e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c",
    "6c65617374536967426974734a000b6d6f7374536967426974737870ffffffffffffffffffffffffffffffff",
);
const JAVA_EMOJI: &str = concat!(
    "aced0005770f000d68c3a9e282aceda0bdedb880217372000e6a6176612e7574696c2e55554944bc9903f798",
    "6d852f0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378708796a5b4c3d2e1",
    "f00f1e2d3c4b5a6978",
);
const JAVA_EMPTY: &str = concat!(
    "aced0005770200007372000e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c6c656173",
    "74536967426974734a000b6d6f73745369674269747378708796a5b4c3d2e1f00f1e2d3c4b5a6978",
);
const JAVA_A253: &str = concat!(
    "aced000577ff00fd616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161737200",
    "0e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c6c65617374536967426974734a000b",
    "6d6f73745369674269747378708796a5b4c3d2e1f00f1e2d3c4b5a6978",
);
const JAVA_A254: &str = concat!(
    "aced00057a0000010000fe616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "617372000e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c6c65617374536967426974",
    "734a000b6d6f73745369674269747378708796a5b4c3d2e1f00f1e2d3c4b5a6978",
);
const JAVA_A300: &str = concat!(
    "aced00057a0000012e012c616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161617372000e6a6176612e7574696c2e55554944bc9903f7986d852f0200024a000c6c6561737453696742",
    "6974734a000b6d6f73745369674269747378708796a5b4c3d2e1f00f1e2d3c4b5a6978",
);
const JAVA_A1023: &str = concat!(
    "aced00057a0000040003ff616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161617701617372000e6a6176612e7574696c2e55554944bc99",
    "03f7986d852f0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378708796a5b4",
    "c3d2e1f00f1e2d3c4b5a6978",
);
const JAVA_STRADDLE: &str = concat!(
    "aced00057a0000040007f0616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "6161616161616161616161616161616161616161616161616161616161616161616161616161616161616161",
    "61616161616161616161616161616161616161e2827a000003f2aceda0bdedb8806262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "6262626262626262626262626262626262626262626262626262626262626262626262626262626262626262",
    "626262626262626262626262626262626262626262e282ac7372000e6a6176612e7574696c2e55554944bc99",
    "03f7986d852f0200024a000c6c65617374536967426974734a000b6d6f73745369674269747378708796a5b4",
    "c3d2e1f00f1e2d3c4b5a6978",
);
