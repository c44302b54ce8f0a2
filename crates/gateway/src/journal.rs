//! Durable state: the mapping journal and the gateway's identity.
//!
//! Every acknowledged change is appended to `mappings.journal` as one checksummed record
//! (`gateway_core::record`) and made durable with `fdatasync` before the request is answered.
//! [`Journal::write`] only writes; the caller syncs the returned [`Unsynced`] (the control
//! plane does it on its own sync thread, so the table keeps serving while the disk flushes,
//! and every batch queued during a flush shares the next one: group commit). When the journal has
//! grown past a threshold it is compacted: the live table is written to a temporary file,
//! synced, and renamed over the journal (atomic on POSIX), then the directory is synced.
//!
//! On start the journal is replayed: a record with a bad checksum is rejected whole (and
//! counted), a torn last line from a crash is ignored, and the caller passes every mapping back
//! through the table's policy (`Table::restore`) rather than trusting the file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_core::record::{self, Record};
use gateway_core::Mapping;

/// File name of the journal inside the state directory.
pub const JOURNAL_FILE: &str = "mappings.journal";
/// File name of the identity (uuid and boot id).
pub const IDENTITY_FILE: &str = "identity";
/// Longest journal line accepted on replay (a mapping record is far smaller).
pub const MAX_RECORD_LEN: usize = 4096;

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records read and accepted.
    pub records: usize,
    /// Lines rejected (bad checksum, unknown version, bad JSON, too long).
    pub rejected: usize,
    /// A last line without its newline (a write cut short by a crash) was ignored.
    pub torn_tail: bool,
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: Arc<File>,
    records_since_compaction: usize,
    buf: Vec<u8>,
}

impl Journal {
    /// Open (creating the directory and file if needed) and replay.
    pub fn open(dir: &Path) -> io::Result<(Journal, Vec<Mapping>, ReplayReport)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut report = ReplayReport::default();
        let mut records = Vec::new();
        if let Ok(file) = File::open(&path) {
            let mut reader = BufReader::new(file);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader
                    .by_ref()
                    .take(MAX_RECORD_LEN as u64 + 1)
                    .read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                if line.last() != Some(&b'\n') {
                    if n > MAX_RECORD_LEN {
                        // An over-long line: skip to its end and reject it.
                        report.rejected += 1;
                        let mut rest = Vec::new();
                        reader.read_until(b'\n', &mut rest)?;
                        continue;
                    }
                    report.torn_tail = true;
                    break;
                }
                match record::decode(&line) {
                    Ok(r) => {
                        report.records += 1;
                        records.push(r);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "journal record rejected");
                        report.rejected += 1;
                    }
                }
            }
        }
        let mappings = record::replay(records);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            records_since_compaction: report.records,
            buf: Vec::new(),
        };
        if report.torn_tail || report.rejected > 0 {
            // Rewrite cleanly so the bad bytes are not followed by new records.
            journal.compact(mappings.iter())?;
        }
        Ok((journal, mappings, report))
    }

    /// Append records and make them durable (one fdatasync for the whole batch).
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        match self.write(records)? {
            Some(unsynced) => unsynced.sync(),
            None => Ok(()),
        }
    }

    /// Append records without waiting for the disk; they are durable once the returned
    /// [`Unsynced`] (or a later one) is synced. `None` when there was nothing to write.
    pub fn write(&mut self, records: &[Record]) -> io::Result<Option<Unsynced>> {
        if records.is_empty() {
            return Ok(None);
        }
        self.buf.clear();
        for r in records {
            record::encode(r, &mut self.buf);
        }
        (&*self.file).write_all(&self.buf)?;
        self.records_since_compaction += records.len();
        Ok(Some(Unsynced(self.file.clone())))
    }

    /// Records written since the last compaction.
    pub fn records_since_compaction(&self) -> usize {
        self.records_since_compaction
    }

    /// Replace the journal by the live table, atomically.
    pub fn compact<'a>(&mut self, live: impl Iterator<Item = &'a Mapping>) -> io::Result<()> {
        let tmp = self.dir.join(format!("{JOURNAL_FILE}.tmp"));
        let path = self.dir.join(JOURNAL_FILE);
        let mut buf = Vec::new();
        let mut count = 0;
        for m in live {
            record::encode(&Record::Put(m.clone()), &mut buf);
            count += 1;
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(&self.dir)?.sync_all()?;
        self.file = Arc::new(OpenOptions::new().append(true).open(&path)?);
        self.records_since_compaction = count;
        Ok(())
    }
}

/// Records written to the journal file but perhaps not on the disk yet. Syncing any handle of
/// the same file covers every write made before the sync started.
#[derive(Debug, Clone)]
pub struct Unsynced(Arc<File>);

impl Unsynced {
    /// `fdatasync` the file the records went to.
    pub fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    /// Whether `other` refers to the same open journal file (one sync covers both).
    pub fn same_file(&self, other: &Unsynced) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The gateway's identity: its uuid (generated once, kept forever) and BOOTID.UPNP.ORG, which
/// increases at every start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Bare uuid (no `uuid:` prefix).
    pub uuid: String,
    /// This start's boot id.
    pub boot_id: u32,
}

impl Identity {
    /// Load the identity, bump the boot id, and store it durably before returning.
    pub fn load_and_bump(dir: &Path) -> io::Result<Identity> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(IDENTITY_FILE);
        let previous = std::fs::read_to_string(&path).ok().and_then(|text| {
            let mut uuid = None;
            let mut boot_id = None;
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("uuid=") {
                    uuid = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("boot_id=") {
                    boot_id = v.trim().parse::<u32>().ok();
                }
            }
            Some((uuid.filter(|u| valid_uuid(u))?, boot_id.unwrap_or(0)))
        });
        let identity = match previous {
            Some((uuid, boot_id)) => Identity {
                uuid,
                // Wraps to 1, never 0 (UDA 2.0: BOOTID is a positive 31-bit value).
                boot_id: if boot_id >= (1 << 31) - 1 {
                    1
                } else {
                    boot_id + 1
                },
            },
            None => Identity {
                uuid: new_uuid()?,
                boot_id: 1,
            },
        };
        let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            writeln!(f, "uuid={}\nboot_id={}", identity.uuid, identity.boot_id)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()?;
        Ok(identity)
    }
}

fn valid_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A random (version 4) uuid from the kernel's random source.
fn new_uuid() -> io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{Key, Protocol, Source};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pl-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mapping(port: u16, description: &str) -> Mapping {
        Mapping {
            key: Key::new(Protocol::Udp, port),
            internal_client: "192.168.0.91".parse().unwrap(),
            internal_port: 5060,
            description: description.into(),
            enabled: true,
            lease_seconds: 600,
            expires_at: Some(2_000_000_000),
            created_at: 1_999_999_400,
            source: Source::Upnp,
        }
    }

    #[test]
    fn appended_records_replay_in_order() {
        let dir = temp("replay");
        let (mut j, none, report) = Journal::open(&dir).unwrap();
        assert!(none.is_empty());
        assert_eq!(report, ReplayReport::default());
        j.append(&[
            Record::Put(mapping(1, "a")),
            Record::Put(mapping(2, "b\nline")),
        ])
        .unwrap();
        j.append(&[
            Record::Delete(Key::new(Protocol::Udp, 1)),
            Record::Put(mapping(2, "c")),
        ])
        .unwrap();
        drop(j);
        let (_, mappings, report) = Journal::open(&dir).unwrap();
        assert_eq!(report.records, 4);
        assert_eq!(mappings, vec![mapping(2, "c")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_record_is_rejected_whole_and_a_torn_tail_ignored() {
        let dir = temp("corrupt");
        let (mut j, _, _) = Journal::open(&dir).unwrap();
        j.append(&[
            Record::Put(mapping(1, "keep")),
            Record::Put(mapping(2, "flip")),
        ])
        .unwrap();
        drop(j);
        let path = dir.join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        // Corrupt the second record's description, and add half a record with no newline.
        let at = bytes.windows(4).position(|w| w == b"flip").unwrap();
        bytes[at] = b'F';
        bytes.extend_from_slice(b"PL1 0000");
        std::fs::write(&path, &bytes).unwrap();
        let (mut j, mappings, report) = Journal::open(&dir).unwrap();
        assert_eq!(mappings, vec![mapping(1, "keep")]);
        assert_eq!(report.rejected, 1);
        assert!(report.torn_tail);
        // The file was rewritten cleanly: new records follow good bytes.
        j.append(&[Record::Put(mapping(3, "new"))]).unwrap();
        drop(j);
        let (_, mappings, report) = Journal::open(&dir).unwrap();
        assert_eq!(
            report,
            ReplayReport {
                records: 2,
                rejected: 0,
                torn_tail: false
            }
        );
        assert_eq!(mappings.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compaction_keeps_exactly_the_live_table() {
        let dir = temp("compact");
        let (mut j, _, _) = Journal::open(&dir).unwrap();
        for port in 0..100 {
            j.append(&[
                Record::Put(mapping(port, "x")),
                Record::Delete(Key::new(Protocol::Udp, port)),
            ])
            .unwrap();
        }
        let live = [mapping(7, "live")];
        j.compact(live.iter()).unwrap();
        assert_eq!(j.records_since_compaction(), 1);
        drop(j);
        let (_, mappings, report) = Journal::open(&dir).unwrap();
        assert_eq!(mappings, live.to_vec());
        assert_eq!(report.records, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn identity_is_kept_and_boot_id_grows() {
        let dir = std::env::temp_dir().join(format!("pl-ident-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Identity::load_and_bump(&dir).unwrap();
        let b = Identity::load_and_bump(&dir).unwrap();
        assert!(valid_uuid(&a.uuid), "{}", a.uuid);
        assert_eq!(a.uuid, b.uuid);
        assert_eq!(b.boot_id, a.boot_id + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
