//! Resolution statistics: how many lookups the node answered, by protocol, by outcome, by prefix
//! and by day, the measure the national plans set targets in ("2 billion lookups").
//!
//! ```text
//! worker (DNS UDP, DNS TCP, Handle, HTTP)      every 1 s or 4,096 counts      every 10 s, at stop
//!   Tally: plain counters, no lock   ──────────────► Stats (one lock) ──────────────► registry
//!                                        merge                          today's counts, whole
//! ```
//!
//! A worker counts into its own [`Tally`] (no atomic, no lock on the query path) and merges it
//! into the node's [`Stats`] now and then. [`Stats`] keeps today's counts and the totals of every
//! day kept, and saves today's counts to the registry every [`SAVE_EVERY`] and when the node
//! stops, so they survive restarts (a crash loses at most the last interval). Prefixes are
//! bounded: [`MAX_PREFIXES`] a day, the others counted together as `other`. Days are kept for
//! [`KEEP_DAYS`].

pub mod dns;
mod report;
mod series;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::registry::{Registry, RegistryError};
pub use dns::DnsCounts;
pub use report::{Report, Target};
pub use series::{PrefixSeries, Series};

/// Where a lookup came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    DnsUdp,
    DnsTcp,
    Http,
    HandleUdp,
    HandleTcp,
}

/// How a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The identifier's values (DNS: an answer section).
    Answer,
    /// No such identifier or value (DNS NXDOMAIN and NODATA, Handle 100 and 200, HTTP 404).
    NotFound,
    /// Referred to the node serving it.
    Referral,
    /// Refused: not served here, not allowed, rate-limited.
    Refused,
    /// Malformed or failed.
    Error,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [Self::DnsUdp, Self::DnsTcp, Self::Http, Self::HandleUdp, Self::HandleTcp];

    pub fn name(self) -> &'static str {
        ["dns-udp", "dns-tcp", "http", "handle-udp", "handle-tcp"][self as usize]
    }
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [Self::Answer, Self::NotFound, Self::Referral, Self::Refused, Self::Error];

    pub fn name(self) -> &'static str {
        ["answer", "not-found", "referral", "refused", "error"][self as usize]
    }

    /// The outcome of a DNS response: its RCODE, whether it answered, whether it is
    /// authoritative (a referral is not).
    pub fn of_dns(response: &[u8]) -> Outcome {
        let Some(header) = response.get(..12) else { return Outcome::Error };
        let answers = u16::from_be_bytes([header[6], header[7]]);
        match header[3] & 0x0f {
            0 if answers > 0 => Outcome::Answer,
            0 if header[2] & 0x04 == 0 => Outcome::Referral,
            0 | 3 => Outcome::NotFound,
            5 => Outcome::Refused,
            _ => Outcome::Error,
        }
    }

    /// The outcome of a Handle response code.
    pub fn of_handle(code: u32) -> Outcome {
        match code {
            1 => Outcome::Answer,
            100 | 200 => Outcome::NotFound,
            301 | 303 | 7 => Outcome::Referral,
            3 | 400..=402 | 403 | 603 => Outcome::Refused,
            _ => Outcome::Error,
        }
    }
}

/// 1,000: prefixes counted one by one each day; lookups under any other are counted as
/// [`OTHER`].
pub const MAX_PREFIXES: usize = 1000;
/// The name the prefixes beyond [`MAX_PREFIXES`] are counted under.
pub const OTHER: &str = "other";
/// 400: days of counts kept (more than a year, for a year's target).
pub const KEEP_DAYS: i64 = 400;
/// 10 s: how often today's counts are saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);
/// 1 s: how long a worker keeps counts to itself at most.
pub const MERGE_EVERY: Duration = Duration::from_secs(1);
/// 4,096: counts a worker keeps to itself at most.
pub const MERGE_AFTER: u32 = 4096;
/// 256: prefixes one worker keeps between merges; more go to [`OTHER`] until the next merge.
const TALLY_PREFIXES: usize = 256;

/// One day's counts, as saved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayCounts {
    /// `[protocol][outcome]`.
    pub counts: [[u64; 5]; 5],
    /// Lookups per prefix (answered or not), at most [`MAX_PREFIXES`] and [`OTHER`].
    pub prefixes: BTreeMap<String, u64>,
}

impl DayCounts {
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn add(&mut self, counts: &[[u64; 5]; 5]) {
        for (mine, theirs) in self.counts.iter_mut().flatten().zip(counts.iter().flatten()) {
            *mine += theirs;
        }
    }

    fn add_prefix(&mut self, prefix: &str, n: u64) {
        let key = match self.prefixes.contains_key(prefix) || self.prefixes.len() < MAX_PREFIXES {
            true => prefix,
            false => OTHER,
        };
        match self.prefixes.get_mut(key) {
            Some(count) => *count += n,
            None => {
                self.prefixes.insert(key.to_owned(), n);
            }
        }
    }
}

/// One worker's counts since it last merged them (see the module docs).
pub struct Tally {
    counts: [[u64; 5]; 5],
    /// DNS answers by RCODE, type and time ([`dns`]).
    dns: DnsCounts,
    prefixes: HashMap<Box<[u8]>, u64>,
    other: u64,
    pending: u32,
    since: Instant,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            counts: [[0; 5]; 5],
            dns: DnsCounts::default(),
            prefixes: HashMap::new(),
            other: 0,
            pending: 0,
            since: Instant::now(),
        }
    }
}

impl Tally {
    /// Counts one lookup; `prefix` is the identifier's prefix (`88.100.1`), if it has one.
    /// Allocates only for a prefix this worker has not seen since its last merge.
    pub fn count(&mut self, protocol: Protocol, outcome: Outcome, prefix: Option<&[u8]>) {
        self.counts[protocol as usize][outcome as usize] += 1;
        if let Some(prefix) = prefix {
            let room = self.prefixes.len() < TALLY_PREFIXES;
            match self.prefixes.get_mut(prefix) {
                Some(n) => *n += 1,
                None if room => {
                    self.prefixes.insert(prefix.into(), 1);
                }
                None => self.other += 1,
            }
        }
        self.pending += 1;
    }

    /// Merges into `stats` when [`MERGE_AFTER`] counts or [`MERGE_EVERY`] have passed (the
    /// clock is read once in 256 counts, and by [`Counter::tick`]).
    pub fn merge_if_due(&mut self, stats: &Stats) {
        if self.pending >= MERGE_AFTER || (self.pending % 256 == 0 && self.is_stale()) {
            self.merge(stats);
        }
    }

    fn is_stale(&self) -> bool {
        self.pending > 0 && self.since.elapsed() >= MERGE_EVERY
    }

    /// Merges into `stats` now (a worker that stops).
    pub fn merge(&mut self, stats: &Stats) {
        stats.merge(self);
        self.counts = [[0; 5]; 5];
        self.dns = DnsCounts::default();
        self.prefixes.clear();
        self.other = 0;
        self.pending = 0;
        self.since = Instant::now();
    }
}

/// A [`Tally`] that merges into its [`Stats`] when due and when dropped: what a worker or a
/// connection counts with.
pub struct Counter {
    tally: Tally,
    stats: Arc<Stats>,
}

impl Counter {
    pub fn new(stats: Arc<Stats>) -> Self {
        Self { tally: Tally::default(), stats }
    }

    /// Counts one lookup (see [`Tally::count`]).
    pub fn count(&mut self, protocol: Protocol, outcome: Outcome, prefix: Option<&[u8]>) {
        self.tally.count(protocol, outcome, prefix);
        self.tally.merge_if_due(&self.stats);
    }

    /// The DNS counts, to count an answer's RCODE, type and time into (with [`Self::count`]).
    pub fn dns(&mut self) -> &mut DnsCounts {
        &mut self.tally.dns
    }

    /// Merges what [`MERGE_EVERY`] has left waiting: for a worker that wakes without lookups.
    pub fn tick(&mut self) {
        if self.tally.is_stale() {
            self.tally.merge(&self.stats);
        }
    }

    /// The statistics counted into.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.tally.merge(&self.stats);
    }
}

/// The node's statistics (see the module docs).
pub struct Stats {
    inner: Mutex<Inner>,
    target: Mutex<Option<Target>>,
}

struct Inner {
    /// Days since the Unix epoch (UTC) of `today`.
    day: i64,
    today: DayCounts,
    /// Every day kept but today, by day number.
    past: BTreeMap<i64, DayCounts>,
    /// A day that ended since the last save: saved whole at the next.
    ended: Option<i64>,
    /// The day and counts the last save wrote: a save with nothing new writes nothing (an idle
    /// node made two synced commits every [`SAVE_EVERY`]).
    saved: Option<(i64, DayCounts)>,
    /// `[protocol][outcome]` since the process started: what metrics count (they only grow).
    since_start: [[u64; 5]; 5],
    /// DNS answers since the process started.
    dns: DnsCounts,
}

impl Stats {
    /// The statistics saved in `registry` (today's and the days kept), toward `target`.
    pub fn load(registry: &Registry, target: Option<Target>) -> Result<Self, RegistryError> {
        let today = day_of(crate::record::unix_now());
        let mut past = BTreeMap::new();
        let mut current = DayCounts::default();
        for (day, bytes) in registry.stats_days()? {
            let Ok(counts) = serde_json::from_slice::<DayCounts>(&bytes) else {
                tracing::warn!(day, "unreadable statistics of a day; they are left out");
                continue;
            };
            match day {
                d if d == today => current = counts,
                d if d > today - KEEP_DAYS && d < today => {
                    past.insert(d, counts);
                }
                _ => {}
            }
        }
        Ok(Self {
            inner: Mutex::new(Inner {
                day: today,
                today: current,
                past,
                ended: None,
                saved: None,
                since_start: [[0; 5]; 5],
                dns: DnsCounts::default(),
            }),
            target: Mutex::new(target),
        })
    }

    /// Statistics that start empty and are never saved (tests, fuzzing, `bench`).
    pub fn empty() -> Self {
        let day = day_of(crate::record::unix_now());
        let inner = Inner {
            day,
            today: DayCounts::default(),
            past: BTreeMap::new(),
            ended: None,
            saved: None,
            since_start: [[0; 5]; 5],
            dns: DnsCounts::default(),
        };
        Self { inner: Mutex::new(inner), target: Mutex::new(None) }
    }

    fn merge(&self, tally: &Tally) {
        self.merge_at(tally, day_of(crate::record::unix_now()));
    }

    fn merge_at(&self, tally: &Tally, now: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.roll(now);
        inner.today.add(&tally.counts);
        for (mine, theirs) in inner.since_start.iter_mut().flatten().zip(tally.counts.iter().flatten()) {
            *mine += theirs;
        }
        inner.dns.add(&tally.dns);
        for (prefix, n) in &tally.prefixes {
            inner.today.add_prefix(&String::from_utf8_lossy(prefix), *n);
        }
        if tally.other > 0 {
            inner.today.add_prefix(OTHER, tally.other);
        }
    }

    /// Saves today's counts (and a day that ended since the last save) to `registry`, and
    /// drops the days beyond [`KEEP_DAYS`].
    pub fn save(&self, registry: &Registry) -> Result<(), RegistryError> {
        self.save_at(registry, day_of(crate::record::unix_now()))
    }

    fn save_at(&self, registry: &Registry, now: i64) -> Result<(), RegistryError> {
        let (day, today, ended) = {
            let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            inner.roll(now);
            if inner.ended.is_none() && inner.saved.as_ref().is_some_and(|(d, c)| *d == inner.day && *c == inner.today)
            {
                return Ok(());
            }
            let ended = inner.ended.take().and_then(|d| inner.past.get(&d).cloned().map(|c| (d, c)));
            (inner.day, inner.today.clone(), ended)
        };
        if let Some((ended, counts)) = &ended {
            if let Err(e) = registry.save_stats_day(*ended, &serde_json::to_vec(counts).unwrap_or_default()) {
                // Tried again at the next save.
                self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).ended = Some(*ended);
                return Err(e);
            }
        }
        registry.save_stats_day(day, &serde_json::to_vec(&today).unwrap_or_default())?;
        registry.drop_stats_before(day - KEEP_DAYS + 1)?;
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).saved = Some((day, today));
        Ok(())
    }

    /// Counts one lookup directly, for front ends without a worker of their own (HTTP).
    pub fn count(&self, protocol: Protocol, outcome: Outcome, prefix: Option<&str>) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.roll(day_of(crate::record::unix_now()));
        inner.today.counts[protocol as usize][outcome as usize] += 1;
        inner.since_start[protocol as usize][outcome as usize] += 1;
        if let Some(prefix) = prefix {
            inner.today.add_prefix(prefix, 1);
        }
    }

    /// Lookups since the process started, `[protocol][outcome]` (see [`Protocol::ALL`] and
    /// [`Outcome::ALL`]).
    pub fn since_start(&self) -> [[u64; 5]; 5] {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).since_start
    }

    /// DNS answers since the process started, by RCODE, type and time.
    /// Counts one timed answer that no worker's tally holds (an HTTP lookup).
    pub fn time(&self, source: dns::Source, took: std::time::Duration) {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).dns.time(source, took);
    }

    pub fn dns_since_start(&self) -> DnsCounts {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).dns
    }

    /// What the statistics say now.
    pub fn report(&self) -> Report {
        let target = *self.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Report::new(inner.day, &inner.today, &inner.past, target.as_ref())
    }

    /// Measures progress toward `target` from now on (a reloaded configuration).
    pub fn set_target(&self, target: Option<Target>) {
        *self.target.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = target;
    }

    /// Lookups per day over the last `days` days, today included, the `top` busiest prefixes a
    /// chart (see [`Series`]).
    pub fn series(&self, days: usize, top: usize) -> Series {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Series::new(inner.day, &inner.today, &inner.past, days, top)
    }
}

impl Inner {
    /// Moves on to `day` when it is later than the current one.
    fn roll(&mut self, day: i64) {
        if day > self.day {
            let ended = std::mem::take(&mut self.today);
            self.past.insert(self.day, ended);
            self.ended = Some(self.day);
            self.day = day;
            while self.past.first_key_value().is_some_and(|(d, _)| *d <= day - KEEP_DAYS) {
                self.past.pop_first();
            }
        }
    }
}

/// The day (since the Unix epoch, UTC) of Unix time `secs`.
pub fn day_of(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

#[cfg(test)]
mod tests;
