//! Zone transfers out (AXFR, RFC 5936; IXFR, RFC 1995), TSIG-signed queries (RFC 8945) and
//! NOTIFY (RFC 1996): what standard DNS secondaries (Knot, NSD, BIND) of the node's zones need.
//!
//! ```text
//! request the fast path did not take (wire::parse: FORMERR, or AXFR/IXFR)
//!    │
//!    ├─ signed (TSIG last) ─ not a transfer ─> key known? MAC? time? ─ no ──> NOTAUTH + TSIG error
//!    │                                           └ yes: answered unsigned by the front end, signed
//!    ├─ AXFR/IXFR over UDP ──> NOTIMP (transfers are TCP only here)
//!    └─ AXFR/IXFR over TCP ──> Verdict::Transfer: the connection calls `transfer` with its peer
//!          zone apex? ── no ──> NOTAUTH
//!          address allowed (`[replication] allow_transfer`)? ── no ──> REFUSED
//!          signed with the key that address needs? ── no ──> REFUSED / NOTAUTH + TSIG error
//!          a transfer slot (`max_transfers`) ──> messages from one snapshot (stream.rs), each
//!          signed, written as the client reads them
//! ```
//!
//! The zone content is in [`walk`]; NOTIFY to the configured secondaries after writes in
//! [`notify`].

pub mod notify;
pub mod stream;
pub mod tsig;
pub mod walk;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::framing::{self, FrameError};
use super::wire::{self, QueryName, rcode};
use super::{Frontend, Scratch, Transport, Verdict, zone};
use crate::config::{Replication, TsigKey};
use tsig::{Check, Signed, Signer};

const NOTAUTH: u8 = 9;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
/// 4: messages made ahead of what the client has read; a slow client holds this many, not the
/// zone.
const AHEAD: usize = 4;

/// The transfer side of the DNS front end: who may transfer, and how many at once.
pub struct Transfers {
    replication: Replication,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Transfers {
    pub fn new(replication: Replication) -> Self {
        let permits = Arc::new(tokio::sync::Semaphore::new(replication.max_transfers.max(1)));
        Self { replication, permits }
    }

    pub fn replication(&self) -> &Replication {
        &self.replication
    }

    fn key(&self, signed: &Signed) -> Option<&TsigKey> {
        self.replication.keys.iter().find(|k| k.name == signed.key_name)
    }
}

impl Frontend {
    /// A request the fast path refused as malformed (`rejected`, or `None`) or that asks for a
    /// transfer: `None` when it is neither signed nor a transfer, and the fast path's answer
    /// stands.
    pub(super) fn answer_signed(
        &self,
        request: &[u8],
        transport: Transport,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Option<Verdict> {
        let signed = match tsig::find(request) {
            Ok(signed) => signed,
            Err(tsig::Malformed) => return None,
        };
        // The question's type, read without decoding the message: malformed queries come by the
        // million in a flood, and most end here.
        let question = question_bytes(request)?;
        let qtype = u16::from_be_bytes([question[question.len() - 4], question[question.len() - 3]]);
        if qtype == TYPE_AXFR || qtype == TYPE_IXFR {
            return Some(match transport {
                Transport::Tcp => Verdict::Transfer,
                Transport::Udp => {
                    *out = reply(request, rcode::NOTIMP);
                    Verdict::Respond
                }
            });
        }
        let signed = signed?;
        let now = crate::record::unix_now().max(0) as u64;
        let Some(key) = self.transfers.key(&signed) else {
            *out = reply(request, NOTAUTH);
            tsig::append_error(out, &signed, tsig::BADKEY, None, now);
            return Some(Verdict::Respond);
        };
        if let Check::Bad(error) = signed.check(request, key, now) {
            tracing::info!(key = %signed.key_name, error, "a signed query failed its TSIG check");
            *out = reply(request, NOTAUTH);
            tsig::append_error(out, &signed, error, Some(key), now);
            return Some(Verdict::Respond);
        }
        let unsigned = tsig::strip(request, &signed);
        if tsig::find(&unsigned).ok().flatten().is_some() {
            *out = reply(request, rcode::FORMERR);
            return Some(Verdict::Respond);
        }
        match self.handle(&unsigned, transport, scratch, out) {
            Verdict::Respond => {}
            // A recursive node's miss or a nested transfer: not served signed.
            _ => *out = reply(request, rcode::REFUSED),
        }
        // Over UDP the answer and its TSIG must fit what the client takes: else TC, and the
        // client asks again over TCP.
        let edns = wire::parse(&unsigned, &mut QueryName::default()).ok().and_then(|q| q.edns);
        if out.len() + tsig::record_len(&signed.key_wire) > self.limit(transport, edns) {
            let question_end = question_bytes(out).map_or(12, |q| 12 + q.len());
            out.truncate(question_end);
            out[2] |= 0x02;
            out[6..12].fill(0);
        }
        Signer::new(key.clone(), signed.key_wire.clone(), signed.mac.clone()).sign(out, now);
        Some(Verdict::Respond)
    }

    /// Serves the transfer `request` asks for to `peer` on `stream` (see the module docs): `Ok`
    /// when the connection may go on serving queries.
    pub async fn transfer(
        &self,
        request: &[u8],
        peer: SocketAddr,
        stream: &mut TcpStream,
        timeout: Duration,
    ) -> Result<(), FrameError> {
        let mut framed = Vec::new();
        let send = async |message: Vec<u8>, stream: &mut TcpStream, framed: &mut Vec<u8>| {
            framing::write(stream, &message, framed, Some(timeout)).await
        };
        let prepared = match self.prepare(request, peer) {
            Ok(prepared) => prepared,
            Err(refusal) => return send(refusal, stream, &mut framed).await,
        };
        let Ok(permit) = tokio::time::timeout(timeout, self.transfers.permits.clone().acquire_owned()).await else {
            return send(reply(request, rcode::SERVFAIL), stream, &mut framed).await;
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(AHEAD);
        let authoritative = self.authoritative.clone();
        let zones_since = self.authoritative.zones_since();
        let started = std::time::Instant::now();
        let producer = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let Prepared { request, apex, signer, kind } = prepared;
            let zones = authoritative.zones();
            let Some(zone) = zones.iter().find(|z| z.apex_wire() == apex.as_slice()) else {
                return Err(stream::StreamError::Closed);
            };
            let view = authoritative.registry().log_view()?;
            let mut sink = |message: Vec<u8>| tx.blocking_send(message).is_ok();
            let mut packer = stream::Packer::new(&request, signer, &mut sink);
            stream::transfer(&request, zone, &zones, &view, zones_since, &mut packer)?;
            let (messages, bytes) = packer.finish()?;
            Ok((kind, view.serial(), messages, bytes))
        });
        while let Some(message) = rx.recv().await {
            if let Err(e) = send(message, stream, &mut framed).await {
                producer.abort();
                return Err(e);
            }
        }
        match producer.await {
            Ok(Ok((kind, serial, messages, bytes))) => {
                let ms = started.elapsed().as_millis() as u64;
                tracing::info!(%peer, kind, serial, messages, bytes, ms, "zone transfer sent");
                Ok(())
            }
            Ok(Err(e)) => {
                // Records may be out already: only closing tells the client the transfer failed.
                tracing::warn!(%peer, error = %e, "zone transfer failed; closing the connection");
                let _ = stream.shutdown().await;
                Err(FrameError::Io(std::io::Error::other(e.to_string())))
            }
            Err(e) => Err(FrameError::Io(std::io::Error::other(e.to_string()))),
        }
    }

    /// Checks a transfer request: what to send, or the refusal to send instead.
    fn prepare(&self, request: &[u8], peer: SocketAddr) -> Result<Prepared, Vec<u8>> {
        let message = Message::from_vec(request).map_err(|_| reply(request, rcode::FORMERR))?;
        let query = message.queries.first().filter(|_| message.queries.len() == 1);
        let query = query.ok_or_else(|| reply(request, rcode::FORMERR))?;
        let ixfr = u16::from(query.query_type()) == TYPE_IXFR;
        let kind = if ixfr { "IXFR" } else { "AXFR" };
        let mut name = QueryName::default();
        let apex = zone::wire_of(query.name());
        let zones = self.authoritative.zones();
        let at_apex = name.read(&apex) && zone::holding(&zones, &name).is_some_and(|(_, own)| own == 0);
        let refuse = |why: &str, rcode: u8| {
            tracing::info!(%peer, zone = %query.name(), kind, "zone transfer refused: {why}");
            reply(request, rcode)
        };
        if !at_apex {
            return Err(refuse("not a zone this node serves", NOTAUTH));
        }
        let signed = tsig::find(request).map_err(|_| reply(request, rcode::FORMERR))?;
        let allowed: Vec<_> =
            self.transfers.replication.allow.iter().filter(|a| a.network.contains(&peer.ip())).collect();
        if allowed.is_empty() {
            return Err(refuse("the address is not in [replication] allow_transfer", rcode::REFUSED));
        }
        let now = crate::record::unix_now().max(0) as u64;
        let signer = match &signed {
            Some(signed) => {
                let Some(key) = self.transfers.key(signed) else {
                    let mut out = refuse("unknown TSIG key", NOTAUTH);
                    tsig::append_error(&mut out, signed, tsig::BADKEY, None, now);
                    return Err(out);
                };
                if let Check::Bad(error) = signed.check(request, key, now) {
                    let mut out = refuse("TSIG check failed", NOTAUTH);
                    tsig::append_error(&mut out, signed, error, Some(key), now);
                    return Err(out);
                }
                if !allowed.iter().any(|a| a.key.as_ref().is_none_or(|k| k == key)) {
                    return Err(refuse("signed with a key this address may not use", rcode::REFUSED));
                }
                Some(Signer::new(key.clone(), signed.key_wire.clone(), signed.mac.clone()))
            }
            None if allowed.iter().any(|a| a.key.is_none()) => None,
            None => return Err(refuse("not signed with the key [replication] requires", rcode::REFUSED)),
        };
        let client_serial = match ixfr {
            true => {
                let soa = message.authorities.iter().find_map(|r| match &r.data {
                    RData::SOA(soa) if r.record_type() == RecordType::SOA => Some(soa.serial),
                    _ => None,
                });
                Some(soa.ok_or_else(|| reply(request, rcode::FORMERR))?)
            }
            false => None,
        };
        let flags = u16::from_be_bytes([request[2], request[3]]) & 0x7910;
        let opt = message.edns.as_ref().map(|_| 1232);
        let question = question_bytes(request).ok_or_else(|| reply(request, rcode::FORMERR))?;
        let request = stream::Request { id: message.metadata.id, copied_flags: flags, question, opt, client_serial };
        Ok(Prepared { request, apex, signer, kind })
    }
}

/// A transfer that passed its checks.
struct Prepared {
    request: stream::Request,
    /// The zone's apex, lower-case wire form.
    apex: Vec<u8>,
    signer: Option<Signer>,
    kind: &'static str,
}

/// The question section of a request with one question whose name is uncompressed (a question
/// has nothing before it to point to) and a DNS name (255 bytes at most), as it came.
fn question_bytes(request: &[u8]) -> Option<Vec<u8>> {
    if request.get(4..6) != Some(&[0, 1]) {
        return None;
    }
    let mut at = 12;
    loop {
        match usize::from(*request.get(at)?) {
            0 => break,
            len if len <= 63 && at + 1 + len - 12 < wire::MAX_NAME => at += 1 + len,
            _ => return None,
        }
    }
    request.get(12..at + 5).map(<[u8]>::to_vec)
}

/// An answer with no records: the request's ID, opcode, RD and CD, its question when it has
/// one it can be read from, and `rcode`.
fn reply(request: &[u8], rcode: u8) -> Vec<u8> {
    let id = request.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let flags = request.get(2..4).map_or(0, |b| u16::from_be_bytes([b[0], b[1]])) & 0x7910;
    let question = question_bytes(request);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(0x8000 | flags | u16::from(rcode)).to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(question.as_deref().unwrap_or_default());
    out
}
