//! The change log: what each committed write changed, under the sequence number it committed
//! at, so that a DNS secondary at an older serial can be sent just the difference (IXFR, RFC
//! 1995) and an idnode mirror can replay the writes in order.
//!
//! Every write transaction that changes a record takes the next sequence number (a u64 that
//! never wraps) and stores its changes, each record's key with its bytes before and after, in the
//! CHANGES table of that same transaction: a change is logged if and only if it committed. The
//! zone serial is the sequence number's low 32 bits (RFC 1982 serial arithmetic lets it wrap).
//!
//! The log is a window. `floor` is the sequence number after which every change is logged: a
//! reader at `floor` or later can be brought up to date from the log, an older one needs a full
//! transfer. Each write prunes a few of the oldest entries once the log holds more than
//! [`LogWindow::keep`] of them or they are older than [`LogWindow::keep_secs`], so no write pays
//! for a large prune. A bulk load (import) is not logged: it moves the floor to its end.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{RegistryError, Snapshot};

pub(super) const CHANGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("changes");
/// In META: the floor of the log (see the module docs).
pub(super) const FLOOR: &str = "log_floor";
/// In META: a random number that names this registry's sequence of writes, so that a mirror
/// knows whose log it follows; a mirror takes its primary's.
pub(super) const LOG_ID: &str = "log_id";
/// 64: the most entries one write prunes; the window shrinks back within a few writes of a
/// smaller setting.
const PRUNE_PER_WRITE: usize = 64;

/// How much of the log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogWindow {
    /// Write transactions kept.
    pub keep: u64,
    /// Seconds an entry is kept.
    pub keep_secs: u64,
}

impl Default for LogWindow {
    /// 100,000 writes or 7 days, whichever is fewer: a secondary or mirror that was away for a
    /// week of ordinary traffic catches up from the log; a busier node sends it a full transfer.
    fn default() -> Self {
        Self { keep: 100_000, keep_secs: 7 * 86_400 }
    }
}

/// What one write transaction changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// Unix time of the commit. First, so pruning reads it without decoding the rest.
    pub time: i64,
    pub changes: Vec<Change>,
}

/// One record's change: `old` absent for a creation, `new` absent for a deletion. The bytes are
/// the record as the registry stores it ([`crate::record::Record::encode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: Vec<u8>,
    pub old: Option<Vec<u8>>,
    pub new: Option<Vec<u8>>,
}

impl ChangeSet {
    pub(super) fn encode(&self) -> Vec<u8> {
        // Vectors of bytes always serialise.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(super) fn decode(seq: u64, bytes: &[u8]) -> Result<Self, RegistryError> {
        postcard::from_bytes(bytes).map_err(|e| RegistryError::CorruptLog { seq, reason: e.to_string() })
    }
}

/// Logs `changes` under `seq` and prunes the oldest entries beyond `window`; returns the new
/// floor when pruning moved it.
pub(super) fn log(
    table: &mut redb::Table<'_, u64, &'static [u8]>,
    seq: u64,
    changes: Vec<Change>,
    window: LogWindow,
    now: i64,
) -> Result<Option<u64>, RegistryError> {
    table.insert(seq, ChangeSet { time: now, changes }.encode().as_slice())?;
    let oldest_kept_time = now.saturating_sub(i64::try_from(window.keep_secs).unwrap_or(i64::MAX));
    let mut floor = None;
    for _ in 0..PRUNE_PER_WRITE {
        let (first_seq, time) = match table.first()? {
            Some((k, v)) => (k.value(), postcard::take_from_bytes::<i64>(v.value()).map_or(i64::MIN, |(t, _)| t)),
            None => break,
        };
        let too_many = seq.saturating_sub(first_seq) >= window.keep.max(1);
        if first_seq == seq || (!too_many && time >= oldest_kept_time) {
            break;
        }
        table.remove(first_seq)?;
        floor = Some(first_seq);
    }
    Ok(floor)
}

/// The records and the change log as of one commit ([`super::Registry::log_view`]).
pub struct LogView {
    pub records: Snapshot,
    changes: redb::ReadOnlyTable<u64, &'static [u8]>,
    /// The sequence number of the commit this view shows.
    pub seq: u64,
    /// Every change after this sequence number is in the log.
    pub floor: u64,
    /// Whose sequence of writes this is (see `LOG_ID`).
    pub log_id: u64,
}

impl LogView {
    pub(super) fn new(
        records: Snapshot,
        changes: redb::ReadOnlyTable<u64, &'static [u8]>,
        seq: u64,
        floor: u64,
        log_id: u64,
    ) -> Self {
        Self { records, changes, seq, floor, log_id }
    }

    /// The zone serial of this view.
    pub fn serial(&self) -> u32 {
        self.seq as u32
    }

    /// The change sets after `seq` (at least the floor) up to this view's, in order.
    pub fn changes_after(
        &self,
        seq: u64,
    ) -> Result<impl Iterator<Item = Result<(u64, ChangeSet), RegistryError>> + '_, RegistryError> {
        let range = self.changes.range(seq.saturating_add(1)..=self.seq)?;
        Ok(range.map(|entry| {
            let (k, v) = entry?;
            Ok((k.value(), ChangeSet::decode(k.value(), v.value())?))
        }))
    }
}

/// The sequence number that a reader's `serial` stands for, given the current sequence number:
/// `None` when the serial is not behind it in RFC 1982 terms (ahead, or too far to compare).
pub fn seq_of_serial(serial: u32, current_seq: u64) -> Option<u64> {
    let behind = (current_seq as u32).wrapping_sub(serial);
    if behind >= 1 << 31 {
        return None;
    }
    current_seq.checked_sub(u64::from(behind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_map_to_sequence_numbers_across_the_wrap() {
        assert_eq!(seq_of_serial(10, 10), Some(10), "up to date");
        assert_eq!(seq_of_serial(7, 10), Some(7));
        assert_eq!(seq_of_serial(11, 10), None, "ahead of the node");
        assert_eq!(seq_of_serial(u32::MAX, 1 << 32), Some((1 << 32) - 1), "across the wrap");
        assert_eq!(seq_of_serial(2u32.wrapping_sub(5), 2), None, "before the first write");
        assert_eq!(seq_of_serial(10u32.wrapping_sub(1 << 31), 10), None, "too far to compare");
    }
}
