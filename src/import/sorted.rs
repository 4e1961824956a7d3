//! The sort under every bulk load: records are gathered in memory, sorted by registry key, spilled
//! to temporary files beside the registry when they outgrow [`SORT_BUFFER`], and written to the
//! registry in one pass in key order.
//!
//! Why sort: redb is a B-tree, and it packs its leaves full only when keys arrive in order. Rows
//! in file order (registrations interleaved across enterprise prefixes, as every generator and
//! most dumps write them) land in the middle of the tree, where each full leaf splits in half:
//! measured on 1,000,000 generated identifiers, 324 MB on disk in file order against 182 MB in
//! key order, the same records. And once the registry is larger than memory, an insert in the
//! middle reads a random page, where an insert in order appends to the pages just written.
//!
//! The temporary files are created unlinked ([`tempfile::tempfile_in`]), so a crash leaves
//! nothing behind; the records they held are simply not stored, and the import is run again.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use crate::record::Record;
use crate::registry::{Bulk, RegistryError};

/// 512 MiB: how much sorted input is held in memory before it goes to a temporary file, counted
/// as its keys, identifiers and stored records plus its index entry (32 bytes). A million generated
/// identifiers take about 200 MB; 100,000,000 make about 40 files.
pub const SORT_BUFFER: usize = 512 << 20;
/// What one record costs in the sort's index beside its bytes.
const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
/// 256 KiB: the read buffer of each temporary file during the merge.
const RUN_READ_BUFFER: usize = 256 << 10;

/// Records in the order they were read, to be written in key order by [`Sorter::write`].
pub struct Sorter {
    dir: PathBuf,
    limit: usize,
    buffer: Packed,
    runs: Vec<File>,
}

/// Records packed into one buffer, each as its key, identifier and stored form, as the parser
/// makes them: allocating one buffer a batch (freed by the thread that sorts) rather than a
/// record's strings and vectors each, since memory freed on another thread than the one that
/// took it is glibc's slow path (a third of an import's time went to its lock).
#[derive(Default)]
pub struct Packed {
    arena: Vec<u8>,
    index: Vec<Slot>,
}

impl Packed {
    /// Adds `record`, read at `line`. Fails when a secret in it is not sealed: the importers seal
    /// every secret they read, and the registry never stores one that is not.
    pub fn pack(&mut self, record: &Record, line: u64) -> Result<(), PackError> {
        if let Some(v) = record.values.iter().find(|v| !crate::secret::is_sealed(v)) {
            return Err(PackError::Unsealed { index: v.index });
        }
        let key = record.identifier.key();
        let identifier = record.identifier.as_str();
        let start = self.arena.len();
        self.arena.extend_from_slice(key.as_bytes());
        self.arena.extend_from_slice(identifier.as_bytes());
        let value_start = self.arena.len();
        record.encode_into(&mut self.arena);
        // A record is at most MAX_RECORD_SIZE bytes and an identifier a line: each fits a u32.
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.index.push(Slot {
            start,
            key: len(key.len()),
            identifier: len(identifier.len()),
            value: len(self.arena.len() - value_start),
            line,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// What it holds, counted as the sort counts its memory.
    fn weight(&self) -> usize {
        self.arena.len() + self.index.len() * SLOT_BYTES
    }
}

/// Where one record lies in the arena: key, identifier and stored record, one after another.
#[derive(Clone, Copy)]
struct Slot {
    start: usize,
    key: u32,
    identifier: u32,
    value: u32,
    line: u64,
}

impl Slot {
    fn key<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start..self.start + self.key as usize]
    }

    fn entry(&self, arena: &[u8]) -> Entry {
        let (k, i, v) = (self.key as usize, self.identifier as usize, self.value as usize);
        let at = self.start;
        Entry {
            key: arena[at..at + k].to_vec(),
            identifier: arena[at + k..at + k + i].to_vec(),
            value: arena[at + k + i..at + k + i + v].to_vec(),
            line: self.line,
        }
    }
}

/// A record on its way to the registry, with the line it was read at.
struct Entry {
    key: Vec<u8>,
    identifier: Vec<u8>,
    value: Vec<u8>,
    line: u64,
}

impl Entry {
    fn order(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key).then(self.line.cmp(&other.line))
    }
}

/// An identifier left out because it differs only in case from one registered before it (in the
/// registry, or earlier in the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub line: u64,
    pub identifier: String,
    pub existing: String,
}

/// What [`Sorter::write`] stored and left out.
#[derive(Debug, Default)]
pub struct Written {
    pub records: u64,
    pub conflicts: Vec<Conflict>,
    /// All the conflicts, of which the first [`MAX_LISTED_CONFLICTS`] are in `conflicts`.
    pub conflict_count: u64,
}

/// 100: how many conflicts an import names; it counts the rest.
pub const MAX_LISTED_CONFLICTS: usize = 100;

impl Sorter {
    /// A sort whose temporary files go to `dir` (the data directory: the same disk as the
    /// registry, with room for what is imported), holding up to `limit` bytes in memory.
    pub fn new(dir: PathBuf, limit: usize) -> Self {
        Self { dir, limit: limit.max(1), buffer: Packed::default(), runs: Vec::new() }
    }

    /// How many temporary files it wrote so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Adds the records of `packed`; writes what it holds to a temporary file when that passes
    /// its limit.
    pub fn extend(&mut self, packed: Packed) -> std::io::Result<()> {
        let base = self.buffer.arena.len();
        if self.buffer.arena.capacity() == 0 {
            self.buffer = packed;
        } else {
            self.buffer.arena.extend_from_slice(&packed.arena);
            self.buffer.index.extend(packed.index.iter().map(|slot| Slot { start: slot.start + base, ..*slot }));
        }
        if self.buffer.weight() >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    fn sort(&mut self) {
        let Packed { arena, index } = &mut self.buffer;
        index.sort_unstable_by(|a, b| a.key(arena).cmp(b.key(arena)).then(a.line.cmp(&b.line)));
    }

    /// Sorts what is in memory and writes it to a new temporary file.
    fn spill(&mut self) -> std::io::Result<()> {
        self.sort();
        let mut out = BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(&self.dir)?);
        for slot in &self.buffer.index {
            let total = slot.key as usize + slot.identifier as usize + slot.value as usize;
            out.write_all(&slot.key.to_le_bytes())?;
            out.write_all(&slot.identifier.to_le_bytes())?;
            out.write_all(&slot.value.to_le_bytes())?;
            out.write_all(&slot.line.to_le_bytes())?;
            out.write_all(&self.buffer.arena[slot.start..slot.start + total])?;
        }
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        std::io::Seek::rewind(&mut file)?;
        self.runs.push(file);
        // Kept for the next run: growing a buffer of SORT_BUFFER again for each temporary file
        // (40 of them for 100M identifiers) cost a quarter of an import's time in copies and
        // in the kernel zeroing the new pages.
        self.buffer.arena.clear();
        self.buffer.index.clear();
        Ok(())
    }

    /// Writes every record read before `before_line` (the first bad line; `u64::MAX` for none)
    /// in key order, `batch_size` to a transaction of `bulk`, calling `tick` after each. Of the
    /// same identifier read twice the later wins, as if written in input order; one that
    /// differs only in case from a registered one, or from one earlier in the input, is left
    /// out and named in [`Written::conflicts`].
    pub fn write(
        mut self,
        bulk: &mut Bulk<'_>,
        batch_size: usize,
        before_line: u64,
        mut tick: impl FnMut(&mut Bulk<'_>) -> Result<(), RegistryError>,
    ) -> Result<Written, WriteError> {
        self.sort();
        let Packed { arena, index } = self.buffer;
        let memory = Source::Memory { arena, index: index.into_iter() };
        let mut sources: Vec<Source> = vec![memory];
        sources.extend(self.runs.into_iter().map(|f| Source::Run(BufReader::with_capacity(RUN_READ_BUFFER, f))));
        let mut heap = BinaryHeap::new();
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(entry) = source.next()? {
                heap.push(Reverse(Head { entry, source: i }));
            }
        }
        let mut written = Written::default();
        let mut batch: Vec<Entry> = Vec::with_capacity(batch_size);
        // The record of the key in hand: the last of its identifier read so far.
        let mut pending: Option<Entry> = None;
        while let Some(Reverse(Head { entry, source })) = heap.pop() {
            if let Some(next) = sources[source].next()? {
                heap.push(Reverse(Head { entry: next, source }));
            }
            if entry.line >= before_line {
                continue;
            }
            match pending.take() {
                Some(held) if held.key == entry.key => {
                    if held.identifier == entry.identifier {
                        pending = Some(entry);
                    } else {
                        written.conflict(Conflict {
                            line: entry.line,
                            identifier: String::from_utf8_lossy(&entry.identifier).into_owned(),
                            existing: String::from_utf8_lossy(&held.identifier).into_owned(),
                        });
                        pending = Some(held);
                    }
                }
                held => {
                    batch.extend(held);
                    if batch.len() >= batch_size {
                        store(bulk, &mut batch, &mut written)?;
                        tick(bulk)?;
                    }
                    pending = Some(entry);
                }
            }
        }
        batch.extend(pending);
        store(bulk, &mut batch, &mut written)?;
        Ok(written)
    }
}

impl Written {
    fn conflict(&mut self, conflict: Conflict) {
        self.conflict_count += 1;
        if self.conflicts.len() < MAX_LISTED_CONFLICTS {
            self.conflicts.push(conflict);
        }
    }
}

/// Stores `batch` in one transaction; a record that conflicts with a registered one in case is
/// left out and counted.
fn store(bulk: &mut Bulk<'_>, batch: &mut Vec<Entry>, written: &mut Written) -> Result<(), RegistryError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (stored, conflicts) = bulk.transact(|txn| {
        let (mut stored, mut conflicts) = (0, Vec::new());
        for entry in batch.iter() {
            let identifier = String::from_utf8_lossy(&entry.identifier);
            match txn.put_stored(&entry.key, &identifier, &entry.value, false) {
                Ok(_) => stored += 1,
                Err(RegistryError::CaseConflict { identifier, existing, .. }) => {
                    conflicts.push(Conflict { line: entry.line, identifier, existing });
                }
                Err(e) => return Err(e),
            }
        }
        Ok::<_, RegistryError>((stored, conflicts))
    })?;
    written.records += stored;
    for conflict in conflicts {
        written.conflict(conflict);
    }
    batch.clear();
    Ok(())
}

/// The sorted records in memory, or one temporary file of them.
enum Source {
    Memory { arena: Vec<u8>, index: std::vec::IntoIter<Slot> },
    Run(BufReader<File>),
}

impl Source {
    fn next(&mut self) -> std::io::Result<Option<Entry>> {
        match self {
            Source::Memory { arena, index } => Ok(index.next().map(|slot| slot.entry(arena))),
            Source::Run(file) => read_entry(file),
        }
    }
}

/// One record of a temporary file (as [`Sorter::spill`] writes them), `None` at its end.
fn read_entry(file: &mut impl Read) -> std::io::Result<Option<Entry>> {
    let mut head = [0u8; 20];
    match file.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    file.read_exact(&mut head[1..])?;
    let u32_at = |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]) as usize;
    let mut line = [0u8; 8];
    line.copy_from_slice(&head[12..20]);
    let mut read = |len: usize| -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0; len];
        file.read_exact(&mut bytes)?;
        Ok(bytes)
    };
    Ok(Some(Entry {
        key: read(u32_at(0))?,
        identifier: read(u32_at(4))?,
        value: read(u32_at(8))?,
        line: u64::from_le_bytes(line),
    }))
}

/// The smallest record of one source, for the merge.
struct Head {
    entry: Entry,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.entry.order(&other.entry)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("value {index}: a secret key that is not sealed is never stored")]
    Unsealed { index: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("reading a temporary file of the sort: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Identifier;
    use crate::record::Value;
    use crate::registry::Registry;

    fn record(id: &str, data: &str) -> Record {
        Record::new(&Identifier::parse(id).unwrap(), vec![Value::new(1, "URL", data, 0)]).unwrap()
    }

    fn data(reg: &Registry, id: &str) -> Option<Vec<u8>> {
        reg.get(&Identifier::parse(id).unwrap()).unwrap().map(|r| r.values[0].data.clone())
    }

    /// Records pushed in a scrambled order through several temporary files come out in key
    /// order: the later of a repeated identifier wins, one differing in case from an earlier
    /// one (in another file) is left out and named, and nothing from `before_line` on is stored.
    #[test]
    fn merges_its_runs_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        reg.transact(|txn| txn.put(&record("88/REG", "registered"), false).map(|_| ())).unwrap();
        // About 4 records a file.
        let mut sorter = Sorter::new(dir.path().to_owned(), 400);
        let mut line = 0;
        let mut push = |sorter: &mut Sorter, id: &str, data: &str| {
            line += 1;
            let mut packed = Packed::default();
            packed.pack(&record(id, data), line).unwrap();
            sorter.extend(packed).unwrap();
        };
        for i in (0..60).rev() {
            push(&mut sorter, &format!("88.{}/n{i}", i % 3), "first");
        }
        push(&mut sorter, "88.1/n7", "second");
        push(&mut sorter, "88.1/N10", "other case");
        push(&mut sorter, "88/reg", "other case");
        push(&mut sorter, "88/late", "after the bad line");
        assert!(sorter.runs.len() >= 10, "{} files", sorter.runs.len());
        let mut bulk = reg.bulk();
        let written = sorter.write(&mut bulk, 7, line, |_| Ok(())).unwrap();
        bulk.finish().unwrap();
        assert_eq!(written.records, 60);
        let lines: Vec<u64> = written.conflicts.iter().map(|c| c.line).collect();
        assert_eq!((written.conflict_count, lines), (2, vec![62, 63]));
        assert_eq!(written.conflicts[0].existing, "88.1/n10");
        assert_eq!(written.conflicts[1].existing, "88/REG");
        assert_eq!(data(&reg, "88.1/n7").as_deref(), Some(&b"second"[..]));
        assert_eq!(data(&reg, "88.1/n10").as_deref(), Some(&b"first"[..]));
        assert_eq!(data(&reg, "88/REG").as_deref(), Some(&b"registered"[..]));
        assert_eq!(data(&reg, "88/late"), None);
        assert_eq!(reg.len().unwrap(), 61);
        // Counted per prefix, batches of 7 spanning prefixes; the refused one not counted.
        let counts: Vec<u64> = ["88", "88.0", "88.1", "88.2"].map(|p| reg.count_under(p).unwrap()).into();
        assert_eq!(counts, [1, 20, 20, 20]);
        let mut keys = Vec::new();
        reg.for_each(|r| {
            keys.push(r.identifier.key());
            Ok::<_, RegistryError>(())
        })
        .unwrap();
        assert!(keys.is_sorted() && keys.len() == 61);
    }

    #[test]
    fn an_unsealed_secret_is_refused_before_it_is_packed() {
        let mut packed = Packed::default();
        let secret = Record::new(&Identifier::parse("88/k").unwrap(), vec![Value::new(3, "HS_SECKEY", "plain", 0)]);
        let err = packed.pack(&secret.unwrap(), 1).unwrap_err();
        assert!(matches!(err, PackError::Unsealed { index: 3 }), "{err}");
        assert!(packed.is_empty());
    }
}
