//! Import and export files: JSON Lines, one identifier with its values per line, values in the
//! Handle.Net JSON shape (see [`crate::record::json`]).
//!
//! Import is the registry's bulk load ([`Registry::bulk`], through [`load`], which the zone-file
//! import in [`crate::dns::zone_import`] shares). It runs in two passes: the input is read and
//! parsed, and each record sorted by registry key as it comes ([`sorted`]: in memory, spilling
//! to temporary files beside the registry when it is large); then the records are written in
//! key order, in transactions of up to [`MAX_BATCH`], without syncing each to disk: a synced
//! commit every [`SYNC_EVERY`] and one at the end (also when it stops early) make them durable.
//! In key order redb fills its pages, where file order left them half empty, and a registry
//! larger than memory is appended to rather than read at random. It writes as the operator with
//! the data directory in hand, so no permission is checked; secrets are sealed as each line is
//! read (Argon2 runs in the parser, never inside a write transaction).
//!
//! A crash or Ctrl-C while the input is read stores nothing; during the writing pass it loses at
//! most the last [`SYNC_EVERY`] of work, never part of a transaction. Running the import again
//! is safe (a record that is already there is replaced by the same record).
//!
//! It stops reading at the first bad line and names it; every record before that line is stored
//! whole and durable, nothing of the bad line or after it is. Of an identifier read twice the
//! later line wins. One that differs only in case from a registered identifier, or from one
//! earlier in the input, is not stored: the import goes on, and ends with an error naming the
//! first [`sorted::MAX_LISTED_CONFLICTS`] such lines and counting the rest.

use std::io::{BufRead, Write};
use std::sync::mpsc::SyncSender;

use crate::record::Record;
use crate::record::json::JsonRecord;
use crate::registry::{MAX_BATCH, Registry, RegistryError};

mod jsonl;
pub mod sorted;

use sorted::{Packed, Sorter};

/// 10 s: how much import work a crash may cost. A sync of redb costs tens of milliseconds, so
/// this adds well under 1% to an import while a killed 20-minute import keeps all but 10 s.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {reason} ({imported} records before it were imported)")]
    BadLine { line: u64, reason: String, imported: u64 },
    #[error("reading line {line}: {source}")]
    Read { line: u64, source: std::io::Error },
    #[error("{count} identifiers differ only in case from one registered or read before them and were not \
             imported ({imported} records were): {}", list_conflicts(.conflicts, *.count))]
    CaseConflicts { conflicts: Vec<sorted::Conflict>, count: u64, imported: u64 },
    #[error("writing a temporary file of the sort, in the data directory: {0}")]
    TempFile(std::io::Error),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Sort(#[from] sorted::WriteError),
}

fn list_conflicts(conflicts: &[sorted::Conflict], count: u64) -> String {
    let mut list: Vec<String> = conflicts
        .iter()
        .map(|c| format!("line {}: {} differs only in case from {}", c.line, c.identifier, c.existing))
        .collect();
    if count > conflicts.len() as u64 {
        list.push(format!("and {} more", count - conflicts.len() as u64));
    }
    list.join("; ")
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
    load(registry, batch_size, progress, |feed| jsonl::parse(input, feed))
}

/// The bulk load under every import format: `read` parses its input on a thread of its own and
/// hands records to the [`Feed`]; this thread writes them in batches of `batch_size` (at most
/// [`MAX_BATCH`]), syncing every [`SYNC_EVERY`] and at the end, also when `read` stops at a bad
/// line. `progress` is told how many bytes have been read.
pub fn load(
    registry: &Registry,
    batch_size: usize,
    mut progress: impl FnMut(u64),
    read: impl FnOnce(&mut Feed) + Send,
) -> Result<ImportReport, ImportError> {
    let batch_size = batch_size.clamp(1, MAX_BATCH);
    let mut sorter = Sorter::new(registry.dir().to_owned(), sorted::SORT_BUFFER);
    let started = std::time::Instant::now();
    let (mut report, end) = sort(&mut sorter, batch_size, &mut progress, read)?;
    tracing::info!(
        lines = report.lines,
        temporary_files = sorter.runs(),
        seconds = started.elapsed().as_secs_f32(),
        "input read and sorted; writing in key order"
    );
    let before_line = end.as_ref().map_or(u64::MAX, End::line);
    let mut bulk = registry.bulk();
    let mut synced = std::time::Instant::now();
    let written = sorter.write(&mut bulk, batch_size, before_line, |bulk| {
        if synced.elapsed() >= SYNC_EVERY {
            bulk.sync()?;
            synced = std::time::Instant::now();
        }
        Ok(())
    });
    bulk.finish()?;
    let written = written?;
    report.records = written.records;
    match end {
        Some(End::Bad { line, reason }) => Err(ImportError::BadLine { line, reason, imported: report.records }),
        Some(End::Read { line, source }) => Err(ImportError::Read { line, source }),
        None if written.conflict_count > 0 => Err(ImportError::CaseConflicts {
            conflicts: written.conflicts,
            count: written.conflict_count,
            imported: report.records,
        }),
        None => Ok(report),
    }
}

/// The first pass of a [`load`]: `read` parses on a thread of its own while this one sorts what
/// it hands over. Returns how far the input was read, and how it ended early if it did.
fn sort(
    sorter: &mut Sorter,
    batch_size: usize,
    progress: &mut impl FnMut(u64),
    read: impl FnOnce(&mut Feed) + Send,
) -> Result<(ImportReport, Option<End>), ImportError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    std::thread::scope(|scope| {
        // Returning early drops the receiver, which stops the parser at its next batch.
        std::thread::Builder::new()
            .name("import-parse".into())
            .spawn_scoped(scope, move || {
                let mut feed = Feed { tx, batch: Batch::default(), batch_size, stopped: false };
                read(&mut feed);
            })
            .map_err(|source| ImportError::Read { line: 0, source })?;
        // Parsers may run on several threads (`Feed::fork`): all of them are heard out, and the
        // input ends at the first line that one of them refused.
        let (mut report, mut bytes, mut end) = (ImportReport::default(), 0, None::<End>);
        for batch in rx {
            report.lines = report.lines.max(batch.read);
            sorter.extend(batch.records).map_err(ImportError::TempFile)?;
            bytes = bytes.max(batch.bytes);
            progress(bytes);
            if let Some(ended) = batch.end {
                if end.as_ref().is_none_or(|first| ended.line() < first.line()) {
                    end = Some(ended);
                }
            }
        }
        Ok((report, end))
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
        if let Err(e) = self.batch.records.pack(&record, line) {
            self.refuse(line, e.to_string());
            self.stopped = true;
            return false;
        }
        if self.batch.records.len() >= self.batch_size {
            let next = Batch { read: self.batch.read, bytes: self.batch.bytes, ..Batch::default() };
            self.stopped |= self.tx.send(std::mem::replace(&mut self.batch, next)).is_err();
        }
        !self.stopped
    }

    /// A feed into the same load for a parser on another thread. The load ends at the first line
    /// any feed refused; records from later lines are dropped, whichever feed brought them.
    pub fn fork(&self) -> Feed {
        Feed { tx: self.tx.clone(), batch: Batch::default(), batch_size: self.batch_size, stopped: false }
    }

    /// How far the input has been read: lines and bytes.
    pub fn read_to(&mut self, lines: u64, bytes: u64) {
        self.batch.read = lines;
        self.batch.bytes = bytes;
    }

    /// Ends the input at a bad line: nothing of it or after it is stored.
    pub fn refuse(&mut self, line: u64, reason: String) {
        self.end(End::Bad { line, reason });
    }

    /// Ends the input where it could not be read.
    pub fn read_failed(&mut self, line: u64, source: std::io::Error) {
        self.end(End::Read { line, source });
    }

    fn end(&mut self, end: End) {
        if self.batch.end.as_ref().is_none_or(|first| end.line() < first.line()) {
            self.batch.end = Some(end);
        }
    }
}

/// Parsed records with the line number of each, and how far the input has been read.
#[derive(Default)]
struct Batch {
    records: Packed,
    read: u64,
    bytes: u64,
    /// Set on the last batch when the input ended early.
    end: Option<End>,
}

enum End {
    Bad { line: u64, reason: String },
    Read { line: u64, source: std::io::Error },
}

impl End {
    fn line(&self) -> u64 {
        match self {
            End::Bad { line, .. } | End::Read { line, .. } => *line,
        }
    }
}

impl Drop for Feed {
    /// Hands over the last batch. The sort may have stopped already (it failed); then there is
    /// nobody left to tell.
    fn drop(&mut self) {
        let _ = self.tx.send(std::mem::take(&mut self.batch));
    }
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
        assert!(calls >= 3, "progress after each batch of 10: {calls}");
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

    /// Lines parsed by both threads, across many chunks: every record before the bad line is
    /// stored, whichever thread parsed it, and none after it.
    #[test]
    fn a_bad_line_deep_in_a_large_input_keeps_every_line_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let mut input = String::new();
        for i in 1..=40_000 {
            input += &if i == 30_000 { "{}".to_owned() } else { line(&format!("88.{}/N{i}", i % 7)) };
            input += "\n";
        }
        assert!(input.len() > 3 << 20, "several chunks");
        let err = import(&reg, input.as_bytes(), 500, |_| {}).unwrap_err();
        assert!(err.to_string().starts_with("line 30000: "), "{err}");
        assert_eq!(reg.len().unwrap(), 29_999);
        for (i, found) in [(1, true), (29_999, true), (30_001, false), (40_000, false)] {
            let id = Identifier::parse(&format!("88.{}/N{i}", i % 7)).unwrap();
            assert_eq!(reg.get(&id).unwrap().is_some(), found, "{id}");
        }
    }

    /// A line longer than any record's JSON ends the import with its number, having read only
    /// a little past the limit: an input with no newline never fills memory.
    #[test]
    fn an_overlong_line_is_named_and_read_no_further() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let first = format!("{}\n", line("88/a"));
        let endless = first.as_bytes().chain(std::io::repeat(b'x').take(64 << 20));
        struct Counted<R>(R, u64);
        impl<R: Read> Read for Counted<R> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n as u64;
                Ok(n)
            }
        }
        let mut input = std::io::BufReader::new(Counted(endless, 0));
        let err = import(&reg, &mut input, 100, |_| {}).unwrap_err().to_string();
        assert!(err.starts_with("reading line 2: the line is longer than 1048576 bytes"), "{err}");
        assert_eq!(reg.len().unwrap(), 1, "the line before it is kept");
        assert!(input.get_ref().1 < 2 << 20, "read {} bytes", input.get_ref().1);
    }

    #[test]
    fn case_conflict_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let input = [line("88/x1"), line("88/ABC"), line("88/x2"), line("88/abc")].join("\n");
        let err = import(&reg, input.as_bytes(), 100, |_| {}).unwrap_err().to_string();
        assert!(err.starts_with("1 identifiers differ only in case"), "{err}");
        assert!(err.ends_with("(3 records were): line 4: 88/abc differs only in case from 88/ABC"), "{err}");
        assert_eq!(reg.len().unwrap(), 3);
    }
}
