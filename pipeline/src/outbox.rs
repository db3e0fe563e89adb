//! The persistent outbox: every event message is on disk before it is
//! published, and leaves the disk only after the broker's PUBACK.
//!
//! Layout: one file per message in `DIR`, named by a 20-digit sequence number
//! (`00000000000000000042.json`), written to a temporary name, fsynced, then
//! renamed (and the directory fsynced), so a crash at any point leaves either
//! the whole message or nothing. Sequence numbers only grow, across restarts
//! (the next one is one past the largest file found), so publishing in
//! sequence order is publishing in event order.
//!
//! Bounds: at most `max_bytes` of payload and `max_messages` files. When an
//! append would pass either, the OLDEST messages are shed (deleted) and counted
//! in [`OutboxStats::shed`]: a broker outage longer than the bound loses the
//! oldest events, never the newest, and the count says how many.
//!
//! Files that do not parse as `<digits>.json` are left alone; a message file
//! that cannot be read is renamed `*.bad`, counted, and skipped, so one bad
//! sector never blocks delivery of the rest.

use std::collections::VecDeque;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Outbox errors (all name the path).
#[derive(Debug, thiserror::Error)]
#[error("outbox {path}: {detail}")]
pub struct OutboxError {
    /// File or directory.
    pub path: PathBuf,
    /// What failed.
    pub detail: String,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStats {
    /// Messages waiting for a PUBACK.
    pub pending: usize,
    /// Their payload bytes.
    pub pending_bytes: u64,
    /// Messages appended since start.
    pub appended: u64,
    /// Messages acknowledged (and removed) since start.
    pub acked: u64,
    /// Messages shed because the outbox was full (oldest first).
    pub shed: u64,
    /// Unreadable files set aside as `*.bad`.
    pub bad: u64,
    /// Messages found on disk at start (left by a previous run).
    pub recovered: u64,
}

/// The on-disk queue.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    max_bytes: u64,
    max_messages: usize,
    next_seq: u64,
    queue: VecDeque<(u64, Vec<u8>)>,
    stats: OutboxStats,
    sync: bool,
}

fn err(path: &Path, e: impl std::fmt::Display) -> OutboxError {
    OutboxError {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

impl Outbox {
    /// Opens (creating) `dir` and loads what a previous run left, in order.
    pub fn open(dir: &Path, max_bytes: u64, max_messages: usize) -> Result<Self, OutboxError> {
        fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| err(dir, e))? {
            let entry = entry.map_err(|e| err(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                // An append that crashed before its rename: never acknowledged
                // as written, so never published; remove it.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem.len() == 20
                && stem.bytes().all(|b| b.is_ascii_digit())
                && let Ok(seq) = stem.parse::<u64>()
            {
                found.push(seq);
            }
        }
        found.sort_unstable();
        let mut ob = Outbox {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1),
            max_messages: max_messages.max(1),
            next_seq: found.last().map_or(1, |s| s + 1),
            queue: VecDeque::new(),
            stats: OutboxStats::default(),
            sync: true,
        };
        for seq in found {
            let path = ob.path_of(seq);
            match fs::read(&path) {
                Ok(bytes) if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() => {
                    ob.stats.pending_bytes += bytes.len() as u64;
                    ob.queue.push_back((seq, bytes));
                    ob.stats.recovered += 1;
                }
                _ => {
                    let _ = fs::rename(&path, path.with_extension("bad"));
                    ob.stats.bad += 1;
                }
            }
        }
        ob.stats.pending = ob.queue.len();
        Ok(ob)
    }

    /// Skips fsync (tests of the queue logic only; a daemon always syncs).
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Writes `payload` durably and queues it; returns its sequence number.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, OutboxError> {
        let len = payload.len() as u64;
        while !self.queue.is_empty()
            && (self.stats.pending_bytes + len > self.max_bytes
                || self.queue.len() >= self.max_messages)
        {
            let (seq, old) = self.queue.pop_front().expect("non-empty");
            self.stats.pending_bytes -= old.len() as u64;
            self.stats.shed += 1;
            let _ = fs::remove_file(self.path_of(seq));
        }
        let seq = self.next_seq;
        let path = self.path_of(seq);
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(payload)?;
            if self.sync {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)?;
            if self.sync {
                fs::File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| err(&path, e))?;
        self.next_seq += 1;
        self.queue.push_back((seq, payload.to_vec()));
        self.stats.pending_bytes += len;
        self.stats.appended += 1;
        self.stats.pending = self.queue.len();
        Ok(seq)
    }

    /// The `i`-th pending message (0 = oldest).
    pub fn get(&self, i: usize) -> Option<(u64, &[u8])> {
        self.queue.get(i).map(|(s, p)| (*s, p.as_slice()))
    }

    /// The oldest pending message with a sequence number above `seq`.
    pub fn next_after(&self, seq: u64) -> Option<(u64, &[u8])> {
        let i = self.queue.partition_point(|(s, _)| *s <= seq);
        self.get(i)
    }

    /// Pending messages.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Removes message `seq` after its PUBACK; false if it was not pending
    /// (already acked, or shed).
    pub fn ack(&mut self, seq: u64) -> Result<bool, OutboxError> {
        let Some(i) = self.queue.iter().position(|(s, _)| *s == seq) else {
            return Ok(false);
        };
        let (_, p) = self.queue.remove(i).expect("position found");
        self.stats.pending_bytes -= p.len() as u64;
        self.stats.acked += 1;
        self.stats.pending = self.queue.len();
        let path = self.path_of(seq);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(err(&path, e)),
        }
    }

    /// Counters.
    pub fn stats(&self) -> OutboxStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("edgebind-outbox-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn survives_reopen_in_order_and_acks_remove() {
        let d = tmpdir("reopen");
        let mut ob = Outbox::open(&d, 1 << 20, 1000).unwrap();
        let a = ob.append(br#"{"n":1}"#).unwrap();
        let b = ob.append(br#"{"n":2}"#).unwrap();
        let c = ob.append(br#"{"n":3}"#).unwrap();
        assert!(a < b && b < c);
        assert!(ob.ack(b).unwrap());
        assert!(!ob.ack(b).unwrap());
        drop(ob);
        // A crash mid-append leaves a .tmp: ignored and removed.
        fs::write(d.join("00000000000000000099.tmp"), b"{").unwrap();
        fs::write(d.join("notes.txt"), b"hello").unwrap();
        let mut ob = Outbox::open(&d, 1 << 20, 1000).unwrap();
        assert_eq!(ob.stats().recovered, 2);
        assert_eq!(ob.get(0).unwrap(), (a, &br#"{"n":1}"#[..]));
        assert_eq!(ob.get(1).unwrap(), (c, &br#"{"n":3}"#[..]));
        assert_eq!(ob.next_after(0).unwrap().0, a);
        assert_eq!(ob.next_after(a).unwrap().0, c);
        assert!(ob.next_after(c).is_none());
        let d2 = ob.append(br#"{"n":4}"#).unwrap();
        assert!(d2 > c, "sequence numbers keep growing across restarts");
        assert!(!d.join("00000000000000000099.tmp").exists());
        assert!(d.join("notes.txt").exists());
        ob.ack(a).unwrap();
        ob.ack(c).unwrap();
        ob.ack(d2).unwrap();
        assert!(ob.is_empty());
        assert_eq!(Outbox::open(&d, 1 << 20, 1000).unwrap().len(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn full_outbox_sheds_oldest_and_counts() {
        let d = tmpdir("shed");
        let mut ob = Outbox::open(&d, 30, 1000).unwrap();
        ob.set_sync(false);
        for i in 0..5 {
            ob.append(format!(r#"{{"i":"{i:02}"}}"#).as_bytes())
                .unwrap(); // 10 bytes each
        }
        assert_eq!(ob.len(), 3);
        assert_eq!(ob.stats().shed, 2);
        assert_eq!(ob.get(0).unwrap().1, br#"{"i":"02"}"#);
        let mut ob2 = Outbox::open(&d, 1 << 20, 2).unwrap();
        assert_eq!(ob2.len(), 3);
        ob2.append(b"{}").unwrap();
        assert_eq!(ob2.len(), 2, "message bound");
        assert_eq!(ob2.stats().shed, 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unreadable_message_is_set_aside_not_fatal() {
        let d = tmpdir("bad");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("00000000000000000001.json"), b"{\"ok\":1}").unwrap();
        fs::write(d.join("00000000000000000002.json"), b"\xff\x00garbage").unwrap();
        fs::write(d.join("00000000000000000003.json"), b"{\"ok\":3}").unwrap();
        let ob = Outbox::open(&d, 1 << 20, 100).unwrap();
        assert_eq!(ob.len(), 2);
        assert_eq!(ob.stats().bad, 1);
        assert!(d.join("00000000000000000002.bad").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
