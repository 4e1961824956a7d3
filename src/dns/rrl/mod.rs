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

pub use crate::config::RrlConfig;

use super::wire::MAX_NAME;
use response::classify;
pub use response::truncate;

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// 2^24 buckets (about 640 MiB): a ceiling that only stops a typo from eating the machine; NSD's
/// default is 1,000,000 buckets.
const MAX_TABLE_SIZE: usize = 1 << 24;

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

mod response;
#[cfg(test)]
mod tests;
