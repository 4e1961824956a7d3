//! The bulk load's transactions ([`Registry::bulk`]): committed without a sync each, made durable
//! together.

use redb::Durability;

use super::{Registry, RegistryError, WriteTxn};

/// A bulk load ([`Registry::bulk`]): each [`Bulk::transact`] commits without syncing, visible at
/// once but durable only at the next [`Bulk::sync`] or [`Bulk::finish`]; a crash before that
/// loses those transactions whole, never part of one. Dropped unfinished (an early return), it
/// still syncs what it wrote.
pub struct Bulk<'r> {
    pub(super) registry: &'r Registry,
    /// No unsynced commit since the last sync.
    pub(super) synced: bool,
}

impl Bulk<'_> {
    /// Runs `f` in one write transaction, as [`Registry::transact`] does, and commits it without
    /// syncing. At most [`MAX_BATCH`](super::MAX_BATCH) records a transaction are expected: one is one redb commit.
    pub fn transact<T, E: From<RegistryError>>(
        &mut self,
        f: impl FnOnce(&mut WriteTxn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.synced = false;
        self.registry.write(Durability::None, f)
    }

    /// Makes every transaction so far durable: one synced (empty) commit.
    pub fn sync(&mut self) -> Result<(), RegistryError> {
        if !self.synced {
            self.registry.write(Durability::Immediate, |_| Ok::<_, RegistryError>(()))?;
            self.synced = true;
        }
        Ok(())
    }

    /// Ends the load, durable when it returns.
    pub fn finish(mut self) -> Result<(), RegistryError> {
        self.sync()
    }
}

impl Drop for Bulk<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "the end of a bulk load could not be made durable");
        }
    }
}
