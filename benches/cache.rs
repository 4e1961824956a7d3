//! Run with: cargo bench --bench cache
//!
//! The front cache's candidates under the load it sees: two threads (the UDP workers of a
//! 2-core node) reading hot keys at once. Keys are wire-form DNS names, values shared encoded
//! answers, 100,000 entries.
//! - `dashmap`: a bare `DashMap` (the design card's choice); it has no bound and no eviction,
//!   so it is the floor of what a bounded cache built on it would cost;
//! - `quick_cache`: `quick_cache::sync::Cache` (bounded, S3-FIFO eviction);
//! - `idnode_cache`: idnode's `Cache`, quick_cache plus TTL check and hit counters.
//!
//! Throughput is lookups per second over both threads. Results: benches/README.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;

const ENTRIES: usize = 100_000;
const THREADS: usize = 2;

fn keys() -> Vec<Box<[u8]>> {
    (0..ENTRIES)
        .map(|i| {
            let mut k = Vec::new();
            let label = format!("sn-{i:09}");
            k.push(label.len() as u8);
            k.extend_from_slice(label.as_bytes());
            k.extend_from_slice(b"\x03_id\x011\x03100\x0288\x02id\x07example\x00");
            k.into_boxed_slice()
        })
        .collect()
}

/// Runs `iters` lookups on each of two threads at once; returns the wall time.
fn on_two_threads(iters: u64, keys: &[Box<[u8]>], get: impl Fn(&[u8]) -> bool + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let get = &get;
            s.spawn(move || {
                let mut at = t * 7919;
                for _ in 0..iters {
                    at = (at + 104_729) % keys.len();
                    assert!(get(black_box(&keys[at])));
                }
            });
        }
    });
    start.elapsed()
}

fn cache(c: &mut Criterion) {
    let keys = keys();
    let dash: DashMap<Box<[u8]>, Arc<[u8]>> = DashMap::new();
    let quick: quick_cache::sync::Cache<Box<[u8]>, Arc<[u8]>> = quick_cache::sync::Cache::new(ENTRIES * 2);
    let ours: idnode::cache::Cache<Arc<[u8]>> = idnode::cache::Cache::new(ENTRIES as u64 * 2048);
    let now = tokio::time::Instant::now();
    for (i, k) in keys.iter().enumerate() {
        // One value per key, as in the node: hot keys shared by both threads are the only
        // refcounts that bounce between cores.
        let value: Arc<[u8]> = vec![i as u8; 200].into();
        dash.insert(k.clone(), value.clone());
        quick.insert(k.clone(), value.clone());
        ours.insert(k, value.clone(), Duration::from_secs(3600), now);
    }
    let mut g = c.benchmark_group("cache_get_2_threads");
    g.throughput(Throughput::Elements(THREADS as u64));
    g.bench_function("dashmap", |b| {
        b.iter_custom(|n| on_two_threads(n, &keys, |k| dash.get(k).map(|v| v.clone()).is_some()))
    });
    g.bench_function("quick_cache", |b| b.iter_custom(|n| on_two_threads(n, &keys, |k| quick.get(k).is_some())));
    g.bench_function("idnode_cache", |b| b.iter_custom(|n| on_two_threads(n, &keys, |k| ours.get(k, now).is_some())));
    g.finish();
}

criterion_group!(benches, cache);
criterion_main!(benches);
