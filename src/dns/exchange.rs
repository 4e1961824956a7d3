//! One query to one server, for every DNS client in the crate: the recursor asking upstream
//! servers and `idnode resolve`. Over UDP, then over TCP when the answer is truncated; or over
//! TCP at once. The query gets a fresh random id here (`random_id`, the crate's one query-id
//! generator), and only a response with that id and the same question counts.
//!
//! Every exchange binds a UDP socket of its own, so the kernel gives each query a fresh
//! random source port; with the random query id that is RFC 5452's defence against forged
//! answers (about 30 bits an attacker must guess, where a few long-lived sockets on fixed
//! ports would leave 16). The alternative, a fixed pool of long-lived sockets demultiplexed by
//! id and question, would need its own port randomisation and a shared receive loop; the cost
//! it saves, one bind and close per upstream query, is small on a path that waits a round
//! trip anyway, and the recursor's in-flight cap bounds how many such sockets are open at once.
//!
//! The receive buffer is 1233 bytes on the stack, one more than the 1232-byte EDNS payload we
//! advertise, instead of 64 KiB on the heap; a datagram that fills it broke the limit we set and
//! is asked again over TCP. Over TCP the answer is read into a buffer of exactly its framed
//! length ([`super::framing`]). Timeouts are the caller's: it knows how long it can wait.

use std::io;
use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::net::{TcpStream, UdpSocket};

use super::framing::{self, MAX_MESSAGE};

/// 1232: the EDNS UDP payload we advertise (DNS Flag Day 2020).
const UDP_PAYLOAD: u16 = 1232;
/// 12: the DNS header, after which the question starts.
const HEADER: usize = 12;
const FLAG_QR: u8 = 0x80;
const FLAG_TC: u8 = 0x02;

/// How to send the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// UDP, and again over TCP when the answer is truncated (or overflows our payload size).
    Udp,
    /// TCP only.
    Tcp,
}

/// The response that answers our query.
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    /// Whether it came over TCP after a truncated UDP answer.
    pub retried_over_tcp: bool,
}

/// A query for `qname`/`qtype` with EDNS and our payload size, as dig sends it; id 0
/// ([`exchange`] sets a random one).
pub fn query(qname: &Name, qtype: u16) -> io::Result<Vec<u8>> {
    let mut msg = Message::new(0, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(qname.clone(), RecordType::from(qtype)));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    msg.set_edns(edns);
    msg.to_vec().map_err(io::Error::other)
}

/// Sends `request` (a query, see [`query`]) to `server` under a fresh random id, written into
/// its first two bytes; returns the response that answers this very query (id and question
/// match; anything else arriving on the socket is ignored).
pub async fn exchange(server: SocketAddr, request: &mut [u8], via: Via) -> io::Result<Reply> {
    let Some(id) = request.get_mut(..2) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a query is at least a header"));
    };
    id.copy_from_slice(&random_id().to_be_bytes());
    if via == Via::Tcp {
        return Ok(Reply { bytes: over_tcp(server, request).await?, retried_over_tcp: false });
    }
    let socket = UdpSocket::bind(unspecified(server)).await?;
    socket.connect(server).await?;
    socket.send(request).await?;
    let mut buf = [0u8; UDP_PAYLOAD as usize + 1];
    loop {
        let n = socket.recv(&mut buf).await?;
        let Some(datagram) = buf.get(..n) else { continue };
        if !answers(request, datagram) {
            continue;
        }
        let truncated = datagram.get(2).is_some_and(|flags| flags & FLAG_TC != 0);
        if n <= usize::from(UDP_PAYLOAD) && !truncated {
            return Ok(Reply { bytes: datagram.to_vec(), retried_over_tcp: false });
        }
        break;
    }
    drop(socket);
    Ok(Reply { bytes: over_tcp(server, request).await?, retried_over_tcp: true })
}

async fn over_tcp(server: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    framing::write(&mut stream, request, &mut Vec::new(), None).await?;
    let mut response = Vec::new();
    if !framing::read(&mut stream, &mut response, MAX_MESSAGE, None).await? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if !answers(request, &response) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the TCP answer is not for our question"));
    }
    Ok(response)
}

/// Whether `response` answers `request`: the same id, QR set, one question, the same question
/// ignoring ASCII case (RFC 5452 9.1; the source address is checked by the connected socket).
fn answers(request: &[u8], response: &[u8]) -> bool {
    let Some(end) = question_end(request) else { return false };
    match (request.get(..end), response.get(..end)) {
        // Both are `end` bytes long and `end` lies past the header: the indexing holds.
        (Some(asked), Some(got)) => {
            got[..2] == asked[..2]
                && got[2] & FLAG_QR != 0
                && got[4..6] == [0, 1]
                && got[HEADER..].eq_ignore_ascii_case(&asked[HEADER..])
        }
        _ => false,
    }
}

/// Where the question of our own request ends (its name is never compressed).
fn question_end(message: &[u8]) -> Option<usize> {
    let mut at = HEADER;
    loop {
        let len = usize::from(*message.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        at += len;
    }
    Some(at + 4).filter(|&end| end <= message.len())
}

/// The wildcard address of `server`'s family, port 0: where a client socket binds.
pub(super) fn unspecified(server: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr =
        if server.is_ipv4() { std::net::Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
    SocketAddr::new(ip, 0)
}

/// A query id from the operating system's random source (through a v4 UUID).
pub(super) fn random_id() -> u16 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u16::from_be_bytes([bytes[0], bytes[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answer_to_our_question_counts() {
        let request = query(&Name::from_ascii("a.id.example.").unwrap(), 16).unwrap();
        let mut response = request.clone();
        response[2] |= FLAG_QR;
        assert!(answers(&request, &response));
        response[HEADER + 1] = b'A';
        assert!(answers(&request, &response), "case does not matter");
        response[HEADER + 1] = b'b';
        assert!(!answers(&request, &response), "another name");
        let mut other_id = request.clone();
        other_id[0] ^= 0xff;
        other_id[2] |= FLAG_QR;
        assert!(!answers(&request, &other_id));
        assert!(!answers(&request, &request), "a query is no answer");
        assert!(!answers(&request, &response[..HEADER + 3]), "too short");
        assert!(!answers(&[], &response));
    }
}
