//! Sites: where a prefix is served. An `HS_SITE` value on a prefix record (`0.NA/88.105` in the
//! parent's registry) names the servers of the child node that serves `88.105`; every
//! protocol's referral (DNS NS and glue, the HTTP API's referral answer) is built from it.
//!
//! The stored bytes are Handle's SiteInfo layout (RFC 3651 3.2.2, as Handle.Net encodes it),
//! and the JSON form is Handle.Net's `site` data format. DNS has no place in that format, so the
//! DNS port travels as the site attribute `dns-port` (default 53), which Handle clients ignore.
//! An IPv4 address is written as CNRI writes it, 12 zero bytes and the 4 of the address (CNRI's
//! `ServerInfo.isIPv4`); the IPv4-mapped form (`::ffff:a.b.c.d`) earlier versions wrote is
//! still read. A server's public key travels as `HS_PUBKEY` bytes, in JSON as CNRI's
//! `siteinfo.json` writes it (`{"format":"key","value":{"kty":"RSA","n":..,"e":..}}`).

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
    /// How a multi-server site spreads identifiers over its servers: 0 by prefix, 1 by
    /// suffix, 2 by the whole identifier (CNRI's default, and what an absent field means in
    /// CNRI's JSON, which writes the field only when it is not 2).
    #[serde(default = "by_whole_identifier", skip_serializing_if = "is_by_whole_identifier")]
    pub hash_option: u8,
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
    /// The server's public key as `HS_PUBKEY` data; empty when it has none (then a client
    /// cannot verify certified answers from it).
    #[serde(default, with = "public_key_json")]
    pub public_key: Vec<u8>,
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

fn by_whole_identifier() -> u8 {
    2
}

fn is_by_whole_identifier(option: &u8) -> bool {
    *option == 2
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
            // CNRI reads an address whose first 12 bytes are zero as IPv4: `::1` would be 0.0.0.1.
            let v4_like = matches!(s.address, IpAddr::V6(v6) if v6.octets()[..12].iter().all(|&b| b == 0));
            if v4_like {
                return Err(format!(
                    "server {}: address {} cannot be told from an IPv4 address in a Handle site",
                    s.server_id, s.address
                ));
            }
        }
        if self.hash_option > 2 {
            return Err(format!("hashOption {} is not 0, 1 or 2", self.hash_option));
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
        out.push(self.hash_option);
        put_bytes(&mut out, b""); // hash filter
        out.extend_from_slice(&(self.attributes.len() as u32).to_be_bytes());
        for a in &self.attributes {
            put_bytes(&mut out, a.name.as_bytes());
            put_bytes(&mut out, a.value.as_bytes());
        }
        out.extend_from_slice(&(self.servers.len() as u32).to_be_bytes());
        for s in &self.servers {
            out.extend_from_slice(&s.server_id.to_be_bytes());
            match s.address {
                IpAddr::V4(v4) => {
                    out.extend_from_slice(&[0; 12]);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
            }
            put_bytes(&mut out, &s.public_key);
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
        let hash_option = r.u8()?;
        let _hash_filter = r.bytes()?;
        let attributes = (0..r.u32()?)
            .map(|_| Some(Attribute { name: r.string()?, value: r.string()? }))
            .collect::<Option<Vec<_>>>()?;
        let servers = (0..r.u32()?)
            .map(|_| {
                let server_id = r.u32()?;
                let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(r.take(16)?).ok()?);
                let address = match v6.octets() {
                    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a, b, c, d] => IpAddr::V4([a, b, c, d].into()),
                    _ => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                };
                let public_key = r.bytes()?.to_vec();
                let interfaces = (0..r.u32()?)
                    .map(|_| {
                        let kind = r.u8()?;
                        let protocol = PROTOCOLS.get(usize::from(r.u8()?))?.to_string();
                        Some(Interface { query: kind & 2 != 0, admin: kind & 1 != 0, protocol, port: r.u32()? })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Server { server_id, address, public_key, interfaces })
            })
            .collect::<Option<Vec<_>>>()?;
        r.0.is_empty().then_some(Self {
            version,
            protocol_version: format!("{major}.{minor}"),
            serial_number,
            primary_site: mask & 0x80 != 0,
            multi_primary: mask & 0x40 != 0,
            hash_option,
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

/// `HS_PUBKEY` data for an RSA key: `bytes "RSA_PUB_KEY"`, `u16 0`, `bytes e`, `bytes n`, and
/// 4 zero bytes: CNRI's `Util.getBytesFromPublicKey` sizes its buffer for four length fields
/// and writes three, and its reader ignores what follows the modulus. The integers are written
/// as Java's `BigInteger.toByteArray()` writes them (a leading zero byte when the top bit is
/// set). So the bytes are CNRI's, byte for byte (checked by conformance/handle-java).
pub fn encode_rsa_pubkey(e: &[u8], n: &[u8]) -> Vec<u8> {
    let java = |b: &[u8]| -> Vec<u8> {
        let b = &b[b.iter().take_while(|&&x| x == 0).count().min(b.len().saturating_sub(1))..];
        if b.first().is_some_and(|&x| x & 0x80 != 0) { [&[0][..], b].concat() } else { b.to_vec() }
    };
    let mut out = Vec::with_capacity(n.len() + e.len() + 32);
    put_bytes(&mut out, RSA_PUB_KEY);
    out.extend_from_slice(&0u16.to_be_bytes());
    put_bytes(&mut out, &java(e));
    put_bytes(&mut out, &java(n));
    out.extend_from_slice(&[0; 4]);
    out
}

/// The exponent and modulus of `HS_PUBKEY` data holding an RSA key, leading zeros removed;
/// `None` for any other key type or malformed data. Bytes after the modulus are ignored, as
/// CNRI's `Util.getPublicKeyFromBytes` ignores them.
pub fn decode_rsa_pubkey(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut r = Reader(data);
    if r.bytes()? != RSA_PUB_KEY {
        return None;
    }
    r.u16()?;
    let strip = |b: &[u8]| b[b.iter().take_while(|&&x| x == 0).count()..].to_vec();
    let (e, n) = (strip(r.bytes()?), strip(r.bytes()?));
    (!e.is_empty() && !n.is_empty()).then_some((e, n))
}

const RSA_PUB_KEY: &[u8] = b"RSA_PUB_KEY";

/// A server's `publicKey` in CNRI's JSON: an RSA key as `{"format":"key","value":{"kty":"RSA",
/// "n":..,"e":..}}` (base64url without padding, as a JSON Web Key), anything else as
/// `{"format":"base64","value":..}`; read back from those, from `hex` and `string`, or from a
/// plain string (CNRI's reader takes it as the key's UTF-8 bytes).
mod public_key_json {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Jwk {
        kty: String,
        n: String,
        e: String,
    }

    /// A typed value, fields in CNRI's order.
    #[derive(Serialize)]
    struct Typed<T> {
        format: &'static str,
        value: T,
    }

    pub(super) fn serialize<S: Serializer>(key: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match super::decode_rsa_pubkey(key) {
            Some((e, n)) => {
                let jwk = Jwk { kty: "RSA".into(), n: URL_SAFE_NO_PAD.encode(n), e: URL_SAFE_NO_PAD.encode(e) };
                Typed { format: "key", value: jwk }.serialize(s)
            }
            None => Typed { format: "base64", value: STANDARD.encode(key) }.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let (format, value) = match &value {
            serde_json::Value::String(text) => return Ok(text.as_bytes().to_vec()),
            serde_json::Value::Object(o) => (o.get("format").and_then(|f| f.as_str()).unwrap_or(""), o.get("value")),
            _ => return Err(D::Error::custom("publicKey must be an object with format and value")),
        };
        let text = || value.and_then(|v| v.as_str()).ok_or_else(|| D::Error::custom("publicKey value must be text"));
        let bin = |b64: &str| {
            // JSON Web Keys are base64url; CNRI's reader also takes standard base64.
            let b64 = b64.trim_end_matches('=');
            URL_SAFE_NO_PAD.decode(b64).or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
        };
        match format.to_ascii_lowercase().as_str() {
            "key" => {
                let jwk = value.cloned().ok_or_else(|| D::Error::custom("publicKey has no value"))?;
                let jwk: Jwk = serde_json::from_value(jwk).map_err(D::Error::custom)?;
                if !jwk.kty.eq_ignore_ascii_case("RSA") {
                    return Err(D::Error::custom(format!("publicKey kty {:?} is not supported (RSA is)", jwk.kty)));
                }
                let (n, e) = (bin(&jwk.n).map_err(D::Error::custom)?, bin(&jwk.e).map_err(D::Error::custom)?);
                Ok(super::encode_rsa_pubkey(&e, &n))
            }
            "base64" => STANDARD.decode(text()?).map_err(D::Error::custom),
            "hex" => hex::decode(text()?).map_err(D::Error::custom),
            "string" => Ok(text()?.as_bytes().to_vec()),
            other => Err(D::Error::custom(format!("publicKey format {other:?} is not key, base64, hex or string"))),
        }
    }
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Site {
        serde_json::from_str(
            r#"{"serialNumber":3,
                "attributes":[{"name":"dns-port","value":"5353"},{"name":"desc","value":"secondary node 105"}],
                "servers":[{"serverId":1,"address":"127.0.0.15","interfaces":[
                    {"query":true,"admin":true,"protocol":"TCP","port":2641},
                    {"protocol":"HTTP","port":8000}]},
                           {"serverId":2,"address":"2001:db8::1"}]}"#,
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
    fn ipv4_is_written_as_cnri_writes_it_and_the_mapped_form_still_read() {
        let site = sample();
        let bytes = site.encode();
        let server = 8 + 4 + 4 + 4 + "dns-port".len() + 4 + 4 + 4 + "desc".len() + 4 + "secondary node 105".len() + 4;
        assert_eq!(&bytes[server..server + 4], &[0, 0, 0, 1], "server id");
        assert_eq!(&bytes[server + 4..server + 20], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 15]);
        let mut mapped = bytes.clone();
        mapped[server + 14..server + 16].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(Site::decode(&mapped), Some(site.clone()));
        let mut v4_compatible = site.clone();
        v4_compatible.servers[1].address = "::1".parse().unwrap();
        assert!(v4_compatible.validate().unwrap_err().contains("::1"));
        assert_eq!(bytes[7], 2, "hash option: CNRI's default, by the whole identifier");
    }

    #[test]
    fn public_keys_travel_as_hs_pubkey_and_as_cnri_json() {
        let data = encode_rsa_pubkey(&[1, 0, 1], &[0x00, 0xc3, 0x01]);
        let expected = "0000000b".to_owned()
            + &hex::encode("RSA_PUB_KEY")
            + "0000"
            + "00000003010001"
            + "0000000300c301"
            + "00000000";
        assert_eq!(hex::encode(&data), expected);
        assert_eq!(decode_rsa_pubkey(&data), Some((vec![1, 0, 1], vec![0xc3, 0x01])));
        let modulus_end = data.len() - 4;
        for cut in 0..modulus_end {
            assert_eq!(decode_rsa_pubkey(&data[..cut]), None);
        }
        assert!(decode_rsa_pubkey(&data[..modulus_end]).is_some(), "without CNRI's 4 unused bytes");
        assert!(decode_rsa_pubkey(b"\0\0\0\x0bDSA_PUB_KEY\0\0").is_none(), "not RSA");

        let mut site = sample();
        site.servers[0].public_key = data.clone();
        site.servers[1].public_key = b"DSA_PUB_KEY?".to_vec();
        let json = serde_json::to_value(&site).unwrap();
        assert_eq!(
            json["servers"][0]["publicKey"],
            serde_json::json!({"format":"key","value":{"kty":"RSA","n":"wwE","e":"AQAB"}})
        );
        assert_eq!(json["servers"][1]["publicKey"]["format"], "base64");
        assert!(json.get("hashOption").is_none(), "written only when not 2, as CNRI does");
        let back: Site = serde_json::from_value(json).unwrap();
        assert_eq!(back, site);
        assert_eq!(Site::decode(&site.encode()), Some(site));
        let bad = r#"{"servers":[{"serverId":1,"address":"192.0.2.1",
                                  "publicKey":{"format":"key","value":{"kty":"EC","n":"","e":""}}}]}"#;
        assert!(serde_json::from_str::<Site>(bad).unwrap_err().to_string().contains("EC"));
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
