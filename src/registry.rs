//! The registry: every record of the node, durable, in one redb database.
//!
//! Records are keyed by [`Identifier::key`] (ASCII folded to lower case), so keys sort by prefix
//! and a prefix's identifiers form one key range: `88.100.1/...` lies between `88.100.1/` and
//! `88.100.10`. Prefix records (`0.NA/88.100.1`) are ordinary records in the same table.
//!
//! Durability contract: `put`, `put_batch` and `delete` return only after their transaction is
//! committed with [`redb::Durability::Immediate`] (an fsync/fdatasync of the file), so a write
//! that was acknowledged survives a crash or power loss; a transaction that did not commit
//! leaves nothing behind. The one exception is bulk import, which writes its batches with
//! `put_batch_unsynced` and makes them durable with one `sync` at the end.
//!
//! The registry knows nothing of protocols: callers that cache answers invalidate them after a
//! write returns.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::identifier::Identifier;
use crate::record::{Record, RecordError};

const RECORDS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The zone serial: bumped by every committed write (RFC 1982 arithmetic lets it wrap).
const SERIAL: &str = "serial";
/// 2000: the largest batch the vendor registration APIs accept (DOMAIN.md).
pub const MAX_BATCH: usize = 2000;
pub const DATABASE_FILE: &str = "registry.redb";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "the data directory {} is in use by another idnode process (stop the server using it, or pass another --data)",
        .path.display()
    )]
    InUse { path: PathBuf },
    #[error("cannot open the registry at {}: {source}", .path.display())]
    Open { path: PathBuf, source: redb::DatabaseError },
    #[error("cannot create the data directory {}: {source}", .path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("storage: {0}")]
    Storage(#[from] redb::Error),
    #[error("record {position} of the batch: {identifier} differs only in case from the registered {existing}")]
    CaseConflict { position: usize, identifier: String, existing: String },
    #[error("record {position} of the batch: {identifier} already exists")]
    AlreadyExists { position: usize, identifier: String },
    /// An update's closure refused the change; its own error is returned instead.
    #[error("the update was refused")]
    Aborted,
    #[error("the batch holds {count} records; at most {max} are allowed")]
    BatchTooLarge { count: usize, max: usize },
    #[error("stored record {key:?} cannot be read: {source}")]
    Corrupt { key: String, source: RecordError },
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for RegistryError {
            fn from(e: $t) -> Self {
                Self::Storage(e.into())
            }
        }
    )*};
}
storage_from!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// One change of a batch.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace; with `if_absent`, refuse to replace.
    Put { record: Record, if_absent: bool },
    /// Delete the record under a registry key.
    Delete { key: String },
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Replaced,
    Deleted,
    /// A delete found nothing.
    Missing,
}

/// What [`Registry::update`] writes.
#[derive(Debug)]
pub enum Update {
    Put(Record),
    Delete,
    Keep,
}

pub struct Registry {
    db: Database,
    serial: AtomicU32,
}

impl Registry {
    /// Opens (or creates) the registry in `dir`. Only one process may hold it.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(dir).map_err(|source| RegistryError::CreateDir { path: dir.to_owned(), source })?;
        let path = dir.join(DATABASE_FILE);
        let db = Database::create(&path).map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => RegistryError::InUse { path: dir.to_owned() },
            source => RegistryError::Open { path: path.clone(), source },
        })?;
        let txn = db.begin_write()?;
        let serial = {
            txn.open_table(RECORDS)?;
            let mut meta = txn.open_table(META)?;
            let serial = meta.get(SERIAL)?.map(|g| g.value());
            match serial {
                Some(s) => s,
                None => {
                    meta.insert(SERIAL, 1)?;
                    1
                }
            }
        };
        txn.commit()?;
        Ok(Self { db, serial: AtomicU32::new(serial as u32) })
    }

    /// The zone serial; it changes with every committed write.
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Acquire)
    }

    pub fn get(&self, id: &Identifier) -> Result<Option<Record>, RegistryError> {
        self.snapshot()?.get(id.key().as_bytes())
    }

    /// A consistent read view, for callers that look up several keys at once.
    pub fn snapshot(&self) -> Result<Snapshot, RegistryError> {
        let txn = self.db.begin_read()?;
        Ok(Snapshot { table: txn.open_table(RECORDS)? })
    }

    pub fn len(&self) -> Result<u64, RegistryError> {
        Ok(self.snapshot()?.table.len()?)
    }

    pub fn is_empty(&self) -> Result<bool, RegistryError> {
        Ok(self.len()? == 0)
    }

    /// Creates or replaces one record; durable when it returns.
    pub fn put(&self, record: &Record) -> Result<(), RegistryError> {
        self.put_batch(std::slice::from_ref(record))
    }

    /// Creates or replaces up to [`MAX_BATCH`] records in one transaction: all or none.
    ///
    /// A record whose identifier differs only in ASCII case from a registered one is refused
    /// (and with it the batch), as Handle.Net refuses it.
    pub fn put_batch(&self, records: &[Record]) -> Result<(), RegistryError> {
        self.put_batch_with(records, Durability::Immediate)
    }

    /// [`Registry::put_batch`] without the sync: the batch is visible at once but durable only
    /// after the next synced commit ([`Registry::sync`]); a crash before that loses it whole.
    /// For bulk imports, which sync at the end.
    pub fn put_batch_unsynced(&self, records: &[Record]) -> Result<(), RegistryError> {
        self.put_batch_with(records, Durability::None)
    }

    /// Makes every earlier unsynced commit durable: one synced (empty) commit.
    pub fn sync(&self) -> Result<(), RegistryError> {
        self.write(Durability::Immediate, |_| Ok(()))
    }

    fn put_batch_with(&self, records: &[Record], durability: Durability) -> Result<(), RegistryError> {
        if records.len() > MAX_BATCH {
            return Err(RegistryError::BatchTooLarge { count: records.len(), max: MAX_BATCH });
        }
        self.write(durability, |table| {
            for (position, record) in records.iter().enumerate() {
                put(table, position, record, false)?;
            }
            Ok(())
        })
    }

    /// Applies up to [`MAX_BATCH`] changes in one transaction: all or none. The error of a
    /// refused change names its position.
    pub fn apply(&self, changes: &[Change]) -> Result<Vec<Applied>, RegistryError> {
        if changes.len() > MAX_BATCH {
            return Err(RegistryError::BatchTooLarge { count: changes.len(), max: MAX_BATCH });
        }
        self.write(Durability::Immediate, |table| {
            let mut out = Vec::with_capacity(changes.len());
            for (position, change) in changes.iter().enumerate() {
                out.push(match change {
                    Change::Put { record, if_absent } => put(table, position, record, *if_absent)?,
                    Change::Delete { key } => match table.remove(key.as_bytes())? {
                        Some(_) => Applied::Deleted,
                        None => Applied::Missing,
                    },
                });
            }
            Ok(out)
        })
    }

    /// Reads the record under `key`, lets `f` decide what becomes of it, and writes that in
    /// the same transaction, so concurrent read-modify-writes cannot lose each other's changes.
    /// An error from `f` leaves the record as it was.
    pub fn update<T, E: From<RegistryError>>(
        &self,
        key: &str,
        f: impl FnOnce(Option<Record>) -> Result<(Update, T), E>,
    ) -> Result<T, E> {
        let mut outcome = None;
        let result = self.write(Durability::Immediate, |table| {
            let current = match table.get(key.as_bytes())? {
                Some(v) => Some(decode(key, v.value())?),
                None => None,
            };
            match f(current) {
                Ok((update, t)) => {
                    match update {
                        Update::Put(record) => {
                            table.insert(key.as_bytes(), record.encode().as_slice())?;
                        }
                        Update::Delete => {
                            table.remove(key.as_bytes())?;
                        }
                        Update::Keep => {}
                    }
                    outcome = Some(Ok(t));
                    Ok(())
                }
                Err(e) => {
                    outcome = Some(Err(e));
                    Err(RegistryError::Aborted)
                }
            }
        });
        match (result, outcome) {
            (Ok(()), Some(out)) | (Err(RegistryError::Aborted), Some(out @ Err(_))) => out,
            (Err(e), _) => Err(e.into()),
            (Ok(()), None) => unreachable!("write ran the closure"),
        }
    }

    /// Deletes a record; returns whether it existed. Durable when it returns.
    pub fn delete(&self, id: &Identifier) -> Result<bool, RegistryError> {
        self.write(Durability::Immediate, |table| Ok(table.remove(id.key().as_bytes())?.is_some()))
    }

    /// Runs `f` in one write transaction, bumps the serial and commits with `durability`; an
    /// error from `f` aborts the transaction, leaving nothing written.
    fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut redb::Table<'_, &[u8], &[u8]>) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability).map_err(|e| RegistryError::Storage(e.into()))?;
        let (out, serial) = {
            let mut table = txn.open_table(RECORDS)?;
            let out = f(&mut table)?;
            let mut meta = txn.open_table(META)?;
            let serial = meta.get(SERIAL)?.map_or(0, |g| g.value()).wrapping_add(1) & 0xffff_ffff;
            meta.insert(SERIAL, serial)?;
            (out, serial)
        };
        // With Durability::Immediate, commit returns only after the file is synced: what is
        // acknowledged survives power loss.
        txn.commit()?;
        self.serial.store(serial as u32, Ordering::Release);
        Ok(out)
    }

    /// Identifiers registered under `prefix` (not its sub-prefixes), in key order, one page.
    pub fn list(&self, prefix: &str, page: usize, page_size: usize) -> Result<Vec<String>, RegistryError> {
        let start = format!("{}/", prefix.to_ascii_lowercase());
        let snapshot = self.snapshot()?;
        let mut out = Vec::with_capacity(page_size.min(1024));
        for entry in snapshot.table.range(start.as_bytes()..)?.skip(page.saturating_mul(page_size)) {
            let (k, v) = entry?;
            if !k.value().starts_with(start.as_bytes()) || out.len() == page_size {
                break;
            }
            out.push(decode_key(k.value(), v.value())?.identifier);
        }
        Ok(out)
    }

    /// Prefixes derived from `prefix` (`88.100.1`, `88.100.1.5` under `88.100`) that have a
    /// prefix record, in key order, one page.
    pub fn list_derived(&self, prefix: &str, page: usize, page_size: usize) -> Result<Vec<String>, RegistryError> {
        let start = format!("{}.", crate::auth::prefix_record_key(prefix));
        let snapshot = self.snapshot()?;
        let mut out = Vec::new();
        for entry in snapshot.table.range(start.as_bytes()..)?.skip(page.saturating_mul(page_size)) {
            let (k, v) = entry?;
            if !k.value().starts_with(start.as_bytes()) || out.len() == page_size {
                break;
            }
            let record = decode_key(k.value(), v.value())?;
            out.push(record.identifier.split_once('/').map_or(record.identifier.clone(), |(_, p)| p.to_owned()));
        }
        Ok(out)
    }

    /// How many identifiers are registered under `prefix` (not its sub-prefixes). It walks the
    /// key range, so it costs time in proportion to the count.
    pub fn count_under(&self, prefix: &str) -> Result<u64, RegistryError> {
        let start = format!("{}/", prefix.to_ascii_lowercase());
        let snapshot = self.snapshot()?;
        let mut count = 0;
        for entry in snapshot.table.range(start.as_bytes()..)? {
            if !entry?.0.value().starts_with(start.as_bytes()) {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    /// Calls `f` with every record in key order (for export), from one consistent snapshot.
    pub fn for_each(&self, mut f: impl FnMut(Record) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let snapshot = self.snapshot()?;
        for entry in snapshot.table.range::<&[u8]>(..)? {
            let (k, v) = entry?;
            f(decode_key(k.value(), v.value())?)?;
        }
        Ok(())
    }
}

/// A read transaction over the records table.
pub struct Snapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Snapshot {
    /// The record stored under a registry key (see [`Identifier::key`]).
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>, RegistryError> {
        match self.table.get(key)? {
            Some(v) => Ok(Some(decode_key(key, v.value())?)),
            None => Ok(None),
        }
    }

    /// Whether some key begins with `start`; with `or_start`, whether some key begins with
    /// either. `or_start` must sort after `start` with nothing that begins with neither between
    /// them (`88.100.1.` then `88.100.1/`), so one seek answers both.
    pub fn has_key_starting_with(&self, start: &[u8], or_start: Option<&[u8]>) -> Result<bool, RegistryError> {
        let Some(first) = self.table.range(start..)?.next() else {
            return Ok(false);
        };
        let key = first?.0;
        let key = key.value();
        Ok(key.starts_with(start) || or_start.is_some_and(|o| key.starts_with(o)))
    }
}

/// Writes `record` (the change at `position` of a batch) unless its identifier differs only in
/// case from a registered one, or exists and `if_absent` is set.
fn put(
    table: &mut redb::Table<'_, &[u8], &[u8]>,
    position: usize,
    record: &Record,
    if_absent: bool,
) -> Result<Applied, RegistryError> {
    let key = record.identifier.to_ascii_lowercase();
    let existing = match table.get(key.as_bytes())? {
        Some(old) => Some(decode(&key, old.value())?.identifier),
        None => None,
    };
    match existing {
        Some(existing) if existing != record.identifier => {
            Err(RegistryError::CaseConflict { position, identifier: record.identifier.clone(), existing })
        }
        Some(existing) if if_absent => Err(RegistryError::AlreadyExists { position, identifier: existing }),
        existing => {
            table.insert(key.as_bytes(), record.encode().as_slice())?;
            Ok(if existing.is_some() { Applied::Replaced } else { Applied::Created })
        }
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Record, RegistryError> {
    Record::decode(bytes).map_err(|source| RegistryError::Corrupt { key: key.to_owned(), source })
}

fn decode_key(key: &[u8], bytes: &[u8]) -> Result<Record, RegistryError> {
    decode(&String::from_utf8_lossy(key), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;

    fn record(id: &str) -> Record {
        Record::new(&Identifier::parse(id).unwrap(), vec![Value::new(1, "URL", format!("https://x/{id}"), 0)]).unwrap()
    }

    #[test]
    fn put_get_delete_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identifier::parse("88.100.1/ABC").unwrap();
        {
            let reg = Registry::open(dir.path()).unwrap();
            reg.put(&record("88.100.1/ABC")).unwrap();
            assert_eq!(
                reg.get(&Identifier::parse("88.100.1/abc").unwrap()).unwrap().unwrap().identifier,
                "88.100.1/ABC"
            );
        }
        let reg = Registry::open(dir.path()).unwrap();
        assert!(reg.get(&id).unwrap().is_some());
        assert!(reg.delete(&id).unwrap());
        assert!(!reg.delete(&id).unwrap());
        assert!(reg.get(&id).unwrap().is_none());
    }

    #[test]
    fn second_open_reports_the_directory_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Registry::open(dir.path()).unwrap();
        let err = Registry::open(dir.path()).err().unwrap();
        assert!(matches!(err, RegistryError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("in use by another idnode process"));
    }

    #[test]
    fn case_variant_is_refused_and_aborts_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        reg.put(&record("88/ABC")).unwrap();
        reg.put(&record("88/ABC")).unwrap(); // same case: replace
        let err = reg.put_batch(&[record("88/new"), record("88/abc")]).unwrap_err();
        assert!(matches!(err, RegistryError::CaseConflict { position: 1, .. }), "{err}");
        assert!(reg.get(&Identifier::parse("88/new").unwrap()).unwrap().is_none(), "batch rolled back");
    }

    #[test]
    fn batch_limit_and_serial() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let s0 = reg.serial();
        let batch: Vec<_> = (0..MAX_BATCH).map(|i| record(&format!("88/{i}"))).collect();
        reg.put_batch(&batch).unwrap();
        assert_eq!(reg.len().unwrap(), MAX_BATCH as u64);
        assert_eq!(reg.serial(), s0 + 1);
        let too_many: Vec<_> = (0..=MAX_BATCH).map(|i| record(&format!("89/{i}"))).collect();
        assert!(matches!(reg.put_batch(&too_many), Err(RegistryError::BatchTooLarge { count: 2001, .. })));
        assert_eq!(reg.len().unwrap(), MAX_BATCH as u64);
    }

    #[test]
    fn update_is_atomic_and_an_error_leaves_the_record_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        reg.put(&record("88/a")).unwrap();
        let serial = reg.serial();
        let err: Result<(), RegistryError> =
            reg.update("88/a", |_| Err(RegistryError::BatchTooLarge { count: 0, max: 0 }));
        assert!(matches!(err, Err(RegistryError::BatchTooLarge { .. })), "the closure's own error comes back");
        assert_eq!(reg.serial(), serial, "nothing was committed");
        assert_eq!(reg.get(&Identifier::parse("88/a").unwrap()).unwrap(), Some(record("88/a")));
        let seen = reg
            .update::<_, RegistryError>("88/a", |current| Ok((Update::Delete, current.map(|r| r.identifier))))
            .unwrap();
        assert_eq!(seen.as_deref(), Some("88/a"));
        assert!(reg.get(&Identifier::parse("88/a").unwrap()).unwrap().is_none());
    }

    #[test]
    fn apply_mixes_puts_and_deletes_and_rolls_back_on_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        reg.put(&record("88/old")).unwrap();
        let applied = reg
            .apply(&[
                Change::Put { record: record("88/new"), if_absent: true },
                Change::Delete { key: "88/old".into() },
                Change::Delete { key: "88/none".into() },
            ])
            .unwrap();
        assert_eq!(applied, [Applied::Created, Applied::Deleted, Applied::Missing]);
        let err = reg
            .apply(&[
                Change::Put { record: record("88/other"), if_absent: true },
                Change::Put { record: record("88/new"), if_absent: true },
            ])
            .unwrap_err();
        assert!(matches!(err, RegistryError::AlreadyExists { position: 1, .. }), "{err}");
        assert!(reg.get(&Identifier::parse("88/other").unwrap()).unwrap().is_none(), "rolled back");
    }

    #[test]
    fn list_pages_stay_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let ids = ["88.100.1/a", "88.100.1/B", "88.100.1/c", "88.100.10/x", "88.100.1.5/y", "88.100/z"];
        reg.put_batch(&ids.map(record)).unwrap();
        assert_eq!(reg.list("88.100.1", 0, 2).unwrap(), ["88.100.1/a", "88.100.1/B"]);
        assert_eq!(reg.list("88.100.1", 1, 2).unwrap(), ["88.100.1/c"]);
        assert!(reg.list("88.100.1", 2, 2).unwrap().is_empty());
        let snap = reg.snapshot().unwrap();
        assert!(snap.has_key_starting_with(b"88.100.1.", Some(b"88.100.1/")).unwrap());
        assert!(snap.has_key_starting_with(b"88.100.1.5.", Some(b"88.100.1.5/")).unwrap());
        assert!(!snap.has_key_starting_with(b"88.100.2.", Some(b"88.100.2/")).unwrap());
        assert!(!snap.has_key_starting_with(b"88.100.1/d", None).unwrap());
    }
}
