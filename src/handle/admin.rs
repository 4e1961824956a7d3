//! Administration over the Handle protocol: the requests that need an administrator (creating
//! and deleting identifiers, adding, removing and modifying values, reading non-public values,
//! the national system's login), each challenged ([`super::auth`]) and then run through the node
//! core with the same rights as over HTTP.
//!
//! | opcode | node core call |
//! | --- | --- |
//! | CREATE_HANDLE (100) | `Node::put`, refusing an existing identifier unless the request sets overwrite |
//! | DELETE_HANDLE (101) | `Node::delete` |
//! | ADD_VALUE (102) | `Node::put` with [`ValueChange::Add`]: each index must be free |
//! | REMOVE_VALUE (103) | `Node::delete` of those indexes |
//! | MODIFY_VALUE (104) | `Node::put` with [`ValueChange::Modify`]: each index must be taken |
//! | LIST_HANDLES (105), LIST_DERIVED_PREFIXES (106) | `Node::list`, `Node::list_prefixes`, a page a message |
//! | HOME_NA (300), UNHOME_NA (301) | `Node::home`: a server administrator homes or unhomes a prefix |
//! | LIST_HOMED_NAS (302) | the zones the node serves (`Node::zones`), as `0.NA/` prefix records |
//! | RESOLUTION (1), public-only clear | `Node::resolve` as the administrator |
//! | LOGIN_ID_SYSTEM (2001) | none: the connection is logged in as the administrator |
//!
//! Every request run as an administrator counts against its daily quota (`Node::count_request`).
//! The quota refusals 603-605 go only to a client that logged in with LOGIN_ID_SYSTEM; others
//! get RC_ERROR with the same message ([`Connection::refusal_code`]).

use std::net::IpAddr;
use std::time::Instant;

use super::auth::{Answer, Pending};
use super::message::{self, Envelope, Reader, Request, WireError, op_flags, opcode, write_bytes};
use super::proof::{PublicKey, secret_answer_matches};
use super::session::InSession;
use super::{Frontend, error, identifier};
use crate::auth::Admin;
use crate::code::ResponseCode;
use crate::identifier::Identifier;
use crate::node::{Page, PutOptions, ValueChange};
use crate::record::{Permissions, Reference, Ttl, Value, types};

/// What the node knows of the client a message came from.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// The client's address (failed proofs back off per address).
    pub source: Option<IpAddr>,
    /// The administrator the connection logged in as (LOGIN_ID_SYSTEM): its later requests
    /// run as that administrator without a challenge, as the national SDKs expect.
    login: Option<Admin>,
    /// A listing whose first message was just written and whose next ones the transport must
    /// send ([`Frontend::next_page`]).
    listing: Option<Listing>,
    /// The session the message being answered belongs to (checked by its MAC), if any.
    session: Option<InSession>,
    /// The client asked for the site (GET_SITE_INFO) on this connection with a session id of
    /// its own, as Teleinfo's SDK does (CAICT's asks with session id 0).
    asked_site: bool,
    /// The client knows the national quota codes 601-605: it asked for the site with a session
    /// id and then logged in (LOGIN_ID_SYSTEM), as Teleinfo's SDK does and CAICT's does not.
    national_codes: bool,
    /// The client opened this connection asking for the site with session id 0 and kept it
    /// open, as CAICT's SDK opens its channels: it answers a challenge only to log in, so an
    /// anonymous resolution with public-only clear gets the public values, not a challenge.
    never_challenged: bool,
}

impl Connection {
    pub fn new(source: Option<IpAddr>) -> Self {
        Self {
            source,
            login: None,
            listing: None,
            session: None,
            asked_site: false,
            national_codes: false,
            never_challenged: false,
        }
    }

    /// Notes that the client asked for the site on this connection, with the session id
    /// `session` (0: none).
    pub(super) fn asked_site(&mut self, session: u32) {
        match session {
            0 => self.never_challenged = true,
            _ => self.asked_site = true,
        }
    }

    /// Whether an anonymous resolution with public-only clear on this connection may be
    /// challenged (see `never_challenged`).
    pub(super) fn takes_challenges(&self) -> bool {
        !self.never_challenged
    }

    /// The administrator this connection logged in as, if any.
    pub fn login(&self) -> Option<&Admin> {
        self.login.as_ref()
    }

    /// Who the message being answered comes from: the administrator the connection logged in
    /// as, or the one its session authenticated as.
    pub(super) fn principal(&self) -> Option<&Admin> {
        self.login.as_ref().or(self.session.as_ref().and_then(|s| s.admin.as_ref()))
    }

    /// The session of the message being answered, if it was signed in one.
    pub(super) fn session_id(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.id)
    }

    /// Sets the session of the message being answered.
    pub(super) fn enter(&mut self, session: Option<InSession>) {
        self.session = session;
    }

    /// The code a refusal with `code` is sent with: the national quota codes (603-605) only to
    /// a client known to decode them: one that asked for the site with a session id of its own
    /// and then logged in with LOGIN_ID_SYSTEM on this connection, as Teleinfo's SDK logs in. Any
    /// other gets RC_ERROR: CNRI's decoder throws "Unknown responseCode" on them, CAICT's SDK
    /// (which asks for the site with session id 0) reports "未知响应码: 604" without the
    /// message, and Teleinfo's would close the connection and
    /// wait out its timeout on a code it does not know. The refusal's message names the
    /// national code either way.
    pub(super) fn refusal_code(&self, code: ResponseCode) -> ResponseCode {
        if code.is_national() && !self.national_codes { ResponseCode::Error } else { code }
    }

    /// The listing to go on with after the message just written, if any.
    pub fn take_listing(&mut self) -> Option<Listing> {
        self.listing.take()
    }
}

/// 500: names per message of a listing (CNRI's server sends 50; more per message costs fewer
/// round trips, and 500 names of at most 255 bytes stay far below the message limit).
const NAMES_PER_MESSAGE: usize = 500;

/// A listing in progress (LIST_HANDLES, LIST_DERIVED_PREFIXES): one message per page, each
/// but the last with the continuous flag, as CNRI's client reads them until one without it.
#[derive(Debug, Clone)]
pub struct Listing {
    envelope: Envelope,
    /// The request message, decoded again for each page.
    message: Vec<u8>,
    admin: Admin,
    prefix: String,
    /// The last name sent (identifier listings go on after it).
    after: Option<String>,
    /// Pages sent (derived prefix listings go on by page).
    page: usize,
}

/// Whether `opcode` names a request that always needs an administrator.
pub(super) fn is_administration(opcode: u32) -> bool {
    matches!(
        opcode,
        opcode::CREATE_HANDLE
            | opcode::DELETE_HANDLE
            | opcode::ADD_VALUE
            | opcode::REMOVE_VALUE
            | opcode::MODIFY_VALUE
            | opcode::LIST_HANDLES
            | opcode::LIST_DERIVED_PREFIXES
            | opcode::HOME_NA
            | opcode::UNHOME_NA
            | opcode::LIST_HOMED_NAS
            | opcode::LOGIN_ID_SYSTEM
    )
}

impl Frontend {
    /// Runs `request` (whose whole message is `message`) as the connection's administrator, or
    /// challenges the client for one.
    pub(super) fn administer(
        &self,
        request: &Request<'_>,
        message: &[u8],
        now: u32,
        conn: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Envelope {
        // A malformed request is refused before anyone is asked to prove anything.
        if let Err(text) = Body::decode(request.header.opcode, request.body) {
            return error(request, ResponseCode::ProtocolError, &text, now, out);
        }
        // A mirror refuses writes before asking for a proof it could not check (its primary's
        // secrets are sealed with the primary's key).
        let writes = !matches!(
            request.header.opcode,
            opcode::LIST_HANDLES | opcode::LIST_DERIVED_PREFIXES | opcode::LIST_HOMED_NAS | opcode::LOGIN_ID_SYSTEM
        );
        if let Some(primary) = self.node.primary().filter(|_| writes) {
            let e = crate::node::WriteError::Mirror { primary: primary.to_owned() };
            return error(request, e.code(), &e.to_string(), now, out);
        }
        match conn.principal().cloned() {
            Some(admin) if request.header.opcode != opcode::LOGIN_ID_SYSTEM => {
                self.run_as(&admin, request, message, now, conn, out)
            }
            _ => self.challenge(request, message, conn, now, out),
        }
    }

    /// AUTHENTICATION_NEEDED: keeps the request and sends the nonce and the request's digest,
    /// the envelope's session id naming the challenge (inside a session, the session's id).
    pub(super) fn challenge(
        &self,
        request: &Request<'_>,
        message: &[u8],
        conn: &Connection,
        now: u32,
        out: &mut Vec<u8>,
    ) -> Envelope {
        let version = request.envelope.suggested.min(message::MAX_VERSION);
        let digest = message::request_digest(version, request.signed);
        let session = conn.session.as_ref().map(|s| s.id);
        let (id, nonce) =
            self.challenges.issue(&request.envelope, message, digest, session, conn.source, Instant::now());
        // A challenge always carries the digest.
        let mut asked = *request;
        asked.header.op_flags |= op_flags::RETURN_DIGEST;
        let mut envelope = asked.respond(ResponseCode::AuthenticationNeeded.number(), now, out, |out| {
            write_bytes(out, &nonce);
        });
        envelope.session_id = id;
        envelope
    }

    /// A RESPONSE_TO_CHALLENGE: checks the proof, then answers the kept request as the
    /// administrator proven (with the kept request's opcode and this message's request id).
    pub(super) fn answer_challenge(
        &self,
        request: &Request<'_>,
        now: u32,
        conn: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Envelope {
        let Some(pending) = self.challenges.take(request.envelope.session_id, Instant::now()) else {
            let text = "no such challenge: it was never sent, already answered, or is older than 60 s";
            return error(request, ResponseCode::AuthenticationTimeout, text, now, out);
        };
        let Ok(answer) = Answer::decode(request.body) else {
            return error(request, ResponseCode::ProtocolError, "the answer to the challenge is malformed", now, out);
        };
        let envelope = Envelope { request_id: request.envelope.request_id, ..pending.envelope };
        let original = match Request::decode(envelope, &pending.message) {
            Ok(original) => original,
            Err(e) => return error(request, ResponseCode::ProtocolError, &e.to_string(), now, out),
        };
        match self.prove(&answer, &pending, conn.source) {
            Ok(admin) if pending.session.is_some_and(|id| self.sessions.authenticate(id, &admin).is_err()) => {
                let text = "the answer is not from the identity the session was set up for";
                error(&original, ResponseCode::AuthenticationFailed, text, now, out)
            }
            Ok(admin) if original.header.opcode == opcode::LOGIN_ID_SYSTEM => {
                tracing::info!(target: "audit", user = %admin.user(), "logged in over the Handle protocol");
                conn.login = Some(admin);
                conn.national_codes = conn.asked_site;
                original.respond(ResponseCode::Success.number(), now, out, |_| {})
            }
            Ok(admin) => self.run_as(&admin, &original, &pending.message, now, conn, out),
            Err((code, text)) => error(&original, code, &text, now, out),
        }
    }

    /// The administrator `answer` proves, checked against the keys the registry holds for it.
    fn prove(
        &self,
        answer: &Answer<'_>,
        pending: &Pending,
        source: Option<IpAddr>,
    ) -> Result<Admin, (ResponseCode, String)> {
        let admin = std::str::from_utf8(answer.admin)
            .ok()
            .and_then(|a| Identifier::parse(a).ok())
            .ok_or((ResponseCode::InvalidAdmin, "the administrator is not a valid identifier".to_owned()))?;
        let signed = pending.signed();
        let result = match answer.kind {
            b"HS_SECKEY" => {
                let Some(key) = self.node.seal_key() else {
                    let text = "this node checks no secret keys over the Handle protocol: it has no seal key";
                    return Err((ResponseCode::AuthenticationFailed, text.to_owned()));
                };
                self.node.prove(&admin, answer.index, types::SECRET_KEY, source, |record, value| {
                    key.unseal(&record.identifier, value.index, &value.data)
                        .is_some_and(|secret| secret_answer_matches(&secret, &signed, answer.proof))
                })
            }
            b"HS_PUBKEY" => self.node.prove(&admin, answer.index, types::PUBKEY, source, |_, value| {
                // The identity an SM2 signature covers is the handle as the client sent it.
                let signer = String::from_utf8_lossy(answer.admin);
                PublicKey::decode(&value.data).is_some_and(|key| key.answer_matches(&signer, &signed, answer.proof))
            }),
            _ => {
                return Err((
                    ResponseCode::AuthenticationFailed,
                    "the key type is not HS_SECKEY or HS_PUBKEY".to_owned(),
                ));
            }
        };
        result.map_err(|e| (e.code(), e.to_string()))
    }

    /// HOME_NA or UNHOME_NA of `handle`: `0.NA/PREFIX`, or the bare prefix as CNRI's tools
    /// also send it.
    fn home(&self, admin: &Admin, request: &Request<'_>, handle: &[u8], now: u32, out: &mut Vec<u8>) -> Envelope {
        let text = String::from_utf8_lossy(handle);
        let prefix = match text.split_once('/') {
            Some((authority, prefix)) if authority.eq_ignore_ascii_case(crate::identifier::PREFIX_AUTHORITY) => prefix,
            Some(_) => {
                let text = "HOME_NA and UNHOME_NA name a prefix record (0.NA/PREFIX)";
                return error(request, ResponseCode::InvalidHandle, text, now, out);
            }
            None => &text,
        };
        match self.node.home(admin, prefix, request.header.opcode == opcode::HOME_NA) {
            Ok(_) => request.respond(ResponseCode::Success.number(), now, out, |_| {}),
            Err(e) => error(request, e.code(), &e.to_string(), now, out),
        }
    }

    /// Runs `request` (whose whole message is `message`) as `admin`.
    fn run_as(
        &self,
        admin: &Admin,
        request: &Request<'_>,
        message: &[u8],
        now: u32,
        conn: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Envelope {
        let body = match Body::decode(request.header.opcode, request.body) {
            Ok(body) => body,
            Err(text) => return error(request, ResponseCode::ProtocolError, &text, now, out),
        };
        if request.header.opcode == opcode::RESOLUTION {
            // Counted against the daily quota there, as a logged-in client's resolutions are.
            return self.resolution(request, Some(admin), &[], conn, now, out);
        }
        if let Err(e) = self.node.count_request(admin) {
            tracing::warn!(target: "audit", user = %admin.user(), error = %e, "refused");
            return error(request, conn.refusal_code(e.code()), &e.to_string(), now, out);
        }
        if request.header.opcode == opcode::LIST_HOMED_NAS {
            // The prefixes this node serves, configured and homed, as prefix records (a node
            // serving the whole namespace, the zone "", homes no prefix of its own).
            let homed: Vec<String> =
                self.node.zones().prefixes().iter().filter(|z| !z.is_empty()).map(|z| format!("0.NA/{z}")).collect();
            return request.respond(ResponseCode::Success.number(), now, out, |out| {
                message::write_u32(out, homed.len() as u32);
                homed.iter().for_each(|n| write_bytes(out, n.as_bytes()));
            });
        }
        if matches!(request.header.opcode, opcode::HOME_NA | opcode::UNHOME_NA) {
            return self.home(admin, request, body.handle, now, out);
        }
        let Some(id) = identifier(body.handle) else {
            return error(request, ResponseCode::InvalidHandle, "the handle is not a valid identifier", now, out);
        };
        if matches!(request.header.opcode, opcode::LIST_HANDLES | opcode::LIST_DERIVED_PREFIXES) {
            let Some(prefix) = id.record_prefix() else {
                return error(request, ResponseCode::InvalidHandle, "a listing names a prefix (0.NA/PREFIX)", now, out);
            };
            let envelope = request.envelope;
            let (admin, prefix, message) = (admin.clone(), prefix.to_owned(), message.to_vec());
            let mut listing = Listing { envelope, message, admin, prefix, after: None, page: 0 };
            let first = self.next_page(&mut listing, now, out);
            if first.1 {
                conn.listing = Some(listing);
            }
            return first.0;
        }
        let put = |values: Vec<Value>, options: PutOptions| self.node.put(admin, &id, values, &options).map(drop);
        let result = match request.header.opcode {
            opcode::CREATE_HANDLE => {
                let no_overwrite = request.header.op_flags & op_flags::OVERWRITE == 0;
                put(body.values, PutOptions { no_overwrite, ..PutOptions::default() })
            }
            opcode::DELETE_HANDLE => self.node.delete(admin, &id, None).map(drop),
            opcode::ADD_VALUE => {
                put(body.values, PutOptions { change: Some(ValueChange::Add), ..PutOptions::default() })
            }
            opcode::MODIFY_VALUE => {
                put(body.values, PutOptions { change: Some(ValueChange::Modify), ..PutOptions::default() })
            }
            opcode::REMOVE_VALUE => self.node.delete(admin, &id, Some(&body.indexes)).map(drop),
            op => return error(request, ResponseCode::OperationNotSupported, &format!("opcode {op}"), now, out),
        };
        match result {
            // CNRI's server returns the created handle; the other operations answer with no body.
            Ok(()) if request.header.opcode == opcode::CREATE_HANDLE => {
                request.respond(ResponseCode::Success.number(), now, out, |out| write_bytes(out, body.handle))
            }
            Ok(()) => request.respond(ResponseCode::Success.number(), now, out, |_| {}),
            Err(e) => error(request, conn.refusal_code(e.code()), &e.to_string(), now, out),
        }
    }
}

impl Frontend {
    /// Writes the next message of `listing` into `out`: its envelope, and whether more follow
    /// (then the transport calls again). A refusal (no ListHandles right) is the only message.
    pub fn next_page(&self, listing: &mut Listing, now: u32, out: &mut Vec<u8>) -> (Envelope, bool) {
        let request = match Request::decode(listing.envelope, &listing.message) {
            Ok(request) => request,
            Err(e) => return (message::protocol_error(&listing.envelope, now, &e.to_string(), out), false),
        };
        let derived = request.header.opcode == opcode::LIST_DERIVED_PREFIXES;
        // Identifiers go on after the last name sent (one seek however deep); derived prefixes,
        // few, by page number.
        let names = match derived {
            true => {
                let page = Page { number: listing.page, size: NAMES_PER_MESSAGE, after: None };
                self.node.list_prefixes(&listing.admin, &listing.prefix, &page)
            }
            false => {
                let page = Page { number: 0, size: NAMES_PER_MESSAGE, after: listing.after.take() };
                self.node.list(&listing.admin, &listing.prefix, &page)
            }
        };
        let names = match names {
            Ok(listed) => listed.names,
            Err(e) => return (error(&request, e.code(), &e.to_string(), now, out), false),
        };
        let more = names.len() == NAMES_PER_MESSAGE;
        let mut page = request;
        page.header.op_flags &= !op_flags::CONTINUOUS;
        if more {
            page.header.op_flags |= op_flags::CONTINUOUS;
        }
        let envelope = page.respond(ResponseCode::Success.number(), now, out, |out| {
            message::write_u32(out, names.len() as u32);
            names.iter().for_each(|n| write_bytes(out, n.as_bytes()));
        });
        listing.page += 1;
        listing.after = names.last().cloned();
        (envelope, more)
    }
}

/// The body of an administration request: the handle, then values (create, add, modify) or
/// indexes (remove); LOGIN_ID_SYSTEM's identity and index read as a handle.
struct Body<'a> {
    handle: &'a [u8],
    values: Vec<Value>,
    indexes: Vec<u32>,
}

impl<'a> Body<'a> {
    fn decode(op: u32, body: &'a [u8]) -> Result<Self, String> {
        let mut r = Reader::new(body);
        let handle = r.bytes().map_err(|e| e.to_string())?;
        let (mut values, mut indexes) = (Vec::new(), Vec::new());
        match op {
            opcode::CREATE_HANDLE | opcode::ADD_VALUE | opcode::MODIFY_VALUE => {
                let count = r.u32().map_err(|e| e.to_string())? as usize;
                // Each value takes at least 26 bytes: no count beyond what the body could hold.
                if count > r.left() / 26 + 1 || count > crate::record::MAX_VALUES {
                    return Err(format!("{count} values cannot be in this request"));
                }
                for _ in 0..count {
                    values.push(decode_value(&mut r)?);
                }
            }
            opcode::REMOVE_VALUE => indexes = r.u32_array().map_err(|e| e.to_string())?,
            opcode::LOGIN_ID_SYSTEM => {
                r.u32().map_err(|e| e.to_string())?;
            }
            _ => {}
        }
        Ok(Self { handle, values, indexes })
    }
}

/// A HandleValue as CNRI encodes it: index, timestamp, TTL type and TTL, permissions, type,
/// data, references. The timestamp is the node's to set and is ignored.
fn decode_value(r: &mut Reader<'_>) -> Result<Value, String> {
    let wire = |e: WireError| e.to_string();
    let index = r.u32().map_err(wire)?;
    let _timestamp = r.u32().map_err(wire)?;
    let ttl = match (r.u8().map_err(wire)?, r.u32().map_err(wire)?) {
        (0, seconds) => Ttl::Relative(seconds),
        (1, at) => Ttl::Absolute(i64::from(at)),
        (kind, _) => return Err(format!("value {index}: TTL type {kind} is neither 0 nor 1")),
    };
    let bits = r.u8().map_err(wire)?;
    let kind = std::str::from_utf8(r.bytes().map_err(wire)?)
        .map_err(|_| format!("value {index}: the type is not UTF-8"))?
        .to_owned();
    let data = r.bytes().map_err(wire)?.to_vec();
    let count = r.u32().map_err(wire)? as usize;
    if count > r.left() / 8 {
        return Err(format!("value {index}: {count} references cannot be in this request"));
    }
    let mut references = Vec::with_capacity(count);
    for _ in 0..count {
        let identifier = std::str::from_utf8(r.bytes().map_err(wire)?)
            .map_err(|_| format!("value {index}: a reference is not UTF-8"))?
            .to_owned();
        references.push(Reference { identifier, index: r.u32().map_err(wire)? });
    }
    let permissions = Permissions::new(bits & 0x08 != 0, bits & 0x04 != 0, bits & 0x02 != 0, bits & 0x01 != 0);
    Ok(Value { index, kind, data, ttl, timestamp: 0, permissions, references })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_as_the_resolution_encodes_them() {
        let mut v = Value::new(7, "URL", "https://example.org/", 0);
        v.references.push(Reference { identifier: "88.100/X".into(), index: 1 });
        v.ttl = Ttl::Absolute(1_900_000_000);
        let mut wire = Vec::new();
        super::super::write_value(&mut wire, &v, &v.kind);
        let decoded = decode_value(&mut Reader::new(&wire)).unwrap();
        assert_eq!(decoded, v);
    }

    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        let mut body = Vec::new();
        write_bytes(&mut body, b"88.100/X");
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Body::decode(opcode::CREATE_HANDLE, &body).is_err());
        let mut value = Vec::new();
        super::super::write_value(&mut value, &Value::new(1, "URL", "x", 0), "URL");
        let n = value.len();
        value[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_value(&mut Reader::new(&value)).is_err(), "reference count");
        value[8] = 9;
        assert!(decode_value(&mut Reader::new(&value)).is_err(), "TTL type");
    }
}
