//! The recursive role: clients' entry point. For a name under the apex it asks the configured
//! top-level nodes and follows their referrals down to the node that holds the identifier,
//! caching answers, negative answers, delegations and failures.
//!
//! ```text
//! Frontend::handle parses once ──> Recursor::answer (pending)
//!        ├─ cached: answer, NXDOMAIN/NODATA, or a remembered failure ──> Respond, on the worker
//!        ├─ miss, max_in_flight queries already admitted ──> Drop, no task
//!        │ miss: an Admission ──> Verdict::Defer(Pending); the transport spawns Pending::resolve
//!        ▼
//! Recursor::resolve ── the same question in flight ──> wait for its outcome (inflight)
//!        │ leads
//!        ▼
//! iterate, within resolution_budget:
//!   closest delegation ─> ask its servers in turn (exchange) ─> digest ─┬─ answer ──> cache it
//!        ▲                                                              ├─ referral ─> cache the cut
//!        └──────────────────────────────────────────────────────────────┘  broken ──> next server
//!   no server left, too many referrals, or out of time ──> SERVFAIL, remembered (RFC 9520)
//! ```
//!
//! Every limit, and where its number comes from, is on the field or constant that holds it:
//! `recursive.max_in_flight` (admissions), `recursive.timeout_ms` (one server),
//! `recursive.resolution_budget_ms` (everything), `recursive.max_referrals`, [`MAX_SERVERS`]
//! (addresses kept from one referral), `recursive.max_ttl` and `recursive.max_negative_ttl`
//! (what is cached and what clients see), the failure hold (1 s doubling up to 5 min), and the
//! caches' share of `[cache] size_mb`.

mod digest;
mod inflight;
mod pending;
mod servers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use tokio::time::Instant;

use super::authoritative::zone::{name_of, wire_of};
use super::exchange::{self, Via};
use super::wire::{self, Body, QueryName, rcode};
use crate::cache::{Cache, CacheStats, Entry, Weigh};
pub use digest::{Broken, Delegation, Step};
pub use inflight::Admission;
use inflight::{InFlight, Join};
pub use pending::Pending;

/// 13: the most addresses kept from one referral's glue, as many as the root zone has servers
/// (the most whose referral fitted 512 bytes, RFC 1035). BIND looks up at most 20 NS of one set
/// since CVE-2022-2795 (`NS_PROCESSING_LIMIT`); a delegation in the national tree has a few.
/// With `timeout_ms` per server it also bounds the time one delegation can take.
pub const MAX_SERVERS: usize = 13;

/// 1 s: how long a failed resolution is remembered the first time (RFC 9520 3.2: at least 1 s;
/// its example starts at 5 s, but a child node that restarts should be asked again soon).
const FIRST_FAILURE_HOLD: Duration = Duration::from_secs(1);
/// 300 s: the longest, reached by doubling while failures repeat (RFC 9520 3.2: never longer
/// than 5 minutes).
const LONGEST_FAILURE_HOLD: Duration = Duration::from_secs(300);

/// Settings of the recursive role (see `crate::config::RecursiveConfig` for the defaults).
#[derive(Debug, Clone)]
pub struct RecursorConfig {
    /// The top-level nodes to start from.
    pub roots: Vec<SocketAddr>,
    /// The DNS port of servers learnt from referral glue (glue carries no port).
    pub port: u16,
    /// How long to wait for one server before trying the next.
    pub timeout: Duration,
    /// How many referrals to follow before giving up.
    pub max_referrals: usize,
    /// The most memory the caches take together: answers 90%, delegations and failure counts
    /// 5% each.
    pub cache_bytes: u64,
    /// Client queries being resolved at once; more are dropped.
    pub max_in_flight: usize,
    /// How long one resolution may take in all.
    pub budget: Duration,
    /// The largest TTL cached or written to clients; for NXDOMAIN and NODATA `max_negative_ttl`.
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
}

/// A cached answer: its sections as clients get them, and where their TTLs are.
#[derive(Debug)]
pub struct Cached {
    pub body: Body,
    ttl_offsets: Box<[usize]>,
    stored: Instant,
}

impl Cached {
    /// SERVFAIL, with recursion available.
    fn servfail(now: Instant) -> Self {
        let body = Body { rcode: rcode::SERVFAIL, recursion_available: true, ..Body::empty() };
        Self { body, ttl_offsets: Box::new([]), stored: now }
    }
}

impl Weigh for Cached {
    fn heap_bytes(&self) -> usize {
        self.body.bytes.len() + size_of_val(&*self.ttl_offsets)
    }
}

/// How many times in a row a question's resolution failed.
struct Strikes(u32);

impl Weigh for Strikes {
    fn heap_bytes(&self) -> usize {
        0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecursorStats {
    /// Client queries admitted and not yet answered (at most `max_in_flight`).
    pub in_flight: usize,
    /// Distinct questions being resolved upstream.
    pub resolutions: usize,
    /// Queries dropped because `max_in_flight` were admitted already.
    pub dropped: u64,
    pub answers: CacheStats,
    pub delegations: CacheStats,
    pub failures: CacheStats,
}

pub struct Recursor {
    config: RecursorConfig,
    /// Answers, negative answers and remembered failures, by [`Recursor::key`].
    answers: Cache<Cached>,
    /// Delegations learnt from referrals: cut name (wire, lower case) to its servers.
    delegations: Cache<Arc<[SocketAddr]>>,
    /// Consecutive failures by [`Recursor::key`], kept 5 minutes past the last one, so that a
    /// question that keeps failing is held longer each time.
    failures: Cache<Strikes>,
    in_flight: InFlight<Arc<Entry<Cached>>>,
    /// Upstream servers that did not answer lately: asked last.
    unresponsive: servers::Unresponsive,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no server of {zone} gave a usable answer")]
    Unreachable { zone: String },
    #[error("more than {0} referrals")]
    TooDeep(usize),
    #[error("no outcome within the budget of {0:?}")]
    OverBudget(Duration),
}

impl Recursor {
    pub fn new(config: RecursorConfig) -> Self {
        let share = config.cache_bytes / 20;
        Self {
            answers: Cache::new(config.cache_bytes - 2 * share),
            delegations: Cache::new(share),
            failures: Cache::new(share),
            in_flight: InFlight::new(config.max_in_flight),
            unresponsive: servers::Unresponsive::default(),
            config,
        }
    }

    /// The cache key of a question: the lower-case wire name, then the type.
    pub fn key(name: &QueryName, qtype: u16, out: &mut [u8; wire::MAX_NAME + 2]) -> usize {
        let wire = name.wire();
        out[..wire.len()].copy_from_slice(wire);
        out[wire.len()..wire.len() + 2].copy_from_slice(&qtype.to_be_bytes());
        wire.len() + 2
    }

    pub fn cached(&self, key: &[u8], now: Instant) -> Option<Arc<Entry<Cached>>> {
        self.answers.get(key, now)
    }

    /// Writes a cached answer's sections with their TTLs counted down to `now`, after the
    /// question ending at `question_end` in `out` (as [`wire::write_response`] left it).
    pub fn count_down(entry: &Entry<Cached>, out: &mut [u8], question_end: usize, now: Instant) {
        let elapsed = now.saturating_duration_since(entry.value.stored).as_secs() as u32;
        for &offset in entry.value.ttl_offsets.iter() {
            let at = question_end + offset;
            let Some(field) = out.get_mut(at..at + 4) else { continue };
            let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            field.copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
        }
    }

    /// A place for one more client query, or `None` when `max_in_flight` are taken.
    pub fn admit(&self) -> Option<Admission> {
        self.in_flight.admit()
    }

    pub fn stats(&self) -> RecursorStats {
        RecursorStats {
            in_flight: self.in_flight.admitted(),
            resolutions: self.in_flight.resolutions(),
            dropped: self.in_flight.dropped(),
            answers: self.answers.stats(),
            delegations: self.delegations.stats(),
            failures: self.failures.stats(),
        }
    }

    /// The outcome for `name`/`qtype`: from the cache, from a resolution of the same question
    /// already running, or from a new one (which caches it, SERVFAIL included).
    pub async fn resolve(&self, name: &QueryName, qtype: u16) -> Arc<Entry<Cached>> {
        let mut buf = [0u8; wire::MAX_NAME + 2];
        let len = Self::key(name, qtype, &mut buf);
        let key = &buf[..len];
        match self.in_flight.join(key, || self.answers.get(key, Instant::now())) {
            Join::Done(entry) => entry,
            Join::Follow(follower) => match follower.outcome().await {
                Some(entry) => entry,
                None => {
                    let now = Instant::now();
                    Arc::new(Entry { value: Cached::servfail(now), expires: now })
                }
            },
            Join::Lead(lead) => {
                let entry = self.lead(name, qtype, key).await;
                lead.finish(entry.clone());
                entry
            }
        }
    }

    /// Resolves by iteration within the budget, and caches the outcome.
    async fn lead(&self, name: &QueryName, qtype: u16, key: &[u8]) -> Arc<Entry<Cached>> {
        let outcome = match name_of(name) {
            Ok(qname) => {
                let budget = self.config.budget;
                let outcome = tokio::time::timeout(budget, self.iterate(&qname, qtype))
                    .await
                    .unwrap_or(Err(Failure::OverBudget(budget)));
                if let Err(e) = &outcome {
                    tracing::info!(name = %qname, qtype, error = %e, "answering SERVFAIL");
                }
                outcome.ok()
            }
            Err(e) => {
                tracing::info!(qtype, error = %e, "answering SERVFAIL");
                None
            }
        };
        let now = Instant::now();
        match outcome {
            Some((cached, ttl)) => {
                self.failures.remove(key);
                self.answers.insert(key, cached, ttl, now)
            }
            None => self.remember_failure(key, now),
        }
    }

    /// Caches SERVFAIL for the question (RFC 9520): 1 s, doubling while failures repeat, at
    /// most 5 minutes. While it is cached, clients get it on the worker and nothing goes
    /// upstream.
    fn remember_failure(&self, key: &[u8], now: Instant) -> Arc<Entry<Cached>> {
        let strikes = self.failures.get(key, now).map_or(0, |e| e.value.0).saturating_add(1);
        let hold = FIRST_FAILURE_HOLD.saturating_mul(1 << (strikes - 1).min(16)).min(LONGEST_FAILURE_HOLD);
        self.failures.insert(key, Strikes(strikes), LONGEST_FAILURE_HOLD + hold, now);
        self.answers.insert(key, Cached::servfail(now), hold, now)
    }

    /// Follows referrals from the closest known delegation (or the roots) to an answer.
    async fn iterate(&self, qname: &Name, qtype: u16) -> Result<(Cached, Duration), Failure> {
        let (mut zone, mut servers) = self.closest_delegation(&qname.to_lowercase());
        for _ in 0..=self.config.max_referrals {
            match self.ask(&servers, &zone, qname, qtype).await? {
                Step::Answer { cached, ttl } => return Ok((cached, ttl)),
                Step::Referral(delegation) => {
                    let Delegation { cut, servers: next, ttl } = delegation;
                    self.delegations.insert(&wire_of(&cut), next.clone(), ttl, Instant::now());
                    zone = cut;
                    servers = next;
                }
            }
        }
        Err(Failure::TooDeep(self.config.max_referrals))
    }

    /// The deepest cached delegation above `qname`, or the roots.
    fn closest_delegation(&self, qname: &Name) -> (Name, Arc<[SocketAddr]>) {
        let now = Instant::now();
        let labels = usize::from(qname.num_labels());
        for keep in (1..=labels).rev() {
            let suffix = qname.trim_to(keep);
            if let Some(entry) = self.delegations.get(&wire_of(&suffix), now) {
                return (suffix, entry.value.clone());
            }
        }
        (Name::root(), self.config.roots.clone().into())
    }

    /// Asks each server of `zone` in turn until one gives an answer or a referral; a server that
    /// times out, fails, or answers REFUSED, SERVFAIL, NOTIMP, FORMERR or a lame referral is
    /// passed over.
    async fn ask(&self, servers: &[SocketAddr], zone: &Name, qname: &Name, qtype: u16) -> Result<Step, Failure> {
        let mut request = match exchange::query(qname, qtype) {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(%qname, error = %e, "cannot write the query");
                return Err(Failure::Unreachable { zone: zone.to_ascii() });
            }
        };
        for server in self.unresponsive.order(servers, Instant::now()) {
            let exchange =
                tokio::time::timeout(self.config.timeout, exchange::exchange(server, &mut request, Via::Udp));
            let response = match exchange.await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())) {
                Ok(reply) => {
                    self.unresponsive.answered(server);
                    reply.bytes
                }
                Err(e) => {
                    tracing::debug!(%server, error = %e, "asking the next server");
                    self.unresponsive.failed(server, Instant::now());
                    continue;
                }
            };
            match self.digest(zone, qname, qtype, &response, Instant::now()) {
                Ok(step) => return Ok(step),
                Err(broken) => tracing::debug!(%server, %zone, reason = %broken, "asking the next server"),
            }
        }
        Err(Failure::Unreachable { zone: zone.to_ascii() })
    }
}
