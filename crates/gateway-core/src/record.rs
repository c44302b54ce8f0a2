//! Journal records: the durable form of the table, one line per change.
//!
//! A line is `PL1 <crc32 of the JSON, 8 lower-case hex digits> <JSON>\n`. The version
//! tag lets a later format coexist; the checksum catches a torn or corrupted write; JSON
//! escaping guarantees a description can never break the line (miniupnpd's lease file
//! let a newline in a description inject a line, and deleting port 80 also deleted
//! 8080's line: GATEWAY-NOTES). [`decode`] rejects the whole line on any problem;
//! the journal skips (and reports) it. [`replay`] folds the records back into the
//! mappings to hand to [`crate::Table::restore`], which re-checks each through the
//! policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mapping::{Key, Mapping};

/// The version tag that starts every line of this format, with its separator.
pub const TAG: &[u8] = b"PL1 ";

/// The longest description a record can carry, bytes: the table never accepts a longer
/// one whatever [`crate::Limits::max_description_len`] says, so that every mapping it
/// holds can be journaled and read back.
pub const MAX_DESCRIPTION_LEN: usize = 32 * 1024;

/// The longest line [`decode`] accepts, bytes: room for a description of
/// [`MAX_DESCRIPTION_LEN`] bytes that all need escaping (6 bytes of JSON each, `\u0001`)
/// plus the rest of the record. The bound stops a corrupt journal from making us parse
/// megabytes as one record.
pub const MAX_RECORD_LEN: usize = 6 * MAX_DESCRIPTION_LEN + 1024;

/// Length of `PL1 xxxxxxxx ` before the JSON.
const HEADER_LEN: usize = TAG.len() + 8 + 1;

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// This mapping exists as given (added or changed).
    Put(Mapping),
    /// The mapping with this key is gone.
    Delete(Key),
}

/// Why a line is not a record. The journal cannot repair any of these: it skips the line
/// (a torn last line after a crash is expected; anything else means corruption or a
/// journal from an incompatible build, worth reporting to the operator).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The line is longer than [`MAX_RECORD_LEN`].
    #[error("record of {len} bytes exceeds the {MAX_RECORD_LEN}-byte limit")]
    TooLong {
        /// The line's length.
        len: usize,
    },
    /// The line holds a newline before its end (two records run together, or damage).
    #[error("newline inside a record")]
    EmbeddedNewline,
    /// The line does not start with `PL`: not a journal record at all.
    #[error("not a journal record (no PL tag)")]
    NotARecord,
    /// A `PL` record of a version this build does not read (written by a newer build).
    #[error("record version is not PL1")]
    UnknownVersion,
    /// The line ends inside the header (a torn write).
    #[error("record truncated inside its header")]
    Truncated,
    /// The checksum field is not 8 lower-case hex digits followed by a space.
    #[error("malformed checksum field")]
    BadChecksumField,
    /// The JSON does not match its checksum: damaged or torn.
    #[error("checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    ChecksumMismatch {
        /// The checksum written in the line.
        stored: u32,
        /// The checksum of the JSON as read.
        computed: u32,
    },
    /// The checksum matches but the JSON is not a valid record: written by an
    /// incompatible build, or a bug.
    #[error("record JSON invalid: {0}")]
    InvalidJson(#[source] serde_json::Error),
}

/// Append `record` as one line (with its `\n`) to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(TAG);
    out.extend_from_slice(b"00000000 ");
    let json_start = out.len();
    // Infallible here: every field serialises to a string, number, bool or null, and
    // writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, record).expect("a Record always serialises to JSON");
    let crc = crc32fast::hash(&out[json_start..]);
    let hex = format!("{crc:08x}");
    out[start + TAG.len()..start + TAG.len() + 8].copy_from_slice(hex.as_bytes());
    out.push(b'\n');
}

/// Parse one line (with or without its final `\n`). Never panics; any problem rejects
/// the whole line.
pub fn decode(line: &[u8]) -> Result<Record, RecordError> {
    if line.len() > MAX_RECORD_LEN {
        return Err(RecordError::TooLong { len: line.len() });
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.contains(&b'\n') {
        return Err(RecordError::EmbeddedNewline);
    }
    if !line.starts_with(b"PL") {
        return Err(if TAG.starts_with(line) {
            RecordError::Truncated
        } else {
            RecordError::NotARecord
        });
    }
    if line.len() < TAG.len() {
        return Err(if TAG.starts_with(line) {
            RecordError::Truncated
        } else {
            RecordError::UnknownVersion
        });
    }
    if !line.starts_with(TAG) {
        return Err(RecordError::UnknownVersion);
    }
    if line.len() < HEADER_LEN {
        return Err(RecordError::Truncated);
    }
    let (header, json) = line.split_at(HEADER_LEN);
    let hex = &header[TAG.len()..TAG.len() + 8];
    if header[HEADER_LEN - 1] != b' ' || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(RecordError::BadChecksumField);
    }
    let stored = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or(RecordError::BadChecksumField)?;
    let computed = crc32fast::hash(json);
    if stored != computed {
        return Err(RecordError::ChecksumMismatch { stored, computed });
    }
    serde_json::from_slice(json).map_err(RecordError::InvalidJson)
}

/// Fold records, in journal order, into the mappings they leave: the last `Put` per key
/// wins, a `Delete` removes. In key order.
pub fn replay(records: impl IntoIterator<Item = Record>) -> Vec<Mapping> {
    let mut state = BTreeMap::new();
    for record in records {
        match record {
            Record::Put(m) => {
                state.insert(m.key, m);
            }
            Record::Delete(key) => {
                state.remove(&key);
            }
        }
    }
    state.into_values().collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use igd_proto::actions::Protocol;
    use proptest::prelude::*;

    use super::*;
    use crate::mapping::Source;

    fn mapping(port: u16, description: &str) -> Mapping {
        Mapping {
            key: Key::new(Protocol::Tcp, port),
            internal_client: Ipv4Addr::new(192, 168, 1, 7),
            internal_port: 8080,
            description: description.to_owned(),
            enabled: true,
            lease_seconds: 3600,
            expires_at: Some(1_700_003_600),
            created_at: 1_700_000_000,
            source: Source::Upnp,
        }
    }

    fn line(record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        encode(record, &mut out);
        out
    }

    #[test]
    fn exact_format() {
        let out = line(&Record::Delete(Key::new(Protocol::Udp, 5060)));
        let json = br#"{"Delete":{"protocol":"UDP","external_port":5060}}"#;
        let mut want = format!("PL1 {:08x} ", crc32fast::hash(json)).into_bytes();
        want.extend_from_slice(json);
        want.push(b'\n');
        assert_eq!(out, want);
        let r = decode(&out).unwrap();
        assert_eq!(r, Record::Delete(Key::new(Protocol::Udp, 5060)));
        // The final newline is optional.
        assert_eq!(decode(&out[..out.len() - 1]).unwrap(), r);
    }

    #[test]
    fn hostile_descriptions_stay_on_one_line() {
        for d in [
            "line\nbreak",
            "cr\r\nlf",
            "\"quoted\" \\ back",
            "PL1 00000000 {\"Put\":{}}\n",
            "ünïcødé 日本語 🎧",
            "nul\0byte\u{2028}sep",
            "]]><x/>&amp;",
        ] {
            let rec = Record::Put(mapping(80, d));
            let out = line(&rec);
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "{d:?}");
            assert_eq!(*out.last().unwrap(), b'\n');
            assert_eq!(decode(&out).unwrap(), rec, "{d:?}");
        }
    }

    #[test]
    fn rejects_every_kind_of_damage() {
        let good = line(&Record::Put(mapping(80, "web")));
        // Flip one byte anywhere: always an error (CRC-32 catches every single-byte error).
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        assert!(matches!(decode(b""), Err(RecordError::Truncated)));
        assert!(matches!(decode(b"PL"), Err(RecordError::Truncated)));
        assert!(matches!(decode(b"PL1 0123"), Err(RecordError::Truncated)));
        assert!(matches!(decode(b"hello"), Err(RecordError::NotARecord)));
        assert!(matches!(
            decode(b"PL2 00000000 {}"),
            Err(RecordError::UnknownVersion)
        ));
        assert!(matches!(decode(b"PLX"), Err(RecordError::UnknownVersion)));
        assert!(matches!(
            decode(b"PL1 0000000G {}"),
            Err(RecordError::BadChecksumField)
        ));
        assert!(matches!(
            decode(b"PL1 ABCDEF01 {}"),
            Err(RecordError::BadChecksumField)
        ));
        assert!(matches!(
            decode(b"PL1 00000000x{}"),
            Err(RecordError::BadChecksumField)
        ));
        assert!(matches!(
            decode(b"PL1 00000000 {}"),
            Err(RecordError::ChecksumMismatch { stored: 0, .. })
        ));
        // Torn: the line cut anywhere in the JSON.
        assert!(matches!(
            decode(&good[..good.len() - 5]),
            Err(RecordError::ChecksumMismatch { .. })
        ));
        // Two records run together.
        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert!(matches!(decode(&two), Err(RecordError::EmbeddedNewline)));
        // A valid checksum over JSON that is not a record.
        let json = br#"{"Put":{"key":{"protocol":"TCP","external_port":80}}}"#;
        let mut wrong = format!("PL1 {:08x} ", crc32fast::hash(json)).into_bytes();
        wrong.extend_from_slice(json);
        assert!(matches!(decode(&wrong), Err(RecordError::InvalidJson(_))));
        let huge = vec![b'P'; MAX_RECORD_LEN + 1];
        assert!(matches!(decode(&huge), Err(RecordError::TooLong { .. })));
    }

    #[test]
    fn the_longest_description_fits() {
        let rec = Record::Put(mapping(80, &"\u{1}".repeat(MAX_DESCRIPTION_LEN)));
        let out = line(&rec);
        assert!(out.len() <= MAX_RECORD_LEN, "{} bytes", out.len());
        assert_eq!(decode(&out).unwrap(), rec);
    }

    #[test]
    fn replay_last_put_wins_and_delete_removes() {
        let records = vec![
            Record::Put(mapping(80, "a")),
            Record::Put(mapping(8080, "b")),
            Record::Put(mapping(80, "a2")),
            Record::Delete(Key::new(Protocol::Tcp, 8080)),
            Record::Put(Mapping {
                key: Key::new(Protocol::Udp, 80),
                ..mapping(80, "udp")
            }),
            Record::Delete(Key::new(Protocol::Tcp, 9999)),
        ];
        let out = replay(records);
        let got: Vec<(Key, &str)> = out
            .iter()
            .map(|m| (m.key, m.description.as_str()))
            .collect();
        // Deleting TCP 8080 kept TCP 80 (miniupnpd's lease file lost 80 when 8080 went).
        assert_eq!(
            got,
            vec![
                (Key::new(Protocol::Tcp, 80), "a2"),
                (Key::new(Protocol::Udp, 80), "udp"),
            ]
        );
    }

    fn arb_mapping() -> impl Strategy<Value = Mapping> {
        (
            (any::<bool>(), any::<u16>(), any::<u32>(), any::<u16>()),
            any::<String>(),
            (
                any::<bool>(),
                any::<u32>(),
                any::<Option<u64>>(),
                any::<u64>(),
            ),
            prop::sample::select(vec![
                Source::Upnp,
                Source::NatPmp,
                Source::Pcp,
                Source::Manual,
            ]),
        )
            .prop_map(
                |(
                    (udp, eport, client, iport),
                    description,
                    (enabled, lease, expires, created),
                    source,
                )| Mapping {
                    key: Key::new(if udp { Protocol::Udp } else { Protocol::Tcp }, eport),
                    internal_client: Ipv4Addr::from(client),
                    internal_port: iport,
                    description,
                    enabled,
                    lease_seconds: lease,
                    expires_at: expires,
                    created_at: created,
                    source,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips_any_mapping(m in arb_mapping(), delete in any::<bool>()) {
            let rec = if delete { Record::Delete(m.key) } else { Record::Put(m) };
            let out = line(&rec);
            prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert_eq!(decode(&out).unwrap(), rec);
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_near_records(
            m in arb_mapping(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut out = line(&Record::Put(m));
            let i = at.index(out.len());
            let flipped = out[i] != byte;
            out[i] = byte;
            let result = decode(&out);
            if flipped {
                prop_assert!(result.is_err());
            }
            let _ = decode(&out[..cut.index(out.len())]);
        }
    }
}
