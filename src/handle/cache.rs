//! The Handle front cache: encoded RESOLUTION response bodies for anonymous requests, in front of
//! the node core, dropped by the node's write hook ([`crate::node::Subscriber`]).
//!
//! ```text
//!  Frontend::resolution (anonymous, PO set, no credential)
//!        │
//!        ▼
//!  map key: the handle ASCII-lower-cased ──hit──> variant with the same version and the same
//!        │ miss                                  handle/index/type bytes ──> Request::respond:
//!        ▼                                       header from the request, digest over this
//!  Node::resolve ──> encode ──> fill             request, the cached body bytes
//! ```
//!
//! An entry is keyed by the handle lower-cased, because identifiers match ignoring ASCII case
//! and a write names the identifier, not the case a client asked in. Under that key sit up to
//! [`MAX_VARIANTS`] responses, one per distinct request body (the handle exactly as asked, which
//! the response echoes; the index and type lists, which select the values) and response version
//! (which decides the response code's number). What differs per request (request and session
//! ids, opFlags, recursion count, expiration, the request digest) is not cached: the response
//! header and digest are written afresh around the cached body, so a hit costs one map lookup,
//! one copy and, when RD is set, one hash, and allocates nothing.
//!
//! Cached: SUCCESS, HANDLE_NOT_FOUND, VALUES_NOT_FOUND and referrals (303 / 7 / 301). Never
//! cached: INVALID_HANDLE (answered without a registry read, and a flood of junk handles would
//! only churn the cache), PROTOCOL_ERROR, storage failures, and anything for a request that is
//! not anonymous (see [`cacheable`]).
//!
//! Invalidation, after a write is durable and before it is acknowledged: a changed identifier
//! drops its key; a changed prefix record (`0.NA/P`: its referral values, its `HS_SITE`, its
//! `HS_SERV`) and a changed delegation drop every key at or below `P` (a walk over the cache;
//! such writes are rare administrative ones). A miss that read the registry before a write and
//! fills after it sees the write generation moved and drops its own entry again, as the DNS
//! cache does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::message::{Request, Version, op_flags};
use crate::cache::{Cache, CacheStats, Weigh};
use crate::identifier::PREFIX_AUTHORITY;
use crate::node::{Changed, Subscriber};

/// 4: responses kept per identifier. A client asks one identifier in one case with one filter;
/// a few more cover a mix of clients. A client cycling through case variants or filters only
/// replaces the oldest, so one identifier never holds more than this.
pub const MAX_VARIANTS: usize = 4;

/// 64: prefixes one write may change before it drops the whole cache instead of what is at or
/// below each. The walk visits every entry either way; this bounds it to 64 comparisons an
/// entry, so a batch of 2000 prefix records costs one cheap walk and a refill, not 2000
/// comparisons an entry. Writes of prefix records are rare and administrative.
const MAX_CUTS: usize = 64;

/// 3600 s: the longest a cached response lives. Every write through the node drops what it
/// changed at once, and the cached bytes do not age (the header and its expiration are written
/// per request), so this only bounds how long an entry could outlive a change the node did
/// not see.
const CACHE_TIME: Duration = Duration::from_secs(3600);

/// Whether a RESOLUTION may be answered from, and fill, the cache: only an anonymous request
/// (no administrator proved by `principal`, no credential section) that sets public-only (PO).
/// A request without PO may be challenged for non-public values once authentication exists,
/// so it is answered by the core every time; CNRI's client and the national SDKs set PO on
/// resolutions.
pub fn cacheable(request: &Request<'_>, principal_known: bool) -> bool {
    !principal_known && request.credential.is_empty() && request.header.op_flags & op_flags::PUBLIC_ONLY != 0
}

/// What a resolution asked, as far as it decides the response: the handle as received, the
/// body up to the end of its type list (the handle again, the index and type lists), and the
/// response version.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub handle: &'a [u8],
    pub query: &'a [u8],
    pub version: Version,
}

/// One cached response: the request it answers (version, and the resolution body exactly as
/// received up to its type list), its response code and its body after the request digest.
pub struct Variant {
    version: Version,
    query: Box<[u8]>,
    pub code: u32,
    pub body: Box<[u8]>,
}

/// The responses cached for one identifier, oldest first.
pub struct Variants(Box<[Arc<Variant>]>);

impl Weigh for Variants {
    fn heap_bytes(&self) -> usize {
        self.0.iter().map(|v| 2 * size_of::<usize>() + size_of::<Variant>() + v.query.len() + v.body.len()).sum()
    }
}

/// The cache of encoded RESOLUTION responses (see the module docs).
pub struct ResolutionCache {
    cache: Cache<Variants>,
    /// Bumped by every committed write before it drops entries (see the module docs).
    generation: AtomicU64,
}

impl ResolutionCache {
    /// A cache whose entries weigh at most `max_bytes` in all.
    pub fn new(max_bytes: u64) -> Self {
        Self { cache: Cache::new(max_bytes), generation: AtomicU64::new(0) }
    }

    /// The map's counters: lookups by identifier (a fill looks its identifier up too, and a
    /// found identifier without the asked variant counts as a hit there), entries and weight.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The write generation a miss starts from; pass it to [`fill`](Self::fill).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The cached response to what a resolution `asked`. `scratch` holds the lower-cased key
    /// (the caller's output buffer, written afresh after); nothing is allocated once it has
    /// room for the handle.
    pub fn get(&self, asked: Asked<'_>, now: Instant, scratch: &mut Vec<u8>) -> Option<Arc<Variant>> {
        scratch.clear();
        scratch.extend(asked.handle.iter().map(u8::to_ascii_lowercase));
        let entry = self.cache.get(scratch, now)?;
        entry.value.0.iter().find(|v| v.version == asked.version && *v.query == *asked.query).cloned()
    }

    /// Caches `body` with `code` as the response to what was `asked`, read from the registry at
    /// `generation`; dropped again if a write committed since.
    pub fn fill(&self, asked: Asked<'_>, (code, body): (u32, &[u8]), generation: u64, now: Instant) {
        let Asked { handle, query, version } = asked;
        let key = handle.to_ascii_lowercase();
        let variant = Arc::new(Variant { version, query: query.into(), code, body: body.into() });
        let mut variants: Vec<Arc<Variant>> = match self.cache.get(&key, now) {
            Some(entry) => {
                entry.value.0.iter().filter(|v| v.version != version || v.query != variant.query).cloned().collect()
            }
            None => Vec::new(),
        };
        if variants.len() >= MAX_VARIANTS {
            variants.drain(..=variants.len() - MAX_VARIANTS);
        }
        variants.push(variant);
        self.cache.insert(&key, Variants(variants.into()), CACHE_TIME, now);
        // SeqCst on both sides: see `generation`.
        if self.generation.load(Ordering::SeqCst) != generation {
            self.cache.remove(&key);
        }
    }
}

/// The prefix whose delegations decide the answer for a cache key (a lower-cased handle):
/// `p` for `p/suffix`, `P` for the prefix record `0.na/P` and for the bare prefix `P`.
fn governing_prefix(key: &[u8]) -> &[u8] {
    match key.iter().position(|&b| b == b'/') {
        Some(slash) if key[..slash].eq_ignore_ascii_case(PREFIX_AUTHORITY.as_bytes()) => &key[slash + 1..],
        Some(slash) => &key[..slash],
        None => key,
    }
}

/// Whether `prefix` is `cut` or a prefix below it (`88.100.5.1` is below `88.100.5`).
fn at_or_below(prefix: &[u8], cut: &[u8]) -> bool {
    prefix.len() >= cut.len()
        && prefix[..cut.len()].eq_ignore_ascii_case(cut)
        && (prefix.len() == cut.len() || prefix[cut.len()] == b'.')
}

impl Subscriber for ResolutionCache {
    fn changed(&self, change: &Changed) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut cuts: Vec<&str> = change.delegations.iter().map(String::as_str).collect();
        for id in &change.identifiers {
            match id.record_prefix() {
                // A prefix record's values are the referral for everything below it.
                Some(prefix) => cuts.push(prefix),
                None => self.cache.remove(id.key().as_bytes()),
            }
        }
        if cuts.len() > MAX_CUTS {
            // A batch of many prefix records: one walk that keeps nothing, not one walk that
            // tries every prefix on every entry.
            self.cache.retain(|_| false);
        } else if !cuts.is_empty() {
            self.cache.retain(|key| !cuts.iter().any(|cut| at_or_below(governing_prefix(key), cut.as_bytes())));
        }
    }

    /// Homing or unhoming a prefix changes where the node refers and which prefix records get
    /// its own site: nothing cached is sure to hold.
    fn zones_changed(&self, _zones: &crate::node::Zones) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.retain(|_| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Identifier;

    fn asked<'a>(handle: &'a [u8], query: &'a [u8]) -> Asked<'a> {
        Asked { handle, query, version: Version::new(2, 11) }
    }

    #[test]
    fn keys_fold_case_and_variants_are_bounded() {
        let cache = ResolutionCache::new(1 << 20);
        let now = Instant::now();
        let mut scratch = Vec::new();
        let g = cache.generation();
        cache.fill(asked(b"88.100.1/Abc", b"q1"), (1, b"body1"), g, now);
        let hit = cache.get(asked(b"88.100.1/ABC", b"q1"), now, &mut scratch).expect("case-insensitive key");
        assert_eq!((hit.code, &*hit.body), (1, &b"body1"[..]));
        assert!(cache.get(asked(b"88.100.1/abc", b"q2"), now, &mut scratch).is_none(), "another request body");
        assert!(
            cache
                .get(Asked { version: Version::new(2, 4), ..asked(b"88.100.1/abc", b"q1") }, now, &mut scratch)
                .is_none()
        );
        for i in 0..10u8 {
            cache.fill(asked(b"88.100.1/abc", &[b'x', i]), (1, b"b"), g, now);
        }
        let entry = cache.cache.get(b"88.100.1/abc", now).unwrap();
        assert_eq!(entry.value.0.len(), MAX_VARIANTS, "one identifier holds at most MAX_VARIANTS");
        assert_eq!(&*entry.value.0[MAX_VARIANTS - 1].query, &[b'x', 9], "the newest kept");
    }

    #[test]
    fn writes_drop_what_they_change_and_a_racing_fill_drops_itself() {
        let cache = ResolutionCache::new(1 << 20);
        let now = Instant::now();
        let mut scratch = Vec::new();
        let g = cache.generation();
        for handle in ["88.100.1/A", "88.100.1/B", "88.100.5/X", "0.NA/88.100.5.1", "88.100.5.1", "88.100.50/Y"] {
            cache.fill(asked(handle.as_bytes(), b"q"), (1, b"b"), g, now);
        }
        let cached = |h: &str, scratch: &mut Vec<u8>| cache.get(asked(h.as_bytes(), b"q"), now, scratch).is_some();
        let id = |s: &str| Identifier::parse(s).unwrap();
        cache.changed(&Changed { identifiers: vec![id("88.100.1/a")], delegations: vec![] });
        assert!(!cached("88.100.1/A", &mut scratch) && cached("88.100.1/B", &mut scratch));
        // A prefix record's change drops everything at or below its prefix, not a sibling.
        cache.changed(&Changed { identifiers: vec![id("0.NA/88.100.5")], delegations: vec![] });
        for gone in ["88.100.5/X", "0.NA/88.100.5.1", "88.100.5.1"] {
            assert!(!cached(gone, &mut scratch), "{gone}");
        }
        assert!(cached("88.100.50/Y", &mut scratch) && cached("88.100.1/B", &mut scratch));
        cache.changed(&Changed { identifiers: vec![], delegations: vec!["88".into()] });
        assert!(!cached("88.100.50/Y", &mut scratch) && !cached("88.100.1/B", &mut scratch));
        cache.fill(asked(b"77.1/Z", b"q"), (1, b"b"), cache.generation(), now);
        let many = (0..=MAX_CUTS).map(|i| format!("99.{i}")).collect();
        cache.changed(&Changed { identifiers: vec![], delegations: many });
        assert!(!cached("77.1/Z", &mut scratch), "many prefixes at once drop everything");
        // A miss that began before a write fills after it: its entry is dropped.
        let before = cache.generation();
        cache.changed(&Changed { identifiers: vec![id("88.100.1/C")], delegations: vec![] });
        cache.fill(asked(b"88.100.1/C", b"q"), (100, b"stale"), before, now);
        assert!(!cached("88.100.1/C", &mut scratch));
    }

    #[test]
    fn a_flood_of_distinct_handles_stays_within_the_bound() {
        let cache = ResolutionCache::new(200_000);
        let now = Instant::now();
        for i in 0..20_000u32 {
            let handle = format!("88.100.1/NONE-{i}");
            cache.fill(asked(handle.as_bytes(), handle.as_bytes()), (100, &[0; 60]), 0, now);
        }
        let s = cache.stats();
        assert!(s.bytes <= 200_000 && s.entries < 2000, "{s:?}");
    }

    #[test]
    fn governing_prefixes() {
        assert_eq!(governing_prefix(b"88.100.1/abc"), b"88.100.1");
        assert_eq!(governing_prefix(b"0.na/88.100"), b"88.100");
        assert_eq!(governing_prefix(b"88.100"), b"88.100");
        assert!(at_or_below(b"88.100.5.1", b"88.100.5") && at_or_below(b"88.100.5", b"88.100.5"));
        assert!(!at_or_below(b"88.100.50", b"88.100.5") && !at_or_below(b"88.100", b"88.100.5"));
    }
}
