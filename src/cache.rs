//! The front cache: bounded, concurrent, TTL-aware, in front of the registry.
//!
//! It maps a byte key (the DNS front end uses the lower-cased wire name) to an already encoded
//! answer, so a hit decodes nothing and allocates nothing: the caller gets an `Arc` to bytes it
//! copies into its own buffer. Entries expire at the TTL they were stored with; negative answers
//! are cached like any other. Every write to the registry removes the keys it touches (the
//! caller knows which), after the write is durable.
//!
//! Storage is `quick_cache` (S3-FIFO eviction, sharded), chosen over a bare `DashMap` in
//! `benches/cache.rs`: see `benches/README.md` for the numbers. It is bounded in bytes, not in
//! entries: an answer may be 50 bytes or 60 KB, so a count says nothing about memory. Each
//! value says what it weighs ([`Weigh`]); the cache adds its key and a fixed per-entry cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub struct Cache<V: Weigh> {
    map: quick_cache::sync::Cache<Box<[u8]>, Arc<Entry<V>>, ByBytes, quick_cache::DefaultHashBuilder, CountEvictions>,
    /// Entries evicted to make room (not those dropped by a write or found expired).
    evicted: Arc<AtomicU64>,
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
    /// What the entries weigh, in bytes, and the most they may weigh.
    pub bytes: u64,
    pub max_bytes: u64,
    /// Entries evicted to make room for others.
    pub evictions: u64,
}

/// Counts the entries quick_cache evicts: one shared counter, written only on an insert that
/// evicts (a miss), never on a hit.
#[derive(Clone)]
struct CountEvictions(Arc<AtomicU64>);

impl<K, V> quick_cache::Lifecycle<K, V> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: K, _value: V) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The heap bytes a cached value holds beyond its inline size.
pub trait Weigh {
    fn heap_bytes(&self) -> usize;
}

impl<T> Weigh for Box<[T]> {
    fn heap_bytes(&self) -> usize {
        size_of_val(&**self)
    }
}

impl<T> Weigh for Arc<[T]> {
    fn heap_bytes(&self) -> usize {
        2 * size_of::<usize>() + size_of_val(&**self)
    }
}

/// What one entry costs besides its key's bytes and its value: the key's box, the `Arc`
/// counts, quick_cache's slot, hash-table word and its allocator rounding; an estimate from
/// their layouts on x86_64 (16 + 16 + about 48 + rounding).
const ENTRY_OVERHEAD: usize = 96;

/// The size of an average entry, only to pre-size the hash table (the weight bound rules).
const TYPICAL_ENTRY: u64 = 512;

#[derive(Clone, Copy)]
pub struct ByBytes;

impl<V: Weigh> quick_cache::Weighter<Box<[u8]>, Arc<Entry<V>>> for ByBytes {
    fn weight(&self, key: &Box<[u8]>, entry: &Arc<Entry<V>>) -> u64 {
        (key.len() + size_of::<Entry<V>>() + entry.value.heap_bytes() + ENTRY_OVERHEAD) as u64
    }
}

impl<V: Weigh> Cache<V> {
    /// A cache whose entries weigh at most `max_bytes` in all.
    pub fn new(max_bytes: u64) -> Self {
        let max_bytes = max_bytes.max(1);
        let items = usize::try_from(max_bytes / TYPICAL_ENTRY).unwrap_or(usize::MAX).max(1);
        let evicted = Arc::new(AtomicU64::new(0));
        let lifecycle = CountEvictions(evicted.clone());
        let map = quick_cache::sync::Cache::with(items, max_bytes, ByBytes, Default::default(), lifecycle);
        Self { map, evicted, expired: AtomicU64::new(0) }
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

    /// Whether `key` has an entry, live or not, without counting a hit or a miss or making the
    /// entry hotter.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.map.peek(key).is_some()
    }

    /// Whether the entries weigh at least `percent` of the most they may.
    pub fn holds_at_least(&self, percent: u64) -> bool {
        self.map.weight().saturating_mul(100) >= self.map.capacity().saturating_mul(percent)
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
            bytes: self.map.weight(),
            max_bytes: self.map.capacity(),
            evictions: self.evicted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for u32 {
        fn heap_bytes(&self) -> usize {
            0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_at_their_ttl() {
        let cache = Cache::new(10_000);
        cache.insert(b"a", 1u32, Duration::from_secs(60), Instant::now());
        assert_eq!(cache.get(b"a", Instant::now()).map(|e| e.value), Some(1));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.get(b"a", Instant::now()).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get(b"a", Instant::now()).is_none());
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries), (2, 1, 0));
    }

    #[test]
    fn bounded_in_bytes_and_invalidated() {
        let cache = Cache::new(100_000);
        let now = Instant::now();
        for i in 0..10_000u32 {
            cache.insert(&i.to_be_bytes(), i, Duration::from_secs(60), now);
        }
        let s = cache.stats();
        assert!(s.bytes <= 100_000 && s.entries < 1000, "evicts by weight: {s:?}");
        assert!(s.evictions > 0 && s.evictions as usize + s.entries <= 10_000, "evictions counted: {s:?}");
        // A few large answers push out many small ones: the bound is memory, not a count.
        let big = Cache::new(100_000);
        for i in 0..100u32 {
            big.insert(&i.to_be_bytes(), vec![0u8; 10_000].into_boxed_slice(), Duration::from_secs(60), now);
        }
        assert!(big.stats().entries <= 10 && big.stats().bytes <= 100_000, "{:?}", big.stats());
        cache.insert(b"k", 7u32, Duration::from_secs(60), now);
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
