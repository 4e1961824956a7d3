//! Identifiers per prefix (the COUNTS table), kept with every write so that listings and quotas
//! read a count instead of walking records.

use redb::ReadableTable;

use super::RegistryError;

/// The COUNTS table of a write transaction, with the last changes of one prefix held back: a
/// bulk load's batches come in key order, so nearly every batch is one prefix, and its count is
/// read and written once a batch instead of once a record (two B-tree operations of the four an
/// imported record cost).
pub(super) struct Counts<'t> {
    table: redb::Table<'t, &'static str, u64>,
    /// The prefix of the last changes and their sum, not yet written.
    pending: Option<(Vec<u8>, i64)>,
}

impl<'t> Counts<'t> {
    pub(super) fn new(table: redb::Table<'t, &'static str, u64>) -> Self {
        Self { table, pending: None }
    }

    /// Changes the count of the prefix that the registry key `key` lies under by `delta`.
    pub(super) fn add(&mut self, key: &[u8], delta: i64) -> Result<(), RegistryError> {
        let prefix = prefix_of(key);
        match &mut self.pending {
            Some((held, sum)) if held.as_slice() == prefix => *sum += delta,
            _ => {
                self.flush()?;
                self.pending = Some((prefix.to_vec(), delta));
            }
        }
        Ok(())
    }

    /// The count of `prefix` (lower case), changes held back included.
    pub(super) fn get(&self, prefix: &str) -> Result<u64, RegistryError> {
        let written = self.table.get(prefix)?.map_or(0, |g| g.value());
        Ok(match &self.pending {
            Some((held, sum)) if held.as_slice() == prefix.as_bytes() => written.saturating_add_signed(*sum),
            _ => written,
        })
    }

    /// Writes the changes held back; the transaction calls it before it commits.
    pub(super) fn flush(&mut self) -> Result<(), RegistryError> {
        match self.pending.take() {
            Some((prefix, sum)) if sum != 0 => add_count(&mut self.table, &prefix, sum),
            _ => Ok(()),
        }
    }
}

/// The prefix part of a registry key: what comes before its first `/`.
fn prefix_of(key: &[u8]) -> &[u8] {
    key.split(|b| *b == b'/').next().unwrap_or_default()
}

/// Changes the count of the prefix that the registry key `key` lies under by `delta`, at once.
pub(super) fn add_count(
    counts: &mut redb::Table<'_, &'static str, u64>,
    key: &[u8],
    delta: i64,
) -> Result<(), RegistryError> {
    let prefix = String::from_utf8_lossy(prefix_of(key));
    let count = counts.get(&*prefix)?.map_or(0, |g| g.value()).saturating_add_signed(delta);
    if count == 0 {
        counts.remove(&*prefix)?;
    } else {
        counts.insert(&*prefix, count)?;
    }
    Ok(())
}

/// Counts every record into an empty COUNTS table: once, for a database made before it existed.
pub(super) fn count_all(
    records: &redb::Table<'_, &'static [u8], &'static [u8]>,
    counts: &mut redb::Table<'_, &'static str, u64>,
) -> Result<(), RegistryError> {
    let mut done = 0u64;
    for entry in records.range::<&[u8]>(..)? {
        add_count(counts, entry?.0.value(), 1)?;
        done += 1;
        if done % 1_000_000 == 0 {
            tracing::info!(records = done, "counting identifiers per prefix (once, for listings)");
        }
    }
    Ok(())
}
