//! The Handle protocol front end (RFC 3652, as CNRI's Handle.Net 9.x speaks it; see
//! docs/handle-protocol.md): a request message in, a response message out, translated into
//! calls on the node core. A sibling of [`crate::dns`] and [`crate::http`]; the sockets are in
//! [`crate::server`].
//!
//! ```text
//!  server::handle (TCP connection / UDP socket) ── envelope + message bytes
//!            ▼
//!  Frontend::answer ── encrypted in a session (EC) ──> decrypted with the session key
//!            │        ── a response (not a request) ──> drop
//!            │        ── undecodable, compressed, encrypted outside a session ──> PROTOCOL_ERROR
//!            ├── RESOLUTION with REC, on a recursive node ──> recursive: the serving node's answer
//!            ├── RESOLUTION ──> cache (anonymous, PO) ──hit──> cached body behind a fresh header
//!            │                    │ miss
//!            │                    ▼
//!            │                  Node::resolve (the rules) ──> values / 100 / 200 / 102 /
//!            │                  referral (303 for prefix records, else 301) ──> fill the cache
//!            │                  public-only clear and values withheld ──> challenge;
//!            │                  a served prefix's record asked for sites ──> + own HS_SITE
//!            ├── CREATE / DELETE / ADD / REMOVE / MODIFY / LIST, LOGIN (2001)
//!            │        ──> auth: challenge (402, nonce, digest), request kept
//!            ├── RESPONSE_TO_CHALLENGE ──> proof: secret (sealed copy) or public key
//!            │        ──> admin: the kept request through Node as that administrator
//!            ├── SESSION_SETUP / SESSION_TERMINATE ──> session (Diffie-Hellman, HS_MAC)
//!            ├── GET_SITE_INFO ──> the node's own HS_SITE (site_info)
//!            └── any other opcode ──> OPERATION_NOT_SUPPORTED
//!            ▼
//!  credential::certify ── CT set and a server key ──> HS_SIGNED credential
//! ```
//!
//! Credential sections on requests are not verified, except a session's `HS_MAC`; responses are
//! signed when asked (CT) and the node has a server key. Over UDP (`datagram`), requests in
//! pieces are put back together (`reassembly`) and slow work goes to the transport's second
//! thread.

mod admin;
pub mod admin_key;
mod auth;
pub mod cache;
pub mod client;
pub mod credential;
mod datagram;
mod gm;
pub mod key;
pub mod message;
mod proof;
pub mod reassembly;
pub mod recursive;
mod session;
pub mod site_info;

use std::ops::Range;
use std::sync::Arc;

use crate::auth::Admin;
use crate::code::ResponseCode;
use crate::identifier::Identifier;
use crate::node::{Node, ReadFilter, Resolution};
use crate::record::{Permissions, Ttl, Value, types};
pub use admin::{Connection, Listing};
use cache::ResolutionCache;
pub use datagram::lookup;
use message::{Envelope, Reader, Request, Version, WireError, op_flags, opcode, write_bytes, write_u32};

/// What the transport does with an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the message written into `out` behind this envelope.
    Respond(Envelope),
    /// Send nothing (a response sent to the node, which it must not answer); over TCP, close.
    Drop,
}

/// The Handle front end over a node.
pub struct Frontend {
    node: Arc<Node>,
    /// Requests waiting for the answers to their challenges.
    challenges: auth::Challenges,
    /// The node's own site and server key (GET_SITE_INFO, certified responses).
    site: site_info::OwnSite,
    /// Sessions set up by clients (SESSION_SETUP).
    sessions: session::Sessions,
    /// Resolves requests asking for recursion, on a recursive node.
    recursor: Option<Arc<recursive::Recursor>>,
    /// Encoded RESOLUTION responses; `None`: every resolution reads the core.
    cache: Option<Arc<ResolutionCache>>,
}

impl Frontend {
    /// A front end without a cache (see [`with_cache`](Self::with_cache)).
    pub fn new(node: Arc<Node>) -> Self {
        let (challenges, sessions) = (auth::Challenges::default(), session::Sessions::default());
        Self { node, challenges, site: site_info::OwnSite::default(), sessions, cache: None, recursor: None }
    }

    /// Answers anonymous resolutions from `cache`, which must be subscribed to the node's
    /// writes ([`crate::node::Node::subscribe`]), or it would serve what writes changed.
    pub fn with_cache(self, cache: Arc<ResolutionCache>) -> Self {
        Self { cache: Some(cache), ..self }
    }

    /// The resolution cache's counters, when there is one.
    pub fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// The front end resolving requests that ask for recursion with `recursor`.
    pub fn with_recursor(self, recursor: Option<recursive::Recursor>) -> Self {
        Self { recursor: recursor.map(Arc::new), ..self }
    }

    /// The front end publishing `site` and signing with its key.
    pub fn with_site(self, site: site_info::OwnSite) -> Self {
        Self { site, ..self }
    }

    /// Whether answering `message` may block: checking a proof (PBKDF2, a signature), a
    /// durable write, or asking other nodes (a recursive resolution). Transports run such
    /// messages off their event loop; a message too short to tell is cheap (it gets
    /// PROTOCOL_ERROR).
    pub fn may_block(&self, envelope: &Envelope, message: &[u8]) -> bool {
        let op = message.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        // An encrypted message is a session's, and CNRI's client encrypts writes.
        envelope.flags & message::ENV_ENCRYPTED != 0 || admin::is_administration(op) || self.slow(message)
    }

    /// Answers the message `message` that followed `envelope` (already decoded and bounded) on
    /// the connection `conn`, writing the response message into `out`. `now` is Unix time in
    /// seconds.
    pub fn answer(
        &self,
        envelope: &Envelope,
        message: &[u8],
        now: u32,
        conn: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Verdict {
        let plain;
        let (envelope, message) = match self.decrypt(envelope, message) {
            Ok(None) => (*envelope, message),
            Ok(Some((envelope, decrypted))) => {
                plain = decrypted;
                (envelope, plain.as_slice())
            }
            Err((code, text)) => return Verdict::Respond(message::unread_error(envelope, code, now, text, out)),
        };
        let envelope = &envelope;
        let request = match Request::decode(*envelope, message) {
            Ok(r) => r,
            Err(e) => return Verdict::Respond(message::protocol_error(envelope, now, &e.to_string(), out)),
        };
        // Answering a response could start a loop between two servers.
        if request.header.response_code != 0 {
            return Verdict::Drop;
        }
        match self.sessions.check(&request, std::time::Instant::now()) {
            None => conn.enter(None),
            Some(Ok(session)) => conn.enter(Some(session)),
            Some(Err((code, text))) => {
                conn.enter(None);
                let envelope = error(&request, code, text, now, out);
                return Verdict::Respond(credential::certify(self.site.key(), &request, envelope, out));
            }
        }
        let envelope = match request.header.opcode {
            opcode::RESOLUTION if request.header.op_flags & op_flags::RECURSIVE != 0 && self.recursor.is_some() => {
                return self.recurse(&request, message, now, out);
            }
            opcode::RESOLUTION => self.resolution(&request, conn.principal(), message, conn, now, out),
            opcode::SESSION_SETUP => self.session_setup(&request, conn.source, now, out),
            opcode::SESSION_TERMINATE => self.session_end(&request, conn, now, out),
            opcode::RESPONSE_TO_CHALLENGE => self.answer_challenge(&request, now, conn, out),
            op if admin::is_administration(op) => self.administer(&request, message, now, conn, out),
            opcode::GET_SITE_INFO => {
                // Teleinfo's SDK asks with the session id it picked for the connection (10001
                // and up); CAICT's asks with 0, when its channel opens, and knows no 601-605.
                conn.asked_site(request.envelope.session_id);
                self.site.answer(&request, now, out)
            }
            op => {
                error(&request, ResponseCode::OperationNotSupported, &format!("opcode {op} is not supported"), now, out)
            }
        };
        Verdict::Respond(credential::certify(self.site.key(), &request, envelope, out))
    }

    /// An encrypted message of a session (EC set, a session id) decrypted, with the envelope
    /// describing the plaintext; `None` for a message not encrypted (or compressed, which
    /// decoding refuses).
    fn decrypt(&self, envelope: &Envelope, message: &[u8]) -> Result<Option<(Envelope, Vec<u8>)>, session::Refusal> {
        let flags = envelope.flags;
        if flags & message::ENV_ENCRYPTED == 0 || flags & message::ENV_COMPRESSED != 0 || envelope.session_id == 0 {
            return Ok(None);
        }
        let plain = self.sessions.decrypt(envelope.session_id, message, std::time::Instant::now())?;
        let envelope = Envelope {
            flags: flags & !message::ENV_ENCRYPTED,
            message_length: u32::try_from(plain.len()).unwrap_or(u32::MAX),
            ..*envelope
        };
        Ok(Some((envelope, plain)))
    }

    /// Answers a RESOLUTION for `principal` (`None`: anonymous): from the cache when the request
    /// may be ([`cache::cacheable`]: anonymous, public-only, no credential), else from the core,
    /// filling the cache with what may be reused. With public-only clear, an anonymous request
    /// for a record holding values it may not read is challenged (its whole message is
    /// `message`), as CNRI's server does; an authenticated caller never touches the cache.
    fn resolution(
        &self,
        request: &Request<'_>,
        principal: Option<&Admin>,
        message: &[u8],
        conn: &Connection,
        now: u32,
        out: &mut Vec<u8>,
    ) -> Envelope {
        let version = request.envelope.suggested.min(message::MAX_VERSION);
        let public_only = request.header.op_flags & op_flags::PUBLIC_ONLY != 0;
        let principal = principal.filter(|_| !public_only);
        // Only a request that reads as an administrator counts against its daily quota; the
        // anonymous path passes a `None`.
        if let Some(Err(e)) = principal.map(|admin| self.node.count_request(admin)) {
            return error(request, conn.refusal_code(e.code()), &e.to_string(), now, out);
        }
        let Ok(query) = Query::decode(request.body) else {
            return error(request, ResponseCode::ProtocolError, "the resolution request is malformed", now, out);
        };
        let cache = self.cache.as_deref().filter(|_| cache::cacheable(request, principal.is_some()));
        let asked = Asked { query: &query, version, message, conn };
        let Some(cache) = cache else { return self.resolve(request, principal, &asked, now, out).0 };
        let clock = tokio::time::Instant::now();
        let key = cache::Asked { handle: query.handle, query: query.raw, version };
        if let Some(hit) = cache.get(key, clock, out) {
            return request.respond(hit.code, now, out, |out| out.extend_from_slice(&hit.body));
        }
        let generation = cache.generation();
        let (envelope, written) = self.resolve(request, principal, &asked, now, out);
        if let Some(Written { code, body }) = written {
            cache.fill(key, (code, &out[body]), generation, clock);
        }
        envelope
    }

    /// Resolves through the core; returns the response's envelope and, when it may be cached,
    /// its code and where its body (after the digest) lies in `out`.
    fn resolve(
        &self,
        request: &Request<'_>,
        principal: Option<&Admin>,
        asked: &Asked<'_, '_>,
        now: u32,
        out: &mut Vec<u8>,
    ) -> (Envelope, Option<Written>) {
        let Asked { query, version, message, conn } = *asked;
        let handle = query.handle;
        let Some(id) = identifier(handle) else {
            let text = "the handle is not a valid identifier";
            return (error(request, ResponseCode::InvalidHandle, text, now, out), None);
        };
        // Filtering by type and index follows CNRI below, not the core's filter (which wants
        // both to match); the core applies the read rules.
        let public_only = request.header.op_flags & op_flags::PUBLIC_ONLY != 0;
        let filter = ReadFilter { public_only: principal.is_none(), ..ReadFilter::default() };
        let types: Vec<&[u8]> = query.types().collect();
        let mut record = match self.node.resolve(principal, &id, &filter) {
            Ok(Resolution::Found(found))
                if found.withheld && principal.is_none() && !public_only && conn.takes_challenges() =>
            {
                return (self.challenge(request, message, conn, now, out), None);
            }
            Ok(Resolution::Found(found)) => found.record,
            // A prefix this node serves has its site even without a prefix record (below).
            Err(crate::node::ReadError::NotFound { .. }) if self.homes(&id, &types) => {
                crate::record::Record { identifier: id.clone(), values: Vec::new() }
            }
            Ok(Resolution::Referral(delegation)) => {
                let (envelope, written) = referral(request, version, &id, &delegation, now, out);
                return (envelope, Some(written));
            }
            Err(e) => {
                let code = e.code();
                let (envelope, written) = respond(request, wire_code(code, version), now, out, |out| {
                    write_bytes(out, e.to_string().as_bytes());
                });
                return (envelope, (code == ResponseCode::HandleNotFound).then_some(written));
            }
        };
        if self.homes(&id, &types) && !record.values.iter().any(|v| v.is_type(types::SITE) || v.is_type(types::SERV)) {
            record.values.extend(self.site.value(&record, now));
        }
        let indexes: Vec<u32> = query.indexes().collect();
        let selected: Vec<&Value> = record.values.iter().filter(|v| selects(v, &indexes, &types)).collect();
        if selected.is_empty() {
            let (envelope, written) =
                respond(request, wire_code(ResponseCode::ValuesNotFound, version), now, out, |out| {
                    write_bytes(out, b"no value matches");
                });
            return (envelope, Some(written));
        }
        let (envelope, written) = respond(request, wire_code(ResponseCode::Success, version), now, out, |out| {
            write_bytes(out, handle);
            write_u32(out, selected.len() as u32);
            selected.iter().for_each(|v| write_value(out, v, &v.kind));
        });
        (envelope, Some(written))
    }
}

impl Frontend {
    /// Whether `id` is the prefix record of a prefix this node serves itself (not delegated:
    /// the core refers for those before this is asked) and the request asks for sites. Then
    /// the answer carries the node's own `HS_SITE` when the record has none, as a Handle
    /// server's homed prefixes do: a client that found this node through a parent's prefix
    /// referral asks it for `0.NA/PREFIX` with the site types, and resolves where the sites
    /// say (global-to-local resolution, as at the Global Handle Registry).
    fn homes(&self, id: &Identifier, asked: &[&[u8]]) -> bool {
        let site = |t: &&[u8]| t.eq_ignore_ascii_case(types::SITE.as_bytes()) || t.eq_ignore_ascii_case(b"HS_SITE.");
        id.record_prefix().is_some_and(|p| self.node.zones().holding(p).is_some()) && asked.iter().any(site)
    }
}

/// What a resolution asks, and what a challenge would keep.
#[derive(Clone, Copy)]
struct Asked<'q, 'r> {
    query: &'q Query<'r>,
    version: Version,
    /// The whole request message (kept if the request is challenged).
    message: &'q [u8],
    conn: &'q Connection,
}

/// A response the cache may keep: its code and its body's bytes in the output buffer.
struct Written {
    code: u32,
    body: Range<usize>,
}

/// [`Request::respond`], noting where the body after the request digest lies in `out`.
fn respond(
    request: &Request<'_>,
    code: u32,
    now: u32,
    out: &mut Vec<u8>,
    body: impl FnOnce(&mut Vec<u8>),
) -> (Envelope, Written) {
    let mut range = 0..0;
    let envelope = request.respond(code, now, out, |out| {
        let start = out.len();
        body(out);
        range = start..out.len();
    });
    (envelope, Written { code, body: range })
}

/// The body of a RESOLUTION request: handle, index list, type list, read without allocating
/// (a cache hit must not). Bytes after them are ignored, as CNRI's decoder ignores them.
struct Query<'a> {
    handle: &'a [u8],
    /// The index list's elements (big-endian `u32`s), checked to be whole.
    indexes: &'a [u8],
    /// The type list's elements (length-prefixed strings), checked to be whole.
    types: &'a [u8],
    /// The body up to the end of the type list: what, with the version, decides the response.
    raw: &'a [u8],
}

impl<'a> Query<'a> {
    fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let handle = r.bytes()?;
        let count = r.u32()? as usize;
        let left = r.left();
        let indexes = r.take(
            count
                .checked_mul(4)
                .filter(|&n| n <= left)
                .ok_or(WireError::ArrayTooLong { count, max: (left / 4).min(message::MAX_ARRAY) })?,
        )?;
        let count = r.u32()? as usize;
        let (start, max) = (body.len() - r.left(), (r.left() / 4).min(message::MAX_ARRAY));
        if count > max {
            return Err(WireError::ArrayTooLong { count, max });
        }
        for _ in 0..count {
            r.bytes()?;
        }
        let end = body.len() - r.left();
        Ok(Self { handle, indexes, types: &body[start..end], raw: &body[..end] })
    }

    fn indexes(&self) -> impl Iterator<Item = u32> + 'a {
        self.indexes.chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn types(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut r = Reader::new(self.types);
        std::iter::from_fn(move || r.bytes().ok())
    }
}

/// The identifier a handle names; a handle without a slash is a prefix (`88.100` is
/// `0.NA/88.100`, as CNRI's server reads it).
fn identifier(handle: &[u8]) -> Option<Identifier> {
    let text = std::str::from_utf8(handle).ok()?;
    if text.contains('/') { Identifier::parse(text).ok() } else { Identifier::prefix_record(text).ok() }
}

/// CNRI's selection: a value is returned when its index is listed or its type matches, and all
/// are when both lists are empty. A type matches ignoring ASCII case; a requested type ending in
/// `.` also matches the types below it (`URL.` matches `URL` and `URL.mirror`).
fn selects(value: &Value, indexes: &[u32], types: &[&[u8]]) -> bool {
    if indexes.is_empty() && types.is_empty() {
        return true;
    }
    let kind = value.kind.as_bytes();
    indexes.contains(&value.index)
        || types.iter().any(|t| match t.strip_suffix(b".") {
            Some(base) => {
                kind.eq_ignore_ascii_case(base) || (kind.len() >= t.len() && kind[..t.len()].eq_ignore_ascii_case(t))
            }
            None => kind.eq_ignore_ascii_case(t),
        })
}

/// The number a response code travels as in `version`: a prefix referral is SERVER_BACKUP (7)
/// and INVALID_VALUE is VALUE_ALREADY_EXISTS (201) to clients before 2.5, as CNRI sends them.
fn wire_code(code: ResponseCode, version: Version) -> u32 {
    match code {
        ResponseCode::PrefixReferral if version < Version::new(2, 5) => 7,
        ResponseCode::InvalidValue if version < Version::new(2, 5) => 201,
        code => code.number(),
    }
}

/// A response with `code` and an error body (the request digest when asked for, then the
/// message as UTF-8).
fn error(request: &Request<'_>, code: ResponseCode, text: &str, now: u32, out: &mut Vec<u8>) -> Envelope {
    let version = request.envelope.suggested.min(message::MAX_VERSION);
    request.respond(wire_code(code, version), now, out, |out| write_bytes(out, text.as_bytes()))
}

/// [`error`], noting its body for the cache.
fn error_written(
    request: &Request<'_>,
    code: ResponseCode,
    text: &str,
    now: u32,
    out: &mut Vec<u8>,
) -> (Envelope, Written) {
    let version = request.envelope.suggested.min(message::MAX_VERSION);
    respond(request, wire_code(code, version), now, out, |out| write_bytes(out, text.as_bytes()))
}

/// The answer for an identifier at or below a delegation. For a prefix record
/// (`0.NA/88.100.5.1`) it is CNRI's prefix referral: PREFIX_REFERRAL with an empty handle and
/// the delegation's public `HS_SITE` and `HS_SERV` values typed `HS_SITE.PREFIX` and
/// `HS_SERV.PREFIX`, which CNRI's client follows. Any other identifier gets SERVER_NOT_RESP
/// (301), CNRI's answer for a handle not homed at the server: its clients find the right node
/// through the prefix record, which the top-level node answers.
fn referral(
    request: &Request<'_>,
    version: Version,
    id: &Identifier,
    delegation: &crate::record::Record,
    now: u32,
    out: &mut Vec<u8>,
) -> (Envelope, Written) {
    let delegated = delegation.identifier.as_str();
    if id.record_prefix().is_none() || version < Version::new(2, 5) {
        let text = format!("{id} is served by the node named in {delegated}");
        let code = if id.record_prefix().is_some() {
            ResponseCode::PrefixReferral
        } else {
            ResponseCode::ServerNotResponsible
        };
        return error_written(request, code, &text, now, out);
    }
    let referred: Vec<(&Value, String)> = delegation
        .values
        .iter()
        .filter(|v| v.is_public())
        .filter_map(|v| {
            let kind = [types::SITE, types::SERV].into_iter().find(|k| v.is_type(k))?;
            Some((v, format!("{kind}.PREFIX")))
        })
        .collect();
    respond(request, wire_code(ResponseCode::PrefixReferral, version), now, out, |out| {
        write_bytes(out, b"");
        write_u32(out, referred.len() as u32);
        referred.iter().for_each(|(v, kind)| write_value(out, v, kind));
    })
}

/// A HandleValue: index, timestamp, TTL type and TTL, permissions, type, data, references.
fn write_value(out: &mut Vec<u8>, value: &Value, kind: &str) {
    let clamp = |t: i64| u32::try_from(t.max(0)).unwrap_or(u32::MAX);
    write_u32(out, value.index);
    write_u32(out, clamp(value.timestamp));
    match value.ttl {
        Ttl::Relative(s) => {
            out.push(0);
            write_u32(out, s);
        }
        Ttl::Absolute(t) => {
            out.push(1);
            write_u32(out, clamp(t));
        }
    }
    let p = value.permissions;
    let bit = |on: u8, wire: u8| if p.has(on) { wire } else { 0 };
    out.push(
        bit(Permissions::ADMIN_READ, 0x08)
            | bit(Permissions::ADMIN_WRITE, 0x04)
            | bit(Permissions::PUBLIC_READ, 0x02)
            | bit(Permissions::PUBLIC_WRITE, 0x01),
    );
    write_bytes(out, kind.as_bytes());
    write_bytes(out, &value.data);
    write_u32(out, value.references.len() as u32);
    for r in &value.references {
        write_bytes(out, r.identifier.as_bytes());
        write_u32(out, r.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_cnri_s_union_with_dotted_type_prefixes() {
        let url = Value::new(1, "URL", "x", 0);
        let mirror = Value::new(2, "url.mirror", "x", 0);
        let email = Value::new(3, "EMAIL", "x", 0);
        let picked = |indexes: &[u32], types: &[&[u8]]| -> Vec<u32> {
            [&url, &mirror, &email].into_iter().filter(|v| selects(v, indexes, types)).map(|v| v.index).collect()
        };
        assert_eq!(picked(&[], &[]), [1, 2, 3]);
        assert_eq!(picked(&[], &[b"url"]), [1]);
        assert_eq!(picked(&[], &[b"URL."]), [1, 2]);
        assert_eq!(picked(&[3], &[b"URL"]), [1, 3], "index or type");
        assert_eq!(picked(&[9], &[b"UR"]), Vec::<u32>::new());
    }

    #[test]
    fn values_encode_as_cnri_writes_them() {
        // The notes' example: 1 URL https://example.org/, timestamp 0x65000000.
        let v = Value::new(1, "URL", "https://example.org/", 0x6500_0000);
        let mut out = Vec::new();
        write_value(&mut out, &v, &v.kind);
        let expected = ["00000001", "65000000", "00", "00015180", "0e", "00000003", "55524c", "00000014"].concat()
            + "68747470733a2f2f6578616d706c652e6f72672f00000000";
        assert_eq!(hex::encode(&out), expected);
        assert_eq!(out.len(), 49);
    }

    #[test]
    fn old_clients_get_old_codes() {
        assert_eq!(wire_code(ResponseCode::PrefixReferral, Version::new(2, 4)), 7);
        assert_eq!(wire_code(ResponseCode::PrefixReferral, Version::new(2, 5)), 303);
        assert_eq!(wire_code(ResponseCode::InvalidValue, Version::new(2, 3)), 201);
        assert_eq!(wire_code(ResponseCode::OperationNotSupported, Version::new(2, 11)), 5);
    }
}
