//! A small DNS client for `idnode resolve` and `idnode health`: one query through [`super::exchange`] (over UDP
//! with a TCP retry on TC, or over TCP at once), and the TXT layout read back into values. Also
//! builds the TXT queries `idnode bench` sends.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};

use super::exchange::{self, Via};
use super::mapping;
use crate::identifier::Identifier;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{identifier} is too long for a DNS name (255 bytes); resolve it over HTTP instead")]
    NameTooLong { identifier: String },
    #[error("cannot reach {server}")]
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

/// Asks `server` for the TXT records of `id` under `apex`, within `timeout` in all. Blocking:
/// it runs the exchange on a runtime of its own, so it must not be called from async code.
pub fn resolve(
    server: SocketAddr,
    id: &Identifier,
    apex: &Name,
    tcp: bool,
    timeout: Duration,
) -> Result<Resolution, ClientError> {
    let name = name_for(id, apex)?;
    let mut request = txt_query(id, apex)?;
    let via = if tcp { Via::Tcp } else { Via::Udp };
    let (response, retried) = ask(server, &mut request, via, timeout)?;
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

/// Asks `server` for the SOA record of `apex` over UDP and returns the response code in words:
/// any DNS answer within `timeout` means the node's DNS path is serving (`idnode health`, the
/// container image's health check), whatever it knows of the apex.
pub fn probe(server: SocketAddr, apex: &Name, timeout: Duration) -> Result<String, ClientError> {
    let mut request = exchange::query(apex, RecordType::SOA.into())
        .map_err(|e| ClientError::Malformed { server, reason: e.to_string() })?;
    let (response, _) = ask(server, &mut request, Via::Udp, timeout)?;
    Ok(response.metadata.response_code.to_string())
}

/// Sends `request` to `server` and parses the answer, within `timeout` in all. Blocking: it runs
/// the exchange on a runtime of its own, so it must not be called from async code.
fn ask(server: SocketAddr, request: &mut [u8], via: Via, timeout: Duration) -> Result<(Message, bool), ClientError> {
    let io = |source| ClientError::Io { server, source };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io)?;
    // The timer is made inside the runtime: it needs one to exist.
    let reply = runtime
        .block_on(async { tokio::time::timeout(timeout, exchange::exchange(server, request, via)).await })
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        .map_err(io)?;
    let response =
        Message::from_vec(&reply.bytes).map_err(|e| ClientError::Malformed { server, reason: e.to_string() })?;
    Ok((response, reply.retried_over_tcp))
}

/// A TXT query for `id` under `apex` with EDNS (1232-byte payload), as dig sends it; id 0.
pub fn txt_query(id: &Identifier, apex: &Name) -> Result<Vec<u8>, ClientError> {
    exchange::query(&name_for(id, apex)?, RecordType::TXT.into())
        .map_err(|_| ClientError::NameTooLong { identifier: id.to_string() })
}
