//! The front cache: bounded, concurrent, TTL-aware, in front of the registry.
//!
//! It maps a byte key (the DNS front end uses the lower-cased wire name) to an already encoded
//! answer, so a hit decodes nothing and allocates nothing: the caller gets an `Arc` to bytes it
//! copies into its own buffer. Entries expire at the TTL they were stored with; negative answers
//! are cached like any other. Every write to the registry removes the keys it touches (the
//! caller knows which), after the write is durable.
//!
//! Storage is `quick_cache` (S3-FIFO eviction, sharded), chosen over a bare `DashMap` in
//! `benches/cache.rs`: see `benches/README.md` for the numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub struct Cache<V> {
    map: quick_cache::sync::Cache<Box<[u8]>, Arc<Entry<V>>>,
    /// Lookups that found an expired entry: quick_cache counted them as hits. Hits and misses
    /// themselves are counted per shard by quick_cache, so a hit writes no shared counter.
    expired: AtomicU64,
}

pub struct Entry<V> {
    pub value: V,
    pub expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub capacity: u64,
}

impl<V> Cache<V> {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { map: quick_cache::sync::Cache::new(capacity.max(1)), expired: AtomicU64::new(0) }
    }

    /// The live entry for `key`, if any; an expired one counts as a miss and is dropped.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<Arc<Entry<V>>> {
        match self.map.get(key) {
            Some(entry) if entry.expires > now => Some(entry),
            Some(_) => {
                self.map.remove(key);
                self.expired.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `ttl`; a zero TTL is not stored (it may not be reused, RFC 1035 3.2.1).
    pub fn insert(&self, key: &[u8], value: V, ttl: Duration, now: Instant) -> Arc<Entry<V>> {
        let entry = Arc::new(Entry { value, expires: now + ttl });
        if !ttl.is_zero() {
            self.map.insert(key.into(), entry.clone());
        }
        entry
    }

    pub fn remove(&self, key: &[u8]) {
        self.map.remove(key);
    }

    /// Drops every entry whose key fails `keep`: a walk over the whole cache, for rare writes
    /// (a changed delegation) that change many names at once.
    pub fn retain(&self, keep: impl Fn(&[u8]) -> bool) {
        self.map.retain(|key, _| keep(key));
    }

    pub fn stats(&self) -> CacheStats {
        let expired = self.expired.load(Ordering::Relaxed);
        CacheStats {
            hits: self.map.hits().saturating_sub(expired),
            misses: self.map.misses() + expired,
            entries: self.map.len(),
            capacity: self.map.capacity(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_at_their_ttl() {
        let cache = Cache::new(10);
        cache.insert(b"a", 1, Duration::from_secs(60), Instant::now());
        assert_eq!(cache.get(b"a", Instant::now()).map(|e| e.value), Some(1));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.get(b"a", Instant::now()).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get(b"a", Instant::now()).is_none());
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries), (2, 1, 0));
    }

    #[test]
    fn bounded_and_invalidated() {
        let cache = Cache::new(100);
        let now = Instant::now();
        for i in 0..1000u32 {
            cache.insert(&i.to_be_bytes(), i, Duration::from_secs(60), now);
        }
        assert!(cache.stats().entries <= 110, "evicts: {:?}", cache.stats());
        cache.insert(b"k", 7, Duration::from_secs(60), now);
        cache.remove(b"k");
        assert!(cache.get(b"k", now).is_none());
        cache.insert(b"zero", 1, Duration::ZERO, now);
        assert!(cache.get(b"zero", now).is_none(), "a zero TTL is not cached");
        cache.insert(b"ab", 1, Duration::from_secs(60), now);
        cache.insert(b"ac", 2, Duration::from_secs(60), now);
        cache.retain(|k| k != b"ab");
        assert!(cache.get(b"ab", now).is_none() && cache.get(b"ac", now).is_some());
    }
}
