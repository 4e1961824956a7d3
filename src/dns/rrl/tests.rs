//! Tests of the rate limiter: buckets, slipping, exemptions, and reading responses.

use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::op::Message;

use super::response::{TYPE_NS, be16};
use super::*;
use crate::dns::wire::{FLAG_AA, FLAG_TC, HEADER, rcode};

fn wire_name(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in text.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A response to `name`/`qtype` with `rcode`, AA as given, and `records` (already encoded)
/// counted as `an`, `ns`, `ar`.
fn response(name: &str, qtype: u16, rcode: u8, aa: bool, counts: [u16; 3], records: &[u8]) -> Vec<u8> {
    let flags = 0x8000 | if aa { FLAG_AA } else { 0 } | u16::from(rcode);
    let mut out = vec![0xab, 0xcd];
    for v in [flags, 1, counts[0], counts[1], counts[2]] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&wire_name(name));
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(records);
    out
}

/// A record owned by `owner` (wire form, may be a pointer).
fn record(owner: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = owner.to_vec();
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&60u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    out
}

const QUESTION: &[u8] = &[0xc0, 0x0c];
const OPT: &[u8] = &[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];

fn positive(name: &str) -> Vec<u8> {
    response(name, 16, rcode::NOERROR, true, [1, 0, 0], &record(QUESTION, 16, b"\x02hi"))
}

fn nxdomain(name: &str) -> Vec<u8> {
    let soa = record(&wire_name("id.example"), 6, &[0; 22]);
    response(name, 16, rcode::NXDOMAIN, true, [0, 1, 0], &soa)
}

fn referral(name: &str, cut: &str) -> Vec<u8> {
    let ns = record(&wire_name(cut), TYPE_NS, &wire_name("ns1.child.example"));
    response(name, 16, rcode::NOERROR, false, [0, 1, 0], &ns)
}

fn config(rate: u32) -> RrlConfig {
    RrlConfig { responses_per_second: rate, exempt: Vec::new(), ..RrlConfig::default() }
}

fn rrl(config: &RrlConfig) -> Rrl {
    Rrl::new(config).unwrap().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Sends, slips and drops of `n` checks.
fn tally(rrl: &Rrl, n: usize, mut each: impl FnMut(usize) -> (IpAddr, Vec<u8>, Instant)) -> [usize; 3] {
    let mut out = [0; 3];
    for i in 0..n {
        let (peer, resp, now) = each(i);
        match rrl.check(peer, &resp, now) {
            Action::Send => out[0] += 1,
            Action::Slip => out[1] += 1,
            Action::Drop => out[2] += 1,
        }
    }
    out
}

#[test]
fn flood_from_one_network_is_limited_and_slips_one_in_slip() {
    let rrl = rrl(&config(100));
    let t0 = Instant::now();
    let resp = positive("abc._id.88.id.example");
    // Addresses all over one /24 share its bucket.
    let got = tally(&rrl, 1000, |i| (IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8)), resp.clone(), t0));
    assert_eq!(got, [100, 450, 450]);
    assert_eq!(rrl.stats(), (450, 450));

    // Spread over one second: the first second's credit plus one second's refill.
    let rrl = self::rrl(&RrlConfig { slip: 3, ..config(100) });
    // Times from after the limiter's own start (its epoch): one taken before it would lose the
    // refill of the time between, on a loaded machine milliseconds.
    let t0 = Instant::now();
    let spread = tally(&rrl, 1000, |i| (ip("198.51.100.9"), resp.clone(), t0 + Duration::from_millis(i as u64)));
    assert!((199..=201).contains(&spread[0]), "{spread:?}");
    assert!(spread[1].abs_diff(spread[2] / 2) <= 1, "one in three slips: {spread:?}");

    let rrl = self::rrl(&RrlConfig { slip: 0, ..config(10) });
    assert_eq!(tally(&rrl, 50, |_| (ip("192.0.2.1"), resp.clone(), t0)), [10, 0, 40], "slip 0 drops all");
    let rrl = self::rrl(&RrlConfig { slip: 1, ..config(10) });
    assert_eq!(tally(&rrl, 50, |_| (ip("192.0.2.1"), resp.clone(), t0)), [10, 40, 0], "slip 1 truncates all");
}

#[test]
fn other_networks_are_answered_during_a_flood() {
    let rrl = rrl(&config(10));
    let t0 = Instant::now();
    let resp = positive("abc._id.88.id.example");
    let flood = |peer: &str| tally(&rrl, 100, |_| (ip(peer), resp.clone(), t0));
    assert_eq!(flood("192.0.2.1")[0], 10);
    assert_eq!(flood("192.0.3.1")[0], 10, "the next /24");
    assert_eq!(flood("192.0.2.200")[0], 0, "the same /24");
    assert_eq!(flood("::ffff:192.0.2.7")[0], 0, "an IPv4-mapped peer is its IPv4 network");
    assert_eq!(flood("2001:db8:0:1::1")[0], 10);
    assert_eq!(flood("2001:db8:0:1:ffff::2")[0], 0, "the same /56");
    assert_eq!(flood("2001:db8:0:100::1")[0], 10, "the next /56");
}

#[test]
fn exempt_networks_are_never_limited() {
    let t0 = Instant::now();
    let resp = positive("abc._id.88.id.example");
    let defaults = rrl(&RrlConfig { responses_per_second: 1, ..RrlConfig::default() });
    for peer in ["127.0.0.1", "127.255.0.3", "::1", "::ffff:127.0.0.1"] {
        assert_eq!(tally(&defaults, 500, |_| (ip(peer), resp.clone(), t0)), [500, 0, 0], "{peer}");
    }
    assert_eq!(tally(&defaults, 5, |_| (ip("192.0.2.1"), resp.clone(), t0))[0], 1);

    let rrl = rrl(&RrlConfig {
        exempt: vec!["192.0.2.0/24".into(), "2001:db8::/32".into(), "198.51.100.7".into()],
        ..config(1)
    });
    for peer in ["192.0.2.1", "2001:db8:ffff::1", "198.51.100.7"] {
        assert_eq!(tally(&rrl, 500, |_| (ip(peer), resp.clone(), t0)), [500, 0, 0], "{peer}");
    }
    assert_eq!(tally(&rrl, 5, |_| (ip("198.51.100.8"), resp.clone(), t0))[0], 1, "a bare address is one host");
}

#[test]
fn tokens_come_back_as_time_passes_up_to_the_window() {
    let rrl = rrl(&RrlConfig { window_secs: 4, ..config(100) });
    let t0 = Instant::now();
    let resp = positive("abc._id.88.id.example");
    let peer = ip("203.0.113.5");
    let at = |t: Instant, n| tally(&rrl, n, |_| (peer, resp.clone(), t))[0];
    assert_eq!(at(t0, 1000), 100);
    assert_eq!(at(t0, 10), 0);
    assert_eq!(at(t0 + Duration::from_millis(10), 10), 1, "10 ms buys one response at 100/s");
    assert_eq!(at(t0 + Duration::from_millis(510), 1000), 50);
    assert_eq!(at(t0 + Duration::from_secs(60), 1000), 400, "credit stops at window_secs");
    assert_eq!(at(t0 + Duration::from_secs(30), 10), 0, "an earlier clock reading refills nothing");
}

#[test]
fn nxdomain_names_share_a_bucket_while_answers_do_not() {
    let rrl = rrl(&config(10));
    let t0 = Instant::now();
    let peer = ip("192.0.2.1");
    let nx = tally(&rrl, 100, |i| (peer, nxdomain(&format!("r{i}._id.88.id.example")), t0));
    assert_eq!(nx[0], 10, "random names of one network share the NXDOMAIN bucket");
    let yes = tally(&rrl, 100, |i| (peer, positive(&format!("n{i}._id.88.id.example")), t0));
    assert_eq!(yes[0], 100, "each name has its own bucket, apart from NXDOMAIN's");
    let same = tally(&rrl, 100, |_| (peer, positive("N0._ID.88.id.example"), t0));
    assert_eq!(same[0], 9, "names compare case-insensitively: N0 shares n0's bucket, one spent above");
    let a = response("n1._id.88.id.example", 1, rcode::NOERROR, true, [1, 0, 0], &record(QUESTION, 1, &[1; 4]));
    assert_eq!(tally(&rrl, 100, |_| (peer, a.clone(), t0))[0], 10, "another type is another bucket");

    let refused = |name: &str| {
        let mut r = response(name, 16, rcode::REFUSED, false, [0, 0, 0], &[]);
        r.truncate(HEADER); // as wire::write_error leaves it: no question
        r[5] = 0;
        r
    };
    let errors = tally(&rrl, 100, |i| {
        let resp = if i % 2 == 0 { refused("x.example.com") } else { response("y.com", 1, 5, false, [0; 3], &[]) };
        (peer, resp, t0)
    });
    assert_eq!(errors[0], 10, "all errors of one network share a bucket");
}

#[test]
fn referrals_count_per_delegation_and_nodata_per_name() {
    let rrl = rrl(&config(10));
    let t0 = Instant::now();
    let peer = ip("192.0.2.1");
    let got = tally(&rrl, 100, |i| (peer, referral(&format!("r{i}.child.88.id.example"), "child.88.id.example"), t0));
    assert_eq!(got[0], 10, "made-up names under one delegation share its bucket");
    let other = tally(&rrl, 100, |i| (peer, referral(&format!("r{i}.other.88.id.example"), "Other.88.id.example"), t0));
    assert_eq!(other[0], 10, "another delegation has its own");
    let soa = record(&wire_name("id.example"), 6, &[0; 22]);
    let nodata = tally(&rrl, 100, |i| {
        (peer, response(&format!("d{}.id.example", i % 5), 99, rcode::NOERROR, true, [0, 1, 0], &soa), t0)
    });
    assert_eq!(nodata[0], 50, "NODATA is counted per name");
}

#[test]
fn truncated_and_short_responses_are_always_sent() {
    let rrl = rrl(&config(1));
    let t0 = Instant::now();
    let peer = ip("192.0.2.1");
    let mut resp = positive("abc._id.88.id.example");
    assert_eq!(tally(&rrl, 3, |_| (peer, resp.clone(), t0))[0], 1);
    truncate(&mut resp);
    assert_eq!(tally(&rrl, 100, |_| (peer, resp.clone(), t0))[0], 100);
    for len in 0..HEADER {
        assert_eq!(rrl.check(peer, &resp[..len], t0), Action::Send);
    }
}

#[test]
fn truncate_keeps_header_question_and_opt() {
    let mut records = record(QUESTION, 16, b"\x05hello");
    records.extend(record(&wire_name("id.example"), TYPE_NS, &wire_name("ns1.id.example")));
    records.extend(record(&wire_name("ns1.id.example"), 1, &[192, 0, 2, 1]));
    records.extend_from_slice(OPT);
    let mut resp = response("ABC._id.88.id.example", 16, rcode::NOERROR, true, [1, 1, 2], &records);
    let original = resp.clone();
    truncate(&mut resp);
    let question_end = HEADER + wire_name("ABC._id.88.id.example").len() + 4;
    assert_eq!(resp.len(), question_end + OPT.len());
    assert_eq!(&resp[..2], &original[..2]);
    assert_eq!(be16(&resp, 2), be16(&original, 2).map(|f| f | FLAG_TC));
    assert_eq!(&resp[HEADER..question_end], &original[HEADER..question_end]);
    let msg = Message::from_vec(&resp).unwrap();
    assert!(msg.metadata.truncation && msg.metadata.authoritative);
    assert_eq!(msg.queries.len(), 1);
    assert_eq!(msg.queries[0].name().to_ascii(), "ABC._id.88.id.example.");
    assert!(msg.answers.is_empty() && msg.authorities.is_empty());
    assert_eq!(msg.edns.as_ref().map(|e| (e.max_payload(), e.flags().dnssec_ok)), Some((1232, true)));

    // Without EDNS: header and question alone.
    let mut plain = positive("abc._id.88.id.example");
    truncate(&mut plain);
    assert_eq!(plain.len(), question_end);
    assert_eq!([be16(&plain, 4), be16(&plain, 6), be16(&plain, 8), be16(&plain, 10)], [1, 0, 0, 0].map(Some));
    let msg = Message::from_vec(&plain).unwrap();
    assert!(msg.metadata.truncation && msg.edns.is_none());
    truncate(&mut plain);
    assert_eq!(plain.len(), question_end, "truncating twice changes nothing");
}

/// The header must always come out well formed whatever went in.
fn assert_truncated(out: &[u8], input: &[u8]) {
    assert!(out.len() >= HEADER, "{input:?}");
    assert_ne!(be16(out, 2).unwrap() & FLAG_TC, 0, "{input:?}");
    assert_eq!((be16(out, 6), be16(out, 8)), (Some(0), Some(0)), "{input:?}");
    assert!(be16(out, 10).unwrap() <= 1, "{input:?}");
    if out.len() == HEADER {
        assert_eq!(be16(out, 4), Some(0), "no question, no QDCOUNT: {input:?}");
    }
}

#[test]
fn truncate_and_check_never_panic_on_garbage() {
    let rrl = rrl(&config(1000));
    let t0 = Instant::now();
    let peer = ip("192.0.2.1");
    let mut records = record(QUESTION, 16, b"\x05hello");
    records.extend(record(&[1, b'x', 0xc0, 0x0c], TYPE_NS, &[0xc0, 0x0c]));
    records.extend_from_slice(OPT);
    let good = response("abc._id.88.id.example", 16, rcode::NOERROR, false, [1, 1, 1], &records);
    let samples = [good.clone(), referral("a.b.example", "b.example"), nxdomain("q.example")];
    for sample in &samples {
        for cut in 0..=sample.len() {
            let mut r = sample[..cut].to_vec();
            let _ = rrl.check(peer, &r, t0);
            truncate(&mut r);
            assert_truncated(&r, &sample[..cut]);
        }
        for i in 0..sample.len() {
            for b in [0u8, 1, 2, 41, 63, 64, 0x80, 0xc0, 0xc1, 0xff] {
                let mut r = sample.clone();
                r[i] = b;
                let _ = rrl.check(peer, &r, t0);
                let input = r.clone();
                truncate(&mut r);
                assert_truncated(&r, &input);
            }
        }
    }
    // Pointer loops and self-pointers in a referral's authority record.
    let looped = response("a.example", 1, rcode::NOERROR, false, [0, 1, 0], &record(&[0xc0, 0x1b], TYPE_NS, &[]));
    let _ = rrl.check(peer, &looped, t0);
    // Random bytes, from a fixed xorshift sequence.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 96) as usize;
        let mut r: Vec<u8> = (0..len)
            .map(|i| {
                let v = (x.rotate_left(i as u32 * 7) & 0xff) as u8;
                // Mostly small values, so lengths and counts look plausible.
                if i % 3 == 0 { v & 0x07 } else { v }
            })
            .collect();
        let _ = rrl.check(peer, &r, t0);
        let input = r.clone();
        truncate(&mut r);
        assert_truncated(&r, &input);
    }
}

#[test]
fn config_errors_name_the_field() {
    let bad = |c: RrlConfig| Rrl::new(&c).unwrap_err();
    assert_eq!(bad(RrlConfig { ipv4_prefix_len: 33, ..RrlConfig::default() }), RrlError::Ipv4PrefixLen(33));
    assert_eq!(bad(RrlConfig { ipv6_prefix_len: 129, ..RrlConfig::default() }), RrlError::Ipv6PrefixLen(129));
    assert_eq!(bad(RrlConfig { window_secs: 0, ..RrlConfig::default() }), RrlError::ZeroWindow);
    for size in [0, 1000, MAX_TABLE_SIZE * 2] {
        assert_eq!(bad(RrlConfig { table_size: size, ..RrlConfig::default() }), RrlError::TableSize(size));
    }
    for entry in ["nonsense", "10.0.0.0/33", "::/129", "10.0.0.0/x", "10.0.0.0/"] {
        let e = bad(RrlConfig { exempt: vec![entry.into()], ..RrlConfig::default() });
        assert!(matches!(&e, RrlError::BadExempt { entry: got, .. } if got == entry), "{e:?}");
        assert!(e.to_string().starts_with("dns.rrl.exempt"), "{e}");
    }
    assert!(bad(RrlConfig { ipv4_prefix_len: 40, ..RrlConfig::default() }).to_string().contains("ipv4_prefix_len"));
    assert!(Rrl::new(&RrlConfig { responses_per_second: 0, ..RrlConfig::default() }).unwrap().is_none());
    assert!(Rrl::new(&RrlConfig::default()).unwrap().is_some());
    assert!(Rrl::new(&RrlConfig { ipv4_prefix_len: 0, ipv6_prefix_len: 128, ..config(5) }).unwrap().is_some());

    let parsed: RrlConfig = toml::from_str("responses_per_second = 5\nexempt = [\"10.0.0.0/8\"]").unwrap();
    assert_eq!((parsed.responses_per_second, parsed.slip, parsed.table_size), (5, 2, 1 << 16));
    assert!(toml::from_str::<RrlConfig>("rate = 5").is_err(), "unknown fields are refused");
}

#[test]
fn shared_across_threads() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Rrl>();
    let rrl = std::sync::Arc::new(rrl(&config(100)));
    let t0 = Instant::now();
    let resp = positive("abc._id.88.id.example");
    let sent: usize = std::thread::scope(|s| {
        let workers: Vec<_> =
            (0..4).map(|_| s.spawn(|| tally(&rrl, 500, |_| (ip("192.0.2.1"), resp.clone(), t0))[0])).collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(sent, 100, "the workers draw on one bucket");
    assert_eq!(rrl.stats().0 + rrl.stats().1, 1900);
}
