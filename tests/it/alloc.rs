//! The hot path allocates nothing on a cache hit: counted by a global allocator that tallies
//! allocations per thread, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use idnode::dns::{Frontend, Scratch, Transport, Verdict, zone_config};
use idnode::registry::Registry;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread-local without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn cache_hits_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::open(dir.path()).unwrap());
    idnode::demo::load(&registry).unwrap();
    let zone = zone_config(&idnode::config::DnsConfig::default()).unwrap();
    let frontend = Frontend::new(zone, registry, 1 << 20, 1232);
    let mut scratch = Scratch::default();
    let mut out = Vec::with_capacity(65535);
    let queries = [
        crate::dns::query("abc-123._id.1.100.88.id.example.", hickory_proto::rr::RecordType::TXT, Some(1232)),
        crate::dns::query("Nope._id.1.100.88.id.example.", hickory_proto::rr::RecordType::TXT, None),
        crate::dns::query("datasheet-9._id.1.100.88.id.example.", hickory_proto::rr::RecordType::TXT, Some(1232)),
        crate::dns::query("outside.example.org.", hickory_proto::rr::RecordType::A, None),
    ];
    let start = allocations();
    for q in &queries {
        // The first query of each name misses and fills the cache.
        assert_eq!(frontend.handle(q, Transport::Udp, &mut scratch, &mut out), Verdict::Respond);
    }
    let before = allocations();
    assert!(before - start > 10, "the counter sees the misses' allocations");
    for _ in 0..100 {
        for q in &queries {
            assert_eq!(frontend.handle(q, Transport::Udp, &mut scratch, &mut out), Verdict::Respond);
        }
    }
    assert_eq!(allocations() - before, 0, "answer, NXDOMAIN, truncation and REFUSED allocate nothing");
    assert!(frontend.cache_stats().hits >= 300);
}
