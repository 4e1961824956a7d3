//! The tables beside the records: the prefixes homed at run time and each day's statistics.
//! Neither is a record, so writing them takes no sequence number.

use redb::ReadableDatabase;

use super::{HOMED, Registry, RegistryError, STATS};

impl Registry {
    /// The prefixes homed at run time, in order.
    pub fn homed(&self) -> Result<Vec<String>, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(HOMED) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(RegistryError::Storage(e.into())),
        };
        table.range::<&str>(..)?.map(|entry| Ok(entry?.0.value().to_owned())).collect()
    }

    /// Homes `prefix` (`homed`) or unhomes it, durably; returns whether that changed anything.
    /// Zones are not records: the serial stays.
    pub fn set_homed(&self, prefix: &str, homed: bool) -> Result<bool, RegistryError> {
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(true);
        let changed = {
            let mut table = txn.open_table(HOMED)?;
            match homed {
                true => table.insert(prefix, crate::record::unix_now().max(0) as u64)?.is_none(),
                false => table.remove(prefix)?.is_some(),
            }
        };
        self.commit(txn, None)?;
        Ok(changed)
    }

    /// Every day's saved statistics, oldest first.
    pub fn stats_days(&self) -> Result<Vec<(i64, Vec<u8>)>, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(STATS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(RegistryError::Storage(e.into())),
        };
        table
            .range::<i64>(..)?
            .map(|entry| entry.map(|(k, v)| (k.value(), v.value().to_vec())).map_err(Into::into))
            .collect()
    }

    /// Replaces the statistics saved for `day`, durably. Not a change to the records: the
    /// serial stays.
    pub fn save_stats_day(&self, day: i64, counts: &[u8]) -> Result<(), RegistryError> {
        self.write_stats(|table| table.insert(day, counts).map(drop))
    }

    /// Drops the statistics of the days before `day`.
    pub fn drop_stats_before(&self, day: i64) -> Result<(), RegistryError> {
        self.write_stats(|table| table.retain(|d, _| d >= day))
    }

    fn write_stats(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, i64, &'static [u8]>) -> Result<(), redb::StorageError>,
    ) -> Result<(), RegistryError> {
        let mut txn = self.db.begin_write()?;
        txn.set_quick_repair(true);
        f(&mut txn.open_table(STATS)?)?;
        self.commit(txn, None)?;
        Ok(())
    }
}
