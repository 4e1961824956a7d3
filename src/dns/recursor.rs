//! The recursive role: clients' entry point. For a name under the apex it asks the configured
//! top-level nodes and follows their referrals down to the node that holds the identifier,
//! caching answers, negative answers and delegations by their TTLs.
//!
//! Hits are answered on the worker like an authoritative node's (the TTLs counted down in
//! place); a miss becomes [`super::Verdict::Recurse`] and the transport runs [`Recursor::resolve`]
//! in a task of its own, so a slow or dead child node never stalls other clients. Every
//! exchange is bounded: a timeout per server, the next server of a delegation on timeout, TCP
//! when an answer is truncated, a referral depth, and SERVFAIL when all of that fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::wire::{self, Body, QueryName, rcode};
use super::zone::{name_of, wire_of};
use crate::cache::{Cache, Entry};

/// Settings of the recursive role.
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
    /// The most memory cached answers take; delegations get a tenth of it besides.
    pub cache_bytes: u64,
}

/// A cached answer: its sections as received, and where their TTLs are.
pub struct Cached {
    pub body: Body,
    ttl_offsets: Box<[usize]>,
    stored: Instant,
}

impl crate::cache::Weigh for Cached {
    fn heap_bytes(&self) -> usize {
        self.body.bytes.len() + size_of_val(&*self.ttl_offsets)
    }
}

pub struct Recursor {
    config: RecursorConfig,
    /// Answers by lower-case wire name followed by the query type.
    answers: Cache<Cached>,
    /// Delegations learnt from referrals: cut name (wire, lower case) to its servers.
    delegations: Cache<Arc<[SocketAddr]>>,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no server of {zone} answered")]
    Unreachable { zone: String },
    #[error("more than {0} referrals")]
    TooDeep(usize),
    #[error("a server of {zone} answered neither with data nor with a referral below it")]
    Lame { zone: String },
}

impl Recursor {
    pub fn new(config: RecursorConfig) -> Self {
        let bytes = config.cache_bytes;
        Self { config, answers: Cache::new(bytes), delegations: Cache::new(bytes / 10 + 4096) }
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

    /// Resolves `name`/`qtype` by iteration and caches the outcome; on failure the body is
    /// SERVFAIL (not cached, so the next query tries again).
    pub async fn resolve(&self, name: &QueryName, qtype: u16, key: &[u8]) -> Arc<Entry<Cached>> {
        let now = Instant::now();
        let servfail = || {
            let body = Body { rcode: rcode::SERVFAIL, recursion_available: true, ..Body::empty() };
            Arc::new(Entry { value: Cached { body, ttl_offsets: Box::new([]), stored: now }, expires: now })
        };
        let qname = match name_of(name) {
            Ok(qname) => qname,
            Err(e) => {
                tracing::info!(qtype, error = %e, "answering SERVFAIL");
                return servfail();
            }
        };
        match self.iterate(&qname, qtype).await {
            Ok(response) => {
                let (cached, ttl) = self.cacheable(&qname, qtype, &response, now);
                self.answers.insert(key, cached, ttl, now)
            }
            Err(e) => {
                tracing::info!(name = %qname, qtype, error = %e, "answering SERVFAIL");
                servfail()
            }
        }
    }

    /// Follows referrals from the closest known delegation (or the roots) to an answer.
    async fn iterate(&self, qname: &Name, qtype: u16) -> Result<Message, Failure> {
        let lower = qname.to_lowercase();
        let (mut zone, mut servers) = self.closest_delegation(&lower);
        for _ in 0..=self.config.max_referrals {
            let response = self.ask(&servers, qname, qtype, &zone).await?;
            let code = response.metadata.response_code;
            if response.metadata.authoritative || !response.answers.is_empty() || code == ResponseCode::NXDomain {
                return Ok(response);
            }
            let Some((cut, next, ttl)) = self.referral(&response, &zone, &lower) else {
                return Err(Failure::Lame { zone: zone.to_ascii() });
            };
            let now = Instant::now();
            self.delegations.insert(&wire_of(&cut), next.clone(), Duration::from_secs(u64::from(ttl)), now);
            zone = cut;
            servers = next;
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

    /// Reads a referral: NS records for a cut below `zone` and above or at `qname`, with glue.
    fn referral(&self, response: &Message, zone: &Name, qname: &Name) -> Option<(Name, Arc<[SocketAddr]>, u32)> {
        let ns: Vec<&Record> = response.authorities.iter().filter(|r| r.record_type() == RecordType::NS).collect();
        let cut = ns.first()?.name.to_lowercase();
        // Only a cut strictly below the zone we asked, and above the name: no loops, no poisoning.
        if !(zone.zone_of(&cut) && cut != *zone && cut.zone_of(qname)) {
            return None;
        }
        let ttl = ns.iter().map(|r| r.ttl).min()?;
        let targets: Vec<Name> = ns
            .iter()
            .filter(|r| r.name.to_lowercase() == cut)
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(n.0.to_lowercase()),
                _ => None,
            })
            .collect();
        let servers: Vec<SocketAddr> = response
            .additionals
            .iter()
            .filter(|r| targets.contains(&r.name.to_lowercase()) && cut.zone_of(&r.name.to_lowercase()))
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(SocketAddr::new(a.0.into(), self.config.port)),
                RData::AAAA(a) => Some(SocketAddr::new(a.0.into(), self.config.port)),
                _ => None,
            })
            .collect();
        (!servers.is_empty()).then(|| (cut, servers.into(), ttl))
    }

    /// Asks each server in turn until one answers.
    async fn ask(&self, servers: &[SocketAddr], qname: &Name, qtype: u16, zone: &Name) -> Result<Message, Failure> {
        for server in servers {
            match tokio::time::timeout(self.config.timeout, exchange(*server, qname, qtype)).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(e)) => tracing::debug!(%server, error = %e, "server failed"),
                Err(_) => tracing::debug!(%server, "server timed out"),
            }
        }
        Err(Failure::Unreachable { zone: zone.to_ascii() })
    }

    /// The client's answer: the final response's sections, and how long to keep them.
    fn cacheable(&self, qname: &Name, qtype: u16, response: &Message, now: Instant) -> (Cached, Duration) {
        let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
        let mut query = Query::query(qname.to_lowercase(), RecordType::from(qtype));
        query.set_query_class(DNSClass::IN);
        msg.add_query(query);
        msg.add_answers(response.answers.iter().cloned());
        msg.add_authorities(response.authorities.iter().cloned());
        msg.add_additionals(response.additionals.iter().filter(|r| r.record_type() != RecordType::OPT).cloned());
        let bytes = msg.to_vec().unwrap_or_default();
        let question_end = (12 + wire_of(qname).len() + 4).min(bytes.len());
        let (an, ns, ar) = (msg.answers.len(), msg.authorities.len(), msg.additionals.len());
        let sections: Box<[u8]> = bytes[question_end..].into();
        let ttl_offsets = wire::ttl_offsets(&sections, an + ns + ar).unwrap_or_default().into_boxed_slice();
        // Positive answers live as long as their shortest record; negative ones as long as the
        // SOA allows (RFC 2308 5).
        let ttl = match response.answers.iter().map(|r| r.ttl).min() {
            Some(ttl) => ttl,
            None => response
                .authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                    _ => None,
                })
                .unwrap_or(0),
        };
        let body = Body {
            rcode: response.metadata.response_code.low(),
            authoritative: false,
            recursion_available: true,
            answers: an as u16,
            authorities: ns as u16,
            additionals: ar as u16,
            bytes: sections,
        };
        (Cached { body, ttl_offsets, stored: now }, Duration::from_secs(u64::from(ttl)))
    }
}

/// One query to one server: UDP, then TCP if the answer was truncated.
async fn exchange(server: SocketAddr, qname: &Name, qtype: u16) -> std::io::Result<Message> {
    let mut msg = Message::new(random_id(), MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(qname.clone(), RecordType::from(qtype)));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    let request = msg.to_vec().map_err(std::io::Error::other)?;
    let local = unspecified(server);
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&request).await?;
    let mut buf = vec![0u8; 65535];
    let response = loop {
        let n = socket.recv(&mut buf).await?;
        // Only the answer to this query counts (RFC 5452: id and question must match).
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if m.metadata.id == msg.metadata.id && m.queries.first().map(Query::name) == Some(qname) {
                break m;
            }
        }
    };
    if !response.metadata.truncation {
        return Ok(response);
    }
    let mut stream = TcpStream::connect(server).await?;
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await?;
    Message::from_vec(&body).map_err(std::io::Error::other)
}

/// The wildcard address of `server`'s family, port 0: where a client socket binds.
pub(super) fn unspecified(server: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr =
        if server.is_ipv4() { std::net::Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
    SocketAddr::new(ip, 0)
}

fn random_id() -> u16 {
    let bytes = uuid::Uuid::new_v4();
    u16::from_be_bytes([bytes.as_bytes()[0], bytes.as_bytes()[1]])
}
