//! The node's own site: the `HS_SITE` record a Handle client needs to use the node as its
//! root or as the server of a prefix, built from the config and the server key
//! ([`super::key`]). GET_SITE_INFO (opcode 2) answers with it, as CNRI's server answers with
//! its `siteinfo.bin`, and `idnode admin site-info` prints it as CNRI's `siteinfo.json`.
//!
//! The site has one server (id 1), primary (the node is primary for what it serves), in
//! protocol version 2.11 (what CNRI 9.x's `hdl-setup-server` writes), at the Handle listener's
//! address or `[handle] public_address`, with the server's public key and three interfaces:
//! TCP admin and query, UDP query, HTTP (or HTTPS with TLS) query: the node's HTTP listener,
//! when it is on the same address, whose JSON API Handle.Net's HTTP interface also serves
//! (idnode does not take Handle messages over HTTP; CNRI's client uses UDP and TCP first). The
//! binary layout is [`crate::record::site`]'s, the one codec for sites.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::code::ResponseCode;
use crate::config::HandleConfig;
use crate::record::site::{Attribute, Interface, Server, Site};

use super::key::ServerKey;
use super::message::{Envelope, Reader, Request};

/// 1: the server id of the node's only server (what `hdl-setup-server` gives the first).
pub const SERVER_ID: u32 = 1;
/// "2.11": the protocol version CNRI 9.x writes into a new site (`Common.MAJOR_VERSION`,
/// `MINOR_VERSION`); clients speak it to the node.
pub const PROTOCOL_VERSION: &str = "2.11";
/// 1,024: the longest `site_description` published. The site travels in every GET_SITE_INFO
/// answer and in the parent's prefix record; a description is a line, not a document.
pub const MAX_DESCRIPTION: usize = 1024;

/// Why the node has no site to publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteError {
    #[error(
        "[handle] listen is {listen}, which a client cannot connect to: set [handle] public_address \
         to the address clients should use"
    )]
    UnspecifiedAddress { listen: IpAddr },
    #[error("[handle] site_description is {len} bytes; at most {max} are published")]
    DescriptionTooLong { len: usize, max: usize },
    #[error("the node's site is not valid: {0}")]
    Invalid(String),
}

/// The node's HTTP listener as its site publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpListener {
    pub addr: SocketAddr,
    /// Whether it speaks HTTPS (`[http] tls_cert` and `tls_key` set).
    pub tls: bool,
}

/// `site` as a mirror publishes it when `mirror`: not a primary site, so that clients send
/// writes to the primary's.
pub fn as_mirror(mut site: Site, mirror: bool) -> Site {
    site.primary_site = !mirror;
    site
}

/// The site of a node whose Handle listener is `handle` (its bound address: port 0 in the
/// config means the port it got), whose HTTP listener is `http`, with `key` when it has one.
pub fn build(
    config: &HandleConfig,
    handle: SocketAddr,
    http: Option<HttpListener>,
    key: Option<&ServerKey>,
) -> Result<Site, SiteError> {
    let address = config.public_address.unwrap_or(handle.ip());
    if address.is_unspecified() {
        return Err(SiteError::UnspecifiedAddress { listen: handle.ip() });
    }
    let len = config.site_description.len();
    if len > MAX_DESCRIPTION {
        return Err(SiteError::DescriptionTooLong { len, max: MAX_DESCRIPTION });
    }
    let interface = |admin, protocol: &str, port: u16| Interface {
        query: true,
        admin,
        protocol: protocol.into(),
        port: u32::from(port),
    };
    let mut interfaces = vec![interface(true, "TCP", handle.port()), interface(false, "UDP", handle.port())];
    // One server has one address: the JSON API is published only when it listens there too.
    if let Some(http) = http.filter(|h| h.addr.ip() == handle.ip() || h.addr.ip().is_unspecified()) {
        interfaces.push(interface(false, if http.tls { "HTTPS" } else { "HTTP" }, http.addr.port()));
    }
    let site = Site {
        version: 1,
        protocol_version: PROTOCOL_VERSION.into(),
        serial_number: config.site_serial,
        primary_site: true,
        multi_primary: false,
        hash_option: 2,
        attributes: vec![Attribute { name: "desc".into(), value: config.site_description.clone() }],
        servers: vec![Server {
            server_id: SERVER_ID,
            address,
            public_key: key.map(|k| k.hs_pubkey().to_vec()).unwrap_or_default(),
            interfaces,
        }],
    };
    site.validate().map_err(SiteError::Invalid)?;
    Ok(site)
}

/// What the Handle front end publishes about itself: the encoded site (or why there is none)
/// and the key that signs certified responses.
#[derive(Debug, Clone)]
pub struct OwnSite {
    record: Result<Arc<[u8]>, SiteError>,
    key: Option<Arc<ServerKey>>,
}

impl Default for OwnSite {
    /// No site and no key: GET_SITE_INFO is refused, responses are unsigned.
    fn default() -> Self {
        Self { record: Err(SiteError::Invalid("the node was started without a site".into())), key: None }
    }
}

impl OwnSite {
    /// The site [`build`] makes, or the reason it cannot, and the key.
    pub fn new(site: Result<Site, SiteError>, key: Option<Arc<ServerKey>>) -> Self {
        Self { record: site.map(|s| s.encode().into()), key }
    }

    /// The site's `HS_SITE` bytes, or why there are none.
    pub fn record(&self) -> Result<&[u8], &SiteError> {
        self.record.as_deref()
    }

    /// The node's own site as a public `HS_SITE` value for `record` (at its first free index from
    /// 1), or nothing when the node has no site to publish.
    pub fn value(&self, record: &crate::record::Record, now: u32) -> Option<crate::record::Value> {
        let site = self.record.as_deref().ok()?;
        let index = (1..).find(|i| !record.values.iter().any(|v| v.index == *i))?;
        Some(crate::record::Value::new(index, crate::record::types::SITE, site, i64::from(now)))
    }

    /// The server key, when the node has one.
    pub fn key(&self) -> Option<&ServerKey> {
        self.key.as_deref()
    }

    /// Answers GET_SITE_INFO: SUCCESS with the raw `HS_SITE` record as the body (after the
    /// request digest when asked for), as CNRI's server does. The body must hold the handle
    /// CNRI's client sends (`/`), whatever it is; bytes after it are ignored, as CNRI's
    /// decoder ignores them. Without a site (an unspecified listen address and no
    /// `public_address`), OPERATION_NOT_SUPPORTED saying what to set.
    pub fn answer(&self, request: &Request<'_>, now: u32, out: &mut Vec<u8>) -> Envelope {
        if Reader::new(request.body).bytes().is_err() {
            return super::error(request, ResponseCode::ProtocolError, "the site info request is malformed", now, out);
        }
        match &self.record {
            Ok(record) => request.respond(ResponseCode::Success.number(), now, out, |out| {
                out.extend_from_slice(record);
            }),
            Err(e) => super::error(request, ResponseCode::OperationNotSupported, &e.to_string(), now, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::key::tests::test_key;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn http(s: &str) -> Option<HttpListener> {
        Some(HttpListener { addr: addr(s), tls: false })
    }

    #[test]
    fn the_site_is_one_primary_server_with_cnri_s_interfaces_and_the_key() {
        let config = HandleConfig { site_serial: 7, ..HandleConfig::default() };
        let key = test_key();
        let site = build(&config, addr("127.0.0.1:2641"), http("127.0.0.1:8000"), Some(key)).unwrap();
        assert_eq!((site.protocol_version.as_str(), site.serial_number, site.primary_site), ("2.11", 7, true));
        let server = &site.servers[0];
        assert_eq!((server.server_id, server.address), (1, "127.0.0.1".parse().unwrap()));
        assert_eq!(server.public_key, key.hs_pubkey());
        let kinds: Vec<_> = server.interfaces.iter().map(|i| (i.protocol.as_str(), i.admin, i.query, i.port)).collect();
        assert_eq!(kinds, [("TCP", true, true, 2641), ("UDP", false, true, 2641), ("HTTP", false, true, 8000)]);
        let bytes = site.encode();
        assert_eq!(&bytes[..8], &[0, 1, 2, 11, 0, 7, 0x80, 2], "format 1, 2.11, serial 7, primary, hash by all");
        assert_eq!(Site::decode(&bytes), Some(site));
    }

    #[test]
    fn addresses_clients_cannot_use_are_refused_or_replaced() {
        let config = HandleConfig::default();
        let err = build(&config, addr("0.0.0.0:2641"), None, None).unwrap_err();
        assert!(err.to_string().contains("public_address"), "{err}");
        let public = HandleConfig { public_address: Some("192.0.2.7".parse().unwrap()), ..HandleConfig::default() };
        let site = build(&public, addr("0.0.0.0:2641"), http("0.0.0.0:8000"), None).unwrap();
        assert_eq!(site.servers[0].address, "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(site.servers[0].interfaces.len(), 3);
        assert!(site.servers[0].public_key.is_empty(), "no key: an empty key, which clients accept");
        let elsewhere = build(&config, addr("127.0.0.1:2641"), http("127.0.0.2:8000"), None).unwrap();
        let tls = Some(HttpListener { addr: addr("127.0.0.1:8443"), tls: true });
        let https = build(&config, addr("127.0.0.1:2641"), tls, None).unwrap();
        assert_eq!(
            (https.servers[0].interfaces[2].protocol.as_str(), https.servers[0].interfaces[2].port),
            ("HTTPS", 8443)
        );
        assert_eq!(elsewhere.servers[0].interfaces.len(), 2, "HTTP on another address is not this server's");
        let v6 = build(&config, addr("[::1]:2641"), None, None).unwrap_err();
        assert!(matches!(v6, SiteError::Invalid(_)), "::1 reads as IPv4 in a site: {v6}");
        let long = HandleConfig { site_description: "x".repeat(MAX_DESCRIPTION + 1), ..HandleConfig::default() };
        let err = build(&long, addr("127.0.0.1:2641"), None, None).unwrap_err();
        assert!(matches!(err, SiteError::DescriptionTooLong { .. }));
    }
}
