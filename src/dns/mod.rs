//! The DNS front end: request bytes in, a [`Verdict`] and response bytes out. The only module
//! that imports hickory-proto.
//!
//! ```text
//! request ──> wire::parse (once) ── too short, QR set ──> drop
//!                │                 └ opcode, counts, bad question ──> NOTIMP / FORMERR
//!                ├─ EDNS version ≠ 0 ──> BADVERS
//!                │                 └ signed (TSIG), IXFR ──> xfr: checked, answered signed
//!                ├─ class not IN, outside every zone ──> REFUSED (never an open resolver)
//!                ├─ AXFR, IXFR over TCP ──> Verdict::Transfer (xfr streams it); over UDP, MAILA,
//!                │  MAILB ──> NOTIMP
//!                ▼ Question { request, query, name, opt, limit }
//!        ┌───────┴───────────────────────┐
//!        ▼ authoritative node            ▼ recursive node
//!  authoritative::Authoritative    recursive::Recursor::answer
//!   cache ─ miss ─> zone.answer     cached ──> Respond, on the worker
//!        │                          miss ──> Defer(Pending): the transport spawns
//!        ▼                                   Pending::resolve (or Drop at max_in_flight)
//!     Respond
//! ```
//!
//! Transport code ([`crate::server`]) hands [`Frontend::handle`] bytes and a [`Transport`]; it
//! never blocks on anything but a registry read on a miss. Beside the front end: the query
//! exchange and TCP framing every client and connection uses ([`exchange`], [`framing`]), the
//! `idnode resolve` client ([`client`]), the zone-file export and import ([`zonefile`],
//! [`zone_import`]), zone transfers, TSIG and NOTIFY ([`xfr`]), the name and record mapping
//! ([`mapping`]) and response rate limiting ([`rrl`]).

pub mod authoritative;
pub mod client;
pub mod exchange;
pub mod framing;
pub mod mapping;
pub mod recursive;
pub mod rrl;
pub mod wire;
pub mod xfr;
pub mod zone_import;
pub mod zonefile;

use std::sync::Arc;

use hickory_proto::rr::Name;

use crate::cache::CacheStats;
use crate::registry::Registry;
use authoritative::Authoritative;
use authoritative::zone;
use recursive::{Pending, Recursor};
use wire::{Body, OptOut, QueryName, Reject, rcode};

pub use authoritative::zone::{ZoneConfig, zone_config};
pub use hickory_proto::rr::Name as DnsName;

/// What the transport does after [`Frontend::handle`].
#[derive(Debug)]
pub enum Verdict {
    /// Send the response written into `out`.
    Respond,
    /// Send nothing; over TCP, close the connection (RFC 7766 allows it for a message not worth
    /// an answer).
    Drop,
    /// A recursive node's cache miss, admitted among the resolutions in flight: spawn
    /// [`Pending::resolve`] (it owns its question) and send the response it returns.
    Defer(Pending),
    /// A zone transfer (TCP only): the connection hands the request and its peer to
    /// [`Frontend::transfer`], which writes the answer's messages itself.
    Transfer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

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
    /// Whether the last answer came from the front cache; `None` when no authoritative answer
    /// was looked up (an error, a refusal, a recursive node).
    hit: Option<bool>,
}

impl Scratch {
    /// Whether the last answer came from the front cache (see `hit`).
    pub fn cache_hit(&self) -> Option<bool> {
        self.hit
    }

    /// The last question's name in wire form (lower-cased): its length is where the question's
    /// type starts in the answer, after the 12-byte header.
    pub fn question_name_len(&self) -> usize {
        self.name.wire().len()
    }
}

/// A request that passed the front end's checks, parsed once: what either role answers from.
struct Question<'a> {
    request: &'a [u8],
    query: wire::Query,
    /// Lower-cased.
    name: &'a QueryName,
    /// The OPT record of the response, when the query had one.
    opt: Option<OptOut>,
    /// The largest response the client takes over this transport.
    limit: usize,
}

impl Question<'_> {
    /// Writes the response with `body` into `out`; `false` when it did not fit and went out
    /// truncated (TC, sections empty).
    fn respond<'a>(&self, body: impl Into<wire::Sections<'a>>, out: &mut Vec<u8>) -> bool {
        wire::write_response(out, self.request, &self.query, body, self.opt, self.limit)
    }
}

pub struct Frontend {
    authoritative: Arc<Authoritative>,
    /// Present on a recursive node: names under the apex are resolved by following referrals.
    recursor: Option<Arc<Recursor>>,
    /// Largest UDP response with EDNS (1232 by default: DNS Flag Day 2020).
    max_udp_payload: u16,
    refused: Body,
    notimp: Body,
    /// Who may transfer the zones, and the transfers under way.
    transfers: Arc<xfr::Transfers>,
}

impl Frontend {
    /// A front end for `zones` (at least one; [`zone_config`] makes them from the settings).
    pub fn new(zones: Vec<ZoneConfig>, registry: Arc<Registry>, cache_bytes: u64, max_udp_payload: u16) -> Self {
        Self::serving(Authoritative::new(zones, registry, cache_bytes), max_udp_payload)
    }

    fn serving(authoritative: Authoritative, max_udp_payload: u16) -> Self {
        Self {
            authoritative: Arc::new(authoritative),
            recursor: None,
            max_udp_payload: max_udp_payload.max(CLASSIC_UDP),
            refused: Body { rcode: rcode::REFUSED, ..Body::empty() },
            notimp: Body { rcode: rcode::NOTIMP, ..Body::empty() },
            transfers: Arc::new(xfr::Transfers::new(crate::config::Replication::default())),
        }
    }

    /// The front end that `config` describes: its zones, and the recursive role when
    /// `recursive.roots` is set.
    pub fn from_config(
        config: &crate::config::Config,
        zones: &crate::node::Zones,
        registry: Arc<Registry>,
    ) -> Result<Self, crate::config::ConfigError> {
        let zones = zone_config(&config.dns, zones)?;
        let authoritative = Authoritative::new(zones, registry, config.cache.max_bytes()).following(config.dns.clone());
        let mut frontend = Self::serving(authoritative, config.dns.max_udp_payload);
        frontend.transfers = Arc::new(xfr::Transfers::new(config.replication.resolve()?));
        let r = &config.recursive;
        if r.roots.is_empty() {
            return Ok(frontend);
        }
        Ok(frontend.with_recursor(Recursor::new(recursive::RecursorConfig {
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
    pub fn with_recursor(mut self, recursor: Recursor) -> Self {
        self.recursor = Some(Arc::new(recursor));
        self
    }

    /// The authoritative role: its cache subscribes to the node's writes.
    pub fn authoritative(&self) -> &Arc<Authoritative> {
        &self.authoritative
    }

    /// Zone transfers: who may, and since when the zones are what they are.
    pub fn transfers(&self) -> &Arc<xfr::Transfers> {
        &self.transfers
    }

    /// The prefix (`88.100.1`) of the name the last question parsed into `scratch` asked: the
    /// labels between `_id` (or the name's start) and the national apex, most significant
    /// first, written into `out`; `false` when the name has none.
    pub fn question_prefix(&self, scratch: &Scratch, out: &mut Vec<u8>) -> bool {
        out.clear();
        let (apex, apex_labels) = self.authoritative.national_apex();
        let name = &scratch.name;
        let Some(own) = name.labels_below(apex, apex_labels) else { return false };
        let first = (0..own).position(|i| name.label(i) == b"_id").map_or(0, |i| i + 1);
        for i in (first..own).rev() {
            if !out.is_empty() {
                out.push(b'.');
            }
            out.extend_from_slice(name.label(i));
        }
        !out.is_empty()
    }

    /// The national apex, under which every identifier has its DNS name.
    pub fn apex(&self) -> Name {
        self.authoritative.zones()[0].national_apex()
    }

    /// The prefixes of the zones this node serves (`""` for the whole namespace).
    pub fn zone_prefixes(&self) -> Vec<String> {
        self.authoritative.zones().iter().map(|z| z.prefix().to_owned()).collect()
    }

    /// The apexes of the zones this node serves.
    pub fn zone_apexes(&self) -> Vec<Name> {
        self.authoritative.zones().iter().map(|z| z.apex().clone()).collect()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        self.authoritative.registry()
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.authoritative.cache_stats()
    }

    /// The recursive role's counters; `None` unless this is a recursive node.
    pub fn recursor_stats(&self) -> Option<recursive::RecursorStats> {
        self.recursor.as_ref().map(|r| r.stats())
    }

    /// Answers one request into `out`, or defers it (see [`Verdict`]). The request is parsed
    /// here once; the role that answers gets the parsed question.
    pub fn handle(&self, request: &[u8], transport: Transport, scratch: &mut Scratch, out: &mut Vec<u8>) -> Verdict {
        scratch.hit = None;
        let query = match wire::parse(request, &mut scratch.name) {
            Ok(q) => q,
            Err(Reject::Drop) => return Verdict::Drop,
            Err(Reject::Error { id, copied_flags, rcode }) => {
                // Signed requests and IXFR (its client's SOA) have more records than a plain query.
                if rcode == rcode::FORMERR {
                    if let Some(verdict) = self.answer_signed(request, transport, scratch, out) {
                        return verdict;
                    }
                }
                wire::write_error(out, id, copied_flags, rcode);
                return Verdict::Respond;
            }
        };
        let mut question = Question {
            request,
            query,
            name: &scratch.name,
            opt: self.opt_out(query.edns),
            limit: self.limit(transport, query.edns),
        };
        if let Some(o) = question.opt.as_mut().filter(|_| query.edns.is_some_and(|e| e.version != 0)) {
            o.extended_rcode = (rcode::BADVERS >> 4) as u8;
            let badvers = Body { rcode: (rcode::BADVERS & 0xf) as u8, ..self.refused.clone() };
            question.respond(&badvers, out);
            return Verdict::Respond;
        }
        if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
            question.respond(&self.refused, out);
            return Verdict::Respond;
        }
        let zones = self.authoritative.zones();
        let Some((zone, own)) = zone::holding(&zones, question.name) else {
            question.respond(&self.refused, out);
            return Verdict::Respond;
        };
        if matches!(query.qtype, TYPE_IXFR | TYPE_AXFR) && transport == Transport::Tcp {
            return Verdict::Transfer;
        }
        if matches!(query.qtype, TYPE_IXFR | TYPE_AXFR | TYPE_MAILB | TYPE_MAILA) {
            question.respond(&self.notimp, out);
            return Verdict::Respond;
        }
        match &self.recursor {
            Some(recursor) => recursor.answer(&question, out),
            None => {
                scratch.hit = Some(self.authoritative.answer(&question, zone, own, out));
                Verdict::Respond
            }
        }
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
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;

    use super::*;

    fn request(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        msg.set_edns(Edns::new());
        msg.to_vec().unwrap()
    }

    fn frontend(dir: &tempfile::TempDir) -> Frontend {
        let registry = Arc::new(Registry::open(dir.path()).unwrap());
        let zones = {
            let dns = crate::config::DnsConfig::default();
            zone_config(&dns, &dns.zones()).unwrap()
        };
        Frontend::new(zones, registry, 1 << 20, 1232)
    }

    fn recursor(max_in_flight: usize) -> Recursor {
        let r = crate::config::RecursiveConfig::default();
        Recursor::new(recursive::RecursorConfig {
            roots: vec!["127.0.0.1:9".parse().unwrap()],
            port: 53,
            timeout: std::time::Duration::from_secs(1),
            max_referrals: r.max_referrals,
            cache_bytes: 1 << 16,
            max_in_flight,
            budget: std::time::Duration::from_secs(1),
            max_ttl: r.max_ttl,
            max_negative_ttl: r.max_negative_ttl,
        })
    }

    #[test]
    fn a_recursive_miss_is_deferred_with_the_question_parsed_once() {
        let dir = tempfile::tempdir().unwrap();
        let frontend = frontend(&dir).with_recursor(recursor(1));
        let request = request("ABC-1._id.1.100.88.ID.example.", RecordType::TXT, 4242);
        let (mut scratch, mut out) = (Scratch::default(), Vec::new());
        let verdict = frontend.handle(&request, Transport::Udp, &mut scratch, &mut out);
        let Verdict::Defer(pending) = verdict else { panic!("{verdict:?}: not deferred") };
        assert_eq!(pending.name().wire(), b"\x05abc-1\x03_id\x011\x03100\x0288\x02id\x07example\x00");
        let query = pending.query();
        assert_eq!((query.id, query.qtype, query.qclass), (4242, u16::from(RecordType::TXT), CLASS_IN));
        assert!(query.edns.is_some());
        assert!(out.is_empty(), "nothing written for a deferred query");
        assert_eq!(frontend.recursor_stats().unwrap().in_flight, 1, "the job holds its place");
        let again = frontend.handle(&request, Transport::Udp, &mut scratch, &mut out);
        assert!(matches!(again, Verdict::Drop), "with every place taken the query is dropped: {again:?}");
        drop(pending);
        assert_eq!(frontend.recursor_stats().unwrap().in_flight, 0, "a dropped job gives its place back");
    }

    #[test]
    fn a_recursive_node_refuses_outside_the_apex_on_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let frontend = frontend(&dir).with_recursor(recursor(1));
        let mut out = Vec::new();
        let request = request("example.org.", RecordType::A, 7);
        let verdict = frontend.handle(&request, Transport::Udp, &mut Scratch::default(), &mut out);
        assert!(matches!(verdict, Verdict::Respond));
        let response = Message::from_vec(&out).unwrap();
        assert_eq!(response.metadata.response_code, hickory_proto::op::ResponseCode::Refused);
    }

    #[test]
    fn an_authoritative_query_is_answered_inline() {
        let dir = tempfile::tempdir().unwrap();
        let frontend = frontend(&dir);
        let mut out = Vec::new();
        let request = request("Nope._id.1.100.88.id.example.", RecordType::TXT, 9);
        let verdict = frontend.handle(&request, Transport::Udp, &mut Scratch::default(), &mut out);
        assert!(matches!(verdict, Verdict::Respond), "{verdict:?}");
        let response = Message::from_vec(&out).unwrap();
        assert_eq!(response.metadata.id, 9);
        assert!(response.metadata.authoritative);
        assert_eq!(response.metadata.response_code, hickory_proto::op::ResponseCode::NXDomain);
        assert_eq!(response.queries[0].name().to_ascii(), "Nope._id.1.100.88.id.example.", "the question as asked");
    }
}
