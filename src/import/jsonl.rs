//! Reading JSON Lines for [`super::import`]: one identifier with its values a line, in the
//! Handle.Net JSON shape ([`crate::record::json`]).
//!
//! Parsing JSON is most of an import's first pass, so two threads parse: this one reads the
//! input in chunks of whole lines and hands each to the other parser when it has room, parsing
//! it itself otherwise (so neither waits on the other, and one thread does all the work if the
//! second cannot start). Each parser feeds the load through its own [`Feed`]; the load ends at
//! the first line either refused, and keeps nothing from that line on, whoever parsed it.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::TrySendError;

use super::Feed;
use crate::record::json::JsonRecord;
use crate::record::{Record, unix_now};

/// 1 MiB: about how much input a chunk holds (whole lines), the unit handed to a parser.
const CHUNK_BYTES: usize = 1 << 20;

/// 1 MiB: the longest line taken. A record holds at most 30,000 bytes of values
/// (`crate::record::MAX_RECORD_SIZE`), which JSON may spell out in six bytes each; a longer
/// line (or an input with no newline at all) ends the import instead of filling memory.
pub(super) const MAX_LINE: usize = 1 << 20;

/// Whole lines of the input, from line `first_line`, which starts `offset` bytes in.
struct Chunk {
    text: Vec<u8>,
    first_line: u64,
    offset: u64,
}

/// Parses every line of `input` into `feed` (and a fork of it), stopping at the first line that
/// is no record or cannot be read.
pub(super) fn parse(mut input: impl BufRead, feed: &mut Feed) {
    let now = unix_now();
    // The first line a parser refused: the reader stops, and a parser past it stops too.
    let stop = AtomicU64::new(u64::MAX);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
    std::thread::scope(|scope| {
        let mut fork = feed.fork();
        let stop = &stop;
        let helper = std::thread::Builder::new().name("import-parse-2".into()).spawn_scoped(scope, move || {
            for chunk in rx {
                if !parse_chunk(&chunk, &mut fork, now, stop) {
                    break;
                }
            }
        });
        let mut tx = helper.is_ok().then_some(tx);
        let (mut line, mut offset) = (1, 0);
        while stop.load(Ordering::Relaxed) == u64::MAX {
            let (chunk, failed) = read_chunk(&mut input, line, offset);
            if let Some((at, source)) = failed {
                // The lines before it are parsed (below or by the other parser) and kept.
                feed.read_failed(at, source);
                stop.fetch_min(at, Ordering::Relaxed);
            }
            let Some(chunk) = chunk else { break };
            line = chunk.first_line + chunk.text.iter().filter(|b| **b == b'\n').count() as u64;
            offset = chunk.offset + chunk.text.len() as u64;
            // To the other parser when it has room; parsed here otherwise.
            let chunk = match &tx {
                None => chunk,
                Some(sender) => match sender.try_send(chunk) {
                    Ok(()) => continue,
                    Err(TrySendError::Full(chunk)) => chunk,
                    Err(TrySendError::Disconnected(chunk)) => {
                        tx = None;
                        chunk
                    }
                },
            };
            if !parse_chunk(&chunk, feed, now, stop) {
                break;
            }
        }
    });
}

/// The next lines of `input`, about [`CHUNK_BYTES`] of them (`None` at its end), and the line
/// where a read failed, if one did, with the lines before it.
fn read_chunk(
    input: &mut impl BufRead,
    first_line: u64,
    offset: u64,
) -> (Option<Chunk>, Option<(u64, std::io::Error)>) {
    let mut text = Vec::with_capacity(CHUNK_BYTES + 4096);
    let (mut line, mut failed) = (first_line, None);
    while text.len() < CHUNK_BYTES {
        let whole = text.len();
        match input.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', &mut text) {
            Ok(0) => break,
            Ok(n) if n > MAX_LINE && text.last() != Some(&b'\n') => {
                text.truncate(whole);
                let reason = format!("the line is longer than {MAX_LINE} bytes, the most a record's JSON takes");
                failed = Some((line, std::io::Error::new(std::io::ErrorKind::InvalidData, reason)));
                break;
            }
            Ok(_) => line += 1,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => text.truncate(whole),
            Err(e) => {
                text.truncate(whole);
                failed = Some((line, e));
                break;
            }
        }
    }
    ((!text.is_empty()).then_some(Chunk { text, first_line, offset }), failed)
}

/// Parses the lines of `chunk` into `feed`; `false` at the first line that is no record (which
/// `stop` is then lowered to), past the line in `stop`, or when the load has stopped.
fn parse_chunk(chunk: &Chunk, feed: &mut Feed, now: i64, stop: &AtomicU64) -> bool {
    let mut offset = chunk.offset;
    for (number, raw) in (chunk.first_line..).zip(chunk.text.split_inclusive(|b| *b == b'\n')) {
        offset += raw.len() as u64;
        feed.read_to(number, offset);
        let text = raw.strip_suffix(b"\n").unwrap_or(raw);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let ok = match std::str::from_utf8(text) {
            Err(_) => {
                let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8");
                feed.read_failed(number, source);
                false
            }
            Ok(line) if line.trim().is_empty() => true,
            Ok(line) => match parse_line(line, now) {
                Ok(record) => feed.push(record, number),
                Err(reason) => {
                    feed.refuse(number, reason);
                    false
                }
            },
        };
        if !ok {
            stop.fetch_min(number, Ordering::Relaxed);
            return false;
        }
        if number >= stop.load(Ordering::Relaxed) {
            return false;
        }
    }
    true
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
