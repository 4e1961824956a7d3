//! Sites: where a prefix is served. An `HS_SITE` value on a prefix record (`0.NA/88.105` in the
//! parent's registry) names the servers of the child node that serves `88.105`; every
//! protocol's referral (DNS NS and glue, the HTTP API's referral answer) is built from it.
//!
//! The stored bytes are Handle's SiteInfo layout (RFC 3651 3.2.2, as Handle.Net encodes it),
//! and the JSON form is Handle.Net's `site` data format. DNS has no place in that format, so the
//! DNS port travels as the site attribute `dns-port` (default 53), which Handle clients ignore.

use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::record::types;

/// The attribute that carries the port the site's servers answer DNS on.
pub const DNS_PORT_ATTRIBUTE: &str = "dns-port";
/// 53: the DNS port, when a site does not say.
const DEFAULT_DNS_PORT: u16 = 53;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    #[serde(default = "one")]
    pub version: u16,
    #[serde(default = "protocol_version")]
    pub protocol_version: String,
    #[serde(default = "one")]
    pub serial_number: u16,
    #[serde(default = "yes")]
    pub primary_site: bool,
    #[serde(default)]
    pub multi_primary: bool,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub server_id: u32,
    pub address: IpAddr,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    #[serde(default = "yes")]
    pub query: bool,
    #[serde(default)]
    pub admin: bool,
    /// `UDP`, `TCP`, `HTTP` or `HTTPS`.
    pub protocol: String,
    pub port: u32,
}

fn one() -> u16 {
    1
}

fn yes() -> bool {
    true
}

fn protocol_version() -> String {
    "2.10".into()
}

const PROTOCOLS: [&str; 4] = ["UDP", "TCP", "HTTP", "HTTPS"];

impl Site {
    /// The port the servers answer DNS on.
    pub fn dns_port(&self) -> u16 {
        self.attributes
            .iter()
            .find(|a| a.name == DNS_PORT_ATTRIBUTE)
            .and_then(|a| a.value.parse().ok())
            .unwrap_or(DEFAULT_DNS_PORT)
    }

    /// Checks what the binary layout cannot hold.
    pub fn validate(&self) -> Result<(), String> {
        let (major, minor) = self.protocol_version.split_once('.').ok_or("protocolVersion must be MAJOR.MINOR")?;
        major.parse::<u8>().map_err(|_| "protocolVersion must be MAJOR.MINOR")?;
        minor.parse::<u8>().map_err(|_| "protocolVersion must be MAJOR.MINOR")?;
        if self.servers.is_empty() {
            return Err("a site needs at least one server".into());
        }
        for s in &self.servers {
            for i in &s.interfaces {
                if !PROTOCOLS.contains(&i.protocol.to_ascii_uppercase().as_str()) {
                    return Err(format!(
                        "server {}: protocol {:?} is not UDP, TCP, HTTP or HTTPS",
                        s.server_id, i.protocol
                    ));
                }
            }
        }
        if let Some(a) = self.attributes.iter().find(|a| a.name == DNS_PORT_ATTRIBUTE) {
            a.value
                .parse::<u16>()
                .map_err(|_| format!("attribute {DNS_PORT_ATTRIBUTE} must be a port, not {:?}", a.value))?;
        }
        Ok(())
    }

    /// Handle's SiteInfo bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.version.to_be_bytes());
        let (major, minor) = self.protocol_version.split_once('.').unwrap_or(("2", "10"));
        out.push(major.parse().unwrap_or(2));
        out.push(minor.parse().unwrap_or(10));
        out.extend_from_slice(&self.serial_number.to_be_bytes());
        out.push(if self.primary_site { 0x80 } else { 0 } | if self.multi_primary { 0x40 } else { 0 });
        out.push(0); // hash option: by identifier
        put_bytes(&mut out, b""); // hash filter
        out.extend_from_slice(&(self.attributes.len() as u32).to_be_bytes());
        for a in &self.attributes {
            put_bytes(&mut out, a.name.as_bytes());
            put_bytes(&mut out, a.value.as_bytes());
        }
        out.extend_from_slice(&(self.servers.len() as u32).to_be_bytes());
        for s in &self.servers {
            out.extend_from_slice(&s.server_id.to_be_bytes());
            let v6 = match s.address {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.extend_from_slice(&v6.octets());
            put_bytes(&mut out, b""); // public key: none
            out.extend_from_slice(&(s.interfaces.len() as u32).to_be_bytes());
            for i in &s.interfaces {
                out.push(match (i.admin, i.query) {
                    (true, true) => 3,
                    (true, false) => 1,
                    _ => 2,
                });
                let protocol = PROTOCOLS.iter().position(|p| p.eq_ignore_ascii_case(&i.protocol)).unwrap_or(1);
                out.push(protocol as u8);
                out.extend_from_slice(&i.port.to_be_bytes());
            }
        }
        out
    }

    /// Reads Handle's SiteInfo bytes; `None` unless they are exactly one well-formed site.
    pub fn decode(data: &[u8]) -> Option<Self> {
        let mut r = Reader(data);
        let version = r.u16()?;
        let (major, minor) = (r.u8()?, r.u8()?);
        let serial_number = r.u16()?;
        let mask = r.u8()?;
        let _hash_option = r.u8()?;
        let _hash_filter = r.bytes()?;
        let attributes = (0..r.u32()?)
            .map(|_| Some(Attribute { name: r.string()?, value: r.string()? }))
            .collect::<Option<Vec<_>>>()?;
        let servers = (0..r.u32()?)
            .map(|_| {
                let server_id = r.u32()?;
                let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(r.take(16)?).ok()?);
                let address = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
                let _public_key = r.bytes()?;
                let interfaces = (0..r.u32()?)
                    .map(|_| {
                        let kind = r.u8()?;
                        let protocol = PROTOCOLS.get(usize::from(r.u8()?))?.to_string();
                        Some(Interface { query: kind & 2 != 0, admin: kind & 1 != 0, protocol, port: r.u32()? })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Server { server_id, address, interfaces })
            })
            .collect::<Option<Vec<_>>>()?;
        r.0.is_empty().then_some(Self {
            version,
            protocol_version: format!("{major}.{minor}"),
            serial_number,
            primary_site: mask & 0x80 != 0,
            multi_primary: mask & 0x40 != 0,
            attributes,
            servers,
        })
    }
}

/// The sites a prefix record names: its `HS_SITE` values (those that decode). Which prefix
/// record delegates a name is the node core's question ([`crate::node::Zones`]).
pub fn sites_in(record: &crate::record::Record) -> Vec<Site> {
    record.values.iter().filter(|v| v.is_type(types::SITE)).filter_map(|v| Site::decode(&v.data)).collect()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Site {
        serde_json::from_str(
            r#"{"serialNumber":3,
                "attributes":[{"name":"dns-port","value":"5353"},{"name":"desc","value":"secondary node 105"}],
                "servers":[{"serverId":1,"address":"127.0.0.15","interfaces":[
                    {"query":true,"admin":true,"protocol":"TCP","port":2641},
                    {"protocol":"HTTP","port":8000}]},
                           {"serverId":2,"address":"::1"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn json_and_binary_round_trip() {
        let site = sample();
        assert_eq!(site.dns_port(), 5353);
        assert_eq!(site.protocol_version, "2.10");
        assert!(site.validate().is_ok());
        assert_eq!(Site::decode(&site.encode()), Some(site));
    }

    #[test]
    fn garbage_and_bad_fields_are_refused() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert_eq!(Site::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut site = sample();
        site.servers[0].interfaces[0].protocol = "SMTP".into();
        assert!(site.validate().unwrap_err().contains("SMTP"));
        site.servers.clear();
        assert!(site.validate().is_err());
    }
}
