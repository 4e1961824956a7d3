//! The registry: every record of the node, durable, in one redb database.
//!
//! Records are keyed by [`Identifier::key`] (ASCII folded to lower case), so keys sort by prefix
//! and a prefix's identifiers form one key range: `88.100.1/...` lies between `88.100.1/` and
//! `88.100.10`. Prefix records (`0.NA/88.100.1`) are ordinary records in the same table.
//!
//! Writes have one primitive, [`Registry::transact`]: a closure reads and writes through a
//! [`WriteTxn`] and the transaction commits with [`redb::Durability::Immediate`] (an
//! fsync/fdatasync of the file), so a write that was acknowledged survives a crash or power
//! loss; a transaction that did not commit leaves nothing behind. The one variant is bulk
//! loading ([`Registry::bulk`], for import): the same transactions without the sync each, made
//! durable by a synced commit when the load says so and when it ends.
//!
//! Every write goes through [`WriteTxn::put`], which refuses a secret that was not sealed
//! ([`crate::secret`]). The registry knows nothing of protocols or permissions: the node core
//! ([`crate::node`]) decides writes and tells the caches in front of it.

mod bulk;
mod changes;
mod counts;
mod replica;
mod settle;
mod side;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::identifier::{Identifier, prefix_record_key};
use crate::record::{Record, RecordError};
use changes::{CHANGES, FLOOR, LOG_ID};
use counts::{Counts, count_all};

pub use bulk::Bulk;
pub use changes::{Change, ChangeSet, LogView, LogWindow, seq_of_serial};
pub use replica::RecordsPage;

const RECORDS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("records");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Identifiers per prefix (registry key form), kept in the transaction that creates or deletes
/// one, so that a listing's total costs one read instead of a walk over the prefix.
const COUNTS: TableDefinition<'_, &str, u64> = TableDefinition::new("counts");
/// The prefixes homed at run time (the Handle protocol's HOME_NA), beside the configured zones,
/// with the Unix time each was homed.
const HOMED: TableDefinition<'_, &str, u64> = TableDefinition::new("homed");
/// The resolution statistics of each day ([`crate::stats`]), by day since the Unix epoch, as
/// JSON.
const STATS: TableDefinition<'_, i64, &[u8]> = TableDefinition::new("stats");
/// Set in META once COUNTS holds every record (databases made before it are counted at open).
const COUNTED: &str = "counted";
/// 100,000: the deepest a listing may page by offset (`page * pageSize`); beyond it clients go
/// on from the last identifier they got (`after`), which costs one seek however deep.
pub const MAX_LIST_OFFSET: usize = 100_000;
/// The sequence number of the last committed write (see [`changes`]); the zone serial is its low
/// 32 bits. Named for the serial it was before the change log.
const SERIAL: &str = "serial";
/// 2000: the largest batch the vendor registration APIs accept (docs/handle-model.md, "Limits").
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
    #[error("{identifier}: value {index} is a secret key that was not sealed (hashed) before storing")]
    UnsealedSecret { identifier: String, index: u32 },
    #[error("stored record {key:?} cannot be read: {source}")]
    Corrupt { key: String, source: RecordError },
    #[error("change log entry {seq} cannot be read: {reason}")]
    CorruptLog { seq: u64, reason: String },
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

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Replaced,
    Deleted,
    /// A delete found nothing.
    Missing,
}

/// Reads records by registry key (see [`Identifier::key`]): a committed [`Snapshot`], or a
/// [`WriteTxn`]'s own view with its uncommitted changes, so that a decision taken inside a
/// write transaction sees exactly what it will change.
pub trait Reader {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, RegistryError>;
}

pub struct Registry {
    db: Database,
    /// The sequence number of the last committed write.
    seq: AtomicU64,
    /// The change log's window: writes kept, seconds kept.
    window: (AtomicU64, AtomicU64),
    /// The data directory the database file is in.
    dir: PathBuf,
    /// A commit was made since the last [`Registry::settle`].
    unsettled: AtomicBool,
}

impl Registry {
    /// Opens (or creates) the registry in `dir`, with redb's own page cache (1 GiB). Only one
    /// process may hold it.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        Self::open_with_cache(dir, None)
    }

    /// The data directory the registry is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// [`Registry::open`] with a page cache of `cache_bytes` (`[registry] cache_mb`).
    pub fn open_with_cache(dir: &Path, cache_bytes: Option<u64>) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(dir).map_err(|source| RegistryError::CreateDir { path: dir.to_owned(), source })?;
        let path = dir.join(DATABASE_FILE);
        let mut builder = Database::builder();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        // After an unclean stop redb checks the whole file before opening it; with quick-repair
        // (set on every synced commit) that is nearly instant, and a long check is shown.
        builder.set_repair_callback(|session| {
            tracing::warn!(
                progress = format!("{:.0}%", session.progress() * 100.0),
                "repairing the registry after an unclean stop"
            );
        });
        let db = builder.create(&path).map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => RegistryError::InUse { path: dir.to_owned() },
            source => RegistryError::Open { path: path.clone(), source },
        })?;
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
        let serial = {
            let records = txn.open_table(RECORDS)?;
            let mut counts = txn.open_table(COUNTS)?;
            let mut meta = txn.open_table(META)?;
            if meta.get(COUNTED)?.is_none() {
                count_all(&records, &mut counts)?;
                meta.insert(COUNTED, 1)?;
            }
            let seq = meta.get(SERIAL)?.map_or(1, |g| g.value());
            meta.insert(SERIAL, seq)?;
            // A database made before the change log: the log starts now.
            if meta.get(FLOOR)?.is_none() {
                meta.insert(FLOOR, seq)?;
            }
            if meta.get(LOG_ID)?.is_none() {
                meta.insert(LOG_ID, uuid::Uuid::new_v4().as_u64_pair().0)?;
            }
            txn.open_table(CHANGES)?;
            seq
        };
        txn.commit()?;
        let window = LogWindow::default();
        let window = (window.keep.into(), window.keep_secs.into());
        let unsettled = AtomicBool::new(true);
        Ok(Self { db, seq: AtomicU64::new(serial), window, dir: dir.to_owned(), unsettled })
    }

    /// The zone serial: the low 32 bits of the last write's sequence number.
    pub fn serial(&self) -> u32 {
        self.seq() as u32
    }

    /// The sequence number of the last committed write (see [`ChangeSet`]).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Sets how much of the change log is kept (the default is [`LogWindow::default`]).
    pub fn set_log_window(&self, window: LogWindow) {
        self.window.0.store(window.keep, Ordering::Relaxed);
        self.window.1.store(window.keep_secs, Ordering::Relaxed);
    }

    fn log_window(&self) -> LogWindow {
        LogWindow { keep: self.window.0.load(Ordering::Relaxed), keep_secs: self.window.1.load(Ordering::Relaxed) }
    }

    /// The record of `id` (matched ignoring ASCII case), as committed now.
    pub fn get(&self, id: &Identifier) -> Result<Option<Record>, RegistryError> {
        self.snapshot()?.get(id.key().as_bytes())
    }

    /// A consistent read view, for callers that look up several keys at once.
    pub fn snapshot(&self) -> Result<Snapshot, RegistryError> {
        let txn = self.db.begin_read()?;
        Ok(Snapshot { table: txn.open_table(RECORDS)? })
    }

    /// The records and the change log as of one commit, with that commit's sequence number and
    /// the log's floor: what a zone transfer or a mirror reads from.
    pub fn log_view(&self) -> Result<LogView, RegistryError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let seq = meta.get(SERIAL)?.map_or(0, |g| g.value());
        let floor = meta.get(FLOOR)?.map_or(seq, |g| g.value());
        let log_id = meta.get(LOG_ID)?.map_or(0, |g| g.value());
        let records = Snapshot { table: txn.open_table(RECORDS)? };
        Ok(LogView::new(records, txn.open_table(CHANGES)?, seq, floor, log_id))
    }

    /// How many records the registry holds, prefix records included.
    pub fn len(&self) -> Result<u64, RegistryError> {
        Ok(self.snapshot()?.table.len()?)
    }

    /// Whether the registry holds no record at all.
    pub fn is_empty(&self) -> Result<bool, RegistryError> {
        Ok(self.len()? == 0)
    }

    /// Starts a bulk load: transactions that commit without syncing, made durable together.
    pub fn bulk(&self) -> Bulk<'_> {
        Bulk { registry: self, synced: true }
    }

    /// Runs `f` in one write transaction and commits it durably: `f` reads through the
    /// transaction (its [`Reader`] view includes its own changes) and writes through it. An
    /// error from `f` aborts the transaction, leaving nothing written. Writers run one at a
    /// time, so what `f` decides from its reads still holds when it commits.
    pub fn transact<T, E: From<RegistryError>>(
        &self,
        f: impl FnOnce(&mut WriteTxn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.write(Durability::Immediate, f)
    }

    /// Runs `f` in one write transaction and commits with `durability`; an error from `f` aborts
    /// the transaction (dropping it rolls back), leaving nothing written. A transaction that
    /// changed records takes the next sequence number; a synced one logs its changes, a bulk
    /// one moves the log's floor past itself.
    fn write<T, E: From<RegistryError>>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut WriteTxn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut txn = self.db.begin_write().map_err(RegistryError::from)?;
        txn.set_durability(durability).map_err(|e| RegistryError::Storage(e.into()))?;
        // Quick-repair saves the allocator state with each synced commit, so that opening the
        // file after a crash does not walk all of it (minutes at tens of gigabytes).
        txn.set_quick_repair(matches!(durability, Durability::Immediate));
        let logged = matches!(durability, Durability::Immediate);
        let (out, seq) = {
            let mut w = WriteTxn {
                table: txn.open_table(RECORDS).map_err(RegistryError::from)?,
                counts: Counts::new(txn.open_table(COUNTS).map_err(RegistryError::from)?),
                log: Vec::new(),
                changed: false,
                logged,
            };
            let out = f(&mut w)?;
            w.counts.flush()?;
            let (changed, log) = (w.changed, std::mem::take(&mut w.log));
            drop(w);
            (out, if changed { Some(self.next_seq(&txn, log, logged)?) } else { None })
        };
        // With Durability::Immediate, commit returns only after the file is synced: what is
        // acknowledged survives power loss.
        self.commit(txn, seq)?;
        Ok(out)
    }

    /// Takes the next sequence number in `txn` and logs `log` under it (`logged`), or moves the
    /// log's floor to it (a bulk load).
    fn next_seq(&self, txn: &redb::WriteTransaction, log: Vec<Change>, logged: bool) -> Result<u64, RegistryError> {
        let mut meta = txn.open_table(META)?;
        let seq = meta.get(SERIAL)?.map_or(0, |g| g.value()) + 1;
        meta.insert(SERIAL, seq)?;
        let floor = match logged {
            true => {
                changes::log(&mut txn.open_table(CHANGES)?, seq, log, self.log_window(), crate::record::unix_now())?
            }
            false => Some(seq),
        };
        if let Some(floor) = floor {
            meta.insert(FLOOR, floor)?;
        }
        Ok(seq)
    }

    /// Identifiers registered under `prefix` (not its sub-prefixes), in key order: `limit` of
    /// them after skipping `skip` (at most [`MAX_LIST_OFFSET`]), or with `after`, those that
    /// follow that identifier.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<String>, RegistryError> {
        let start = format!("{}/", prefix.to_ascii_lowercase());
        let snapshot = self.snapshot()?;
        let mut out = Vec::with_capacity(limit.min(1024));
        let from = after.map_or_else(|| start.clone(), str::to_ascii_lowercase);
        let range = match after {
            Some(_) => snapshot
                .table
                .range::<&[u8]>((std::ops::Bound::Excluded(from.as_bytes()), std::ops::Bound::Unbounded))?,
            None => snapshot.table.range(from.as_bytes()..)?,
        };
        for entry in range.skip(skip.min(MAX_LIST_OFFSET)) {
            let (k, v) = entry?;
            if !k.value().starts_with(start.as_bytes()) || out.len() == limit {
                break;
            }
            out.push(decode_key(k.value(), v.value())?.identifier.to_string());
        }
        Ok(out)
    }

    /// Prefixes derived from `prefix` (`88.100.1`, `88.100.1.5` under `88.100`) that have a
    /// prefix record, in key order, one page.
    pub fn list_derived(&self, prefix: &str, page: usize, page_size: usize) -> Result<Vec<String>, RegistryError> {
        let start = format!("{}.", prefix_record_key(prefix));
        let snapshot = self.snapshot()?;
        let mut out = Vec::new();
        for entry in snapshot.table.range(start.as_bytes()..)?.skip(page.saturating_mul(page_size)) {
            let (k, v) = entry?;
            if !k.value().starts_with(start.as_bytes()) || out.len() == page_size {
                break;
            }
            let record = decode_key(k.value(), v.value())?;
            out.push(record.identifier.suffix().to_owned());
        }
        Ok(out)
    }

    /// Prefix records of the prefixes derived from `prefix` (all of them for `""`), in key
    /// order: at most `limit`, those whose key follows `after` (a registry key, see
    /// [`prefix_record_key`]) when it is given. What the status page pages through for
    /// delegations.
    pub fn prefix_records(
        &self,
        prefix: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, RegistryError> {
        let start = match prefix {
            "" => format!("{}/", crate::identifier::PREFIX_AUTHORITY.to_ascii_lowercase()),
            prefix => format!("{}.", prefix_record_key(prefix)),
        };
        let snapshot = self.snapshot()?;
        let range = match after {
            Some(after) => {
                snapshot.table.range::<&[u8]>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))?
            }
            None => snapshot.table.range(start.as_bytes()..)?,
        };
        let mut out = Vec::new();
        for entry in range {
            let (k, v) = entry?;
            if !k.value().starts_with(start.as_bytes()) || out.len() == limit {
                break;
            }
            out.push(decode_key(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// How many identifiers are registered under `prefix` (not its sub-prefixes): one read.
    pub fn count_under(&self, prefix: &str) -> Result<u64, RegistryError> {
        let txn = self.db.begin_read()?;
        let counts = txn.open_table(COUNTS)?;
        Ok(counts.get(prefix.to_ascii_lowercase().as_str())?.map_or(0, |g| g.value()))
    }

    /// Calls `f` with every record in key order (for export), from one consistent snapshot; stops
    /// at the first error, of the registry or of `f`, and returns it.
    pub fn for_each<E: From<RegistryError>>(&self, mut f: impl FnMut(Record) -> Result<(), E>) -> Result<(), E> {
        let snapshot = self.snapshot()?;
        for entry in snapshot.table.range::<&[u8]>(..).map_err(RegistryError::from)? {
            let (k, v) = entry.map_err(RegistryError::from)?;
            f(decode_key(k.value(), v.value())?)?;
        }
        Ok(())
    }
}

/// A read transaction over the records table.
pub struct Snapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Reader for Snapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, RegistryError> {
        match self.table.get(key)? {
            Some(v) => Ok(Some(decode_key(key, v.value())?)),
            None => Ok(None),
        }
    }
}

impl Snapshot {
    /// The record stored under a registry key (see [`Identifier::key`]).
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>, RegistryError> {
        Reader::get(self, key)
    }

    /// The records whose keys lie from `start` up to `end` (to the last without `end`), in key
    /// order.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<impl Iterator<Item = Result<Record, RegistryError>> + '_, RegistryError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let range = self.table.range::<&[u8]>((Included(start), end.map_or(Unbounded, Excluded)))?;
        Ok(range.map(|entry| {
            let (k, v) = entry?;
            decode_key(k.value(), v.value())
        }))
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

/// An open write transaction of [`Registry::transact`].
pub struct WriteTxn<'a> {
    table: redb::Table<'a, &'static [u8], &'static [u8]>,
    counts: Counts<'a>,
    /// What it changed, for the change log (when `logged`).
    log: Vec<Change>,
    changed: bool,
    logged: bool,
}

impl Reader for WriteTxn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, RegistryError> {
        match self.table.get(key)? {
            Some(v) => Ok(Some(decode_key(key, v.value())?)),
            None => Ok(None),
        }
    }
}

impl WriteTxn<'_> {
    /// Writes `record` unless its identifier differs only in case from a registered one, or
    /// exists and `if_absent` is set. Every `HS_SECKEY` value must already be sealed
    /// ([`crate::secret`]): a plain secret is refused, never stored. Returns whether the record
    /// was created or replaced.
    pub fn put(&mut self, record: &Record, if_absent: bool) -> Result<Applied, RegistryError> {
        if let Some(v) = record.values.iter().find(|v| !crate::secret::is_sealed(v)) {
            return Err(RegistryError::UnsealedSecret { identifier: record.identifier.to_string(), index: v.index });
        }
        let key = record.identifier.key();
        self.put_stored(key.as_bytes(), record.identifier.as_str(), &record.encode(), if_absent)
    }

    /// [`WriteTxn::put`] of a record already in its stored form (`bytes`, under `key`, for
    /// `identifier`), whose secrets the caller has checked are sealed: the bulk load's sort
    /// encodes each record once, as it reads it.
    pub fn put_stored(
        &mut self,
        key: &[u8],
        identifier: &str,
        bytes: &[u8],
        if_absent: bool,
    ) -> Result<Applied, RegistryError> {
        // Inserted first and put back when refused: one walk of the B-tree for a new record (the
        // case of every import) instead of a lookup and then an insert.
        let Some(old) = self.table.insert(key, bytes)?.map(|old| old.value().to_vec()) else {
            self.counts.add(key, 1)?;
            self.inserted(key, bytes, None);
            return Ok(Applied::Created);
        };
        let refused = match decode_key(key, &old).map(|record| record.identifier) {
            Err(corrupt) => corrupt,
            Ok(existing) if existing.as_str() != identifier => RegistryError::CaseConflict {
                position: 0,
                identifier: identifier.to_owned(),
                existing: existing.to_string(),
            },
            Ok(existing) if if_absent => RegistryError::AlreadyExists { position: 0, identifier: existing.to_string() },
            Ok(_) => {
                self.inserted(key, bytes, Some(old));
                return Ok(Applied::Replaced);
            }
        };
        self.table.insert(key, old.as_slice())?;
        Err(refused)
    }

    /// Notes that `new` replaced `old` under `key`.
    fn inserted(&mut self, key: &[u8], new: &[u8], old: Option<Vec<u8>>) {
        self.changed = true;
        if self.logged {
            self.log.push(Change { key: key.to_vec(), old, new: Some(new.to_vec()) });
        }
    }

    /// How many identifiers are registered under `prefix` (not its sub-prefixes), as this
    /// transaction sees it: one read of the counts it keeps.
    pub fn count_under(&self, prefix: &str) -> Result<u64, RegistryError> {
        self.counts.get(&prefix.to_ascii_lowercase())
    }

    /// How many derived prefixes directly under `prefix` (`88.100.1` under `88.100`, not
    /// `88.100.1.5`) have a prefix record, counting to `at_most`: one seek per prefix found and
    /// per sub-prefix with records only below it, whose records are skipped, never walked.
    pub fn count_derived(&self, prefix: &str, at_most: u64) -> Result<u64, RegistryError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = format!("{}.", prefix_record_key(prefix)).into_bytes();
        let (mut from, mut found) = (Included(start.clone()), 0);
        while found < at_most {
            let bounds = (from.as_ref().map(Vec::as_slice), Unbounded);
            let Some(entry) = self.table.range::<&[u8]>(bounds)?.next() else { break };
            let key = entry?.0.value().to_vec();
            let Some(rest) = key.strip_prefix(start.as_slice()) else { break };
            // `88.100.1-x` sorts between `88.100.1` and `88.100.1.5`: go on right after a prefix
            // found; below one, skip past `88.100.1.` and `88.100.1/` (`0` is the byte after `/`).
            from = match rest.iter().position(|b| *b == b'.' || *b == b'/') {
                None => {
                    found += 1;
                    Excluded(key)
                }
                Some(end) => Included([&key[..start.len() + end], b"0"].concat()),
            };
        }
        Ok(found)
    }

    /// Deletes the record under a registry key; returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, RegistryError> {
        let Some(old) = self.table.remove(key)?.map(|old| old.value().to_vec()) else {
            return Ok(false);
        };
        self.counts.add(key, -1)?;
        self.changed = true;
        if self.logged {
            self.log.push(Change { key: key.to_vec(), old: Some(old), new: None });
        }
        Ok(true)
    }
}

impl RegistryError {
    /// The error of the change at `position` of a batch.
    pub fn at(self, position: usize) -> Self {
        match self {
            Self::CaseConflict { identifier, existing, .. } => Self::CaseConflict { position, identifier, existing },
            Self::AlreadyExists { identifier, .. } => Self::AlreadyExists { position, identifier },
            e => e,
        }
    }
}

fn decode_key(key: &[u8], bytes: &[u8]) -> Result<Record, RegistryError> {
    Record::decode(key, bytes)
        .map_err(|source| RegistryError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), source })
}

#[cfg(test)]
mod tests;
