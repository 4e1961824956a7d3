//! The hot path allocates nothing on a cache hit, and secret checks do not allocate Argon2's
//! memory afresh each time: counted by a global allocator that tallies allocations per thread,
//! so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use idnode::auth::{Authenticator, Credentials};
use idnode::dns::{Frontend, Scratch, Transport, Verdict, zone_config};
use idnode::registry::Registry;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LARGE: Cell<u64> = const { Cell::new(0) };
}

/// 1 MiB: an allocation this large or larger is counted on its own as well.
const LARGE_SIZE: usize = 1 << 20;

fn count(size: usize) {
    ALLOCATIONS.with(|a| a.set(a.get() + 1));
    if size >= LARGE_SIZE {
        LARGE.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread-local without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn large_allocations() -> u64 {
    LARGE.with(Cell::get)
}

#[test]
fn cache_hits_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::open(dir.path()).unwrap());
    idnode::demo::load(&registry).unwrap();
    let zone = zone_config(&idnode::config::DnsConfig::default()).unwrap();
    let frontend = Frontend::new(zone, registry, 100, 1232);
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

#[test]
fn secret_checks_reuse_argon2_memory() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let auth = Authenticator::new(1);
    let before = large_allocations();
    // Unknown administrators: each costs a full Argon2 check against the decoy hash.
    for i in 0..5 {
        let credentials = Credentials::new(&format!("300:0.NA/77.{i}"), "guess").unwrap();
        assert!(auth.authenticate(&registry, &credentials, None).is_err());
    }
    // Making the decoy hash takes Argon2's 19 MiB once, and so does the one check slot; memory
    // taken afresh for every check was left behind by glibc in each thread's arena, and spread
    // over the blocking threads it grew the node by 0.9 GB (benches/soak).
    assert_eq!(large_allocations() - before, 2, "Argon2's memory is allocated once per slot");
}
