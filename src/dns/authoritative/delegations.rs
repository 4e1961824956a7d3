//! The delegations a zone's misses look up, kept in memory: which prefix level below the zone,
//! if any, delegates a queried prefix, and to which sites.
//!
//! Without it every miss read the prefix record of each level between the zone and the queried
//! prefix (`0.na/88`, `0.na/88.100`, `0.na/88.100.1`) before the identifier itself: four redb
//! lookups for one answer. Delegations change rarely, so their answers are kept, bounded in
//! number (names of random prefixes cannot grow it), and all dropped when one changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::node::zones;
use crate::record::site::Site;
use crate::registry::{RegistryError, Snapshot};

/// 65,536: prefixes whose delegation is kept, a few megabytes at most.
const CAPACITY: usize = 65_536;

/// A delegation found: the delegated prefix as its record names it, and its sites.
pub(super) struct Delegated {
    pub(super) prefix: String,
    pub(super) sites: Vec<Site>,
}

pub(super) struct Delegations {
    found: quick_cache::sync::Cache<String, Option<Arc<Delegated>>>,
    /// Bumped by [`Delegations::forget`]: a lookup that read the registry before a change may
    /// store what it read after the change dropped everything; it sees the number moved and
    /// drops its own entry.
    generation: AtomicU64,
}

impl Default for Delegations {
    fn default() -> Self {
        Self { found: quick_cache::sync::Cache::new(CAPACITY), generation: AtomicU64::new(0) }
    }
}

impl Delegations {
    /// The generation now: take it before opening the snapshot a lookup reads.
    pub(super) fn mark(&self) -> u64 {
        // SeqCst on both sides, as for the front cache's generation.
        self.generation.load(Ordering::SeqCst)
    }

    /// The highest delegation between `zone` (a prefix, `""` for all) and `prefix`, read from
    /// `snapshot` unless known (see [`zones::delegation`]). `mark` is [`Self::mark`] from before
    /// the snapshot was opened: what it finds is kept only if no delegation changed since.
    pub(super) fn below(
        &self,
        snapshot: &Snapshot,
        mark: u64,
        zone: &str,
        prefix: &str,
    ) -> Result<Option<Arc<Delegated>>, RegistryError> {
        if let Some(found) = self.found.get(prefix) {
            return Ok(found);
        }
        let found = zones::delegation(snapshot, zone, prefix)?.map(|record| {
            let sites = crate::record::site::sites_in(&record);
            let prefix = record.identifier.record_prefix().unwrap_or_default().to_owned();
            Arc::new(Delegated { prefix, sites })
        });
        self.found.insert(prefix.to_owned(), found.clone());
        if self.generation.load(Ordering::SeqCst) != mark {
            self.found.remove(prefix);
        }
        Ok(found)
    }

    /// Drops every delegation known: one changed.
    pub(super) fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.found.clear();
    }
}
