//! Settling the database after writes: empty synced commits that put redb's reads back on
//! their fast path.
//!
//! redb 4.6 frees the pages a synced commit replaced in a second, unsynced commit that it makes
//! itself right after (its "epilogue"). That commit leaves its pages in redb's write buffer and
//! raises a flag that only the next synced commit lowers. While the flag is up, every page read
//! that misses redb's cache once the cache is full also tries the locks of all of the write
//! buffer's 131 stripes, looking for buffered pages to write out, though there are none left.
//! At 100,000,000 identifiers a lookup that misses the front cache reads two or more pages
//! through the kernel, and that walk made it 13-17 us where it takes 7-9 us with the flag down
//! (`benches/README.md`, "The settling commit").
//!
//! A synced commit lowers the flag, and one that leaves no replaced data page to free makes no
//! epilogue. So after a write the serving node ([`crate::server`]) calls [`Registry::settle`]
//! once writes pause: an empty synced commit. The write's own epilogue has usually freed what it
//! replaced already; when a reader still held those pages then (a zone transfer, an export) and
//! finished during the empty commit, that commit's epilogue frees them and raises the flag again,
//! and a second empty commit finds nothing left. So a settle makes two.

use std::sync::atomic::Ordering;

use super::{Registry, RegistryError};

/// The empty commits a settle makes: see the module's documentation.
const SETTLING_COMMITS: usize = 2;

impl Registry {
    /// Commits `txn` (durably or not, as it was set), publishes `seq` as the last write's
    /// sequence number when given, then notes that the database needs settling (after the
    /// sequence number, which the settler watches for a pause in writes).
    pub(super) fn commit(&self, txn: redb::WriteTransaction, seq: Option<u64>) -> Result<(), RegistryError> {
        txn.commit()?;
        if let Some(seq) = seq {
            self.seq.store(seq, Ordering::Release);
        }
        self.unsettled.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether a commit was made since the last [`Registry::settle`].
    pub fn unsettled(&self) -> bool {
        self.unsettled.load(Ordering::Acquire)
    }

    /// Makes the empty synced commits that put reads back on redb's fast path after writes, when
    /// any commit was made since the last settle; returns whether it made them. Changes no record
    /// and no sequence number. A write committed meanwhile marks the database unsettled again.
    pub fn settle(&self) -> Result<bool, RegistryError> {
        if !self.unsettled.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let empty_commits = || -> Result<(), RegistryError> {
            for _ in 0..SETTLING_COMMITS {
                let mut txn = self.db.begin_write()?;
                // As every synced commit: the allocator state saved, so a crash costs no full check.
                txn.set_quick_repair(true);
                txn.commit()?;
            }
            Ok(())
        };
        empty_commits().inspect_err(|_| self.unsettled.store(true, Ordering::Release))?;
        Ok(true)
    }
}
