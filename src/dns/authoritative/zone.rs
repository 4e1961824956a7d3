//! A zone: what the node answers for a name below its apex, on a cache miss.
//!
//! It reads the registry once per miss and builds every answer the name can get (TXT, URI, ANY,
//! and NODATA or NXDOMAIN for the rest) into an `AnswerSet` (`answer_set.rs`), which the front
//! cache keeps: an identifier's records written there directly, the apex, glue and referrals
//! encoded here with hickory-proto. Answers are encoded for a question at offset 12, so their
//! name pointers stay valid behind any query for the same name. NODATA and NXDOMAIN are written
//! here without hickory, once per length of the query's name ([`Zone::negative`]).
//!
//! Also which served zone holds a name ([`holding`], for queries and the zone file alike) and
//! the zones the settings describe ([`zone_config`]).

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, NS, NULL, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::answer_set::{AnswerSet, Negative, Rest};
use super::delegations::Delegations;
use crate::dns::mapping::{self, NameKind};
use crate::dns::wire::{self, Body, QueryName, rcode};
use crate::record::site::Site;
use crate::registry::{Registry, RegistryError, Snapshot};

pub const TYPE_ANY: u16 = 255;

/// Why a name could not be answered (the query gets SERVFAIL, the log says why).
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot encode the answer for {name}: {reason}")]
    Encode { name: String, reason: String },
}

impl AnswerError {
    fn encode(name: &Name, reason: impl std::fmt::Display) -> Self {
        Self::Encode { name: name.to_string(), reason: reason.to_string() }
    }
}

/// SOA timers and the zone's name servers (RFC 1035 3.3.13, RFC 2308).
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The identifier prefix this zone serves (`88.105`), empty for the whole namespace.
    pub prefix: String,
    /// The zone's own apex: the prefix's labels under the national apex (`105.88.id.example.`).
    pub apex: Name,
    pub hostmaster: Name,
    /// Name servers and their addresses; those inside the zone are answered as A/AAAA here.
    pub nameservers: Vec<(Name, Vec<IpAddr>)>,
    pub ttl: u32,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    /// The SOA MINIMUM, which is the negative-caching TTL (RFC 2308 4).
    pub negative_ttl: u32,
    /// TTL of the NS and glue records of a referral: how long resolvers keep using a child node
    /// after its delegation changes.
    pub referral_ttl: u32,
}

pub struct Zone {
    config: ZoneConfig,
    apex_wire: Vec<u8>,
    apex_labels: usize,
    /// How many labels the zone's prefix adds below the national apex.
    prefix_labels: usize,
    nameserver_wires: Vec<Vec<u8>>,
    delegations: Delegations,
    /// NODATA and NXDOMAIN, by how many bytes the query's name has before the apex: encoded
    /// when first sent (the table too, so a zone that never answers them costs nothing).
    negatives: OnceLock<Box<[[OnceLock<Body>; 2]]>>,
}

impl Zone {
    /// The zone `config` describes, its apex lower-cased: names are compared in wire form.
    pub fn new(mut config: ZoneConfig) -> Self {
        config.apex = config.apex.to_lowercase();
        config.apex.set_fqdn(true);
        let apex_wire = wire_of(&config.apex);
        let apex_labels = usize::from(config.apex.num_labels());
        let nameserver_wires = config.nameservers.iter().map(|(n, _)| wire_of(&n.to_lowercase())).collect();
        let prefix_labels = if config.prefix.is_empty() { 0 } else { config.prefix.split('.').count() };
        Self {
            config,
            apex_wire,
            apex_labels,
            prefix_labels,
            nameserver_wires,
            delegations: Delegations::default(),
            negatives: OnceLock::new(),
        }
    }

    /// Drops the delegations its misses keep (`delegations.rs`): one changed.
    pub fn forget_delegations(&self) {
        self.delegations.forget();
    }

    /// The national apex in lower-case wire form: the zone's apex without its prefix labels.
    pub fn national_apex_wire(&self) -> &[u8] {
        let mut at = 0;
        for _ in 0..self.prefix_labels {
            at += 1 + usize::from(self.apex_wire[at]);
        }
        &self.apex_wire[at..]
    }

    pub fn prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The national apex, under which every identifier has its name.
    pub fn national_apex(&self) -> Name {
        self.config.apex.trim_to(self.apex_labels - self.prefix_labels)
    }

    pub fn apex(&self) -> &Name {
        &self.config.apex
    }

    /// The TTL of the SOA, NS and glue records.
    pub fn ttl(&self) -> u32 {
        self.config.ttl
    }

    /// The apex in lower-case wire form.
    pub fn apex_wire(&self) -> &[u8] {
        &self.apex_wire
    }

    pub fn apex_labels(&self) -> usize {
        self.apex_labels
    }

    /// How many labels the zone's prefix adds below the national apex.
    pub fn prefix_labels(&self) -> usize {
        self.prefix_labels
    }

    /// Builds every answer for `qname` (at or below the apex, `own` labels left of it) from the
    /// registry, and how long it may be cached.
    pub fn answer(
        &self,
        qname: &QueryName,
        own: usize,
        registry: &Registry,
        now: i64,
    ) -> Result<(AnswerSet, Duration), AnswerError> {
        let cfg = &self.config;
        if let Some(i) = self.nameserver_wires.iter().position(|w| w == qname.wire()) {
            let name = name_of(qname)?;
            let glue = self.glue(i);
            let typed = self.typed(&name, &[glue_for(&glue, RecordType::A), glue_for(&glue, RecordType::AAAA)])?;
            return Ok((AnswerSet::new(typed, Rest::Negative(Negative::NoData)), secs(cfg.ttl)));
        }
        let mark = self.delegations.mark();
        let snapshot = registry.snapshot()?;
        if own > 0 {
            if let Some((cut, sites)) = self.delegation_below(&snapshot, mark, qname, own)? {
                let referral = self.referral(&name_of(qname)?, &cut, &sites)?;
                return Ok((AnswerSet::new(vec![], Rest::Answer(referral)), secs(cfg.referral_ttl)));
            }
        }
        // Names are mapped relative to the national apex: the zone's prefix labels included.
        let labels: Vec<&[u8]> = (0..own + self.prefix_labels).map(|i| qname.label(i)).collect();
        let kind = if own == 0 { NameKind::Apex } else { mapping::classify(&labels) };
        let exists = match kind {
            NameKind::Apex => {
                let name = name_of(qname)?;
                let soa = vec![self.soa(registry.serial(), cfg.ttl)];
                let ns: Vec<Record> = cfg
                    .nameservers
                    .iter()
                    .map(|(n, _)| Record::from_rdata(cfg.apex.clone(), cfg.ttl, RData::NS(NS(n.clone()))))
                    .collect();
                let glue: Vec<Record> = (0..cfg.nameservers.len()).flat_map(|i| self.glue(i)).collect();
                let any: Vec<Record> = soa.iter().chain(&ns).cloned().collect();
                let typed = vec![
                    (RecordType::SOA.into(), self.encode(&name, rcode::NOERROR, &soa, &[], &[])?),
                    (RecordType::NS.into(), self.encode(&name, rcode::NOERROR, &ns, &[], &glue)?),
                    (TYPE_ANY, self.encode(&name, rcode::NOERROR, &any, &[], &glue)?),
                ];
                return Ok((AnswerSet::new(typed, Rest::Negative(Negative::NoData)), secs(cfg.ttl)));
            }
            NameKind::Identifier { key, may_have_children } => {
                if let Some(record) = snapshot.get(key.as_bytes())? {
                    return self.identifier_answer(&key, &record, now);
                }
                may_have_children && snapshot.has_key_starting_with(key.as_bytes(), None)?
            }
            NameKind::Prefix(p) => snapshot.has_key_starting_with(
                format!("{}.", p.to_ascii_lowercase()).as_bytes(),
                Some(format!("{}/", p.to_ascii_lowercase()).as_bytes()),
            )?,
            NameKind::IdRoot(p) => {
                snapshot.has_key_starting_with(format!("{}/", p.to_ascii_lowercase()).as_bytes(), None)?
            }
            NameKind::Nothing => false,
        };
        let negative = if exists { Negative::NoData } else { Negative::NxDomain };
        Ok((AnswerSet::new(vec![], Rest::Negative(negative)), secs(cfg.negative_ttl)))
    }

    /// The answers for the name of `record`, stored under `key`: its public values, or NODATA
    /// when it has none.
    fn identifier_answer(
        &self,
        key: &str,
        record: &crate::record::Record,
        now: i64,
    ) -> Result<(AnswerSet, Duration), AnswerError> {
        let bad = |reason| AnswerError::Encode { name: key.to_owned(), reason };
        Ok(match AnswerSet::identifier(&record.values, now).map_err(bad)? {
            Some((set, ttl)) => (set, secs(ttl)),
            None => (AnswerSet::new(vec![], Rest::Negative(Negative::NoData)), secs(self.config.negative_ttl)),
        })
    }

    /// The generation of the delegations this zone keeps, to take before opening a snapshot
    /// for [`Self::answer_for_record`].
    pub(super) fn delegations_mark(&self) -> u64 {
        self.delegations.mark()
    }

    /// What [`Self::answer`] would answer for `qname` (holding `own` labels below the apex) if
    /// it is the name of `record`, read from `snapshot` (opened after `mark`); `None` when the
    /// name is not plainly that identifier's (a name server's name, below a delegation, or
    /// another name), which only a query's miss answers.
    pub(super) fn answer_for_record(
        &self,
        snapshot: &Snapshot,
        mark: u64,
        qname: &QueryName,
        own: usize,
        record: &crate::record::Record,
        now: i64,
    ) -> Result<Option<(AnswerSet, Duration)>, AnswerError> {
        if own == 0 || self.nameserver_wires.iter().any(|w| w == qname.wire()) {
            return Ok(None);
        }
        if self.delegation_below(snapshot, mark, qname, own)?.is_some() {
            return Ok(None);
        }
        let labels: Vec<&[u8]> = (0..own + self.prefix_labels).map(|i| qname.label(i)).collect();
        match mapping::classify(&labels) {
            NameKind::Identifier { key, .. } if key == record.identifier.key() => {
                self.identifier_answer(&key, record, now).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The highest delegation between this zone and `qname`: a prefix level below the zone's
    /// prefix whose record (`0.NA/88.105`) carries `HS_SITE` values. Returns the cut's name.
    fn delegation_below(
        &self,
        snapshot: &Snapshot,
        mark: u64,
        qname: &QueryName,
        own: usize,
    ) -> Result<Option<(Name, Vec<Site>)>, AnswerError> {
        // The prefix the name stands for: the labels below the apex that are prefix segments.
        let mut prefix = self.config.prefix.clone();
        let mut segments = 0;
        for i in (0..own).rev() {
            let Ok(segment) = std::str::from_utf8(qname.label(i)) else { break };
            if crate::identifier::check_segment(1, segment).is_err() {
                break;
            }
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(segment);
            segments += 1;
        }
        if segments == 0 {
            return Ok(None);
        }
        let Some(delegated) = self.delegations.below(snapshot, mark, &self.config.prefix, &prefix)? else {
            return Ok(None);
        };
        // The cut lies as many labels below the apex as the delegated prefix has below the zone's.
        // `delegation` found the record at most `segments` levels below the zone's prefix.
        let below = delegated.prefix.split('.').count().saturating_sub(self.prefix_labels).min(own);
        let cut = name_of_labels((own - below..qname.label_count()).map(|j| qname.label(j)))?;
        Ok(Some((cut, delegated.sites.clone())))
    }

    /// A referral (RFC 1034 4.3.2): no answer, not authoritative, the child's name servers in
    /// the authority section and their addresses as glue. The servers are named `ns1`, `ns2`, ...
    /// under the cut, in the order the sites list them.
    /// A cut so long that `nsN.<cut>` is no DNS name cannot be referred to: an error, logged.
    fn referral(&self, name: &Name, cut: &Name, sites: &[Site]) -> Result<Body, AnswerError> {
        let (ns, glue) = self.cut_records(cut, sites)?;
        let mut body = self.encode(name, rcode::NOERROR, &[], &ns, &glue)?;
        body.authoritative = false;
        Ok(body)
    }

    /// The NS records of a cut and their glue (see [`Zone::referral`]).
    pub(in crate::dns) fn cut_records(
        &self,
        cut: &Name,
        sites: &[Site],
    ) -> Result<(Vec<Record>, Vec<Record>), AnswerError> {
        let ttl = self.config.referral_ttl;
        let mut ns = Vec::new();
        let mut glue = Vec::new();
        for (i, server) in sites.iter().flat_map(|s| &s.servers).enumerate() {
            let host = cut.prepend_label(format!("ns{}", i + 1)).map_err(|e| AnswerError::encode(cut, e))?;
            ns.push(Record::from_rdata(cut.clone(), ttl, RData::NS(NS(host.clone()))));
            let rdata = match server.address {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            glue.push(Record::from_rdata(host, ttl, rdata));
        }
        Ok((ns, glue))
    }

    /// The apex's NS records and the glue of those inside the zone.
    pub(in crate::dns) fn apex_records(&self) -> Vec<Record> {
        let cfg = &self.config;
        let ns = cfg
            .nameservers
            .iter()
            .map(|(n, _)| Record::from_rdata(cfg.apex.clone(), cfg.ttl, RData::NS(NS(n.clone()))));
        ns.chain((0..cfg.nameservers.len()).flat_map(|i| self.glue(i))).collect()
    }

    /// Answer bodies for the non-empty record lists among `lists`.
    fn typed(&self, name: &Name, lists: &[(u16, Vec<Record>)]) -> Result<Vec<(u16, Body)>, AnswerError> {
        lists
            .iter()
            .filter(|(_, records)| !records.is_empty())
            .map(|(t, records)| Ok((*t, self.encode(name, rcode::NOERROR, records, &[], &[])?)))
            .collect()
    }

    /// NODATA or NXDOMAIN for a name of `name_len` bytes in wire form, at or below the apex:
    /// the zone's SOA in the authority section, with the negative TTL (RFC 2308 3). Its owner
    /// is a pointer to the apex at the end of the question's name, so the answer depends on that
    /// name's length only: the zone keeps one per length, encoded when first sent.
    pub fn negative(&self, name_len: usize, negative: Negative) -> &Body {
        let apex = self.apex_wire.len();
        let table = self.negatives.get_or_init(|| (apex..=wire::MAX_NAME).map(|_| Default::default()).collect());
        let below = name_len.clamp(apex, wire::MAX_NAME) - apex;
        table[below][usize::from(negative == Negative::NxDomain)]
            .get_or_init(|| self.encode_negative(name_len, negative))
    }

    fn encode_negative(&self, name_len: usize, negative: Negative) -> Body {
        let c = &self.config;
        // The question starts at offset 12; the apex ends its name.
        let apex_at = 12 + name_len.saturating_sub(self.apex_wire.len());
        let apex = (0xc000 | apex_at as u16).to_be_bytes();
        let mut bytes = Vec::with_capacity(96);
        bytes.extend_from_slice(&apex);
        bytes.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
        bytes.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        bytes.extend_from_slice(&c.ttl.min(c.negative_ttl).to_be_bytes());
        let rdata_at = bytes.len() + 2;
        bytes.extend_from_slice(&[0, 0]);
        let mname = c.nameservers.first().map_or(&c.apex, |(n, _)| n);
        self.write_name(&mut bytes, mname, apex);
        self.write_name(&mut bytes, &c.hostmaster, apex);
        // The serial is written as the answer is sent (`Body::soa_serial`).
        let serial_at = bytes.len();
        for field in [0, c.refresh as u32, c.retry as u32, c.expire as u32, c.negative_ttl] {
            bytes.extend_from_slice(&field.to_be_bytes());
        }
        let rdlength = (bytes.len() - rdata_at) as u16;
        bytes[rdata_at - 2..rdata_at].copy_from_slice(&rdlength.to_be_bytes());
        let rcode = if negative == Negative::NxDomain { rcode::NXDOMAIN } else { rcode::NOERROR };
        Body {
            rcode,
            authoritative: true,
            authorities: 1,
            bytes: bytes.into(),
            soa_serial: Some(serial_at as u16),
            ..Body::empty()
        }
    }

    /// `name` in wire form; below the apex, its labels above it and then `apex`, a pointer.
    fn write_name(&self, out: &mut Vec<u8>, name: &Name, apex: [u8; 2]) {
        if !self.config.apex.zone_of(name) {
            out.extend_from_slice(&wire_of(name));
            return;
        }
        // Every label, a leading `*` too (which `num_labels` leaves out).
        let own = name.iter().count() - self.config.apex.iter().count();
        for label in name.iter().take(own) {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.extend_from_slice(&apex);
    }

    /// The zone's SOA record with `serial`.
    pub(in crate::dns) fn soa(&self, serial: u32, ttl: u32) -> Record {
        let c = &self.config;
        let mname = c.nameservers.first().map_or_else(|| c.apex.clone(), |(n, _)| n.clone());
        let soa = SOA::new(mname, c.hostmaster.clone(), serial, c.refresh, c.retry, c.expire, c.negative_ttl);
        Record::from_rdata(c.apex.clone(), ttl, RData::SOA(soa))
    }

    fn glue(&self, i: usize) -> Vec<Record> {
        let (name, addrs) = &self.config.nameservers[i];
        if !self.config.apex.zone_of(name) {
            return vec![];
        }
        addrs
            .iter()
            .map(|a| {
                let rdata = match a {
                    IpAddr::V4(v4) => RData::A(A(*v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                Record::from_rdata(name.clone(), self.config.ttl, rdata)
            })
            .collect()
    }

    /// Encodes a response for `name` and keeps what follows the question. A response that
    /// would not fit one DNS message is an error, never a cut or miscounted packet.
    pub(super) fn encode(
        &self,
        name: &Name,
        rcode: u8,
        answers: &[Record],
        authorities: &[Record],
        additionals: &[Record],
    ) -> Result<Body, AnswerError> {
        let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
        let mut query = Query::query(name.clone(), RecordType::TXT);
        query.set_query_class(DNSClass::IN);
        msg.add_query(query);
        msg.add_answers(answers.iter().cloned());
        msg.add_authorities(authorities.iter().cloned());
        msg.add_additionals(additionals.iter().cloned());
        let bytes = msg.to_vec().map_err(|e| AnswerError::encode(name, e))?;
        let question_end = 12 + wire_of(name).len() + 4;
        let count = |at: usize| bytes.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let complete = bytes.len() <= usize::from(u16::MAX) - wire::MAX_NAME - 4 - wire::OptOut::LEN
            && bytes.get(2).is_some_and(|flags| flags & 0x02 == 0)
            && count(6) == Some(answers.len())
            && count(8) == Some(authorities.len())
            && count(10) == Some(additionals.len());
        if !complete || bytes.len() < question_end {
            return Err(AnswerError::encode(name, format!("{} bytes do not fit one DNS message", bytes.len())));
        }
        let bytes: Box<[u8]> = bytes[question_end..].into();
        let records = answers.len() + authorities.len() + additionals.len();
        let has_soa = answers.iter().chain(authorities).any(|r| r.record_type() == RecordType::SOA);
        let soa_serial = has_soa.then(|| wire::soa_serial_offset(&bytes, records)).flatten().map(|at| at as u16);
        Ok(Body {
            rcode,
            authoritative: true,
            recursion_available: false,
            answers: answers.len() as u16,
            authorities: authorities.len() as u16,
            additionals: additionals.len() as u16,
            bytes,
            soa_serial,
        })
    }
}

/// The zone among `zones` that holds `name`, and how many labels the name has left of that
/// zone's apex: the deepest zone whose apex is the name or above it, since a zone's names below
/// another served zone's apex are that zone's. The one place that decides which zone answers,
/// for queries and for the zone file alike.
pub fn holding<'z>(zones: &'z [Zone], name: &QueryName) -> Option<(&'z Zone, usize)> {
    zones
        .iter()
        .filter_map(|z| name.labels_below(z.apex_wire(), z.apex_labels()).map(|own| (z, own)))
        .min_by_key(|(_, own)| *own)
}

/// Turns the DNS settings into the node's zones, one per configured prefix, filling in the
/// defaults that depend on each zone's apex.
pub fn zone_config(
    dns: &crate::config::DnsConfig,
    zones: &crate::node::Zones,
) -> Result<Vec<ZoneConfig>, crate::config::ConfigError> {
    use crate::config::ConfigError;
    let mut national = Name::from_ascii(&dns.apex)
        .map_err(|e| ConfigError::BadApex { apex: dns.apex.clone(), reason: e.to_string() })?;
    national.set_fqdn(true);
    let bad_apex = |reason: String| ConfigError::BadApex { apex: dns.apex.clone(), reason };
    if zones.prefixes().is_empty() {
        return Err(ConfigError::BadZone { zone: String::new(), reason: "a node serves at least one zone".into() });
    }
    zones
        .prefixes()
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

/// An identifier's public values as records named `name`: one TXT each, then a URI for each URL
/// (docs/dns-mapping.md). Each RRset takes the shortest TTL of its values: the records of one
/// set share one TTL (RFC 2181 5.2), and no value is kept longer than it allows.
pub(in crate::dns) fn identifier_records(name: &Name, record: &crate::record::Record, now: i64) -> Vec<Record> {
    let public: Vec<_> = record.values.iter().filter(|v| v.is_public()).collect();
    let urls: Vec<_> = public.iter().filter(|v| mapping::is_url(v)).collect();
    let ttl = |values: &mut dyn Iterator<Item = &&crate::record::Value>| {
        values.map(|v| v.ttl.seconds_at(now)).min().unwrap_or(0)
    };
    let (txt_ttl, uri_ttl) = (ttl(&mut public.iter()), ttl(&mut urls.iter().copied()));
    let txt = public.iter().map(|v| {
        let strings = mapping::txt_strings(v);
        let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
        Record::from_rdata(name.clone(), txt_ttl, RData::TXT(TXT::from_bytes(refs)))
    });
    let uri = urls.iter().map(|v| {
        let rdata =
            RData::Unknown { code: RecordType::Unknown(mapping::URI_TYPE), rdata: NULL::with(mapping::uri_rdata(v)) };
        Record::from_rdata(name.clone(), uri_ttl, rdata)
    });
    let mut out: Vec<Record> = txt.collect();
    out.extend(uri);
    out
}

fn glue_for(glue: &[Record], t: RecordType) -> (u16, Vec<Record>) {
    (t.into(), glue.iter().filter(|r| r.record_type() == t).cloned().collect())
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// A name's wire form (uncompressed).
pub fn wire_of(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

pub(in crate::dns) fn name_of(qname: &QueryName) -> Result<Name, AnswerError> {
    name_of_labels((0..qname.label_count()).map(|i| qname.label(i)))
}

fn name_of_labels<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Result<Name, AnswerError> {
    let bad = |e: hickory_proto::ProtoError| AnswerError::Encode { name: "a query name".into(), reason: e.to_string() };
    let labels = labels.map(hickory_proto::rr::Label::from_raw_bytes).collect::<Result<Vec<_>, _>>().map_err(bad)?;
    let mut name = Name::from_labels(labels).map_err(bad)?;
    name.set_fqdn(true);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> QueryName {
        let mut name = QueryName::default();
        assert!(name.read(&wire_of(&Name::from_ascii(text).unwrap())));
        name
    }

    #[test]
    fn the_deepest_zone_holding_a_name_answers_for_it() {
        let dns = crate::config::DnsConfig {
            zones: vec![String::new(), "88.105".into()],
            ..crate::config::DnsConfig::default()
        };
        let zones: Vec<Zone> = zone_config(&dns, &dns.zones()).unwrap().into_iter().map(Zone::new).collect();
        let held = |text: &str| holding(&zones, &name(text)).map(|(z, own)| (z.prefix().to_owned(), own));
        assert_eq!(held("a._id.105.88.ID.example."), Some(("88.105".into(), 2)), "the deeper zone, any case");
        assert_eq!(held("105.88.id.example."), Some(("88.105".into(), 0)), "its apex");
        assert_eq!(held("a._id.1050.88.id.example."), Some((String::new(), 4)), "a label, not a string prefix");
        assert_eq!(held("id.example."), Some((String::new(), 0)));
        assert_eq!(held("example."), None);
        assert_eq!(held("a.example.org."), None);
    }
}
