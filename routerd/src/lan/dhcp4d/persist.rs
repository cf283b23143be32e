//! The leases on disk: router7's `dhcp4d/leases.json`, plus a journal `dhcp4d/leases.journal` of the changes
//! since that file was written, one JSON line per change (`{"put": <lease record>}` or
//! `{"remove": {"hardware_addr": …, "interface": …}}`).
//!
//! Every change is appended to the journal and flushed before its ACK goes out: one `fdatasync` per batch of
//! requests, whatever the number of leases. When the journal has grown past twice the table (so rewriting the
//! file costs O(1) per change on average), it is rotated to `leases.journal.1` and the whole table is written to
//! `leases.json` atomically, off the async runtime's threads, after which the old journal is removed. A clean stop
//! folds the journal in, so a stopped router has only `leases.json`, which can be edited by hand.
//!
//! Replaying is idempotent (a change sets or removes one client's lease), so a crash at any point of a
//! compaction loses nothing: `leases.json` is the old or the new complete file, and the journals still hold
//! everything since the old one.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::{Lease, LeaseRecord, LeaseTable, Mac, Server, format_mac};
use crate::{
    config::parse_mac,
    store::{
        self, Mode, StoreError,
        journal::{self, Journal},
    },
};

/// Journal entries below which a compaction is not worth it, whatever the table's size.
const MIN_COMPACTION_ENTRIES: usize = 1024;
/// Sets the journal length that starts a compaction, whatever the table's size, so that tests can kill routerd
/// in the middle of compactions.
const COMPACTION_ENTRIES_VARIABLE: &str = "ROUTERD_LEASE_COMPACTION_ENTRIES";

fn compaction_entries_override() -> Option<usize> {
    std::env::var(COMPACTION_ENTRIES_VARIABLE).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0)
}

pub(crate) fn leases_path(perm: &Path) -> PathBuf {
    perm.join("dhcp4d").join("leases.json")
}

pub(crate) fn journal_path(perm: &Path) -> PathBuf {
    perm.join("dhcp4d").join("leases.journal")
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum JournalEntry {
    Put(LeaseRecord),
    Remove { hardware_addr: String, interface: String },
}

/// The saved leases: `leases.json`, then the journals replayed over it. Entries that cannot be read are
/// reported and skipped; a `leases.json` that is not JSON at all is kept aside as `leases.json.unreadable`
/// (never overwritten) and the table starts from the journals alone. When there were journals, the result is
/// written to `leases.json` and they are removed; if that fails, nothing is removed and the error is returned.
pub(crate) fn load(perm: &Path, default_interface: &str) -> Result<Vec<Lease>, StoreError> {
    let mut tables: BTreeMap<String, LeaseTable> = BTreeMap::new();
    for lease in read_file(perm, default_interface) {
        tables.entry(lease.interface.clone()).or_default().insert(lease);
    }
    let journals = [journal::rotated_path(&journal_path(perm)), journal_path(perm)];
    let mut replayed = 0;
    for path in &journals {
        replayed += replay(path, default_interface, &mut tables)?;
    }
    let leases: Vec<Lease> = tables.values().flat_map(|t| t.iter().cloned()).collect();
    if replayed > 0 {
        tracing::info!("replayed {replayed} lease changes from the journal into {}", leases_path(perm).display());
        let records: Vec<LeaseRecord> = leases.iter().map(LeaseRecord::from_lease).collect();
        store::write_json(&leases_path(perm), &records, Mode::Public)?;
    }
    for path in &journals {
        journal::remove(path)?;
    }
    Ok(leases)
}

/// Only `leases.json` (what a backup is checked against, and what the fuzzer reads).
pub(crate) fn read_file(perm: &Path, default_interface: &str) -> Vec<Lease> {
    let path = leases_path(perm);
    match store::read_json_optional::<Vec<LeaseRecord>>(&path) {
        Ok(records) => records
            .unwrap_or_default()
            .iter()
            .filter_map(|record| {
                record
                    .to_lease(default_interface)
                    .inspect_err(|problem| tracing::warn!("{}: skipping a lease: {problem}", path.display()))
                    .ok()
            })
            .collect(),
        Err(error) => {
            let aside = path.with_extension("json.unreadable");
            tracing::error!("{error}; keeping it as {} and starting with no leases", aside.display());
            if let Err(error) = std::fs::rename(&path, &aside) {
                tracing::error!("moving {} aside: {error}", path.display());
            }
            Vec::new()
        }
    }
}

fn replay(
    path: &Path,
    default_interface: &str,
    tables: &mut BTreeMap<String, LeaseTable>,
) -> Result<usize, StoreError> {
    let (lines, torn) = journal::read_lines(path)?;
    if torn > 0 {
        tracing::warn!(
            "{}: left out {torn} bytes of a change cut off by a crash (it was never acknowledged)",
            path.display()
        );
    }
    let mut replayed = 0;
    for (number, line) in lines.iter().enumerate() {
        let applied = match serde_json::from_str::<JournalEntry>(line) {
            Ok(JournalEntry::Put(record)) => record.to_lease(default_interface).map(|lease| {
                tables.entry(lease.interface.clone()).or_default().insert(lease);
            }),
            Ok(JournalEntry::Remove { hardware_addr, interface }) => parse_mac(&hardware_addr)
                .map(|mac| {
                    tables.entry(interface).or_default().remove(&mac);
                })
                .ok_or_else(|| format!("hardware_addr {hardware_addr:?} is not a MAC")),
            Err(error) => Err(error.to_string()),
        };
        match applied {
            Ok(()) => replayed += 1,
            Err(problem) => tracing::warn!("{} line {}: skipping a change: {problem}", path.display(), number + 1),
        }
    }
    Ok(replayed)
}

/// The journal lines for these clients' leases as they are now in `server` (a put, or a remove if gone).
pub(crate) fn journal_lines(server: &Server, clients: &BTreeSet<Mac>, out: &mut Vec<u8>) {
    for mac in clients {
        let entry = match server.leases().by_mac(mac) {
            Some(lease) => JournalEntry::Put(LeaseRecord::from_lease(lease)),
            None => {
                JournalEntry::Remove { hardware_addr: format_mac(mac), interface: server.config().interface.clone() }
            }
        };
        // Serialising plain strings and numbers cannot fail.
        if serde_json::to_writer(&mut *out, &entry).is_ok() {
            out.push(b'\n');
        }
    }
}

/// Every lease of these servers, by LAN and address: the content of `leases.json`.
pub(crate) fn records(servers: &[Server]) -> Vec<LeaseRecord> {
    let mut by_interface: Vec<&Server> = servers.iter().collect();
    by_interface.sort_by(|a, b| a.config().interface.cmp(&b.config().interface));
    by_interface.iter().flat_map(|s| s.leases().iter().map(LeaseRecord::from_lease)).collect()
}

/// The open journal, and the compaction running in the background.
pub(crate) struct LeaseStore {
    perm: PathBuf,
    journal: Arc<Mutex<Journal>>,
    compaction: Option<oneshot::Receiver<Result<(), StoreError>>>,
    entries_override: Option<usize>,
    /// After a failed compaction: the journal length at which to try again.
    retry_at: usize,
}

impl LeaseStore {
    /// Starts an empty journal: call after [`load`] folded the previous one in.
    pub(crate) fn open(perm: &Path) -> Result<LeaseStore, StoreError> {
        let journal = Journal::create(&journal_path(perm))?;
        Ok(LeaseStore {
            perm: perm.to_path_buf(),
            journal: Arc::new(Mutex::new(journal)),
            compaction: None,
            entries_override: compaction_entries_override(),
            retry_at: 0,
        })
    }

    /// Appends `count` journal lines and returns once they are on disk. The write and its flush run on this
    /// thread: the ACKs wait for it anyway, and a hop to another thread and back costs about as much as the write
    /// at low load. The server has a thread of its own ([`crate::own_thread`]), where this blocks nothing else;
    /// on a shared runtime [`crate::blocking::in_place`] hands the runtime's other tasks to another worker.
    pub(crate) fn append(&self, lines: &[u8], count: usize) -> Result<(), StoreError> {
        crate::blocking::in_place(|| self.journal.lock().unwrap_or_else(|p| p.into_inner()).append(lines, count))
    }

    /// Whether the journal is long enough for a table of `leases` to be written out again, and no compaction
    /// is running.
    pub(crate) fn compaction_due(&mut self, leases: usize) -> bool {
        let mut failed = false;
        if let Some(running) = &mut self.compaction {
            match running.try_recv() {
                Err(TryRecvError::Empty) => return false,
                Ok(Err(error)) => {
                    tracing::error!(
                        "writing the leases file failed (the journal keeps every lease; trying again later): {error}"
                    );
                    failed = true;
                }
                Ok(Ok(())) | Err(TryRecvError::Closed) => self.retry_at = 0,
            }
            self.compaction = None;
        }
        let entries = self.journal.lock().unwrap_or_else(|p| p.into_inner()).entries();
        let threshold = self.entries_override.unwrap_or(MIN_COMPACTION_ENTRIES.max(2 * leases));
        if failed {
            // Not again at every batch: the next try after as many changes again.
            self.retry_at = entries + threshold;
        }
        entries >= threshold && entries >= self.retry_at
    }

    /// Rotates the journal (unless an earlier compaction left its rotated journal behind, which this one then
    /// covers) and writes `records`, the whole table as of now, to `leases.json` in the background.
    pub(crate) async fn compact(&mut self, records: Vec<LeaseRecord>) -> Result<(), StoreError> {
        let rotated = journal::rotated_path(&journal_path(&self.perm));
        if !rotated.exists() {
            let journal = self.journal.clone();
            run_blocking(move || journal.lock().unwrap_or_else(|p| p.into_inner()).rotate().map(drop)).await?;
        }
        let leases = leases_path(&self.perm);
        let (done, finished) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let written = store::write_json(&leases, &records, Mode::Public).and_then(|()| journal::remove(&rotated));
            if written.is_ok() {
                tracing::info!("folded the lease journal into {} ({} leases)", leases.display(), records.len());
            }
            let _ = done.send(written);
        });
        self.compaction = Some(finished);
        Ok(())
    }

    /// Writes `records`, the whole table as of now, to `leases.json` and returns once it is on disk (the journal
    /// rotated first and the old one removed after, as in [`LeaseStore::compact`]).
    pub(crate) async fn write_file(&mut self, records: Vec<LeaseRecord>) -> Result<(), StoreError> {
        if let Some(running) = self.compaction.take() {
            let _ = running.await;
        }
        self.compact(records).await?;
        match self.compaction.take() {
            Some(running) => running.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// At a clean stop: waits for a running compaction, writes the whole table and removes the journals.
    pub(crate) async fn close(mut self, records: Vec<LeaseRecord>) -> Result<(), StoreError> {
        if let Some(running) = self.compaction.take() {
            let _ = running.await;
        }
        let perm = self.perm.clone();
        run_blocking(move || {
            store::write_json(&leases_path(&perm), &records, Mode::Public)?;
            journal::remove(&journal::rotated_path(&journal_path(&perm)))?;
            journal::remove(&journal_path(&perm))
        })
        .await
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|error| {
        Err(StoreError::Io { path: PathBuf::from("(lease writer)"), source: std::io::Error::other(error.to_string()) })
    })
}

#[cfg(test)]
mod tests {
    use std::{
        net::Ipv4Addr,
        time::{Duration, SystemTime},
    };

    use super::*;
    use crate::lan::dhcp4d::PoolConfig;

    fn server() -> Server {
        Server::new(PoolConfig::whole_subnet("lan0", Ipv4Addr::new(192, 0, 2, 1), 24).expect("pool"), [])
    }

    fn lease(mac: u8, addr: u8, name: &str) -> Lease {
        Lease {
            num: u32::from(addr) - 1,
            addr: Ipv4Addr::new(192, 0, 2, addr),
            hardware_addr: [2, 0, 0, 0, 3, mac],
            hostname: Some(name.into()),
            hostname_override: None,
            expiry: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            last_ack: None,
            interface: "lan0".into(),
        }
    }

    /// The journal lines for what changed in `server` since the last call, and how many, as the service makes
    /// them per batch.
    fn changed_lines(server: &mut Server) -> (Vec<u8>, usize) {
        let changes = server.take_changes();
        let mut lines = Vec::new();
        journal_lines(server, &changes.clients, &mut lines);
        (lines, changes.clients.len())
    }

    fn journal_changes(server: &mut Server, journal: &mut Journal) {
        let (lines, count) = changed_lines(server);
        journal.append(&lines, count).expect("append");
    }

    fn table(leases: &[Lease]) -> Vec<(Ipv4Addr, Mac, Option<String>)> {
        leases.iter().map(|l| (l.addr, l.hardware_addr, l.hostname.clone())).collect()
    }

    #[test]
    fn every_point_of_a_compaction_reloads_to_the_same_table() {
        let perm = tempfile::tempdir().expect("tempdir");
        let perm = perm.path();
        let mut server = server();
        server.put_lease(lease(1, 10, "one"));
        server.put_lease(lease(2, 11, "two"));
        server.take_changes();
        store::write_json(&leases_path(perm), &records(std::slice::from_ref(&server)), Mode::Public).expect("old");
        let mut journal = Journal::create(&journal_path(perm)).expect("journal");
        // Changes before the rotation: client 3 arrives, client 1 leaves, client 2 takes client 1's address.
        server.put_lease(lease(3, 12, "three"));
        server.remove_lease(&[2, 0, 0, 0, 3, 1]);
        server.put_lease(lease(2, 10, "two"));
        journal_changes(&mut server, &mut journal);
        let snapshot = records(std::slice::from_ref(&server));
        let rotated = journal.rotate().expect("rotate");
        // After it: client 3 renames itself, client 4 takes client 2's old address... which client 2 left.
        server.put_lease(lease(3, 12, "third"));
        server.put_lease(lease(4, 11, "four"));
        journal_changes(&mut server, &mut journal);
        let expected = table(&server.leases().iter().cloned().collect::<Vec<_>>());

        // The files at each point a crash can stop a compaction, copied aside and loaded.
        let old_file = std::fs::read(leases_path(perm)).expect("old file");
        let new_file = serde_json::to_vec_pretty(&snapshot).expect("JSON");
        let both = [std::fs::read(&rotated).expect("rotated"), std::fs::read(journal_path(perm)).expect("current")];
        let points: [(&str, &[u8], bool); 3] =
            [("rotated", &old_file, true), ("file written", &new_file, true), ("rotated removed", &new_file, false)];
        for (point, file, with_rotated) in points {
            let copy = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir_all(copy.path().join("dhcp4d")).expect("mkdir");
            std::fs::write(leases_path(copy.path()), file).expect("file");
            if with_rotated {
                std::fs::write(journal::rotated_path(&journal_path(copy.path())), &both[0]).expect("rotated");
            }
            std::fs::write(journal_path(copy.path()), &both[1]).expect("journal");
            let loaded = load(copy.path(), "lan0").expect("load");
            assert_eq!(table(&loaded), expected, "after a crash at {point:?}");
            // Folded in: router7's file holds it all, and no journal is left to replay again.
            assert_eq!(table(&read_file(copy.path(), "lan0")), expected, "{point}");
            assert!(!journal_path(copy.path()).exists() && !journal::rotated_path(&journal_path(copy.path())).exists());
        }
    }

    #[test]
    fn damaged_journal_lines_are_skipped_and_a_file_without_journal_is_left_as_it_is() {
        let perm = tempfile::tempdir().expect("tempdir");
        let perm = perm.path();
        std::fs::create_dir_all(perm.join("dhcp4d")).expect("mkdir");
        let by_hand = r#"[{"addr":"192.0.2.50","hardware_addr":"02:00:00:00:03:09","expiry":"0001-01-01T00:00:00Z"}]"#;
        std::fs::write(leases_path(perm), by_hand).expect("write");
        let loaded = load(perm, "lan0").expect("load");
        assert!(loaded.len() == 1 && loaded[0].is_static());
        assert_eq!(std::fs::read_to_string(leases_path(perm)).expect("read"), by_hand, "not rewritten");

        let journal = [
            r#"{"put":{"addr":"192.0.2.60","hardware_addr":"02:00:00:00:03:0a"}}"#,
            r#"{"put":{"addr":"not an address","hardware_addr":"02:00:00:00:03:0b"}}"#,
            r#"{"remove":{"hardware_addr":"junk","interface":"lan0"}}"#,
            "not JSON at all",
            r#"{"remove":{"hardware_addr":"02:00:00:00:03:09","interface":"lan0"}}"#,
            r#"{"put":{"addr":"192.0.2.61","hardware_"#,
        ]
        .join("\n");
        std::fs::write(journal_path(perm), journal).expect("journal");
        let loaded = load(perm, "lan0").expect("load");
        assert_eq!(loaded.iter().map(|l| l.addr).collect::<Vec<_>>(), [Ipv4Addr::new(192, 0, 2, 60)]);
        assert_eq!(read_file(perm, "lan0"), loaded);
    }

    #[tokio::test]
    async fn a_failed_compaction_keeps_the_journal_and_is_not_retried_at_every_batch() {
        let perm = tempfile::tempdir().expect("tempdir");
        let perm = perm.path();
        // leases.json cannot be written: a directory is in its place.
        std::fs::create_dir_all(leases_path(perm)).expect("mkdir");
        let mut server = server();
        let mut store = LeaseStore::open(perm).expect("open");
        store.entries_override = Some(2);
        let mut attempts = 0;
        for n in 1..=12u8 {
            server.put_lease(lease(n, 10 + n, "x"));
            let (lines, count) = changed_lines(&mut server);
            store.append(&lines, count).expect("the journal still takes changes");
            if store.compaction.is_some() {
                // Let the background write fail, so that every batch sees the outcome of the one before.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if store.compaction_due(server.leases().len()) {
                attempts += 1;
                store.compact(records(std::slice::from_ref(&server))).await.expect("rotation works");
            }
        }
        // Due from the 2nd batch on: 11 tries without the backoff, a try every 3 batches with it.
        assert_eq!(attempts, 4, "tries in 12 batches");
        std::fs::remove_dir(leases_path(perm)).expect("rmdir");
        assert_eq!(load(perm, "lan0").expect("load").len(), 12, "the journals kept every lease");
    }

    #[tokio::test]
    async fn the_store_journals_compacts_in_the_background_and_folds_at_close() {
        let perm = tempfile::tempdir().expect("tempdir");
        let perm = perm.path();
        let mut server = server();
        let mut store = LeaseStore::open(perm).expect("open");
        store.entries_override = Some(3);
        for n in 1..=4u8 {
            server.put_lease(lease(n, 10 + n, "x"));
            let (lines, count) = changed_lines(&mut server);
            store.append(&lines, count).expect("append");
            if store.compaction_due(server.leases().len()) {
                store.compact(records(std::slice::from_ref(&server))).await.expect("compact");
            }
        }
        let (current, _) = journal::read_lines(&journal_path(perm)).expect("read");
        assert_eq!(current.len(), 1, "the fourth change is in the new journal: {current:?}");
        store.close(records(std::slice::from_ref(&server))).await.expect("close");
        assert_eq!(read_file(perm, "lan0").len(), 4);
        assert!(!journal_path(perm).exists() && !journal::rotated_path(&journal_path(perm)).exists());
    }
}
