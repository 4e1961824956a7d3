//! A small DNS client for `idnode resolve`: one TXT query, over UDP with a TCP retry on TC (or
//! over TCP at once), and the TXT layout read back into values.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use super::mapping;
use crate::identifier::Identifier;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{identifier} is too long for a DNS name (255 bytes); resolve it over HTTP instead")]
    NameTooLong { identifier: String },
    #[error("cannot reach {server}: {source}")]
    Io { server: SocketAddr, source: std::io::Error },
    #[error("the answer from {server} is not a DNS message: {reason}")]
    Malformed { server: SocketAddr, reason: String },
}

/// A resolution's outcome: the response code and the values found.
#[derive(Debug)]
pub struct Resolution {
    /// The name asked for, in presentation form.
    pub name: String,
    /// The response code in words (`Non-Existent Domain`), for people; `ok`: it was NOERROR.
    pub rcode: String,
    pub ok: bool,
    pub authoritative: bool,
    /// Whether the UDP answer was truncated and the query was repeated over TCP.
    pub retried_over_tcp: bool,
    pub values: Vec<(u32, String, Vec<u8>)>,
}

/// The DNS name under which `id` is served below `apex`, in presentation form (for dig).
pub fn dns_name(id: &Identifier, apex: &Name) -> Result<String, ClientError> {
    Ok(mapping::presentation(&name_for(id, apex)?))
}

fn name_for(id: &Identifier, apex: &Name) -> Result<Name, ClientError> {
    mapping::identifier_name(id, apex).ok_or_else(|| ClientError::NameTooLong { identifier: id.to_string() })
}

pub fn resolve(
    server: SocketAddr,
    id: &Identifier,
    apex: &Name,
    tcp: bool,
    timeout: Duration,
) -> Result<Resolution, ClientError> {
    let name = name_for(id, apex)?;
    let mut request = txt_query(id, apex)?;
    request[..2].copy_from_slice(&rand_id().to_be_bytes());
    let io = |source| ClientError::Io { server, source };
    let mut retried = false;
    let bytes = if tcp {
        exchange_tcp(server, &request, timeout).map_err(io)?
    } else {
        let bytes = exchange_udp(server, &request, timeout).map_err(io)?;
        // The TC bit: bit 9 of the flags word.
        if bytes.len() >= 4 && bytes[2] & 0x02 != 0 {
            retried = true;
            exchange_tcp(server, &request, timeout).map_err(io)?
        } else {
            bytes
        }
    };
    let response = Message::from_vec(&bytes).map_err(|e| ClientError::Malformed { server, reason: e.to_string() })?;
    let values = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(txt) => {
                let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &**s).collect();
                mapping::parse_txt(&strings)
            }
            _ => None,
        })
        .collect();
    Ok(Resolution {
        name: mapping::presentation(&name),
        rcode: response.metadata.response_code.to_string(),
        ok: response.metadata.response_code == hickory_proto::op::ResponseCode::NoError,
        authoritative: response.metadata.authoritative,
        retried_over_tcp: retried,
        values,
    })
}

/// A TXT query for `id` under `apex` with EDNS (1232-byte payload), as dig sends it; id 0.
pub fn txt_query(id: &Identifier, apex: &Name) -> Result<Vec<u8>, ClientError> {
    let mut msg = Message::new(0, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(name_for(id, apex)?, RecordType::TXT));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    msg.to_vec().map_err(|_| ClientError::NameTooLong { identifier: id.to_string() })
}

fn exchange_udp(server: SocketAddr, request: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let local = super::recursor::unspecified(server);
    let socket = UdpSocket::bind(local)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.connect(server)?;
    socket.send(request)?;
    let mut buf = vec![0; 65535];
    loop {
        let n = socket.recv(&mut buf)?;
        // Ignore anything that is not the answer to our query id.
        if n >= 2 && buf[..2] == request[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

fn exchange_tcp(server: SocketAddr, request: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&server, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed)?;
    let mut len = [0; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// A query id that differs between runs, without pulling in a random number crate.
fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}
