//! A small Handle protocol client: `idnode resolve --protocol handle`. One anonymous
//! RESOLUTION over TCP or UDP, written with the same codec the node reads, the answer read with
//! the same bounds (a response over UDP is reassembled from its numbered 492-byte chunks).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::message::{
    ENVELOPE_LEN, Envelope, HEADER_LEN, Header, MAX_VERSION, Reader, UDP_CHUNK, WireError, op_flags, opcode,
    write_bytes, write_u32,
};
use crate::identifier::Identifier;

/// The answer to a resolution.
#[derive(Debug)]
pub struct Resolved {
    /// The Handle response code (1 SUCCESS, 100 HANDLE_NOT_FOUND, ...).
    pub code: u32,
    /// The version the node answered in.
    pub version: (u8, u8),
    /// `(index, type, data)` of each value returned; for an error, none.
    pub values: Vec<(u32, String, Vec<u8>)>,
    /// The node's reason, for an error answer.
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the answer is no Handle message: {0}")]
    Wire(#[from] WireError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the answer is for request {got}, not {sent}")]
    OtherRequest { sent: u32, got: u32 },
}

/// Asks `server` for `id`'s public values, over TCP when `tcp`, else UDP; `timeout` bounds the
/// whole exchange.
pub fn resolve(server: SocketAddr, id: &Identifier, tcp: bool, timeout: Duration) -> Result<Resolved, ClientError> {
    let request_id = uuid::Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff;
    let request = request(id, request_id);
    let deadline = Instant::now() + timeout;
    let message = if tcp { over_tcp(server, &request, deadline)? } else { over_udp(server, &request, deadline)? };
    read_answer(&message, request_id)
}

/// Envelope and message of a RESOLUTION of `id`, all types and indexes, public only (what
/// `idnode bench --protocol handle` sends too, with its own request ids).
pub fn request(id: &Identifier, request_id: u32) -> Vec<u8> {
    let mut body = Vec::new();
    write_bytes(&mut body, id.as_str().as_bytes());
    write_u32(&mut body, 0); // no index filter
    write_u32(&mut body, 0); // no type filter
    let header = Header {
        opcode: opcode::RESOLUTION,
        op_flags: op_flags::RECURSIVE | op_flags::CACHE_CERTIFY | op_flags::PUBLIC_ONLY,
        body_length: body.len() as u32,
        ..Header::default()
    };
    let mut message = Vec::with_capacity(HEADER_LEN + body.len() + 4);
    header.encode(&mut message);
    message.extend_from_slice(&body);
    write_u32(&mut message, 0); // no credential
    let envelope = Envelope {
        version: MAX_VERSION,
        suggested: MAX_VERSION,
        flags: 0,
        session_id: 0,
        request_id,
        message_id: 0,
        message_length: message.len() as u32,
    };
    let mut out = Vec::with_capacity(ENVELOPE_LEN + message.len());
    envelope.encode(&mut out);
    out.extend_from_slice(&message);
    out
}

fn left(deadline: Instant) -> Result<Duration, ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(ClientError::Timeout(Duration::ZERO)) } else { Ok(left) }
}

/// The answer's envelope and message over TCP.
pub(super) fn over_tcp(server: SocketAddr, request: &[u8], deadline: Instant) -> Result<Vec<u8>, ClientError> {
    let mut stream = TcpStream::connect_timeout(&server, left(deadline)?)?;
    stream.set_write_timeout(Some(left(deadline)?))?;
    stream.write_all(request)?;
    stream.set_read_timeout(Some(left(deadline)?))?;
    let mut head = [0u8; ENVELOPE_LEN];
    stream.read_exact(&mut head)?;
    let envelope = Envelope::decode(&head)?;
    let mut answer = head.to_vec();
    // Bounded: the envelope's length was checked against the largest message.
    (&mut stream).take(u64::from(envelope.message_length)).read_to_end(&mut answer)?;
    Ok(answer)
}

/// The answer's envelope and message over UDP, reassembled from its datagrams.
fn over_udp(server: SocketAddr, request: &[u8], deadline: Instant) -> Result<Vec<u8>, ClientError> {
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(server)?;
    socket.send(request)?;
    let mut datagram = [0u8; 512];
    let (mut first, mut message, mut got) = (None::<Envelope>, Vec::new(), Vec::new());
    loop {
        socket.set_read_timeout(Some(left(deadline)?))?;
        let n = match socket.recv(&mut datagram) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(ClientError::Timeout(deadline.saturating_duration_since(Instant::now())));
            }
            Err(e) => return Err(e.into()),
        };
        let Ok(envelope) = Envelope::decode(&datagram[..n.min(ENVELOPE_LEN)]) else { continue };
        let total = envelope.message_length as usize;
        let chunk = &datagram[ENVELOPE_LEN.min(n)..n];
        let at = envelope.message_id as usize * UDP_CHUNK;
        if at >= total.max(1) || at + chunk.len() > total {
            continue; // not a chunk of this answer's layout
        }
        let first = *first.get_or_insert(envelope);
        if first.request_id != envelope.request_id || first.message_length != envelope.message_length {
            continue;
        }
        if message.len() != total {
            message = vec![0u8; total];
            got = vec![false; total.div_ceil(UDP_CHUNK).max(1)];
        }
        message[at..at + chunk.len()].copy_from_slice(chunk);
        got[envelope.message_id as usize] = true;
        if got.iter().all(|g| *g) {
            let mut answer = Vec::with_capacity(ENVELOPE_LEN + total);
            Envelope { message_id: 0, ..first }.encode(&mut answer);
            answer.extend_from_slice(&message);
            return Ok(answer);
        }
    }
}

/// Reads the response to request `sent` (envelope and message).
fn read_answer(answer: &[u8], sent: u32) -> Result<Resolved, ClientError> {
    let envelope = Envelope::decode(answer)?;
    if envelope.request_id != sent {
        return Err(ClientError::OtherRequest { sent, got: envelope.request_id });
    }
    let message = &answer[ENVELOPE_LEN..];
    let header = Header::decode(message)?;
    let mut r = Reader::new(message);
    r.take(HEADER_LEN)?;
    let mut body = Reader::new(r.take(header.body_length as usize)?);
    if header.op_flags & op_flags::RETURN_DIGEST != 0 {
        // Not asked for; skip it if a node sends one anyway (a code byte, then the digest).
        let len = match body.u8()? {
            1 => 16,
            2 => 20,
            3 => 32,
            _ => return Err(WireError::Unsupported.into()),
        };
        body.take(len)?;
    }
    let version = (envelope.version.major, envelope.version.minor);
    let mut resolved = Resolved { code: header.response_code, version, values: Vec::new(), message: None };
    // A referral (303) carries values like a success: the sites to ask instead.
    if header.response_code != 1 && header.response_code != 303 {
        resolved.message = body.bytes().ok().map(|m| String::from_utf8_lossy(m).into_owned());
        return Ok(resolved);
    }
    body.bytes()?; // the handle, as asked
    let count = body.u32()?;
    for _ in 0..count {
        let index = body.u32()?;
        body.take(4 + 1 + 4 + 1)?; // timestamp, TTL type, TTL, permissions
        let kind = String::from_utf8_lossy(body.bytes()?).into_owned();
        let data = body.bytes()?.to_vec();
        let references = body.u32()?;
        for _ in 0..references {
            body.bytes()?;
            body.u32()?;
        }
        resolved.values.push((index, kind, data));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_one_the_node_decodes() {
        let id = Identifier::parse("88.100.1/ABC-123").unwrap();
        let bytes = request(&id, 77);
        let envelope = Envelope::decode(&bytes).unwrap();
        let request = super::super::message::Request::decode(envelope, &bytes[ENVELOPE_LEN..]).unwrap();
        assert_eq!((request.envelope.request_id, request.header.opcode), (77, opcode::RESOLUTION));
        assert!(request.credential.is_empty());
    }

    #[test]
    fn an_answer_for_another_request_or_cut_short_is_refused() {
        let id = Identifier::parse("88.100.1/ABC-123").unwrap();
        let bytes = request(&id, 77);
        assert!(matches!(read_answer(&bytes, 78), Err(ClientError::OtherRequest { sent: 78, got: 77 })));
        assert!(read_answer(&bytes[..30], 77).is_err());
    }
}
