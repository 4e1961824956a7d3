//! Run with: cargo bench --bench lookup
//!
//! The hot lookup path, query bytes to response bytes, without sockets:
//! - `hit`: an answer from the front cache (the common case);
//! - `miss`: every query misses the cache (capacity 1) and is answered from redb holding
//!   IDNODE_BENCH_IDS identifiers (default 1,000,000; built once into target/bench-registry-N
//!   and reused); `miss_nxdomain`: the same for names of no identifier;
//! - `miss_8mib_unsettled`, `miss_8mib_settled`: misses over 65,536 names through an 8 MiB redb
//!   cache, so that most lookups read pages through the kernel, as at 100M identifiers: first as
//!   the registry is after a commit, then after [`Registry::settle`] (`src/registry/settle.rs`);
//! - `parse_identifier`, `identifier_to_name`, `name_to_identifier`: the mapping's pieces;
//! - `udp/one`, `udp/burst_32`: the UDP fast path end to end, through a real server on loopback
//!   with one worker (batched receive and send), every answer a cache hit: one query at a time,
//!   and bursts of 32 queries sent before the 32 answers are read.
//!
//! The numbers and how they compare are in benches/README.md.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idnode::config::{Config, DnsConfig};
use idnode::dns::mapping::{classify, identifier_labels};
use idnode::dns::{DnsName, Frontend, Scratch, Transport, Verdict, zone_config};
use idnode::identifier::Identifier;
use idnode::record::{Record, Value};
use idnode::registry::{MAX_BATCH, Registry};
use idnode::server::Server;

/// The allocator the `idnode` binary runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A TXT query with EDNS for `name`, as dig sends it.
fn query(name: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, 16, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

fn identifier(i: u64) -> String {
    format!("88.100.{}/SN-{i:09}", i % 16)
}

fn bench_registry(count: u64) -> Arc<Registry> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-registry-{count}"));
    let registry = Registry::open(&dir).expect("bench registry");
    if registry.len().unwrap() != count {
        eprintln!("building a registry of {count} identifiers in {} ...", dir.display());
        let mut bulk = registry.bulk();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        for i in 0..count {
            let id = Identifier::parse(&identifier(i)).unwrap();
            let values = vec![
                Value::new(1, "URL", format!("https://example.com/p/{i}"), 1_767_225_600),
                Value::new(2, "EMAIL", "ops@example.com", 1_767_225_600),
            ];
            batch.push(Record::new(&id, values).unwrap());
            if batch.len() == MAX_BATCH || i + 1 == count {
                bulk.transact(|txn| batch.iter().try_for_each(|r| txn.put(r, false).map(drop))).unwrap();
                batch.clear();
            }
        }
        bulk.finish().unwrap();
    }
    Arc::new(registry)
}

fn frontend(registry: Arc<Registry>, cache_bytes: u64) -> Frontend {
    let dns = DnsConfig::default();
    Frontend::new(zone_config(&dns, &dns.zones()).unwrap(), registry, cache_bytes, 1232)
}

fn dns_name(id: &str) -> String {
    let apex = DnsName::from_ascii("id.example.").unwrap();
    idnode::dns::client::dns_name(&Identifier::parse(id).unwrap(), &apex).unwrap()
}

fn hit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::open(dir.path()).unwrap());
    idnode::demo::load(&registry).unwrap();
    let fe = frontend(registry, 1 << 20);
    let request = query(&dns_name("88.100.1/ABC-123"), 7);
    let (mut scratch, mut out) = (Scratch::default(), Vec::with_capacity(65535));
    assert!(matches!(fe.handle(&request, Transport::Udp, &mut scratch, &mut out), Verdict::Respond));
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hit", |b| {
        b.iter(|| fe.handle(black_box(&request), Transport::Udp, &mut scratch, &mut out));
    });
    g.finish();
}

fn bench_ids() -> u64 {
    std::env::var("IDNODE_BENCH_IDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// `names` queries of a fixed pseudo-random walk over `count` identifiers.
fn walk(names: u64, count: u64) -> Vec<Vec<u8>> {
    (0..names).map(|i| query(&dns_name(&identifier(i.wrapping_mul(2_654_435_761) % count)), 7)).collect()
}

fn miss(c: &mut Criterion) {
    let count = bench_ids();
    let fe = frontend(bench_registry(count), 1);
    // Every query misses the front cache.
    let requests = walk(4096, count);
    let (mut scratch, mut out) = (Scratch::default(), Vec::with_capacity(65535));
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    let mut n = 0;
    g.bench_function(format!("miss_redb_{count}"), |b| {
        b.iter(|| {
            n = (n + 1) % requests.len();
            fe.handle(&requests[n], Transport::Udp, &mut scratch, &mut out)
        });
    });
    // Names of no identifier (NXDOMAIN), each asked once: a tenth of the comparison's queries.
    let absent: Vec<Vec<u8>> =
        (0..4096u64).map(|i| query(&dns_name(&format!("88.100.{}/NONE-{i}", i % 16)), 7)).collect();
    g.bench_function(format!("miss_nxdomain_{count}"), |b| {
        b.iter(|| {
            n = (n + 1) % absent.len();
            fe.handle(&absent[n], Transport::Udp, &mut scratch, &mut out)
        });
    });
    g.finish();
    // (Nothing ran when a filter left these benches out.)
    assert!(out.is_empty() || out.len() > 30 && out[3] & 0x0f == 3, "the last one was NXDOMAIN");
}

fn miss_through_the_kernel(c: &mut Criterion) {
    let count = bench_ids();
    let dir = bench_registry(count).dir().to_owned();
    // Opened again (the one above is closed once its last holder is gone), with a small cache.
    let registry = Arc::new(Registry::open_with_cache(&dir, Some(8 << 20)).unwrap());
    let fe = frontend(registry.clone(), 1);
    let requests = walk(65_536, count);
    let (mut scratch, mut out) = (Scratch::default(), Vec::with_capacity(65535));
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    let mut n = 0;
    // One pass first, so that neither bench finds the pages colder than the other.
    for request in &requests {
        fe.handle(request, Transport::Udp, &mut scratch, &mut out);
    }
    // Opening committed, as any write does.
    for state in ["unsettled", "settled"] {
        if state == "settled" {
            assert!(registry.settle().unwrap());
        }
        g.bench_function(format!("miss_8mib_{state}_{count}"), |b| {
            b.iter(|| {
                n = (n + 1) % requests.len();
                fe.handle(&requests[n], Transport::Udp, &mut scratch, &mut out)
            });
        });
    }
    g.finish();
}

fn mapping(c: &mut Criterion) {
    let text = "88.100.1/ABC-123-XYZ-0001";
    let id = Identifier::parse(text).unwrap();
    let labels = identifier_labels(&id);
    let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
    let mut g = c.benchmark_group("mapping");
    g.bench_function("parse_identifier", |b| b.iter(|| Identifier::parse(black_box(text))));
    g.bench_function("identifier_to_name", |b| b.iter(|| identifier_labels(black_box(&id))));
    g.bench_function("name_to_identifier", |b| b.iter(|| classify(black_box(&refs))));
    g.finish();
}

fn udp(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    config.dns.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.dns.udp_workers = 1;
    let registry = Arc::new(Registry::open(&config.data_dir).unwrap());
    idnode::demo::load(&registry).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(Server::start(&config, registry)).unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    client.connect(server.local_addr()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let request = query(&dns_name("88.100.1/ABC-123"), 7);
    let mut buf = [0u8; 2048];
    let mut g = c.benchmark_group("udp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one", |b| {
        b.iter(|| {
            client.send(&request).unwrap();
            client.recv(&mut buf).unwrap()
        })
    });
    g.throughput(Throughput::Elements(32));
    g.bench_function("burst_32", |b| {
        b.iter(|| {
            for _ in 0..32 {
                client.send(&request).unwrap();
            }
            for _ in 0..32 {
                client.recv(&mut buf).unwrap();
            }
        })
    });
    g.finish();
    stop.send(()).unwrap();
    runtime.block_on(serving).unwrap().unwrap();
}

criterion_group!(benches, hit, miss, miss_through_the_kernel, mapping, udp);
criterion_main!(benches);
