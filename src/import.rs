//! Import and export files: JSON Lines, one identifier with its values per line, values in the
//! Handle.Net JSON shape (see [`crate::record::json`]).
//!
//! Import is the registry's bulk load ([`Registry::bulk`], through [`load`], which the zone-file
//! import in [`crate::dns::zone_import`] shares): batches of up to [`MAX_BATCH`]
//! records, each one transaction, without syncing each to disk: a synced commit every
//! [`SYNC_EVERY`] and one at the end (also when it stops early) make them durable. It writes as
//! the operator with the data directory in hand, so no permission is checked; secrets are sealed
//! as each line is read (Argon2 runs in the parser, never inside a write transaction).
//!
//! A crash or Ctrl-C during an import loses at most the last [`SYNC_EVERY`] of work, never part
//! of a batch; running the import again is safe (a record that is already there is replaced by
//! the same record).
//!
//! It stops at the first bad line and names it; every record before that line is stored whole and
//! durable, nothing of the bad line or after it is.

use std::io::{BufRead, Write};
use std::sync::mpsc::SyncSender;

use crate::record::json::JsonRecord;
use crate::record::{Record, unix_now};
use crate::registry::{Bulk, MAX_BATCH, Registry, RegistryError};

/// 10 s: how much import work a crash may cost. A sync of redb costs tens of milliseconds, so
/// this adds well under 1% to an import while a killed 20-minute import keeps all but 10 s.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {reason} ({imported} records before it were imported)")]
    BadLine { line: u64, reason: String, imported: u64 },
    #[error("reading line {line}: {source}")]
    Read { line: u64, source: std::io::Error },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

/// What an import read and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    pub records: u64,
    pub lines: u64,
}

/// Imports every line of `input` in batches of `batch_size` (at most [`MAX_BATCH`]); `progress`
/// is told how many bytes have been read. Returns how many lines were read and records stored,
/// or the first bad line (every record before it is stored and durable).
pub fn import(
    registry: &Registry,
    input: impl BufRead + Send,
    batch_size: usize,
    progress: impl FnMut(u64),
) -> Result<ImportReport, ImportError> {
    load(registry, batch_size, progress, |feed| parse(input, feed))
}

/// The bulk load under every import format: `read` parses its input on a thread of its own and
/// hands records to the [`Feed`]; this thread writes them in batches of `batch_size` (at most
/// [`MAX_BATCH`]), syncing every [`SYNC_EVERY`] and at the end, also when `read` stops at a bad
/// line. `progress` is told how many bytes have been read.
pub fn load(
    registry: &Registry,
    batch_size: usize,
    progress: impl FnMut(u64),
    read: impl FnOnce(&mut Feed) + Send,
) -> Result<ImportReport, ImportError> {
    let mut bulk = registry.bulk();
    let result = load_unsynced(&mut bulk, batch_size, progress, read);
    bulk.finish()?;
    result
}

fn load_unsynced(
    bulk: &mut Bulk<'_>,
    batch_size: usize,
    mut progress: impl FnMut(u64),
    read: impl FnOnce(&mut Feed) + Send,
) -> Result<ImportReport, ImportError> {
    let batch_size = batch_size.clamp(1, MAX_BATCH);
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    std::thread::scope(|scope| {
        // Parsing runs beside the writer: with two cores the import goes as fast as redb writes.
        // Returning early drops the receiver, which stops the parser at its next batch.
        std::thread::Builder::new()
            .name("import-parse".into())
            .spawn_scoped(scope, move || {
                let mut feed = Feed { tx, batch: Batch::default(), batch_size, stopped: false };
                read(&mut feed);
                // The writer may have stopped already; then there is nobody left to tell.
                let _ = feed.tx.send(feed.batch);
            })
            .map_err(|source| ImportError::Read { line: 0, source })?;
        let mut report = ImportReport::default();
        let mut synced = std::time::Instant::now();
        for mut batch in rx {
            report.lines = batch.read;
            write(bulk, &mut batch.records, &batch.lines, &mut report)?;
            if synced.elapsed() >= SYNC_EVERY {
                bulk.sync()?;
                synced = std::time::Instant::now();
            }
            progress(batch.bytes);
            match batch.end {
                None => {}
                Some(End::Bad { line, reason }) => {
                    return Err(ImportError::BadLine { line, reason, imported: report.records });
                }
                Some(End::Read { line, source }) => return Err(ImportError::Read { line, source }),
            }
        }
        Ok(report)
    })
}

/// The parsing side of a [`load`]: takes records with the line each was read at and passes them
/// to the writer in batches; the writer stores what came before an [`Feed::refuse`].
pub struct Feed {
    tx: SyncSender<Batch>,
    batch: Batch,
    batch_size: usize,
    stopped: bool,
}

impl Feed {
    /// Queues `record`, read at `line`. `false` once the writer has stopped (it failed): the
    /// parser should stop reading.
    pub fn push(&mut self, record: Record, line: u64) -> bool {
        self.batch.records.push(record);
        self.batch.lines.push(line);
        if self.batch.records.len() >= self.batch_size {
            let next = Batch { read: self.batch.read, bytes: self.batch.bytes, ..Batch::default() };
            self.stopped |= self.tx.send(std::mem::replace(&mut self.batch, next)).is_err();
        }
        !self.stopped
    }

    /// How far the input has been read: lines and bytes.
    pub fn read_to(&mut self, lines: u64, bytes: u64) {
        self.batch.read = lines;
        self.batch.bytes = bytes;
    }

    /// Ends the input at a bad line: nothing of it or after it is stored.
    pub fn refuse(&mut self, line: u64, reason: String) {
        self.batch.end = Some(End::Bad { line, reason });
    }

    /// Ends the input where it could not be read.
    pub fn read_failed(&mut self, line: u64, source: std::io::Error) {
        self.batch.end = Some(End::Read { line, source });
    }
}

/// Parsed records with the line number of each, and how far the input has been read.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    lines: Vec<u64>,
    read: u64,
    bytes: u64,
    /// Set on the last batch when the input ended early.
    end: Option<End>,
}

enum End {
    Bad { line: u64, reason: String },
    Read { line: u64, source: std::io::Error },
}

fn parse(input: impl BufRead, feed: &mut Feed) {
    let now = unix_now();
    let mut bytes = 0;
    for (i, line) in input.lines().enumerate() {
        let number = i as u64 + 1;
        let line = match line {
            Ok(line) => line,
            Err(source) => {
                feed.read_to(number, bytes);
                feed.read_failed(number, source);
                return;
            }
        };
        bytes += line.len() as u64 + 1;
        feed.read_to(number, bytes);
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, now) {
            Ok(record) => {
                if !feed.push(record, number) {
                    return;
                }
            }
            Err(reason) => {
                feed.refuse(number, reason);
                return;
            }
        }
    }
}

fn parse_line(line: &str, now: i64) -> Result<Record, String> {
    let mut record = serde_json::from_str::<JsonRecord>(line)
        .map_err(|e| e.to_string())?
        .into_record(now)
        .map_err(|e| e.to_string())?;
    // Secrets are stored only as salted hashes, whichever way they arrive.
    crate::secret::seal_imported_secrets(&mut record).map_err(|e| e.to_string())?;
    Ok(record)
}

/// Commits a batch; a case conflict is reported against its line, after the records before it
/// are committed on their own.
fn write(
    bulk: &mut Bulk<'_>,
    batch: &mut Vec<Record>,
    lines: &[u64],
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    match put_all(bulk, batch) {
        Ok(()) => {
            report.records += batch.len() as u64;
            batch.clear();
            Ok(())
        }
        Err(RegistryError::CaseConflict { position, identifier, existing }) => {
            put_all(bulk, &batch[..position])?;
            report.records += position as u64;
            batch.clear();
            Err(ImportError::BadLine {
                line: lines[position],
                reason: format!("{identifier} differs only in case from the registered {existing}"),
                imported: report.records,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Stores `records` in one transaction of the load, replacing what is there: all or none.
fn put_all(bulk: &mut Bulk<'_>, records: &[Record]) -> Result<(), RegistryError> {
    bulk.transact(|txn| {
        for (position, record) in records.iter().enumerate() {
            txn.put(record, false).map_err(|e| e.at(position))?;
        }
        Ok(())
    })
}

/// Writes every record as one JSON line, from one consistent snapshot; returns how many.
pub fn export(registry: &Registry, mut out: impl Write) -> Result<u64, ExportError> {
    let mut count = 0;
    registry.for_each(|record| {
        // A record serialises to JSON without fail (strings, numbers, lists): only writing can.
        serde_json::to_writer(&mut out, &JsonRecord::from_record(&record)).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        count += 1;
        Ok::<_, ExportError>(())
    })?;
    out.flush()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Identifier;

    fn line(id: &str) -> String {
        let value = format!(r#"{{"index":1,"type":"URL","data":{{"format":"string","value":"https://x/{id}"}}}}"#);
        format!(r#"{{"handle":"{id}","values":[{value}]}}"#)
    }

    #[test]
    fn imports_in_batches_and_exports_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let input: String = (0..25).map(|i| line(&format!("88.1/N{i}")) + "\n").collect::<String>() + "\n";
        let mut calls = 0;
        let report = import(&reg, input.as_bytes(), 10, |_| calls += 1).unwrap();
        assert_eq!(report, ImportReport { records: 25, lines: 26 });
        assert_eq!(calls, 3);
        let mut out = Vec::new();
        assert_eq!(export(&reg, &mut out).unwrap(), 25);
        let dir2 = tempfile::tempdir().unwrap();
        let reg2 = Registry::open(dir2.path()).unwrap();
        import(&reg2, out.as_slice(), 7, |_| {}).unwrap();
        let mut out2 = Vec::new();
        export(&reg2, &mut out2).unwrap();
        assert_eq!(out, out2);
    }

    #[test]
    fn bad_line_is_named_and_nothing_of_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let input = [
            line("88/a"),
            line("88/b"),
            r#"{"handle":"88/c","values":[{"index":1,"type":"URL","data":{"format":"hex","value":"zz"}}]}"#.into(),
            line("88/d"),
        ]
        .join("\n");
        let err = import(&reg, input.as_bytes(), 100, |_| {}).unwrap_err();
        assert!(err.to_string().starts_with("line 3: value 1: hex data is not hex"), "{err}");
        assert!(err.to_string().ends_with("(2 records before it were imported)"), "{err}");
        assert_eq!(reg.len().unwrap(), 2);
        assert!(reg.get(&Identifier::parse("88/c").unwrap()).unwrap().is_none());
        let err = import(&reg, "{not json".as_bytes(), 100, |_| {}).unwrap_err();
        assert!(err.to_string().starts_with("line 1: "), "{err}");
    }

    #[test]
    fn case_conflict_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let input = [line("88/x1"), line("88/ABC"), line("88/x2"), line("88/abc")].join("\n");
        let err = import(&reg, input.as_bytes(), 100, |_| {}).unwrap_err();
        assert!(err.to_string().starts_with("line 4: 88/abc differs only in case from the registered 88/ABC"), "{err}");
        assert_eq!(reg.len().unwrap(), 3);
    }
}
