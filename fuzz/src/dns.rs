//! `dns_request`: any bytes as a DNS query, through the authoritative front end
//! (`dns::Frontend::handle`, what the UDP workers and TCP connections call), over a real redb
//! registry seeded with hostile records.
//!
//! Every answer must be one the node may send: the request's ID with QR set, within the
//! transport's size, and a DNS message that hickory-proto parses. A query dropped without an
//! answer must be one that `wire::parse` drops (too short, or a response).

use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use idnode::auth::Admin;
use idnode::config::{Config, NameServer};
use idnode::dns::{Frontend, Scratch, Transport, Verdict};
use idnode::identifier::Identifier;
use idnode::node::{Node, WriteError};
use idnode::record::site::{Attribute, Server, Site};
use idnode::record::{MAX_RECORD_SIZE, Permissions, Ttl, VALUE_OVERHEAD, Value};
use idnode::registry::Registry;

/// The smallest front cache (1 MiB): with ~30 KB answers among the seeds, fuzzing evicts and
/// misses as well as hits.
const CACHE_MB: u64 = 1;
/// The node's largest UDP answer (the default: DNS Flag Day 2020).
const MAX_UDP: usize = 1232;

pub fn dns_request(data: &[u8]) {
    let frontend = &fixture().frontend;
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    for (transport, limit) in [(Transport::Udp, MAX_UDP), (Transport::Tcp, usize::from(u16::MAX))] {
        match frontend.handle(data, transport, &mut scratch, &mut out) {
            Verdict::Respond => check_response(data, &out, limit),
            Verdict::Drop => assert!(
                data.len() < 12 || data[2] & 0x80 != 0,
                "only a runt or a response is dropped; request {}",
                crate::hex(data)
            ),
            Verdict::Defer(_) => panic!("an authoritative node recursed; request {}", crate::hex(data)),
            Verdict::Transfer => {
                assert!(transport == Transport::Tcp, "a transfer over UDP; request {}", crate::hex(data))
            }
        }
    }
}

fn check_response(request: &[u8], out: &[u8], limit: usize) {
    let shown = || format!("request {}\nresponse {}", crate::hex(request), crate::hex(out));
    assert!(out.len() >= 12 && out.len() <= limit, "{} bytes, limit {limit}\n{}", out.len(), shown());
    assert_eq!(out[..2], request[..2], "the response keeps the query's ID\n{}", shown());
    assert!(out[2] & 0x80 != 0, "QR is set\n{}", shown());
    let msg = Message::from_vec(out).unwrap_or_else(|e| panic!("the response does not parse: {e}\n{}", shown()));
    assert!(msg.queries.len() <= 1, "at most the one question\n{}", shown());
    if msg.metadata.truncation {
        assert!(msg.answers.is_empty() && msg.authorities.is_empty(), "a truncated answer is empty\n{}", shown());
    }
}

//------------ The registry ------------------------------------------------------------------

struct Fixture {
    frontend: Arc<Frontend>,
    /// Kept so the front end's cache stays subscribed to writes, as in a running node.
    _node: Arc<Node>,
}

/// One node per process: the registry is written once, then only read by queries.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        // A second zone below the first, so that queries pick the deepest zone holding them.
        config.dns.zones = vec![String::new(), "88.100".into()];
        config.dns.nameservers = vec![
            NameServer {
                name: "ns1".into(),
                addresses: vec!["192.0.2.53".parse().unwrap(), "2001:db8::53".parse().unwrap()],
            },
            NameServer { name: "ns.elsewhere.example.".into(), addresses: vec![] },
        ];
        config.cache.size_mb = CACHE_MB;
        let registry = Arc::new(Registry::open(&config.data_dir).expect("a registry"));
        let (node, frontend) = idnode::server::assemble(&config, registry.clone(), None).expect("the node");
        for (id, values) in hostile_records() {
            let id = Identifier::parse(&id).unwrap_or_else(|e| panic!("seed {id}: {e}"));
            match node.put(&Admin::node(), &id, values.clone(), &Default::default()) {
                // The node refuses a delegation it could not refer to; an import (or an older
                // node) may still have stored it, so it goes in around the check.
                Err(WriteError::Undelegable { .. }) => {
                    let record = idnode::record::Record { identifier: id.clone(), values };
                    let mut bulk = registry.bulk();
                    bulk.transact(|txn| txn.put(&record, false)).unwrap_or_else(|e| panic!("seed {id}: {e}"));
                    bulk.finish().unwrap_or_else(|e| panic!("seed {id}: {e}"));
                }
                result => drop(result.unwrap_or_else(|e| panic!("seed {id}: {e}"))),
            }
        }
        // The open database outlives its directory (an unlinked file stays readable while open),
        // so no fuzzing run leaves a directory behind.
        drop(dir);
        Fixture { frontend, _node: node }
    })
}

/// Records at the edges of what a write may store.
fn hostile_records() -> Vec<(String, Vec<Value>)> {
    let value = |index: u32, kind: &str, data: &[u8]| Value::new(index, kind, data, 1_700_000_000);
    let url = |index: u32, data: &str| value(index, "URL", data.as_bytes());
    let mut records = Vec::new();

    // Delegations whose cut sits near the 255-byte name limit: at 252 bytes `ns1.<cut>` is no
    // DNS name; at 251 and 250, `ns1` fits and `ns10` does not.
    let segments = |first: char, lens: [usize; 4]| {
        let letters = [first, 'b', 'c', 'd'];
        lens.iter().zip(letters).map(|(n, c)| c.to_string().repeat(*n)).collect::<Vec<_>>().join(".")
    };
    let servers: Vec<&str> = vec!["192.0.2.1", "2001:db8::1"];
    let twelve: Vec<String> =
        (1..=12).map(|i| if i % 2 == 0 { format!("2001:db8::{i}") } else { format!("192.0.2.{i}") }).collect();
    let twelve: Vec<&str> = twelve.iter().map(String::as_str).collect();
    records.push((format!("0.NA/88.{}", segments('a', [59, 58, 58, 58])), vec![value(1, "HS_SITE", &site(&servers))]));
    records.push((format!("0.NA/88.{}", segments('e', [58, 58, 58, 58])), vec![value(1, "HS_SITE", &site(&twelve))]));
    records.push((format!("0.NA/88.{}", segments('f', [57, 58, 58, 58])), vec![value(1, "HS_SITE", &site(&twelve))]));
    // A delegation with two sites, and a deeper one below it (the highest one refers).
    records.push((
        "0.NA/88.101".into(),
        vec![value(1, "HS_SITE", &site(&servers)), value(2, "HS_SITE", &site(&["198.51.100.7"]))],
    ));
    records.push(("0.NA/88.101.7".into(), vec![value(1, "HS_SITE", &site(&["203.0.113.9"]))]));
    // A delegation whose HS_SITE bytes are no site: served as if undelegated.
    records.push(("0.NA/88.102".into(), vec![value(1, "HS_SITE", b"\x00\x01garbage")]));
    records.push(("88.102.3/UNDER-BROKEN-SITE".into(), vec![url(1, "https://example.com/x")]));
    // The zone 88.100's prefix record: an administrator and a secret (never public).
    let admin = idnode::record::admin::encode_admin(0x0fff, "0.NA/88.100", 300);
    records.push((
        "0.NA/88.100".into(),
        vec![value(100, "HS_ADMIN", &admin), value(300, "HS_SECKEY", b"seed-secret-for-fuzzing")],
    ));

    // Values at the size limit: one URL (a TXT and a URI record of ~30 KB each), under a short
    // name and under a name near 255 bytes.
    let fits = MAX_RECORD_SIZE - VALUE_OVERHEAD - "URL".len();
    let big = format!("https://example.com/{}", "x".repeat(fits - 20));
    records.push(("88.100.1/BIG".into(), vec![url(1, &big)]));
    records.push((format!("88.100.1/{}", "L".repeat(63 * 3 + 30)), vec![url(1, &big)]));
    // Full 63-byte suffix labels: names below an identifier's name can be identifiers.
    records.push((format!("88.100.1/{}", "m".repeat(63)), vec![url(1, "https://example.com/63")]));
    records.push((format!("88.100.1/{}", "m".repeat(126)), vec![url(1, "https://example.com/126")]));
    // Many values: ~400 TXT records; 200 URLs give a TXT and a URI record each.
    records.push(("88.100.1/MANY".into(), (1..=400).map(|i| value(i, "T", b"x")).collect()));
    records.push(("88.100.1/MANY-URLS".into(), (1..=200).map(|i| url(i, &format!("https://e.example/{i}"))).collect()));
    // TTLs of 0, an absolute TTL in the past and one at the end of time.
    let mut ttl0 = url(1, "https://example.com/ttl0");
    ttl0.ttl = Ttl::Relative(0);
    let mut past = value(2, "EMAIL", b"past@example.com");
    past.ttl = Ttl::Absolute(1);
    let mut forever = value(3, "NOTE", b"forever");
    forever.ttl = Ttl::Absolute(i64::MAX);
    let mut max = value(4, "NOTE", b"max");
    max.ttl = Ttl::Relative(u32::MAX);
    records.push(("88.100.1/TTL".into(), vec![ttl0, past, forever, max]));
    // Odd characters in suffixes, types and data; data longer than one TXT string.
    let binary: Vec<u8> = (0..=255).collect();
    let odd = vec![
        value(1, "", b""),
        value(2, &"\u{7f}T\"y\\pe;".repeat(28), &binary),
        value(3, "URL", "https://例え.jp/泵?q=\"x\"&y=\\z".as_bytes()),
        value(4, "URL", b""),
        value(5, "url", b"not a url at all"),
        value(6, "DATA", &binary.repeat(3)),
    ];
    for suffix in ["泵-001", "Quote\"Back\\slash. dot", "_id", "a/b/_id/c", "UPPER-lower", " space ", "%41%00", "."] {
        records.push((format!("88.100.1/{suffix}"), odd.clone()));
    }
    // Values no anonymous client may see: the name exists, without public data.
    let mut private = url(1, "https://private.example.com");
    private.permissions = Permissions::new(true, true, false, false);
    records.push(("88.100.1/PRIVATE".into(), vec![private]));
    records.push(("88.100.1/SECRET".into(), vec![value(300, "hs_seckey", b"another-secret")]));
    // An ordinary identifier, in the second zone too.
    records.push((
        "88.100.1/ABC-123".into(),
        vec![url(1, "https://example.com/products/ABC-123"), value(2, "EMAIL", b"quality@example.com")],
    ));
    records.push(("88.100.7/PUMP-1".into(), vec![url(1, "https://example.com/p/1")]));
    records.push(("88/TOP".into(), vec![url(1, "https://example.com/top")]));
    records
}

/// An HS_SITE value naming `addresses`, on DNS port 5300.
fn site(addresses: &[&str]) -> Vec<u8> {
    Site {
        version: 1,
        protocol_version: "2.10".into(),
        serial_number: 1,
        primary_site: true,
        multi_primary: false,
        hash_option: 2,
        attributes: vec![Attribute { name: "dns-port".into(), value: "5300".into() }],
        servers: addresses
            .iter()
            .zip(1..)
            .map(|(a, server_id)| Server {
                server_id,
                address: a.parse().expect("an address"),
                public_key: vec![],
                interfaces: vec![],
            })
            .collect(),
    }
    .encode()
}
