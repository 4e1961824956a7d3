//! The recursive role over the Handle protocol: a RESOLUTION with the recursion flag (REC) sent
//! to a node configured with `[recursive] handle_roots` is resolved for the client, as the
//! national public recursive node and CNRI's servers with recursion enabled do. The node asks a
//! root (the top-level node) for the prefix record `0.NA/PREFIX` with the site types, follows
//! prefix referrals (`HS_SITE.PREFIX`) down the tree, sends the client's request unchanged to a
//! server of the site found, and relays its answer (the digest it carries covers the same
//! request bytes, so a client asking RD can check it).
//!
//! Bounded: at most `max_in_flight` resolutions at once (then SERVER_TOO_BUSY), each within
//! `resolution_budget_ms` and `timeout_ms` per server, at most `max_referrals` referrals; the
//! sites found for a prefix are kept for `max_ttl` (at most [`SITES_KEPT`] prefixes), so a
//! prefix's lookups cost one exchange once it is known, and the answers for their values' TTL
//! (32 MiB; see `answer_key` for which are reused). Only the sites' TCP interfaces are used,
//! one connection per exchange, as CNRI's client does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::over_tcp;
use super::message::{
    self, ENVELOPE_LEN, Envelope, Header, MAX_VERSION, Reader, Request, Version, op_flags, opcode, write_bytes,
    write_u32,
};
use super::{Query, Verdict, error, identifier};
use crate::code::ResponseCode;
use crate::config::RecursiveConfig;
use crate::identifier::Identifier;
use crate::record::site::Site;

/// 10,000: prefixes whose sites are kept.
pub const SITES_KEPT: usize = 10_000;

/// Why a recursive resolution failed: the code and reason sent to the client.
pub type Failure = (ResponseCode, String);

/// Resolves Handle requests for clients (see the module docs).
pub struct Recursor {
    roots: Vec<SocketAddr>,
    per_server: Duration,
    budget: Duration,
    max_referrals: usize,
    max_in_flight: usize,
    max_ttl: Duration,
    max_negative_ttl: Duration,
    in_flight: AtomicUsize,
    /// The answers relayed, by what decides them (see [`answer_key`]), for their values' TTL.
    answers: crate::cache::Cache<Arc<[u8]>>,
    /// The TCP addresses of the site serving each prefix, and until when they hold.
    sites: Mutex<HashMap<String, (Vec<SocketAddr>, Instant)>>,
}

/// A slot among the resolutions in flight, given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Recursor {
    /// The recursor `config` describes; `None` without `handle_roots`.
    pub fn from_config(config: &RecursiveConfig) -> Option<Self> {
        (!config.handle_roots.is_empty()).then(|| Self {
            roots: config.handle_roots.clone(),
            per_server: Duration::from_millis(config.timeout_ms.max(1)),
            budget: Duration::from_millis(config.resolution_budget_ms.max(1)),
            max_referrals: config.max_referrals.max(1),
            max_in_flight: config.max_in_flight.max(1),
            max_ttl: Duration::from_secs(u64::from(config.max_ttl)),
            max_negative_ttl: Duration::from_secs(u64::from(config.max_negative_ttl)),
            in_flight: AtomicUsize::new(0),
            answers: crate::cache::Cache::new(ANSWERS_BYTES),
            sites: Mutex::new(HashMap::new()),
        })
    }

    /// Resolves `request` (its whole message `message`, naming `id`) at the node serving `id`;
    /// returns that node's answer, envelope and message.
    pub fn resolve(&self, id: &Identifier, request: &Request<'_>, message: &[u8]) -> Result<Vec<u8>, Failure> {
        let key = answer_key(request);
        let clock = tokio::time::Instant::now();
        if let Some(hit) = key.as_deref().and_then(|k| self.answers.get(k, clock)) {
            let mut answer = hit.value.to_vec();
            answer[8..12].copy_from_slice(&request.envelope.request_id.to_be_bytes());
            return Ok(answer);
        }
        let answer = self.relay(id, request, message)?;
        if let Some(key) = key {
            if let Some(ttl) = self.ttl_of(&answer) {
                self.answers.insert(&key, Arc::from(answer.as_slice()), ttl, clock);
            }
        }
        Ok(answer)
    }

    /// How long an answer may be reused: a SUCCESS for its values' shortest TTL (at most
    /// `max_ttl`), HANDLE_NOT_FOUND and VALUES_NOT_FOUND for `max_negative_ttl`; anything else
    /// (errors, referrals, challenges) not at all.
    fn ttl_of(&self, answer: &[u8]) -> Option<Duration> {
        let message = answer.get(ENVELOPE_LEN..)?;
        let header = Header::decode(message).ok()?;
        match header.response_code {
            100 | 200 => Some(self.max_negative_ttl),
            1 => {
                let now = crate::record::unix_now();
                let old = Version::new(answer[0], answer[1]) < Version::new(2, 1);
                let shortest = value_ttls(message, &header, old, now)?.into_iter().min()?;
                Some(self.max_ttl.min(Duration::from_secs(u64::from(shortest))))
            }
            _ => None,
        }
        .filter(|ttl| !ttl.is_zero())
    }

    /// Resolves `request` at the node serving `id` (the work behind [`Self::resolve`]).
    fn relay(&self, id: &Identifier, request: &Request<'_>, message: &[u8]) -> Result<Vec<u8>, Failure> {
        if request.header.recursion_count >= 10 {
            return Err((ResponseCode::RecursionCountTooHigh, "the request was relayed 10 times".into()));
        }
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err((ResponseCode::ServerTooBusy, "too many resolutions in flight; retry".into()));
        }
        let _slot = Slot(&self.in_flight);
        let deadline = Instant::now() + self.budget;
        let servers = match id.record_prefix() {
            // A prefix record is the roots' to answer (they refer further down).
            Some(_) => self.roots.clone(),
            None => self.servers_of(id.prefix(), deadline)?,
        };
        let mut relayed = Vec::with_capacity(ENVELOPE_LEN + message.len());
        request.envelope.encode(&mut relayed);
        relayed.extend_from_slice(message);
        // One more hop: a node that relays again counts it.
        relayed[ENVELOPE_LEN + 14] = request.header.recursion_count.saturating_add(1);
        self.ask_any(&servers, &relayed, request.envelope.request_id, deadline)
    }

    /// The first answer to `bytes` from one of `servers`, in order.
    fn ask_any(
        &self,
        servers: &[SocketAddr],
        bytes: &[u8],
        request_id: u32,
        deadline: Instant,
    ) -> Result<Vec<u8>, Failure> {
        let mut last = (ResponseCode::Error, "no server to ask".to_owned());
        for &server in servers {
            let until = deadline.min(Instant::now() + self.per_server);
            match over_tcp(server, bytes, until) {
                Ok(answer) if Envelope::decode(&answer).is_ok_and(|e| e.request_id == request_id) => return Ok(answer),
                Ok(_) => last = (ResponseCode::Error, format!("{server} answered another request")),
                Err(e) => last = (ResponseCode::Error, format!("{server}: {e}")),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(last)
    }

    /// The TCP addresses of the site serving `prefix`: from the cache, or asked of the roots,
    /// following prefix referrals.
    fn servers_of(&self, prefix: &str, deadline: Instant) -> Result<Vec<SocketAddr>, Failure> {
        let key = prefix.to_ascii_lowercase();
        {
            let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((servers, until)) = sites.get(&key) {
                if Instant::now() < *until {
                    return Ok(servers.clone());
                }
            }
        }
        let mut question = site_question(&format!("0.NA/{prefix}"));
        let mut servers = self.roots.clone();
        // A referral or a prefix record may name its sites through service handles (HS_SERV,
        // as the Global Handle Registry delegates many prefixes): each is resolved at the roots
        // for its HS_SITE values, within the same count of referrals.
        let mut services: Vec<String> = Vec::new();
        let mut referred = false;
        for _ in 0..=self.max_referrals {
            let answer = self.ask_any(&servers, &question, QUESTION_ID, deadline)?;
            let (code, sites, named) =
                sites_in(&answer).ok_or((ResponseCode::Error, "a node's answer is malformed".into()))?;
            let found = tcp_addresses(&sites);
            match code {
                1 | 303 if found.is_empty() && !named.is_empty() && services.is_empty() => {
                    // Ask the roots for the first service handle's sites; the answer stands for
                    // this one (a referral's sites are asked the prefix again).
                    services = named.into_iter().take(MAX_SERVICES).rev().collect();
                    referred = code == 303;
                    question = site_question(services.last().map_or("", String::as_str));
                    servers = self.roots.clone();
                    continue;
                }
                1 if found.is_empty() && services.len() > 1 => {
                    // That service handle named no site: the next one.
                    services.pop();
                    question = site_question(services.last().map_or("", String::as_str));
                    servers = self.roots.clone();
                    continue;
                }
                1 if !found.is_empty() && !referred => {
                    let mut cache = self.sites.lock().unwrap_or_else(|p| p.into_inner());
                    if cache.len() >= SITES_KEPT {
                        let now = Instant::now();
                        cache.retain(|_, (_, until)| *until > now);
                        if cache.len() >= SITES_KEPT {
                            cache.clear();
                        }
                    }
                    cache.insert(key, (found.clone(), Instant::now() + self.max_ttl));
                    return Ok(found);
                }
                // Referred further down: the same question there.
                303 if !found.is_empty() => servers = found,
                1 if !found.is_empty() => {
                    // The sites of a referral's service handle: ask them for the prefix.
                    servers = found;
                    question = site_question(&format!("0.NA/{prefix}"));
                    services.clear();
                    referred = false;
                }
                100 => return Err((ResponseCode::HandleNotFound, format!("no node serves the prefix {prefix}"))),
                _ => return Err((ResponseCode::Error, format!("no site for the prefix {prefix} (answer {code})"))),
            }
        }
        Err((ResponseCode::Error, format!("more than {} referrals for {prefix}", self.max_referrals)))
    }
}

impl super::Frontend {
    /// A resolution asking for recursion, on a recursive node: the answer of the node serving
    /// the identifier, relayed (see [`recursive`]), or an error of this node's own.
    pub(super) fn recurse(&self, request: &Request<'_>, message: &[u8], now: u32, out: &mut Vec<u8>) -> Verdict {
        let Some(recursor) = &self.recursor else { return Verdict::Drop };
        let id = Query::decode(request.body).ok().and_then(|q| identifier(q.handle));
        let Some(id) = id else {
            let envelope =
                error(request, ResponseCode::InvalidHandle, "the handle is not a valid identifier", now, out);
            return Verdict::Respond(envelope);
        };
        match recursor.resolve(&id, request, message) {
            Ok(answer) => match Envelope::decode(&answer) {
                Ok(envelope) => {
                    out.clear();
                    out.extend_from_slice(&answer[message::ENVELOPE_LEN..]);
                    // The node asked saw the request one hop further (its recursion count
                    // raised), so its digest is of other bytes: the client gets the digest of
                    // what it sent, in the same place and algorithm.
                    let flags = out.get(8..12).map_or(0, |f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]));
                    if flags & op_flags::RETURN_DIGEST != 0 && envelope.version >= Version::new(2, 1) {
                        let digest = message::request_digest(envelope.version, request.signed);
                        if let Some(place) =
                            out.get_mut(message::HEADER_LEN + 1..message::HEADER_LEN + 1 + digest.len())
                        {
                            place.copy_from_slice(&digest);
                        }
                    }
                    Verdict::Respond(envelope)
                }
                Err(e) => Verdict::Respond(error(request, ResponseCode::Error, &e.to_string(), now, out)),
            },
            Err((code, text)) => Verdict::Respond(error(request, code, &text, now, out)),
        }
    }
}

/// 32 MiB: what the relayed answers kept may weigh.
const ANSWERS_BYTES: u64 = 32 << 20;

/// What decides a relayed answer, when it may be reused: the response version, whether a digest
/// was asked (the client's own is put in on the way out), and the body as sent (the handle as
/// asked, which the answer echoes, and the filters). Requests that ask for a signed answer (a
/// signature covers the request id), carry a credential, or may read non-public values are
/// never answered from what another client was told.
fn answer_key(request: &Request<'_>) -> Option<Vec<u8>> {
    let flags = request.header.op_flags;
    let reusable =
        flags & op_flags::PUBLIC_ONLY != 0 && flags & op_flags::CERTIFY == 0 && request.credential.is_empty();
    reusable.then(|| {
        let version = request.envelope.suggested.min(MAX_VERSION);
        let mut key = vec![version.major, version.minor, u8::from(flags & op_flags::RETURN_DIGEST != 0)];
        key.extend_from_slice(request.body);
        key
    })
}

/// The seconds each value of a SUCCESS `message` (below version 2.1 when `old`) may be kept,
/// at `now` (Unix time).
fn value_ttls(message: &[u8], header: &Header, old: bool, now: i64) -> Option<Vec<u32>> {
    let body = message.get(24..24 + header.body_length as usize)?;
    let mut r = Reader::new(body);
    if header.op_flags & op_flags::RETURN_DIGEST != 0 {
        // Before 2.1 the digest is a string; from 2.1 a code, then SHA-1 or SHA-256.
        match (old, if old { 0 } else { r.u8().ok()? }) {
            (true, _) => drop(r.bytes().ok()?),
            (false, 2) => drop(r.take(20).ok()?),
            (false, 3) => drop(r.take(32).ok()?),
            _ => return None,
        }
    }
    r.bytes().ok()?;
    let count = r.u32().ok()?;
    let mut ttls = Vec::new();
    for _ in 0..count {
        r.take(8).ok()?; // index, timestamp
        let (kind, ttl) = (r.u8().ok()?, r.u32().ok()?);
        ttls.push(match kind {
            0 => ttl,
            _ => u32::try_from((i64::from(ttl) - now).max(0)).unwrap_or(0),
        });
        r.take(1).ok()?; // permissions
        r.bytes().ok()?;
        r.bytes().ok()?;
        let references = r.u32().ok()? as usize;
        for _ in 0..references {
            r.bytes().ok()?;
            r.u32().ok()?;
        }
    }
    Some(ttls)
}

/// The request id of the node's own questions (the answer to each is read on its own
/// connection).
const QUESTION_ID: u32 = 1;

/// A RESOLUTION of `handle` asking the site types, public values only.
fn site_question(handle: &str) -> Vec<u8> {
    let mut body = Vec::new();
    write_bytes(&mut body, handle.as_bytes());
    write_u32(&mut body, 0);
    write_u32(&mut body, 2);
    write_bytes(&mut body, b"HS_SITE");
    write_bytes(&mut body, b"HS_SERV");
    let header = Header {
        opcode: opcode::RESOLUTION,
        op_flags: op_flags::PUBLIC_ONLY,
        body_length: body.len() as u32,
        ..Header::default()
    };
    let mut message = Vec::new();
    header.encode(&mut message);
    message.extend_from_slice(&body);
    write_u32(&mut message, 0);
    let envelope = Envelope {
        version: MAX_VERSION,
        suggested: MAX_VERSION,
        flags: 0,
        session_id: 0,
        request_id: QUESTION_ID,
        message_id: 0,
        message_length: message.len() as u32,
    };
    let mut out = Vec::new();
    envelope.encode(&mut out);
    out.extend_from_slice(&message);
    out
}

/// 4: service handles of one answer tried, in turn, for sites.
const MAX_SERVICES: usize = 4;

/// The response code of `answer`, the sites its values carry (`HS_SITE`, or `HS_SITE.PREFIX` in
/// a referral) and the service handles they name (`HS_SERV`, `HS_SERV.PREFIX`).
fn sites_in(answer: &[u8]) -> Option<(u32, Vec<Site>, Vec<String>)> {
    let message = answer.get(ENVELOPE_LEN..)?;
    let header = Header::decode(message).ok()?;
    let body = message.get(24..24 + header.body_length as usize)?;
    let mut r = Reader::new(body);
    if header.op_flags & op_flags::RETURN_DIGEST != 0 {
        return None; // never asked for
    }
    if !matches!(header.response_code, 1 | 303) {
        return Some((header.response_code, Vec::new(), Vec::new()));
    }
    r.bytes().ok()?;
    let count = r.u32().ok()?;
    let (mut sites, mut services) = (Vec::new(), Vec::new());
    for _ in 0..count {
        r.take(14).ok()?;
        let kind = r.bytes().ok()?;
        let data = r.bytes().ok()?;
        let references = r.u32().ok()? as usize;
        r.take(references.checked_mul(8)?).ok()?;
        let site = kind.eq_ignore_ascii_case(b"HS_SITE") || kind.eq_ignore_ascii_case(b"HS_SITE.PREFIX");
        if let Some(decoded) = site.then(|| Site::decode(data)).flatten() {
            sites.push(decoded);
        }
        let service = kind.eq_ignore_ascii_case(b"HS_SERV") || kind.eq_ignore_ascii_case(b"HS_SERV.PREFIX");
        if let Some(handle) = service.then(|| std::str::from_utf8(data).ok()).flatten() {
            services.push(handle.to_owned());
        }
    }
    Some((header.response_code, sites, services))
}

/// Every server's TCP interface in `sites`.
fn tcp_addresses(sites: &[Site]) -> Vec<SocketAddr> {
    sites
        .iter()
        .flat_map(|s| &s.servers)
        .flat_map(|server| {
            server
                .interfaces
                .iter()
                .filter(|i| i.protocol.eq_ignore_ascii_case("TCP"))
                .filter_map(|i| u16::try_from(i.port).ok().map(|port| SocketAddr::new(server.address, port)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_question_is_a_request_the_node_reads() {
        let q = site_question("0.NA/88.100");
        let envelope = Envelope::decode(&q).unwrap();
        let request = Request::decode(envelope, &q[ENVELOPE_LEN..]).unwrap();
        assert_eq!((request.header.opcode, request.header.op_flags), (opcode::RESOLUTION, op_flags::PUBLIC_ONLY));
    }

    #[test]
    fn answers_that_are_not_resolutions_give_no_sites() {
        assert!(sites_in(&[0; 10]).is_none());
        let mut answer = site_question("x");
        answer[ENVELOPE_LEN + 4..ENVELOPE_LEN + 8].copy_from_slice(&100u32.to_be_bytes());
        assert_eq!(sites_in(&answer).map(|(c, s, _)| (c, s.len())), Some((100, 0)));
    }

    #[test]
    fn an_answer_is_kept_for_its_shortest_value_ttl() {
        use crate::record::{Ttl, Value};
        let mut short = Value::new(2, "EMAIL", "x", 0);
        short.ttl = Ttl::Absolute(1_000_600);
        let values = [Value::new(1, "URL", "u", 0), short];
        let mut body = vec![3];
        body.extend_from_slice(&[7; 32]); // a digest
        write_bytes(&mut body, b"88.1/X");
        write_u32(&mut body, 2);
        values.iter().for_each(|v| super::super::write_value(&mut body, v, &v.kind));
        let header = Header {
            opcode: opcode::RESOLUTION,
            response_code: 1,
            op_flags: op_flags::RETURN_DIGEST,
            body_length: body.len() as u32,
            ..Header::default()
        };
        let mut message = Vec::new();
        header.encode(&mut message);
        message.extend_from_slice(&body);
        assert_eq!(value_ttls(&message, &header, false, 1_000_000), Some(vec![86_400, 600]));
        assert_eq!(value_ttls(&message[..message.len() - 3], &header, false, 1_000_000), None, "cut short");
    }
}
