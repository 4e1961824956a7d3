//! The hot path allocates nothing on a cache hit, a recursive node's miss allocates no 64 KiB
//! buffers, and secret checks do not allocate Argon2's memory afresh each time: counted by a
//! global allocator that tallies allocations (the largest one, and those of 1 MiB or more) per
//! thread, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use idnode::auth::{Authenticator, Credentials};
use idnode::dns::{Frontend, Scratch, Transport, Verdict, zone_config};
use idnode::registry::Registry;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LARGE: Cell<u64> = const { Cell::new(0) };
}

/// 1 MiB: an allocation this large or larger is counted on its own as well.
const LARGE_SIZE: usize = 1 << 20;

fn count(size: usize) {
    ALLOCATIONS.with(|a| a.set(a.get() + 1));
    LARGEST.with(|l| l.set(l.get().max(size)));
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
    let zone = {
        let dns = idnode::config::DnsConfig::default();
        zone_config(&dns, &dns.zones()).unwrap()
    };
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
        assert!(matches!(frontend.handle(q, Transport::Udp, &mut scratch, &mut out), Verdict::Respond));
    }
    let before = allocations();
    assert!(before - start > 10, "the counter sees the misses' allocations");
    for _ in 0..100 {
        for q in &queries {
            assert!(matches!(frontend.handle(q, Transport::Udp, &mut scratch, &mut out), Verdict::Respond));
        }
    }
    assert_eq!(allocations() - before, 0, "answer, NXDOMAIN, truncation and REFUSED allocate nothing");
    assert!(frontend.cache_stats().hits >= 300);
}

/// A Handle RESOLUTION message (header, body, empty credential) for `handle` with the lists.
fn handle_resolution(handle: &str, indexes: &[u32], types: &[&str], flags: u32) -> Vec<u8> {
    let mut body = Vec::new();
    let mut put = |b: &[u8]| body.extend_from_slice(b);
    put(&(handle.len() as u32).to_be_bytes());
    put(handle.as_bytes());
    put(&(indexes.len() as u32).to_be_bytes());
    indexes.iter().for_each(|i| put(&i.to_be_bytes()));
    put(&(types.len() as u32).to_be_bytes());
    for t in types {
        put(&(t.len() as u32).to_be_bytes());
        put(t.as_bytes());
    }
    let mut m = Vec::new();
    for n in [1, 0, flags] {
        m.extend_from_slice(&u32::to_be_bytes(n));
    }
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // serial, recursion, reserved, expiration
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(&body);
    m.extend_from_slice(&[0; 4]);
    m
}

#[test]
fn handle_cache_hits_allocate_nothing() {
    use idnode::handle::Verdict as HandleVerdict;
    use idnode::handle::message::{Envelope, Version};

    let dir = tempfile::tempdir().unwrap();
    let config = idnode::config::Config { data_dir: dir.path().to_owned(), ..Default::default() };
    let registry = Arc::new(Registry::open(dir.path()).unwrap());
    idnode::demo::load(&registry).unwrap();
    let frontend = idnode::server::assemble_all(&config, registry, None, Default::default()).unwrap().handle;
    let mut conn = idnode::handle::Connection::default();
    const PO_RD: u32 = 0x1900_0000 | 0x0080_0000;
    let messages = [
        handle_resolution("88.100.1/ABC-123", &[], &[], 0x1900_0000),
        handle_resolution("88.100.1/abc-123", &[1, 3], &["EMAIL", "URL."], PO_RD),
        handle_resolution("88.100.1/Nope", &[], &[], PO_RD),
        handle_resolution("88.100.1/ABC-123", &[], &["NOPE"], 0x1900_0000),
    ];
    let envelopes: Vec<Envelope> = [Version::new(2, 11), Version::new(2, 5), Version::new(2, 0), Version::new(2, 11)]
        .into_iter()
        .zip(&messages)
        .map(|(v, m)| Envelope {
            version: v,
            suggested: v,
            flags: 0,
            session_id: 0,
            request_id: 7,
            message_id: 0,
            message_length: m.len() as u32,
        })
        .collect();
    let mut out = Vec::with_capacity(65535);
    let codes = |out: &[u8]| u32::from_be_bytes([out[4], out[5], out[6], out[7]]);
    let mut answered = Vec::new();
    for (e, m) in envelopes.iter().zip(&messages) {
        // The first of each misses and fills the cache.
        assert!(matches!(frontend.answer(e, m, 1000, &mut conn, &mut out), HandleVerdict::Respond(_)));
        answered.push(codes(&out));
    }
    assert_eq!(answered, [1, 1, 100, 200]);
    let before = allocations();
    for _ in 0..100 {
        for (e, m) in envelopes.iter().zip(&messages) {
            assert!(matches!(frontend.answer(e, m, 1000, &mut conn, &mut out), HandleVerdict::Respond(_)));
        }
    }
    assert_eq!(allocations() - before, 0, "values, filters, digests, 100 and 200 from the cache allocate nothing");
    assert!(frontend.cache_stats().unwrap().hits >= 400);
}

#[test]
fn a_recursive_miss_allocates_no_64k_buffer() {
    use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::{RData, Record, rdata::TXT};
    use idnode::dns::recursive::{Recursor, RecursorConfig};

    // The upstream server answers on a thread of its own: its buffers are not counted here.
    let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let root = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0; 65535];
        while let Ok((n, peer)) = upstream.recv_from(&mut buf) {
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            response.metadata.authoritative = true;
            response.metadata.response_code = ResponseCode::NoError;
            response.add_queries(request.queries.iter().cloned());
            let owner = request.queries[0].name().clone();
            response.add_answer(Record::from_rdata(owner, 60, RData::TXT(TXT::new(vec!["x".into()]))));
            let _ = upstream.send_to(&response.to_vec().unwrap(), peer);
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::open(dir.path()).unwrap());
    let zone = {
        let dns = idnode::config::DnsConfig::default();
        zone_config(&dns, &dns.zones()).unwrap()
    };
    let r = idnode::config::RecursiveConfig::default();
    let frontend = Frontend::new(zone, registry, 1 << 16, 1232).with_recursor(Recursor::new(RecursorConfig {
        roots: vec![root],
        port: 53,
        timeout: std::time::Duration::from_secs(2),
        max_referrals: r.max_referrals,
        cache_bytes: 1 << 16,
        max_in_flight: r.max_in_flight,
        budget: std::time::Duration::from_millis(r.resolution_budget_ms),
        max_ttl: r.max_ttl,
        max_negative_ttl: r.max_negative_ttl,
    }));
    for i in 0..3 {
        let request = crate::dns::query(
            &format!("miss-{i}._id.1.88.id.example."),
            hickory_proto::rr::RecordType::TXT,
            Some(1232),
        );
        LARGEST.with(|l| l.set(0));
        let verdict = frontend.handle(&request, Transport::Udp, &mut Scratch::default(), &mut Vec::new());
        let Verdict::Defer(pending) = verdict else { panic!("miss {i}: {verdict:?}, not deferred") };
        let response = runtime.block_on(pending.resolve());
        let largest = LARGEST.with(Cell::get);
        assert_eq!(Message::from_vec(&response).unwrap().answers.len(), 1);
        assert!(largest < 8192, "miss {i}: the largest allocation took {largest} bytes");
    }
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
