//! Child nodes' health as this node sees it: a background prober that, every
//! `[ops] health_interval_secs`, asks each delegation's first server for the SOA of the
//! delegated zone over DNS and keeps what it saw (up, down, an error code; when; how long it
//! took). Bounded: at most [`MAX_PROBED`] delegations a round, [`TIMEOUT`] each, all at once.
//! Never on the query path: the status page only reads the last results.
//!
//! Only the addresses the delegations name are contacted (the servers the node refers its own
//! clients to anyway); an unspecified or multicast address is not.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::delegations::{self, Found};
use crate::dns::{DnsName, exchange, mapping};
use crate::node::Node;

/// 64: delegations probed a round (the national plan's tens of secondary nodes, with room).
pub const MAX_PROBED: usize = 64;
/// 1 s: how long a child node may take to answer (a LAN or loopback round trip is well under
/// 10 ms; the recursor waits as long for one server).
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// 6: SOA, what a resolver would ask a zone's server to see whether it serves the zone.
const SOA: u16 = 6;

/// What the last probe of one delegation saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// `up` (NOERROR), `error` (an answer with another RCODE) or `down` (no answer, or none
    /// in time).
    pub state: &'static str,
    /// The server asked, `address:port`; empty when there was none to ask.
    pub server: String,
    /// RFC 3339, UTC.
    pub checked: String,
    /// Round-trip time; `None` without an answer.
    pub latency_ms: Option<f64>,
    /// The RCODE, or why there was no answer.
    pub detail: String,
}

/// The last probe of every delegation probed, by prefix.
#[derive(Debug, Default)]
pub struct Health {
    probes: Mutex<HashMap<String, Probe>>,
}

impl Health {
    /// The last probe of `prefix`'s delegation, if it was probed.
    pub fn get(&self, prefix: &str) -> Option<Probe> {
        self.probes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(prefix).cloned()
    }

    /// Replaces every result: delegations that went away are forgotten.
    fn replace(&self, probes: HashMap<String, Probe>) {
        *self.probes.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = probes;
    }
}

/// Probes the delegations below `node`'s zones every `every` until `token` is cancelled; the
/// first round at once.
pub async fn run(health: Arc<Health>, node: Arc<Node>, apex: DnsName, every: Duration, token: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let listed = {
            let node = node.clone();
            tokio::task::spawn_blocking(move || delegations::find(&node, MAX_PROBED)).await
        };
        let found = match listed {
            Ok(Ok((found, _))) => found,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list the delegations to probe; trying again later");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing the delegations to probe failed");
                continue;
            }
        };
        let round = probe_all(found, &apex);
        tokio::select! {
            _ = token.cancelled() => break,
            probes = round => health.replace(probes),
        }
    }
}

/// Probes every delegation at once; each takes at most [`TIMEOUT`].
async fn probe_all(found: Vec<Found>, apex: &DnsName) -> HashMap<String, Probe> {
    let mut probes = JoinSet::new();
    for delegation in found {
        let qname = mapping::prefix_zone_name(&delegation.prefix, apex);
        probes.spawn(async move { (delegation.prefix.clone(), probe(&delegation, qname).await) });
    }
    let mut out = HashMap::new();
    while let Some(done) = probes.join_next().await {
        if let Ok((prefix, probe)) = done {
            out.insert(prefix, probe);
        }
    }
    out
}

/// The server a delegation's probe asks: its first site's first server that has an address
/// one may send to, on the site's DNS port.
pub fn target(delegation: &Found) -> Option<SocketAddr> {
    delegation.sites.iter().find_map(|site| {
        let server = site.servers.iter().find(|s| probeable(s.address))?;
        Some(SocketAddr::new(server.address, site.dns_port()))
    })
}

fn probeable(address: IpAddr) -> bool {
    !address.is_unspecified() && !address.is_multicast() && address != IpAddr::from([255, 255, 255, 255])
}

async fn probe(delegation: &Found, qname: Option<DnsName>) -> Probe {
    let checked = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let down = |server: String, detail: String| Probe {
        state: "down",
        server,
        checked: checked.clone(),
        latency_ms: None,
        detail,
    };
    let Some(server) = target(delegation) else {
        return down(String::new(), "no server address to ask".into());
    };
    let Some(qname) = qname else {
        return down(server.to_string(), "the prefix has no DNS name".into());
    };
    let mut request = match exchange::query(&qname, SOA) {
        Ok(request) => request,
        Err(e) => return down(server.to_string(), e.to_string()),
    };
    let started = Instant::now();
    let reply = tokio::time::timeout(TIMEOUT, exchange::exchange(server, &mut request, exchange::Via::Udp)).await;
    let latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    match reply {
        Err(_) => down(server.to_string(), format!("no answer in {} ms", TIMEOUT.as_millis())),
        Ok(Err(e)) => down(server.to_string(), e.to_string()),
        Ok(Ok(reply)) => {
            let rcode = reply.bytes.get(3).map_or(255, |b| b & 0x0f);
            let state = if rcode == 0 { "up" } else { "error" };
            Probe { state, server: server.to_string(), checked, latency_ms, detail: rcode_name(rcode).into() }
        }
    }
}

fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "another RCODE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::site::{Attribute, Server, Site};

    fn found(addresses: &[&str], port: &str) -> Found {
        let servers = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| Server {
                server_id: i as u32 + 1,
                address: a.parse().unwrap(),
                public_key: Vec::new(),
                interfaces: Vec::new(),
            })
            .collect();
        let site = Site {
            version: 1,
            protocol_version: "2.10".into(),
            serial_number: 1,
            primary_site: true,
            multi_primary: false,
            hash_option: 2,
            attributes: vec![Attribute { name: "dns-port".into(), value: port.into() }],
            servers,
        };
        Found { prefix: "88.105".into(), zone: String::new(), sites: vec![site] }
    }

    #[test]
    fn the_target_is_the_first_server_one_may_send_to_on_the_sites_dns_port() {
        assert_eq!(target(&found(&["0.0.0.0", "127.0.0.1"], "5353")), Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(target(&found(&["224.0.0.1"], "53")), None);
        assert_eq!(target(&found(&[], "53")), None);
    }

    #[tokio::test]
    async fn a_silent_server_is_down_after_the_timeout_and_an_answering_one_up() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port().to_string();
        let apex = DnsName::from_ascii("id.example.").unwrap();
        let qname = mapping::prefix_zone_name("88.105", &apex);
        let probe_silent = probe(&found(&["127.0.0.1"], &port), qname.clone()).await;
        assert_eq!((probe_silent.state, probe_silent.latency_ms), ("down", None), "{probe_silent:?}");

        // A server that answers every query with NOERROR (its own bytes, QR set).
        let answering = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = answering.local_addr().unwrap().port().to_string();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = answering.recv_from(&mut buf).await.unwrap();
            buf[2] |= 0x84;
            answering.send_to(&buf[..n], from).await.unwrap();
        });
        let up = probe(&found(&["127.0.0.1"], &port), qname).await;
        assert_eq!((up.state, up.detail.as_str(), up.server), ("up", "NOERROR", format!("127.0.0.1:{port}")));
        assert!(up.latency_ms.is_some());
    }
}
