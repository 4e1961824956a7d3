//! The authoritative role: answers for the zones the node serves, from the front cache or, on
//! a miss, from the registry through [`zone::Zone::answer`]; and the node's write hook that
//! drops the cached answers a write changed.
//!
//! ```text
//! Question (parsed once by the front end), the zone holding it
//!        │
//!        ▼
//! cache.get(lower-case name) ──hit──────────────────────┐
//!        │ miss                                         │
//!        ▼                                              ▼
//! zone.answer(registry) ──> fill cache ──> AnswerSet.select(qtype) ──> wire::write_response
//! ```
//!
//! A hit allocates nothing: it copies the question, patches the header and appends the
//! pre-encoded answer bytes.

mod answer_set;
mod delegations;
mod prefill;
pub mod zone;

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::wire::{self, Body, rcode};
use super::{Question, mapping};
use crate::cache::{Cache, CacheStats, Entry};
use crate::registry::Registry;
use answer_set::AnswerSet;
pub use prefill::Prefilled;
use zone::{Zone, ZoneConfig};

/// 1 s: the shortest time an answer stays in the front cache, whatever its TTL.
const MIN_CACHE_TIME: Duration = Duration::from_secs(1);

pub struct Authoritative {
    /// The zones this node is authoritative for; a query goes to the deepest one holding it.
    /// Swapped whole when the node homes or unhomes a prefix.
    zones: ArcSwap<Vec<Zone>>,
    /// The national apex in lower-case wire form: the same for every zone.
    national_apex: Vec<u8>,
    /// Its labels.
    national_labels: usize,
    /// The settings the zones were made from, to make them again when the node's zones change;
    /// `None`: this role's zones are fixed.
    settings: Option<crate::config::DnsConfig>,
    registry: Arc<Registry>,
    cache: Cache<AnswerSet>,
    servfail: Body,
    /// Bumped by every committed write before it drops cached answers. A miss that read the
    /// registry before a write may insert its answer after the write dropped the name; it sees
    /// the generation moved and drops its own insert, so no stale answer outlives the write.
    generation: AtomicU64,
    /// The sequence number at which the zones last changed (made, or a prefix homed or
    /// unhomed): the change log cannot bring a secondary from before it up to date.
    zones_since: AtomicU64,
}

impl Authoritative {
    /// The role for `zones` (at least one; [`zone::zone_config`] makes them from the settings),
    /// with a front cache of `cache_bytes`.
    pub fn new(zones: Vec<ZoneConfig>, registry: Arc<Registry>, cache_bytes: u64) -> Self {
        assert!(!zones.is_empty(), "a node serves at least one zone");
        let zones: Vec<Zone> = zones.into_iter().map(Zone::new).collect();
        Self {
            zones_since: AtomicU64::new(registry.seq()),
            national_apex: zones[0].national_apex_wire().to_vec(),
            national_labels: zones[0].apex_labels() - zones[0].prefix_labels(),
            zones: ArcSwap::from_pointee(zones),
            settings: None,
            registry,
            cache: Cache::new(cache_bytes),
            servfail: Body { rcode: rcode::SERVFAIL, authoritative: false, ..Body::empty() },
            generation: AtomicU64::new(0),
        }
    }

    /// Makes this role's zones follow the node's (homed prefixes), made from `settings`.
    pub fn following(mut self, settings: crate::config::DnsConfig) -> Self {
        self.settings = Some(settings);
        self
    }

    /// The zones served now; [`zone::holding`] picks the one holding a name.
    pub fn zones(&self) -> arc_swap::Guard<Arc<Vec<Zone>>> {
        self.zones.load()
    }

    /// The national apex in lower-case wire form.
    pub fn national_apex_wire(&self) -> &[u8] {
        &self.national_apex
    }

    /// The national apex in lower-case wire form, and its labels.
    pub fn national_apex(&self) -> (&[u8], usize) {
        (&self.national_apex, self.national_labels)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The sequence number at which the zones last changed.
    pub fn zones_since(&self) -> u64 {
        self.zones_since.load(Ordering::SeqCst)
    }

    /// Answers `question`, whose name `zone` holds `own` labels below its apex, into `out`;
    /// returns whether the answer came from the front cache.
    pub(in crate::dns) fn answer(&self, question: &Question<'_>, zone: &Zone, own: usize, out: &mut Vec<u8>) -> bool {
        let name = question.name;
        let now = Instant::now();
        let mut hit = true;
        let entry = match self.cache.get(name.wire(), now) {
            Some(entry) => entry,
            None => {
                hit = false;
                // SeqCst on both sides: see `generation`.
                let generation = self.generation.load(Ordering::SeqCst);
                match zone.answer(name, own, &self.registry, crate::record::unix_now()) {
                    Ok((set, ttl)) => self.fill(name.wire(), generation, set, ttl, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot answer from the registry; answering SERVFAIL");
                        question.respond(&self.servfail, out);
                        return false;
                    }
                }
            }
        };
        let body = entry.value.select(question.query.qtype, zone, name.wire().len());
        if question.respond(body, out) {
            if let Some(at) = body.soa_serial {
                let at = question.query.question_end + usize::from(at);
                if let Some(serial) = out.get_mut(at..at + 4) {
                    serial.copy_from_slice(&self.registry.serial().to_be_bytes());
                }
            }
        }
        hit
    }

    /// Caches an answer built from a registry read that began at `generation`; if a write
    /// committed since, the entry is dropped again (the answer still serves this one query).
    fn fill(&self, key: &[u8], generation: u64, set: AnswerSet, ttl: Duration, now: Instant) -> Arc<Entry<AnswerSet>> {
        // A zero TTL would make every query a registry read; the entry is dropped on any write
        // anyway, and clients still see the value's own TTL.
        let entry = self.cache.insert(key, set, ttl.max(MIN_CACHE_TIME), now);
        if self.generation.load(Ordering::SeqCst) != generation {
            self.cache.remove(key);
        }
        entry
    }
}

/// Writes drop the cached answers they changed, after they are durable and before they are
/// acknowledged: the identifier's name and its ancestors (whose NXDOMAIN/NODATA may change), and
/// for a changed delegation every name at or below the delegated prefix.
impl crate::node::Subscriber for Authoritative {
    fn changed(&self, change: &crate::node::Changed) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let apex = &self.national_apex;
        for id in &change.identifiers {
            for name in mapping::affected_names(id, apex) {
                self.cache.remove(&name);
            }
        }
        if !change.delegations.is_empty() {
            self.zones.load().iter().for_each(Zone::forget_delegations);
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
        let cut = mapping::prefix_name(prefix, &self.national_apex);
        let longest = cut.len() + 1 + format!("ns{servers}").len();
        if longest > wire::MAX_NAME {
            return Err(format!(
                "its DNS name and the name of its server ns{servers} would take {longest} bytes; DNS allows {}",
                wire::MAX_NAME
            ));
        }
        Ok(())
    }

    /// A homed prefix becomes a zone of its own, named and filled in as configured ones are.
    fn check_zones(&self, zones: &crate::node::Zones) -> Result<(), String> {
        let settings = self.settings.as_ref().ok_or("this DNS front end's zones are fixed")?;
        zone::zone_config(settings, zones).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Serves the new zones and drops every cached answer: a name may now be in another zone,
    /// or in none.
    fn zones_changed(&self, zones: &crate::node::Zones) {
        let Some(settings) = &self.settings else { return };
        match zone::zone_config(settings, zones) {
            Ok(configs) if !configs.is_empty() => {
                self.zones.store(Arc::new(configs.into_iter().map(Zone::new).collect()))
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "the new zones cannot be served over DNS; the old ones stay"),
        }
        self.zones_since.store(self.registry.seq(), Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.retain(|_| false);
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::auth::Admin;
    use crate::dns::wire::QueryName;
    use crate::dns::{Scratch, Transport, Verdict};
    use crate::record::Value;

    #[test]
    fn a_miss_that_read_before_a_write_does_not_cache_its_stale_answer() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(dir.path()).unwrap());
        let (node, frontend) =
            crate::server::assemble(&crate::config::Config::default(), registry.clone(), None).unwrap();
        let id = crate::identifier::Identifier::parse("88.100.1/RACE").unwrap();
        let put = |url: &str| node.put(&Admin::node(), &id, vec![Value::new(1, "URL", url, 0)], &Default::default());
        put("https://old").unwrap();
        let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii("race._id.1.100.88.id.example.").unwrap(), RecordType::TXT));
        let request = msg.to_vec().unwrap();
        let mut name = QueryName::default();
        wire::parse(&request, &mut name).unwrap();
        let authoritative = frontend.authoritative();
        let zones = authoritative.zones();
        let (zone, own) = zone::holding(&zones, &name).unwrap();
        let now = Instant::now();
        // The miss reads the registry, then the write commits and drops the name, then the
        // miss caches what it read: exactly the interleaving of the race.
        let generation = authoritative.generation.load(Ordering::SeqCst);
        let (stale, ttl) = zone.answer(&name, own, &registry, 0).unwrap();
        put("https://new").unwrap();
        authoritative.fill(name.wire(), generation, stale, ttl, now);
        let mut out = Vec::new();
        let verdict = frontend.handle(&request, Transport::Udp, &mut Scratch::default(), &mut out);
        assert!(matches!(verdict, Verdict::Respond));
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

    /// The delegations a miss looks up are kept (`delegations.rs`); a write that delegates a
    /// prefix must reach the next miss below it, and one that takes the delegation back too.
    #[test]
    fn a_delegation_made_or_removed_after_misses_below_it_reaches_the_next_miss() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(dir.path()).unwrap());
        let (node, frontend) =
            crate::server::assemble(&crate::config::Config::default(), registry.clone(), None).unwrap();
        let ask = |label: &str| {
            let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
            let name = Name::from_ascii(format!("{label}._id.105.88.id.example.")).unwrap();
            msg.add_query(Query::query(name, RecordType::TXT));
            let mut out = Vec::new();
            frontend.handle(&msg.to_vec().unwrap(), Transport::Udp, &mut Scratch::default(), &mut out);
            let answer = Message::from_vec(&out).unwrap();
            (answer.response_code, answer.authorities.iter().any(|r| r.record_type() == RecordType::NS))
        };
        let nxdomain = (hickory_proto::op::ResponseCode::NXDomain, false);
        assert_eq!(ask("a"), nxdomain, "no delegation yet: this node answers");
        let prefix = crate::identifier::Identifier::parse("0.NA/88.105").unwrap();
        let site = crate::record::site::tests::sample().encode();
        let sites = vec![Value::new(1, crate::record::types::SITE, site, 0)];
        node.put(&Admin::node(), &prefix, sites, &Default::default()).unwrap();
        assert_eq!(ask("b"), (hickory_proto::op::ResponseCode::NoError, true), "a referral, for a name not asked yet");
        node.put(&Admin::node(), &prefix, vec![Value::new(1, "DESC", "kept here", 0)], &Default::default()).unwrap();
        assert_eq!(ask("c"), nxdomain, "the delegation taken back");
    }

    /// NODATA and NXDOMAIN are written once per length of the query's name
    /// (`Zone::negative`): each must read back as the zone's SOA, owned by the apex, whatever
    /// the name's labels and case, with the SOA's own names inside the zone or outside it.
    #[test]
    fn negative_answers_read_back_as_the_zones_soa_for_every_name_of_a_length() {
        use hickory_proto::op::ResponseCode;
        // A leading `*` is a label hickory's `num_labels` leaves out: it must be written all the same.
        for mname in ["ns1.id.example.", "ns.elsewhere.example.", "*.id.example."] {
            let dir = tempfile::tempdir().unwrap();
            let registry = Arc::new(Registry::open(dir.path()).unwrap());
            let mut config = crate::config::Config::default();
            config.dns.nameservers =
                vec![crate::config::NameServer { name: mname.into(), addresses: vec!["127.0.0.1".parse().unwrap()] }];
            let (node, frontend) = crate::server::assemble(&config, registry.clone(), None).unwrap();
            let id = crate::identifier::Identifier::parse("88.100.1/ABC").unwrap();
            node.put(&Admin::node(), &id, vec![Value::new(1, "URL", "https://x", 0)], &Default::default()).unwrap();
            // Names of one length in pairs: the second answer is the first one's, reused. One
            // has labels that the SOA's names end with, which a compressor could point into.
            let asked = [
                ("abc.ns1.id.example.", RecordType::TXT, ResponseCode::NXDomain),
                ("XYZ.QRS.ID.EXAMPLE.", RecordType::TXT, ResponseCode::NXDomain),
                ("x.hostmaster.id.example.", RecordType::TXT, ResponseCode::NXDomain),
                ("abc._id.1.100.88.id.example.", RecordType::A, ResponseCode::NoError),
                ("ABC._ID.1.100.88.ID.EXAMPLE.", RecordType::MX, ResponseCode::NoError),
                ("abd._id.1.100.88.id.example.", RecordType::TXT, ResponseCode::NXDomain),
                ("id.example.", RecordType::MX, ResponseCode::NoError),
            ];
            for (text, qtype, rcode) in asked {
                let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
                msg.add_query(Query::query(Name::from_ascii(text).unwrap(), qtype));
                let mut out = Vec::new();
                frontend.handle(&msg.to_vec().unwrap(), Transport::Udp, &mut Scratch::default(), &mut out);
                let answer = Message::from_vec(&out).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!((answer.response_code, answer.answers.len(), answer.authorities.len()), (rcode, 0, 1));
                assert!(answer.authoritative, "{text}");
                let soa = &answer.authorities[0];
                assert_eq!(soa.name.to_lowercase().to_string(), "id.example.", "{text}");
                assert_eq!(soa.ttl, config.dns.ttl.min(config.dns.negative_ttl), "{text}");
                let hickory_proto::rr::RData::SOA(soa) = &soa.data else { panic!("{text}: {soa:?}") };
                assert_eq!(soa.mname.to_lowercase().to_string(), mname, "{text}");
                assert_eq!(soa.rname.to_lowercase().to_string(), "hostmaster.id.example.", "{text}");
                let timers = (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum);
                let dns = &config.dns;
                assert_eq!(timers, (registry.serial(), dns.refresh, dns.retry, dns.expire, dns.negative_ttl), "{text}");
            }
        }
    }

    #[test]
    fn a_cached_negative_answer_carries_the_serial_of_the_latest_write() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(dir.path()).unwrap());
        let (node, frontend) =
            crate::server::assemble(&crate::config::Config::default(), registry.clone(), None).unwrap();
        let put = |id: &str| {
            let id = crate::identifier::Identifier::parse(id).unwrap();
            node.put(&Admin::node(), &id, vec![Value::new(1, "URL", "https://x", 0)], &Default::default()).unwrap();
        };
        let ask = || {
            let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
            msg.add_query(Query::query(Name::from_ascii("nope._id.1.100.88.id.example.").unwrap(), RecordType::TXT));
            let mut out = Vec::new();
            frontend.handle(&msg.to_vec().unwrap(), Transport::Udp, &mut Scratch::default(), &mut out);
            let answer = Message::from_vec(&out).unwrap();
            match &answer.authorities[0].data {
                hickory_proto::rr::RData::SOA(soa) => soa.serial,
                other => panic!("{other:?}"),
            }
        };
        put("88.100.1/A");
        assert_eq!(ask(), registry.serial(), "a miss");
        put("88.100.2/B");
        assert_eq!(ask(), registry.serial(), "a hit, after a write elsewhere");
        assert_eq!(frontend.cache_stats().hits, 1, "the second answer came from the cache");
    }
}
