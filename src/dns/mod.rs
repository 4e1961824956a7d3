//! The DNS front end's query pipeline: request bytes in, a verdict and response bytes out.
//!
//! ```text
//! request ──> wire::parse ──reject──> FORMERR / NOTIMP / drop
//!                │
//!                ├─ outside the apex, class not IN ──> REFUSED (never an open resolver)
//!                ▼
//!          cache.get(lower-case name) ──hit──┐
//!                │ miss                      │
//!                ▼                           ▼
//!          zone.answer(registry) ──> AnswerSet.select(qtype) ──> wire::write_response
//! ```
//!
//! This is the only module that imports hickory-proto. Transport code hands it bytes and a
//! [`Transport`]; it never blocks on anything but a registry read on a miss.

pub mod client;
pub mod mapping;
pub mod recursor;
pub mod rrl;
pub mod wire;
pub mod zone;
pub mod zonefile;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::rr::Name;

use crate::cache::{Cache, CacheStats};
use crate::registry::Registry;
use wire::{Body, OptOut, QueryName, Reject, rcode};
use zone::{AnswerSet, Zone};

pub use hickory_proto::rr::Name as DnsName;
pub use zone::ZoneConfig;

/// What the transport should do with the response buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Respond,
    Drop,
    /// A recursive node's cache miss: the transport asks [`Frontend::recurse`] for the work and
    /// spawns it, or drops the query when there is none.
    Recurse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// 1 s: the shortest time an answer stays in the front cache, whatever its TTL.
const MIN_CACHE_TIME: std::time::Duration = std::time::Duration::from_secs(1);
/// 512: the DNS payload every client accepts without EDNS (RFC 1035 4.2.1).
const CLASSIC_UDP: u16 = 512;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const TYPE_MAILB: u16 = 253;
const TYPE_MAILA: u16 = 254;

/// Per-worker scratch space, so that answering allocates nothing.
#[derive(Default)]
pub struct Scratch {
    name: QueryName,
}

pub struct Frontend {
    /// The zones this node is authoritative for; a query goes to the deepest one holding it.
    zones: Vec<Zone>,
    registry: Arc<Registry>,
    cache: Cache<AnswerSet>,
    /// Present on a recursive node: names under the apex are resolved by following referrals.
    recursor: Option<Arc<recursor::Recursor>>,
    /// Largest UDP response with EDNS (1232 by default: DNS Flag Day 2020).
    max_udp_payload: u16,
    empty: [Body; 3],
    /// Bumped by every committed write before it drops cached answers. A miss that read the
    /// registry before a write may insert its answer after the write dropped the name; it sees
    /// the generation moved and drops its own insert, so no stale answer outlives the write.
    generation: AtomicU64,
}

const REFUSED: usize = 0;
const NOTIMP: usize = 1;
const SERVFAIL: usize = 2;

impl Frontend {
    /// A front end for `zones` (at least one; [`zone_config`] makes them from the settings).
    pub fn new(zones: Vec<ZoneConfig>, registry: Arc<Registry>, cache_bytes: u64, max_udp_payload: u16) -> Self {
        assert!(!zones.is_empty(), "a node serves at least one zone");
        let empty = |rcode, authoritative| Body {
            rcode,
            authoritative,
            recursion_available: false,
            answers: 0,
            authorities: 0,
            additionals: 0,
            bytes: Box::new([]),
        };
        Self {
            zones: zones.into_iter().map(Zone::new).collect(),
            recursor: None,
            registry,
            cache: Cache::new(cache_bytes),
            max_udp_payload: max_udp_payload.max(CLASSIC_UDP),
            empty: [empty(rcode::REFUSED, false), empty(rcode::NOTIMP, false), empty(rcode::SERVFAIL, false)],
            generation: AtomicU64::new(0),
        }
    }

    /// The front end that `config` describes: its zones, and the recursive role when
    /// `recursive.roots` is set.
    pub fn from_config(
        config: &crate::config::Config,
        registry: Arc<Registry>,
    ) -> Result<Self, crate::config::ConfigError> {
        let frontend =
            Self::new(zone_config(&config.dns)?, registry, config.cache.max_bytes(), config.dns.max_udp_payload);
        let r = &config.recursive;
        if r.roots.is_empty() {
            return Ok(frontend);
        }
        Ok(frontend.with_recursor(recursor::Recursor::new(recursor::RecursorConfig {
            roots: r.roots.clone(),
            port: r.port,
            timeout: std::time::Duration::from_millis(r.timeout_ms.max(1)),
            max_referrals: r.max_referrals,
            cache_bytes: config.cache.max_bytes(),
            max_in_flight: r.max_in_flight,
            budget: std::time::Duration::from_millis(r.resolution_budget_ms.max(1)),
            max_ttl: r.max_ttl,
            max_negative_ttl: r.max_negative_ttl,
        })))
    }

    /// Whether this is a recursive node.
    pub fn is_recursive(&self) -> bool {
        self.recursor.is_some()
    }

    /// Makes this a recursive node for the apex.
    pub fn with_recursor(mut self, recursor: recursor::Recursor) -> Self {
        self.recursor = Some(Arc::new(recursor));
        self
    }

    /// The national apex, under which every identifier has its DNS name.
    pub fn apex(&self) -> Name {
        self.zones[0].national_apex()
    }

    /// The prefixes of the zones this node serves (`""` for the whole namespace).
    pub fn zone_prefixes(&self) -> Vec<&str> {
        self.zones.iter().map(Zone::prefix).collect()
    }

    /// The apexes of the zones this node serves.
    pub fn zone_apexes(&self) -> Vec<Name> {
        self.zones.iter().map(|z| z.apex().clone()).collect()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The recursive role's counters; `None` unless this is a recursive node.
    pub fn recursor_stats(&self) -> Option<recursor::RecursorStats> {
        self.recursor.as_ref().map(|r| r.stats())
    }

    /// Answers one request into `out`.
    pub fn handle(&self, request: &[u8], transport: Transport, scratch: &mut Scratch, out: &mut Vec<u8>) -> Verdict {
        let query = match wire::parse(request, &mut scratch.name) {
            Ok(q) => q,
            Err(Reject::Drop) => return Verdict::Drop,
            Err(Reject::Error { id, copied_flags, rcode }) => {
                wire::write_error(out, id, copied_flags, rcode);
                return Verdict::Respond;
            }
        };
        let limit = self.limit(transport, query.edns);
        let mut opt = self.opt_out(query.edns);
        if let Some(o) = opt.as_mut().filter(|_| query.edns.is_some_and(|e| e.version != 0)) {
            o.extended_rcode = (rcode::BADVERS >> 4) as u8;
            let badvers = Body { rcode: (rcode::BADVERS & 0xf) as u8, ..self.empty[REFUSED].clone() };
            wire::write_response(out, request, &query, &badvers, opt, limit);
            return Verdict::Respond;
        }
        let name = &scratch.name;
        let refuse =
            |i: usize, out: &mut Vec<u8>| wire::write_response(out, request, &query, &self.empty[i], opt, limit);
        if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
            refuse(REFUSED, out);
            return Verdict::Respond;
        }
        // The deepest zone holding the name answers for it.
        let zone = self
            .zones
            .iter()
            .filter_map(|z| name.labels_below(z.apex_wire(), z.apex_labels()).map(|own| (z, own)))
            .min_by_key(|(_, own)| *own);
        let Some((zone, own)) = zone else {
            refuse(REFUSED, out);
            return Verdict::Respond;
        };
        if matches!(query.qtype, TYPE_IXFR | TYPE_AXFR | TYPE_MAILB | TYPE_MAILA) {
            refuse(NOTIMP, out);
            return Verdict::Respond;
        }
        let now = tokio::time::Instant::now();
        if let Some(recursor) = &self.recursor {
            let mut key = [0u8; wire::MAX_NAME + 2];
            let len = recursor::Recursor::key(name, query.qtype, &mut key);
            let Some(entry) = recursor.cached(&key[..len], now) else { return Verdict::Recurse };
            if wire::write_response(out, request, &query, &entry.value.body, opt, limit) {
                recursor::Recursor::count_down(&entry, out, query.question_end, now);
            }
            return Verdict::Respond;
        }
        let entry = match self.cache.get(name.wire(), now) {
            Some(entry) => entry,
            None => {
                // SeqCst on both sides: see `generation`.
                let generation = self.generation.load(Ordering::SeqCst);
                match zone.answer(name, own, &self.registry, crate::record::unix_now()) {
                    Ok((set, ttl)) => self.fill(name.wire(), generation, set, ttl, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot answer from the registry; answering SERVFAIL");
                        refuse(SERVFAIL, out);
                        return Verdict::Respond;
                    }
                }
            }
        };
        wire::write_response(out, request, &query, entry.value.select(query.qtype, zone), opt, limit);
        Verdict::Respond
    }
}

/// Writes drop the cached answers they changed, after they are durable and before they are
/// acknowledged: the identifier's name and its ancestors (whose NXDOMAIN/NODATA may change), and
/// for a changed delegation every name at or below the delegated prefix.
impl crate::node::Subscriber for Frontend {
    fn changed(&self, change: &crate::node::Changed) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let apex = self.zones[0].national_apex_wire();
        for id in &change.identifiers {
            for name in mapping::affected_names(id, apex) {
                self.cache.remove(&name);
            }
        }
        for prefix in &change.delegations {
            let cut = mapping::prefix_name(prefix, apex);
            self.cache.retain(|name| !mapping::is_at_or_below(name, &cut));
        }
    }

    /// A referral names the delegated servers `ns1.<cut>` .. `nsN.<cut>`: each must be a DNS
    /// name, or every query below the cut would get SERVFAIL.
    fn check_delegation(&self, prefix: &str, record: &crate::record::Record) -> Result<(), String> {
        let servers: usize = crate::record::site::sites_in(record).iter().map(|site| site.servers.len()).sum();
        let cut = mapping::prefix_name(prefix, self.zones[0].national_apex_wire());
        let longest = cut.len() + 1 + format!("ns{servers}").len();
        if longest > wire::MAX_NAME {
            return Err(format!(
                "its DNS name and the name of its server ns{servers} would take {longest} bytes; DNS allows {}",
                wire::MAX_NAME
            ));
        }
        Ok(())
    }
}

impl Frontend {
    /// Caches an answer built from a registry read that began at `generation`; if a write
    /// committed since, the entry is dropped again (the answer still serves this one query).
    fn fill(
        &self,
        key: &[u8],
        generation: u64,
        set: AnswerSet,
        ttl: std::time::Duration,
        now: tokio::time::Instant,
    ) -> Arc<crate::cache::Entry<AnswerSet>> {
        // A zero TTL would make every query a registry read; the entry is dropped on any write
        // anyway, and clients still see the value's own TTL.
        let entry = self.cache.insert(key, set, ttl.max(MIN_CACHE_TIME), now);
        if self.generation.load(Ordering::SeqCst) != generation {
            self.cache.remove(key);
        }
        entry
    }

    /// The largest response for `transport`: 65535 over TCP; over UDP the client's EDNS payload
    /// within the node's (512 without EDNS).
    fn limit(&self, transport: Transport, edns: Option<wire::Edns>) -> usize {
        match (transport, edns) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, Some(e)) => usize::from(e.udp_size.clamp(CLASSIC_UDP, self.max_udp_payload)),
            (Transport::Udp, None) => usize::from(CLASSIC_UDP),
        }
    }

    /// What a response's OPT record carries, when the query had one.
    fn opt_out(&self, edns: Option<wire::Edns>) -> Option<OptOut> {
        edns.map(|e| OptOut { udp_size: self.max_udp_payload, extended_rcode: 0, dnssec_ok: e.dnssec_ok })
    }

    /// Starts answering a request that [`Frontend::handle`] sent to recursion (a cache miss on
    /// a recursive node): takes one of the `recursive.max_in_flight` places, and returns the
    /// work that resolves, caches and writes the response. The work owns what it needs, so the
    /// transport can spawn it. `None`: not a recursive node, or every place is taken, and the
    /// query is dropped before any task exists for it.
    pub fn recurse(
        &self,
        request: &[u8],
        transport: Transport,
    ) -> Option<impl Future<Output = Vec<u8>> + Send + 'static> {
        let recursor = self.recursor.clone()?;
        let mut name = QueryName::default();
        let query = wire::parse(request, &mut name).ok()?;
        let admission = recursor.admit()?;
        let (limit, opt) = (self.limit(transport, query.edns), self.opt_out(query.edns));
        let request = request.to_vec();
        Some(async move {
            let entry = recursor.resolve(&name, query.qtype).await;
            let mut out = Vec::with_capacity(512);
            if wire::write_response(&mut out, &request, &query, &entry.value.body, opt, limit) {
                recursor::Recursor::count_down(&entry, &mut out, query.question_end, tokio::time::Instant::now());
            }
            drop(admission);
            out
        })
    }
}

/// Turns the DNS settings into the node's zones, one per configured prefix, filling in the
/// defaults that depend on each zone's apex.
pub fn zone_config(dns: &crate::config::DnsConfig) -> Result<Vec<ZoneConfig>, crate::config::ConfigError> {
    use crate::config::ConfigError;
    let mut national = Name::from_ascii(&dns.apex)
        .map_err(|e| ConfigError::BadApex { apex: dns.apex.clone(), reason: e.to_string() })?;
    national.set_fqdn(true);
    let bad_apex = |reason: String| ConfigError::BadApex { apex: dns.apex.clone(), reason };
    if dns.zones.is_empty() {
        return Err(ConfigError::BadZone { zone: String::new(), reason: "a node serves at least one zone".into() });
    }
    dns.zones
        .iter()
        .map(|prefix| {
            if !prefix.is_empty() {
                crate::identifier::check_prefix(prefix)
                    .map_err(|e| ConfigError::BadZone { zone: prefix.clone(), reason: e.to_string() })?;
            }
            let mut apex = national.clone();
            for label in mapping::prefix_labels(prefix).collect::<Vec<_>>().into_iter().rev().filter(|l| !l.is_empty())
            {
                apex = apex
                    .prepend_label(
                        hickory_proto::rr::Label::from_raw_bytes(&label).map_err(|e| bad_apex(e.to_string()))?,
                    )
                    .map_err(|e| bad_apex(e.to_string()))?;
            }
            let relative = |text: &str| -> Result<Name, String> {
                let name = Name::from_ascii(text).map_err(|e| e.to_string())?;
                if name.is_fqdn() { Ok(name) } else { name.append_domain(&apex).map_err(|e| e.to_string()) }
            };
            let hostmaster = relative(dns.hostmaster.as_deref().unwrap_or("hostmaster")).map_err(bad_apex)?;
            let nameservers = if dns.nameservers.is_empty() {
                vec![(relative("ns1").map_err(bad_apex)?, vec![dns.listen.ip()])]
            } else {
                dns.nameservers
                    .iter()
                    .map(|ns| {
                        let name = relative(&ns.name)
                            .map_err(|reason| ConfigError::BadNameServer { name: ns.name.clone(), reason })?;
                        Ok((name, ns.addresses.clone()))
                    })
                    .collect::<Result<_, ConfigError>>()?
            };
            Ok(ZoneConfig {
                prefix: prefix.clone(),
                apex,
                hostmaster,
                nameservers,
                ttl: dns.ttl,
                refresh: dns.refresh,
                retry: dns.retry,
                expire: dns.expire,
                negative_ttl: dns.negative_ttl,
                referral_ttl: dns.referral_ttl,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;

    use super::*;
    use crate::auth::Admin;
    use crate::record::Value;

    #[test]
    fn a_miss_that_read_before_a_write_does_not_cache_its_stale_answer() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(dir.path()).unwrap());
        let (node, frontend) = crate::server::assemble(&crate::config::Config::default(), registry.clone()).unwrap();
        let id = crate::identifier::Identifier::parse("88.100.1/RACE").unwrap();
        let put = |url: &str| node.put(&Admin::node(), &id, vec![Value::new(1, "URL", url, 0)], &Default::default());
        put("https://old").unwrap();
        let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii("race._id.1.100.88.id.example.").unwrap(), RecordType::TXT));
        let request = msg.to_vec().unwrap();
        let mut scratch = Scratch::default();
        wire::parse(&request, &mut scratch.name).unwrap();
        let zone = &frontend.zones[0];
        let own = scratch.name.labels_below(zone.apex_wire(), zone.apex_labels()).unwrap();
        let now = tokio::time::Instant::now();
        // The miss reads the registry, then the write commits and drops the name, then the
        // miss caches what it read: exactly the interleaving of the race.
        let generation = frontend.generation.load(Ordering::SeqCst);
        let (stale, ttl) = zone.answer(&scratch.name, own, &registry, 0).unwrap();
        put("https://new").unwrap();
        frontend.fill(scratch.name.wire(), generation, stale, ttl, now);
        let mut out = Vec::new();
        assert_eq!(frontend.handle(&request, Transport::Udp, &mut scratch, &mut out), Verdict::Respond);
        let answer = Message::from_vec(&out).unwrap();
        let data: Vec<Vec<u8>> = answer
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                hickory_proto::rr::RData::TXT(t) => t.txt_data.get(2).map(|d| d.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(data, [b"https://new".to_vec()], "the write's data, not what the miss read before it");
    }
}
