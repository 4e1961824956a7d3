//! Reading an upstream server's response: the one place where bytes from other servers are
//! interpreted. [`Recursor::digest`] is pure (the question and the response bytes in, a decision
//! out, no sockets, no cache), so a fuzzer can drive it directly.
//!
//! A response is one of three things. An answer (data, NXDOMAIN or NODATA) is re-encoded for
//! clients with every TTL clamped. A referral names a zone cut below the zone asked and at or
//! above the name, and keeps at most [`MAX_SERVERS`] distinct glue addresses of the cut's own
//! name servers. Anything else is [`Broken`], and the next server of the delegation is asked.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::time::Instant;

use super::{Cached, MAX_SERVERS, Recursor};
use crate::dns::authoritative::zone::wire_of;
use crate::dns::wire::{self, Body};

/// What a usable response tells the resolution to do next.
#[derive(Debug)]
pub enum Step {
    /// Data, NXDOMAIN or NODATA: the client's answer (TTLs clamped), and how long to cache it.
    Answer { cached: Cached, ttl: Duration },
    /// The servers of a zone cut below the zone that was asked.
    Referral(Delegation),
}

/// A zone cut learnt from a referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// Lower case.
    pub cut: Name,
    /// At most [`MAX_SERVERS`], distinct, in the order of the glue.
    pub servers: Arc<[SocketAddr]>,
    /// The NS records' TTL, clamped to `max_ttl`.
    pub ttl: Duration,
}

/// Why a response is of no use; the next server of the delegation is asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("not a DNS response: {0}")]
    Malformed(String),
    #[error("it answered {0}")]
    Rcode(ResponseCode),
    #[error("neither an answer nor a referral below the zone asked (lame)")]
    Lame,
    #[error("its answer cannot be encoded again: {0}")]
    Unencodable(String),
}

/// A TTL as a cache may keep it: at most `cap`; one with the top bit set counts as 0
/// (RFC 2181 8).
fn clamp(ttl: u32, cap: u32) -> u32 {
    if ttl > i32::MAX as u32 { 0 } else { ttl.min(cap) }
}

impl Recursor {
    /// Decides what `response`, from a server of `zone` asked about `qname`/`qtype`, means:
    /// an answer to cache (stored at `now`), a referral to follow, or a broken server.
    pub fn digest(&self, zone: &Name, qname: &Name, qtype: u16, response: &[u8], now: Instant) -> Result<Step, Broken> {
        let message = Message::from_vec(response).map_err(|e| Broken::Malformed(e.to_string()))?;
        if message.metadata.message_type != MessageType::Response {
            return Err(Broken::Malformed("a query, not a response".into()));
        }
        // Only the answer to a QUERY: hickory reads an UPDATE's records by other rules (empty
        // RDATA allowed), and re-encoded they would make an answer no client can read (found by
        // the recursor_response fuzz target).
        if message.metadata.op_code != OpCode::Query {
            return Err(Broken::Malformed(format!("opcode {:?}, not QUERY", message.metadata.op_code)));
        }
        let code = message.metadata.response_code;
        if code != ResponseCode::NoError && code != ResponseCode::NXDomain {
            return Err(Broken::Rcode(code));
        }
        if message.metadata.authoritative || !message.answers.is_empty() || code == ResponseCode::NXDomain {
            let (cached, ttl) = self.cacheable(qname, qtype, &message, now)?;
            return Ok(Step::Answer { cached, ttl });
        }
        self.referral(&message, zone, &qname.to_lowercase()).map(Step::Referral).ok_or(Broken::Lame)
    }

    /// Reads a referral: NS records for a cut strictly below `zone` and at or above `qname` (no
    /// loops, no records for names the zone does not hold), with glue for those name servers.
    fn referral(&self, response: &Message, zone: &Name, qname: &Name) -> Option<Delegation> {
        let ns = || response.authorities.iter().filter(|r| r.record_type() == RecordType::NS);
        let cut = ns().next()?.name.to_lowercase();
        if !(zone.zone_of(&cut) && cut != *zone && cut.zone_of(qname)) {
            return None;
        }
        let at_cut = || ns().filter(|r| r.name.to_lowercase() == cut);
        let ttl = at_cut().map(|r| r.ttl).min()?;
        let targets: HashSet<Name> = at_cut()
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(n.0.to_lowercase()),
                _ => None,
            })
            .collect();
        let mut servers = Vec::with_capacity(MAX_SERVERS);
        for record in &response.additionals {
            if servers.len() == MAX_SERVERS {
                break;
            }
            let address = match &record.data {
                RData::A(a) => SocketAddr::new(a.0.into(), self.config.port),
                RData::AAAA(a) => SocketAddr::new(a.0.into(), self.config.port),
                _ => continue,
            };
            let owner = record.name.to_lowercase();
            if targets.contains(&owner) && cut.zone_of(&owner) && !servers.contains(&address) {
                servers.push(address);
            }
        }
        let ttl = Duration::from_secs(u64::from(clamp(ttl, self.config.max_ttl)));
        (!servers.is_empty()).then(|| Delegation { cut, servers: servers.into(), ttl })
    }

    /// The client's answer: the response's sections with clamped TTLs, after a lower-case
    /// question, and how long to keep them.
    fn cacheable(
        &self,
        qname: &Name,
        qtype: u16,
        response: &Message,
        now: Instant,
    ) -> Result<(Cached, Duration), Broken> {
        let negative = response.answers.is_empty();
        let cap = if negative { self.config.max_negative_ttl } else { self.config.max_ttl };
        let clamped = |r: &Record| {
            let mut r = r.clone();
            r.ttl = clamp(r.ttl, cap);
            r
        };
        let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
        let mut query = Query::query(qname.to_lowercase(), RecordType::from(qtype));
        query.set_query_class(DNSClass::IN);
        msg.add_query(query);
        msg.add_answers(response.answers.iter().map(clamped));
        msg.add_authorities(response.authorities.iter().map(clamped));
        msg.add_additionals(response.additionals.iter().filter(|r| r.record_type() != RecordType::OPT).map(clamped));
        let unencodable = |reason: String| Broken::Unencodable(reason);
        let bytes = msg.to_vec().map_err(|e| unencodable(e.to_string()))?;
        // The question is the first name, never compressed: the sections follow it.
        let sections: Box<[u8]> =
            bytes.get(12 + wire_of(qname).len() + 4..).ok_or_else(|| unencodable("no question".into()))?.into();
        let count = |n: usize| u16::try_from(n).map_err(|e| unencodable(e.to_string()));
        let (an, ns, ar) = (count(msg.answers.len())?, count(msg.authorities.len())?, count(msg.additionals.len())?);
        let ttl_offsets = wire::ttl_offsets(&sections, usize::from(an) + usize::from(ns) + usize::from(ar))
            .ok_or_else(|| unencodable("records that cannot be walked".into()))?
            .into_boxed_slice();
        // Positive answers live as long as their shortest record; negative ones as long as the
        // SOA allows (RFC 2308 5), each within its cap.
        let ttl = if negative {
            msg.authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(clamp(soa.minimum, cap))),
                    _ => None,
                })
                .unwrap_or(0)
        } else {
            msg.answers.iter().map(|r| r.ttl).min().unwrap_or(0)
        };
        let body = Body {
            rcode: response.metadata.response_code.low(),
            authoritative: false,
            recursion_available: true,
            answers: an,
            authorities: ns,
            additionals: ar,
            bytes: sections,
            soa_serial: None,
        };
        Ok((Cached { body, ttl_offsets, stored: now }, Duration::from_secs(u64::from(ttl))))
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::{A, NS, TXT};

    use super::*;
    use crate::dns::recursive::RecursorConfig;

    fn recursor() -> Recursor {
        Recursor::new(RecursorConfig {
            roots: vec!["127.0.0.1:53".parse().unwrap()],
            port: 53,
            timeout: Duration::from_secs(1),
            max_referrals: 8,
            cache_bytes: 1 << 16,
            max_in_flight: 10,
            budget: Duration::from_secs(3),
            max_ttl: 86_400,
            max_negative_ttl: 3600,
        })
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn response(rcode: ResponseCode) -> Message {
        let mut msg = Message::new(1, MessageType::Response, OpCode::Query);
        msg.metadata.response_code = rcode;
        msg.add_query(Query::query(name("x.1.id.example."), RecordType::TXT));
        msg
    }

    fn digest(msg: &Message, zone: &str) -> Result<Step, Broken> {
        recursor().digest(&name(zone), &name("x.1.id.example."), 16, &msg.to_vec().unwrap(), Instant::now())
    }

    #[test]
    fn error_codes_garbage_and_queries_are_broken() {
        for code in [ResponseCode::Refused, ResponseCode::ServFail, ResponseCode::NotImp, ResponseCode::FormErr] {
            assert_eq!(digest(&response(code), ".").unwrap_err(), Broken::Rcode(code));
        }
        let r = recursor();
        assert!(matches!(
            r.digest(&Name::root(), &name("x."), 16, b"\x00\x01", Instant::now()),
            Err(Broken::Malformed(_))
        ));
        let mut query = response(ResponseCode::NoError);
        query.metadata.message_type = MessageType::Query;
        assert!(matches!(digest(&query, "."), Err(Broken::Malformed(_))));
        let mut update = response(ResponseCode::NoError);
        update.metadata.op_code = OpCode::Update;
        update.metadata.authoritative = true;
        assert!(matches!(digest(&update, "."), Err(Broken::Malformed(_))), "only QUERY answers count");
        assert_eq!(
            digest(&response(ResponseCode::NoError), ".").unwrap_err(),
            Broken::Lame,
            "empty, not authoritative"
        );
    }

    #[test]
    fn referrals_must_go_down_towards_the_name_and_keep_13_distinct_addresses() {
        let referral = |cut: &str, glue: u32| {
            let mut msg = response(ResponseCode::NoError);
            for i in 0..glue {
                let host = name(&format!("ns{i}")).append_domain(&name(cut)).unwrap();
                msg.add_authority(Record::from_rdata(name(cut), u32::MAX, RData::NS(NS(host.clone()))));
                // Every address twice: duplicates are dropped.
                let ip = std::net::Ipv4Addr::from(0x7f00_0100 + i / 2);
                msg.add_additional(Record::from_rdata(host, 300, RData::A(A(ip))));
            }
            msg
        };
        let Ok(Step::Referral(d)) = digest(&referral("1.id.example.", 100), "id.example.") else { panic!() };
        assert_eq!(d.cut, name("1.id.example."));
        assert_eq!(d.servers.len(), 13);
        assert_eq!(d.servers.iter().collect::<HashSet<_>>().len(), 13, "distinct");
        assert_eq!(d.ttl, Duration::ZERO, "a TTL with the top bit set counts as 0");
        assert_eq!(digest(&referral("1.id.example.", 2), "1.id.example.").unwrap_err(), Broken::Lame, "not below");
        assert_eq!(digest(&referral("example.org.", 2), ".").unwrap_err(), Broken::Lame, "not above the name");
        assert_eq!(digest(&referral("id.example.", 2), "1.id.example.").unwrap_err(), Broken::Lame, "upwards");
    }

    #[test]
    fn answers_are_re_encoded_with_clamped_ttls() {
        let mut msg = response(ResponseCode::NoError);
        msg.metadata.authoritative = true;
        msg.add_answer(Record::from_rdata(
            name("X.1.id.example."),
            i32::MAX as u32,
            RData::TXT(TXT::new(vec!["v".into()])),
        ));
        let Ok(Step::Answer { cached, ttl }) = digest(&msg, "1.id.example.") else { panic!() };
        assert_eq!(ttl, Duration::from_secs(86_400));
        assert_eq!((cached.body.answers, cached.body.recursion_available, cached.body.authoritative), (1, true, false));
        let at = cached.ttl_offsets[0];
        assert_eq!(cached.body.bytes[at..at + 4], 86_400u32.to_be_bytes());
    }
}
