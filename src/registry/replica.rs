//! The registry as a mirror's copy of a primary's: the primary's change sets applied under the
//! primary's own sequence numbers, and a full copy loaded page by page when the mirror is
//! further behind than the primary's log reaches.
//!
//! A change set is applied, logged and its sequence number stored in one durable transaction,
//! and a set at or below the mirror's sequence number is skipped: a mirror killed at any moment
//! resumes from what it committed, and nothing is applied twice or lost. Because the mirror's
//! sequence number is the primary's, its zone serial is the primary's too, and its own
//! secondaries can be brought up to date from its log.
//!
//! A full copy (a "resync") overwrites the records page by page, in key order, deleting the
//! local records each page's key range does not hold; the sequence number is set only when the
//! last page is in (the copy is not one snapshot: the changes made at the primary while it ran
//! are applied from the log afterwards, which sets each record to its latest state). Until
//! then the META `resync` mark makes a restarted mirror start the copy again.

use redb::{Durability, ReadableTable};

use super::changes::{self, CHANGES, ChangeSet, FLOOR, LOG_ID};
use super::counts::add_count;
use super::{COUNTS, META, RECORDS, Registry, RegistryError, SERIAL};

/// In META while a full copy is being loaded (see the module docs).
const RESYNC: &str = "resync";

/// One page of a primary's records, in key order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RecordsPage {
    /// The primary's sequence number when the page was read, and whose sequence it is.
    pub seq: u64,
    pub log_id: u64,
    /// Registry keys and the records' stored bytes.
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether no record follows.
    pub last: bool,
}

impl Registry {
    /// Applies the primary's change sets in order, in one durable transaction; returns those it
    /// applied (a set at or below this registry's sequence number is skipped).
    pub fn replicate(&self, sets: Vec<(u64, ChangeSet)>) -> Result<Vec<ChangeSet>, RegistryError> {
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(true);
        let mut applied = Vec::new();
        let seq = {
            let mut records = txn.open_table(RECORDS)?;
            let mut counts = txn.open_table(COUNTS)?;
            let mut log = txn.open_table(CHANGES)?;
            let mut meta = txn.open_table(META)?;
            let mut seq = meta.get(SERIAL)?.map_or(0, |g| g.value());
            for (set_seq, set) in sets {
                if set_seq <= seq {
                    continue;
                }
                for change in &set.changes {
                    let existed = match &change.new {
                        Some(new) => records.insert(change.key.as_slice(), new.as_slice())?.is_some(),
                        None => records.remove(change.key.as_slice())?.is_some(),
                    };
                    match (existed, change.new.is_some()) {
                        (false, true) => add_count(&mut counts, &change.key, 1)?,
                        (true, false) => add_count(&mut counts, &change.key, -1)?,
                        _ => {}
                    }
                }
                let floor = changes::log(&mut log, set_seq, set.changes.clone(), self.log_window(), set.time)?;
                if let Some(floor) = floor {
                    meta.insert(FLOOR, floor)?;
                }
                seq = set_seq;
                applied.push(set);
            }
            meta.insert(SERIAL, seq)?;
            seq
        };
        // A mirror polls every few seconds: an answer with nothing new leaves the file alone.
        if applied.is_empty() {
            txn.abort()?;
            return Ok(applied);
        }
        self.commit(txn, Some(seq))?;
        Ok(applied)
    }

    /// Reads one page of at most `limit` records after the key `after` (from the first without
    /// it), for a mirror's full copy.
    pub fn records_page(&self, after: Option<&[u8]>, limit: usize) -> Result<RecordsPage, RegistryError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let view = self.log_view()?;
        let start = after.map_or(Unbounded, Excluded);
        let mut records = Vec::new();
        let mut range = view.records.table.range::<&[u8]>((start, Unbounded))?;
        for entry in range.by_ref().take(limit) {
            let (k, v) = entry?;
            records.push((k.value().to_vec(), v.value().to_vec()));
        }
        let last = range.next().is_none();
        Ok(RecordsPage { seq: view.seq, log_id: view.log_id, records, last })
    }

    /// Loads one page of a full copy: its records replace the local ones in its key range
    /// (after `after`, up to its last key, or to the end for the last page). Durable when it
    /// returns; marks the registry as in a resync until [`Registry::finish_resync`].
    pub fn load_page(&self, after: Option<&[u8]>, page: &RecordsPage) -> Result<(), RegistryError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(true);
        {
            let mut records = txn.open_table(RECORDS)?;
            let mut counts = txn.open_table(COUNTS)?;
            txn.open_table(META)?.insert(RESYNC, page.seq)?;
            let end = match (page.last, page.records.last()) {
                (false, Some((key, _))) => Included(key.as_slice()),
                _ => Unbounded,
            };
            let mut stale = Vec::new();
            let incoming: std::collections::HashSet<&[u8]> = page.records.iter().map(|(k, _)| k.as_slice()).collect();
            for entry in records.range::<&[u8]>((after.map_or(Unbounded, Excluded), end))? {
                let key = entry?.0.value().to_vec();
                if !incoming.contains(key.as_slice()) {
                    stale.push(key);
                }
            }
            for key in stale {
                records.remove(key.as_slice())?;
                add_count(&mut counts, &key, -1)?;
            }
            for (key, bytes) in &page.records {
                if records.insert(key.as_slice(), bytes.as_slice())?.is_none() {
                    add_count(&mut counts, key, 1)?;
                }
            }
        }
        self.commit(txn, None)?;
        Ok(())
    }

    /// Ends a full copy taken from the primary at sequence number `seq` of its sequence
    /// `log_id`: the registry is the primary's as of `seq`, and its log starts there.
    pub fn finish_resync(&self, seq: u64, log_id: u64) -> Result<(), RegistryError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate).map_err(|e| RegistryError::Storage(e.into()))?;
        txn.set_quick_repair(true);
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(SERIAL, seq)?;
            meta.insert(FLOOR, seq)?;
            meta.insert(LOG_ID, log_id)?;
            meta.remove(RESYNC)?;
            txn.open_table(CHANGES)?.retain(|_, _| false)?;
        }
        self.commit(txn, Some(seq))?;
        Ok(())
    }

    /// Whether a full copy was started and not finished.
    pub fn in_resync(&self) -> Result<bool, RegistryError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(META)?.get(RESYNC)?.is_some())
    }

    /// The number that names this registry's sequence of writes: its own, or on a mirror that
    /// has copied its primary, the primary's.
    pub fn log_id(&self) -> Result<u64, RegistryError> {
        Ok(self.log_view()?.log_id)
    }
}
