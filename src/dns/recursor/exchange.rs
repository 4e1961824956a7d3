//! One query to one upstream server: over UDP, then over TCP when the answer is truncated.
//!
//! Every exchange binds a UDP socket of its own, so the kernel gives each query a fresh
//! random source port; with the random query id that is RFC 5452's defence against forged
//! answers (about 30 bits an attacker must guess, where a few long-lived sockets on fixed
//! ports would leave 16). The alternative, a fixed pool of long-lived sockets demultiplexed by
//! id and question, would need its own port randomisation and a shared receive loop; the cost
//! it saves, one bind and close per upstream query, is small on a path that waits a round
//! trip anyway, and the in-flight cap bounds how many such sockets are open at once.
//!
//! What was wasteful is gone: the receive buffer is 1233 bytes on the stack, one more than the
//! 1232-byte EDNS payload we advertise, instead of 64 KiB on the heap; a datagram that fills it
//! broke the limit we set and is asked again over TCP. Over TCP the answer is read into a
//! buffer of exactly its framed length.

use std::io;
use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// 1232: the EDNS UDP payload we advertise to upstream servers (DNS Flag Day 2020).
const UDP_PAYLOAD: u16 = 1232;
/// 12: the DNS header, after which the question starts.
const HEADER: usize = 12;
const FLAG_QR: u8 = 0x80;
const FLAG_TC: u8 = 0x02;

/// Asks `server` about `qname`/`qtype`; the bytes of the response that answers this very query
/// (id and question match; anything else arriving on the socket is ignored).
pub(super) async fn exchange(server: SocketAddr, qname: &Name, qtype: u16) -> io::Result<Vec<u8>> {
    let request = request(qname, qtype)?;
    let socket = UdpSocket::bind(unspecified(server)).await?;
    socket.connect(server).await?;
    socket.send(&request).await?;
    let mut buf = [0u8; UDP_PAYLOAD as usize + 1];
    loop {
        let n = socket.recv(&mut buf).await?;
        let Some(datagram) = buf.get(..n) else { continue };
        if !answers(&request, datagram) {
            continue;
        }
        let truncated = datagram.get(2).is_some_and(|flags| flags & FLAG_TC != 0);
        if n <= usize::from(UDP_PAYLOAD) && !truncated {
            return Ok(datagram.to_vec());
        }
        break;
    }
    drop(socket);
    over_tcp(server, &request).await
}

async fn over_tcp(server: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(request.len()).map_err(io::Error::other)?;
    let mut framed = Vec::with_capacity(2 + request.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut response).await?;
    if !answers(request, &response) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the TCP answer is not for our question"));
    }
    Ok(response)
}

/// The query: a random id, the question, EDNS with our payload size.
fn request(qname: &Name, qtype: u16) -> io::Result<Vec<u8>> {
    let mut msg = Message::new(random_id(), MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(qname.clone(), RecordType::from(qtype)));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    msg.set_edns(edns);
    msg.to_vec().map_err(io::Error::other)
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
pub(in crate::dns) fn unspecified(server: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr =
        if server.is_ipv4() { std::net::Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
    SocketAddr::new(ip, 0)
}

/// A query id from the operating system's random source (through a v4 UUID).
fn random_id() -> u16 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u16::from_be_bytes([bytes[0], bytes[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answer_to_our_question_counts() {
        let request = request(&Name::from_ascii("a.id.example.").unwrap(), 16).unwrap();
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
