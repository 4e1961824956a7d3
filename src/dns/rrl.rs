//! Response Rate Limiting (RRL): keeps the node from being a useful amplifier in reflection
//! attacks, in the way Knot DNS, NSD and BIND do it.
//!
//! A UDP source address can be forged, so an attacker can have the node answer a victim many
//! times over. RRL counts the responses going to each client network, per kind of response (and
//! per name, where a name tells honest traffic apart from a flood), in token buckets. When a
//! bucket is empty the response is dropped, except that one in `slip` is sent truncated (TC=1,
//! header and question only): no bigger than the query, so useless for amplification, while a
//! real client behind a limited network retries over TCP and gets its answer.
//!
//! ```text
//! Frontend::handle ──> response ──> Rrl::check(peer, response, now)
//!                                     ├─ Send ──> send as is
//!                                     ├─ Slip ──> truncate(response), send
//!                                     └─ Drop ──> send nothing
//! ```
//!
//! The UDP worker calls [`Rrl::check`] after answering and before sending. TCP is not limited:
//! its handshake proves the source address, so it cannot reflect. The table of buckets has a
//! fixed size chosen at start-up, so memory is bounded whatever the traffic, and `check`
//! allocates nothing.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::wire::{FLAG_AA, FLAG_TC, HEADER, MAX_NAME, TYPE_OPT, rcode};

const TYPE_NS: u16 = 2;
const NANOS_PER_SEC: u64 = 1_000_000_000;
/// 2^24 buckets (about 640 MiB): a ceiling that only stops a typo from eating the machine; NSD's
/// default is 1,000,000 buckets.
const MAX_TABLE_SIZE: usize = 1 << 24;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrlConfig {
    /// Responses per second allowed per bucket; 0 turns RRL off. 200: NSD's default
    /// `rrl-ratelimit` (BIND and Knot have no default; their documentation's examples use 5 to
    /// 20, which suits a caching-resolver population; an identifier zone answers busy resolvers
    /// that ask for many names, so the gentler NSD figure is used).
    pub responses_per_second: u32,
    /// 1 in `slip` limited responses is sent truncated (TC) instead of dropped; 0 drops all, 1
    /// truncates all. 2: NSD's `rrl-slip` and BIND's `slip` default (Knot's is 1), so a real
    /// client gets a TC answer on its first or second try.
    pub slip: u32,
    /// Seconds of rate a bucket can save up as burst credit: a bucket holds at most
    /// `responses_per_second * window_secs` tokens. 4: Knot's bucket capacity (`RRL_CAPACITY`,
    /// 4 s). BIND's `window` (15 s) is a different thing, how long a flooder's debt is
    /// remembered; as burst credit 15 s would let a quiet attacker fire 15 seconds' worth of
    /// answers at once.
    pub window_secs: u32,
    /// Client networks share a bucket: IPv4 /24 (BIND, Knot, NSD), so that an attacker cannot
    /// escape the limit by forging neighbouring addresses of the victim.
    pub ipv4_prefix_len: u8,
    /// IPv6 /56 (BIND and Knot; NSD uses /64): a site is typically given a /56 or /48.
    pub ipv6_prefix_len: u8,
    /// Networks never limited, as "ADDR/LEN" strings, e.g. "127.0.0.0/8", "::1/128" (a bare
    /// address means that one address; host bits beyond LEN are ignored). Default: loopback
    /// only, so local tools and benchmarks are not limited; a forged loopback source cannot
    /// come in from outside.
    pub exempt: Vec<String>,
    /// Buckets in the table, a power of two. Fixed size: memory is bounded (about 40 bytes a
    /// bucket) whatever the traffic. 65,536 (2.5 MiB): smaller than Knot (393,241) and NSD
    /// (1,000,000), which serve far more distinct clients; a collision only makes two keys
    /// take turns in one bucket, which resets it (as in Knot), so a busier node should raise it.
    pub table_size: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            responses_per_second: 200,
            slip: 2,
            window_secs: 4,
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 56,
            exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            table_size: 1 << 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RrlError {
    #[error("dns.rrl.ipv4_prefix_len is {0}, longer than 32")]
    Ipv4PrefixLen(u8),
    #[error("dns.rrl.ipv6_prefix_len is {0}, longer than 128")]
    Ipv6PrefixLen(u8),
    #[error("dns.rrl.exempt: {entry:?} is not a network (ADDR/LEN): {reason}")]
    BadExempt { entry: String, reason: String },
    #[error("dns.rrl.window_secs is 0: a bucket could never hold a token")]
    ZeroWindow,
    #[error("dns.rrl.table_size is {0}: it must be a power of two from 1 to {MAX_TABLE_SIZE}")]
    TableSize(usize),
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send,
    /// Send the [`truncate`]d form instead.
    Slip,
    Drop,
}

/// The response kinds that get separate buckets: a flood of one kind does not starve another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Positive = 1,
    Nodata = 2,
    Referral = 3,
    Nxdomain = 4,
    Error = 5,
}

#[derive(Debug, Clone, Copy)]
enum Net {
    V4(u32, u8),
    V6(u128, u8),
}

impl Net {
    fn contains(&self, addr: IpAddr) -> bool {
        match (*self, addr) {
            (Net::V4(net, len), IpAddr::V4(a)) => u32::from(a) & mask32(len) == net,
            (Net::V6(net, len), IpAddr::V6(a)) => u128::from(a) & mask128(len) == net,
            _ => false,
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
}

fn parse_net(entry: &str) -> Result<Net, String> {
    let (addr, len) = match entry.trim().split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (entry.trim(), None),
    };
    let addr: IpAddr = addr.parse().map_err(|e| format!("{e}"))?;
    let len = len.map(|l| l.parse::<u8>().map_err(|e| format!("prefix length {l:?}: {e}"))).transpose()?;
    match addr {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return Err(format!("prefix length {len} is longer than 32"));
            }
            Ok(Net::V4(u32::from(a) & mask32(len), len))
        }
        IpAddr::V6(a) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return Err(format!("prefix length {len} is longer than 128"));
            }
            // Peers are compared in canonical form, so "::ffff:a.b.c.d/LEN" must be an IPv4 net.
            match a.to_ipv4_mapped() {
                Some(v4) if len >= 96 => Ok(Net::V4(u32::from(v4) & mask32(len - 96), len - 96)),
                _ => Ok(Net::V6(u128::from(a) & mask128(len), len)),
            }
        }
    }
}

/// One token bucket. Credit is kept as time (nanoseconds of rate), so that refilling is an
/// addition and needs no division.
#[derive(Clone, Copy)]
struct Bucket {
    /// The full hash of the key that owns the bucket; another key resets it.
    key: u64,
    credit: u64,
    /// Nanoseconds since [`Rrl::epoch`] at the last refill.
    last: u64,
    /// Limited responses so far, for slipping every `slip`-th.
    limited: u32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket { key: 0, credit: 0, last: 0, limited: 0 };
}

/// The rate limiter, shared by the UDP workers. One `Mutex` per bucket: held for a few
/// instructions, and workers only meet on the same bucket when answering the same flood.
pub struct Rrl {
    table: Box<[Mutex<Bucket>]>,
    mask: usize,
    /// Keyed with a per-process random key, so that an attacker cannot aim collisions at a
    /// victim's bucket.
    hasher: RandomState,
    epoch: Instant,
    /// Nanoseconds of credit one response costs: one second over the rate.
    cost: u64,
    /// Most credit a bucket holds: `window_secs` seconds.
    capacity: u64,
    /// Credit of a new bucket: one second's worth, so a newly seen client gets the full rate
    /// at once (Knot starts at half, "slow start"; the difference is one second's tokens).
    initial: u64,
    slip: u32,
    ipv4_prefix_len: u8,
    ipv6_prefix_len: u8,
    exempt: Box<[Net]>,
    slipped: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Rrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rrl")
            .field("buckets", &self.table.len())
            .field("cost_ns", &self.cost)
            .field("capacity_ns", &self.capacity)
            .field("slip", &self.slip)
            .field("exempt", &self.exempt)
            .finish_non_exhaustive()
    }
}

impl Rrl {
    /// None when responses_per_second is 0. Errors name the bad field.
    pub fn new(config: &RrlConfig) -> Result<Option<Self>, RrlError> {
        if config.ipv4_prefix_len > 32 {
            return Err(RrlError::Ipv4PrefixLen(config.ipv4_prefix_len));
        }
        if config.ipv6_prefix_len > 128 {
            return Err(RrlError::Ipv6PrefixLen(config.ipv6_prefix_len));
        }
        let exempt = config
            .exempt
            .iter()
            .map(|entry| parse_net(entry).map_err(|reason| RrlError::BadExempt { entry: entry.clone(), reason }))
            .collect::<Result<Box<[Net]>, _>>()?;
        if config.window_secs == 0 {
            return Err(RrlError::ZeroWindow);
        }
        let size = config.table_size;
        if !size.is_power_of_two() || size > MAX_TABLE_SIZE {
            return Err(RrlError::TableSize(size));
        }
        if config.responses_per_second == 0 {
            return Ok(None);
        }
        let cost = (NANOS_PER_SEC / u64::from(config.responses_per_second)).max(1);
        let capacity = u64::from(config.window_secs) * NANOS_PER_SEC;
        Ok(Some(Self {
            table: (0..size).map(|_| Mutex::new(Bucket::EMPTY)).collect(),
            mask: size - 1,
            hasher: RandomState::new(),
            epoch: Instant::now(),
            cost,
            capacity,
            initial: NANOS_PER_SEC.min(capacity),
            slip: config.slip,
            ipv4_prefix_len: config.ipv4_prefix_len,
            ipv6_prefix_len: config.ipv6_prefix_len,
            exempt,
            slipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }))
    }

    /// Decides what to do with `response` (a complete DNS response as written to the wire)
    /// going to `peer`, at `now`. On [`Action::Slip`] the caller sends [`truncate`]d bytes.
    pub fn check(&self, peer: IpAddr, response: &[u8], now: Instant) -> Action {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let peer = peer.to_canonical();
        if self.exempt.iter().any(|net| net.contains(peer)) {
            return Action::Send;
        }
        let mut name = [0u8; MAX_NAME];
        let Some((kind, name_len, qtype)) = classify(response, &mut name) else { return Action::Send };
        let mut h = self.hasher.build_hasher();
        match peer {
            IpAddr::V4(a) => {
                h.write_u8(4);
                h.write_u32(u32::from(a) & mask32(self.ipv4_prefix_len));
            }
            IpAddr::V6(a) => {
                h.write_u8(6);
                h.write_u128(u128::from(a) & mask128(self.ipv6_prefix_len));
            }
        }
        h.write_u8(kind as u8);
        h.write(name.get(..name_len).unwrap_or_default());
        if let Some(qtype) = qtype {
            h.write_u16(qtype);
        }
        let key = h.finish();
        // The table has mask + 1 entries, so this always finds one.
        let Some(slot) = self.table.get((key as usize) & self.mask) else { return Action::Send };
        let now = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);

        // Nothing panics while the lock is held, but a poisoned bucket is still a valid bucket.
        let mut b = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if b.key != key {
            *b = Bucket { key, credit: self.initial, last: now, limited: 0 };
        } else if now > b.last {
            // Workers' clocks may be read slightly out of order; time never runs backwards here.
            b.credit = b.credit.saturating_add(now - b.last).min(self.capacity);
            b.last = now;
        }
        if b.credit >= self.cost {
            b.credit -= self.cost;
            return Action::Send;
        }
        b.limited = b.limited.wrapping_add(1);
        let slip = self.slip != 0 && b.limited % self.slip == 0;
        drop(b);
        if slip {
            self.slipped.fetch_add(1, Ordering::Relaxed);
            Action::Slip
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            Action::Drop
        }
    }

    /// How many responses were slipped and dropped so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.slipped.load(Ordering::Relaxed), self.dropped.load(Ordering::Relaxed))
    }
}

/// The response's kind, and the name (lower-cased wire form, written to `name`, its length
/// returned) and type that key its bucket. None: send without counting (too short to be a
/// response, or already truncated, the cheap form that RRL itself would send).
fn classify(response: &[u8], name: &mut [u8; MAX_NAME]) -> Option<(Kind, usize, Option<u16>)> {
    let flags = be16(response, 2)?;
    if flags & FLAG_TC != 0 {
        return None;
    }
    let (qd, an, ns) = (be16(response, 4)?, be16(response, 6)?, be16(response, 8)?);
    let no_name = |kind| Some((kind, 0, None));
    match (flags & 0xf) as u8 {
        // A random-subdomain flood must not get a bucket per name.
        rcode::NXDOMAIN => return no_name(Kind::Nxdomain),
        rcode::NOERROR => {}
        _ => return no_name(Kind::Error),
    }
    // A NOERROR response whose question cannot be read is no real answer.
    let question = if qd == 1 { fold_name(response, HEADER, false, name) } else { None };
    let Some((len, end)) = question else { return no_name(Kind::Error) };
    let Some(qtype) = be16(response, end) else { return no_name(Kind::Error) };
    if an > 0 {
        return Some((Kind::Positive, len, Some(qtype)));
    }
    if flags & FLAG_AA == 0 && ns > 0 {
        // A referral counts against its delegation point, as in BIND, so that names made up
        // under one delegation share a bucket.
        let authority = end + 4;
        let is_ns = skip_name(response, authority).and_then(|owner_end| be16(response, owner_end)) == Some(TYPE_NS);
        if is_ns {
            if let Some((len, _)) = fold_name(response, authority, true, name) {
                return Some((Kind::Referral, len, None));
            }
        }
    }
    Some((Kind::Nodata, len, None))
}

/// Reads the name at `at` lower-cased in wire form into `out`; returns its length and where the
/// name ends at `at`. Compression pointers are followed when `pointers`, only backwards from
/// where they may point, so that a loop cannot be built.
fn fold_name(buf: &[u8], at: usize, pointers: bool, out: &mut [u8; MAX_NAME]) -> Option<(usize, usize)> {
    let (mut pos, mut len, mut end, mut floor) = (at, 0, None, at);
    loop {
        let label = *buf.get(pos)?;
        match label & 0xc0 {
            0 if label == 0 => {
                *out.get_mut(len)? = 0;
                return Some((len + 1, end.unwrap_or(pos + 1)));
            }
            0 => {
                let l = usize::from(label);
                let src = buf.get(pos + 1..pos + 1 + l)?;
                let (first, dst) = out.get_mut(len..len + 1 + l)?.split_first_mut()?;
                *first = label;
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s.to_ascii_lowercase();
                }
                len += 1 + l;
                pos += 1 + l;
            }
            0xc0 if pointers => {
                let target = usize::from(be16(buf, pos)? & 0x3fff);
                if target >= floor {
                    return None;
                }
                end.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Where the name at `at` ends, without following pointers.
fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let label = *buf.get(at)?;
        match label & 0xc0 {
            0 if label == 0 => return Some(at + 1),
            0 => at += 1 + usize::from(label),
            0xc0 => return Some(at + 2).filter(|end| *end <= buf.len()),
            _ => return None,
        }
    }
}

/// Rewrites a response in place into its truncated form: header and question only, TC set,
/// AN/NS counts zero, and the OPT record kept (ARCOUNT 1) when it can be found, since a client
/// that sent EDNS expects it back (RFC 6891 7) and it carries the upper bits of an extended
/// RCODE. Never panics: when the question cannot be found only the 12-byte header is left
/// (padded with zeros if the input was shorter), with all counts zero and TC set.
pub fn truncate(response: &mut Vec<u8>) {
    if response.len() < HEADER {
        response.resize(HEADER, 0);
    }
    let count = |at| be16(response, at).map_or(0, usize::from);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let mut end = Some(HEADER);
    for _ in 0..qd {
        // A question may not point anywhere (wire::read_name refuses it too), and must survive
        // the records it could point into being cut off.
        end = end.and_then(|at| fold_name(response, at, false, &mut [0; MAX_NAME])).map(|(_, e)| e + 4);
    }
    let (keep, qd) = match end.filter(|e| *e <= response.len()) {
        Some(e) => (e, qd),
        None => (HEADER, 0),
    };
    let mut opt = None;
    if qd > 0 {
        let mut at = keep;
        for i in 0..an + ns + ar {
            let Some(owner_end) = skip_name(response, at) else { break };
            let rdlen = be16(response, owner_end + 8).map_or(usize::MAX, usize::from);
            let Some(record_end) = (owner_end + 10).checked_add(rdlen).filter(|e| *e <= response.len()) else { break };
            if i >= an + ns && owner_end == at + 1 && be16(response, owner_end) == Some(TYPE_OPT) {
                opt = Some((at, record_end));
                break;
            }
            at = record_end;
        }
    }
    let mut len = keep;
    if let Some((start, stop)) = opt {
        response.copy_within(start..stop, keep);
        len += stop - start;
    }
    response.truncate(len);
    let flags = be16(response, 2).unwrap_or(0) | FLAG_TC;
    let counts = [flags, qd as u16, 0, 0, u16::from(opt.is_some())];
    for (i, v) in counts.into_iter().enumerate() {
        if let Some(field) = response.get_mut(2 + 2 * i..4 + 2 * i) {
            field.copy_from_slice(&v.to_be_bytes());
        }
    }
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at.checked_add(1)?)?]))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use hickory_proto::op::Message;

    use super::*;

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
        let got =
            tally(&rrl, 100, |i| (peer, referral(&format!("r{i}.child.88.id.example"), "child.88.id.example"), t0));
        assert_eq!(got[0], 10, "made-up names under one delegation share its bucket");
        let other =
            tally(&rrl, 100, |i| (peer, referral(&format!("r{i}.other.88.id.example"), "Other.88.id.example"), t0));
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
}
