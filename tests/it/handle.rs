//! The Handle protocol over real sockets. Requests are written byte by byte from the protocol's
//! layouts (docs/handle-protocol.md), and responses read the same way, without the node's codec.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idnode::auth::Admin;
use idnode::identifier::Identifier;
use idnode::node::PutOptions;
use idnode::record::Value;
use sha1::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::start_server;

const RD: u32 = 0x0080_0000;
const TYPICAL_FLAGS: u32 = 0x1900_0000; // REC | CA | PO, what CNRI's client sends

//------------ A test-side client ------------------------------------------------------------

fn u32s(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    u32s(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn resolution(handle: &str, indexes: &[u32], types: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    bytes(&mut body, handle.as_bytes());
    u32s(&mut body, indexes.len() as u32);
    indexes.iter().for_each(|i| u32s(&mut body, *i));
    u32s(&mut body, types.len() as u32);
    types.iter().for_each(|t| bytes(&mut body, t.as_bytes()));
    body
}

/// Header (24 bytes) + body + empty credential.
fn message(opcode: u32, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    for n in [opcode, 0, flags] {
        u32s(&mut m, n);
    }
    m.extend_from_slice(&[0, 1, 0, 0]); // site serial, recursion count, reserved
    u32s(&mut m, 0); // expiration
    bytes(&mut m, body);
    u32s(&mut m, 0);
    m
}

/// Envelope (20 bytes) + message. `suggested` (major, minor); (0, 0) for none.
fn envelope(version: (u8, u8), suggested: (u8, u8), request_id: u32, message: &[u8]) -> Vec<u8> {
    let mut e = vec![version.0, version.1, suggested.0, suggested.1];
    for n in [0, request_id, 0, message.len() as u32] {
        u32s(&mut e, n);
    }
    e.extend_from_slice(message);
    e
}

fn request(request_id: u32, flags: u32, body: &[u8]) -> Vec<u8> {
    envelope((2, 10), (2, 11), request_id, &message(1, flags, body))
}

#[derive(Debug)]
struct Response {
    version: (u8, u8),
    suggested: (u8, u8),
    request_id: u32,
    opcode: u32,
    code: u32,
    flags: u32,
    expiration: u32,
    body: Vec<u8>,
}

fn be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads an envelope and its whole message.
fn parse(envelope: &[u8], message: &[u8]) -> Response {
    assert_eq!(be(envelope, 16) as usize, message.len());
    let body_len = be(message, 20) as usize;
    assert_eq!(message.len(), 24 + body_len + 4, "header, body, credential length");
    assert_eq!(be(message, 24 + body_len), 0, "no credential");
    Response {
        version: (envelope[0], envelope[1]),
        suggested: (envelope[2] & 3, envelope[3]),
        request_id: be(envelope, 8),
        opcode: be(message, 0),
        code: be(message, 4),
        flags: be(message, 8),
        expiration: be(message, 16),
        body: message[24..24 + body_len].to_vec(),
    }
}

async fn read_response(stream: &mut TcpStream) -> Response {
    let mut head = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut head)).await.unwrap().unwrap();
    let mut message = vec![0u8; be(&head, 16) as usize];
    stream.read_exact(&mut message).await.unwrap();
    parse(&head, &message)
}

async fn tcp(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_response(&mut stream).await
}

/// Sends one datagram and reassembles the answer from its numbered chunks; also returns the
/// datagrams' sizes and whether each had TC set.
async fn udp(addr: SocketAddr, request: &[u8]) -> (Response, Vec<(usize, bool)>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(request, addr).await.unwrap();
    let mut chunks: Vec<Option<Vec<u8>>> = Vec::new();
    let mut head;
    let mut sizes = Vec::new();
    loop {
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await.unwrap().unwrap();
        let d = &buf[..n];
        sizes.push((n, d[2] & 0x20 != 0));
        let total = be(d, 16) as usize;
        let count = total.div_ceil(492).max(1);
        chunks.resize(count, None);
        chunks[be(d, 12) as usize] = Some(d[20..].to_vec());
        head = d[..20].to_vec();
        if chunks.iter().all(Option::is_some) {
            break;
        }
    }
    let message: Vec<u8> = chunks.into_iter().flatten().flatten().collect();
    (parse(&head, &message), sizes)
}

/// (index, type, data, permissions byte) of each HandleValue in a resolution body.
fn values(body: &[u8]) -> (String, Vec<(u32, String, String, u8)>) {
    let mut at = 0;
    let mut read = |n: usize| {
        let b = &body[at..at + n];
        at += n;
        b.to_vec()
    };
    let string = |read: &mut dyn FnMut(usize) -> Vec<u8>| {
        let len = be(&read(4), 0) as usize;
        String::from_utf8_lossy(&read(len)).into_owned()
    };
    let handle = string(&mut read);
    let n = be(&read(4), 0);
    let mut out = Vec::new();
    for _ in 0..n {
        let index = be(&read(4), 0);
        read(4 + 1 + 4); // timestamp, ttl type, ttl
        let perms = read(1)[0];
        let kind = string(&mut read);
        let data = string(&mut read);
        assert_eq!(be(&read(4), 0), 0, "no references");
        out.push((index, kind, data, perms));
    }
    assert_eq!(at, body.len(), "nothing after the values");
    (handle, out)
}

fn now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
}

//------------ Tests ---------------------------------------------------------------------------

#[tokio::test]
async fn the_demo_identifier_resolves_over_tcp_and_udp_as_over_http() {
    let node = start_server().await;
    let addr = node.handle;
    let url = format!("http://{}/api/handles/88.100.1/ABC-123", node.http);
    let json: serde_json::Value =
        tokio::task::spawn_blocking(move || ureq::get(&url).call().unwrap().body_mut().read_json().unwrap())
            .await
            .unwrap();
    let http: Vec<(u32, String, String)> = json["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let data = v["data"]["value"].as_str().unwrap().to_owned();
            (v["index"].as_u64().unwrap() as u32, v["type"].as_str().unwrap().to_owned(), data)
        })
        .collect();
    assert_eq!(http.len(), 3, "{json}");
    let req = request(0x0102_0304, TYPICAL_FLAGS, &resolution("88.100.1/abc-123", &[], &[]));
    let (over_udp, sizes) = udp(addr, &req).await;
    assert_eq!(sizes.len(), 1);
    for r in [tcp(addr, &req).await, over_udp] {
        assert_eq!((r.opcode, r.code, r.request_id), (1, 1, 0x0102_0304), "{r:?}");
        assert_eq!((r.version, r.suggested), ((2, 11), (2, 11)));
        assert!(r.expiration > now() + 43_000, "expires in 12 h");
        let (handle, vals) = values(&r.body);
        assert_eq!(handle, "88.100.1/abc-123", "the handle as asked");
        let got: Vec<(u32, String, String)> = vals.iter().map(|(i, t, d, _)| (*i, t.clone(), d.clone())).collect();
        assert_eq!(got, http, "the public values, as the HTTP API gives them");
        assert!(vals.iter().all(|v| v.3 == 0x0e), "admin read+write, public read");
    }
    node.stop().await;
}

#[tokio::test]
async fn filters_not_found_and_unsupported_opcodes() {
    let node = start_server().await;
    let addr = node.handle;
    let resolve = |indexes: &'static [u32], types: &'static [&'static str], handle: &'static str| {
        let req = request(9, TYPICAL_FLAGS, &resolution(handle, indexes, types));
        async move { tcp(addr, &req).await }
    };
    let indexes = |r: &Response| values(&r.body).1.iter().map(|v| v.0).collect::<Vec<_>>();
    let r = resolve(&[], &["email"], "88.100.1/ABC-123").await;
    assert_eq!((r.code, indexes(&r)), (1, vec![2]));
    let r = resolve(&[3], &["URL"], "88.100.1/ABC-123").await;
    assert_eq!((r.code, indexes(&r)), (1, vec![1, 3]), "index or type");
    let r = resolve(&[], &["NOPE"], "88.100.1/ABC-123").await;
    assert_eq!(r.code, 200, "VALUES_NOT_FOUND");
    let r = resolve(&[50], &[], "88.100.1/ABC-123").await;
    assert_eq!(r.code, 200, "a private value is not shown to an anonymous client");
    let r = resolve(&[], &[], "88.100.1/NONE").await;
    assert_eq!(r.code, 100, "HANDLE_NOT_FOUND");
    let r = resolve(&[], &[], "88.1 00/X").await;
    assert_eq!(r.code, 102, "INVALID_HANDLE");
    let (len, text) = (be(&r.body, 0) as usize, &r.body[4..]);
    assert_eq!(len, text.len(), "an error body is one message");
    for opcode in [3, 999] {
        let r = tcp(addr, &envelope((2, 10), (2, 11), 5, &message(opcode, 0, b""))).await;
        assert_eq!((r.opcode, r.code, r.request_id), (opcode, 5, 5), "OPERATION_NOT_SUPPORTED");
    }
    for opcode in [100, 300, 2001] {
        let r = tcp(addr, &envelope((2, 10), (2, 11), 5, &message(opcode, 0, b""))).await;
        assert_eq!((r.opcode, r.code), (opcode, 4), "a malformed body is refused before any challenge");
    }
    node.stop().await;
}

#[tokio::test]
async fn versions_and_request_digests() {
    let node = start_server().await;
    let addr = node.handle;
    let body = resolution("88.100.1/ABC-123", &[1], &[]);
    let r = tcp(addr, &envelope((2, 3), (2, 11), 1, &message(1, TYPICAL_FLAGS, &body))).await;
    assert_eq!((r.version, r.suggested), ((2, 11), (2, 11)), "a 2.3 request suggesting 2.11");
    let r = tcp(addr, &envelope((2, 5), (0, 0), 1, &message(1, TYPICAL_FLAGS, &body))).await;
    assert_eq!((r.version, r.suggested), ((2, 5), (2, 11)), "no suggestion: the request's own version");
    assert_eq!(r.flags & RD, 0, "no digest unasked");
    // The digest covers the request's header and body as sent: 24 + body bytes.
    let m = message(1, TYPICAL_FLAGS | RD, &body);
    let signed = &m[..24 + body.len()];
    for (version, code, digest) in
        [((2, 11), 3u8, sha2::Sha256::digest(signed).to_vec()), ((2, 5), 2u8, sha1::Sha1::digest(signed).to_vec())]
    {
        let r = tcp(addr, &envelope(version, version, 77, &m)).await;
        assert_eq!((r.version, r.code, r.request_id), (version, 1, 77));
        assert_ne!(r.flags & RD, 0);
        assert_eq!(r.body[0], code);
        assert_eq!(&r.body[1..1 + digest.len()], &digest[..], "digest of {version:?}");
        let (handle, vals) = values(&r.body[1 + digest.len()..]);
        assert_eq!((handle.as_str(), vals.len()), ("88.100.1/ABC-123", 1));
    }
    node.stop().await;
}

#[tokio::test]
async fn several_messages_on_one_connection_and_hostile_ones() {
    let node = start_server().await;
    let addr = node.handle;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for id in 1..=3 {
        stream.write_all(&request(id, TYPICAL_FLAGS, &resolution("88.100.1/ABC-123", &[], &[]))).await.unwrap();
        let r = read_response(&mut stream).await;
        assert_eq!((r.request_id, r.code), (id, 1));
    }
    // Body length beyond the message, a huge array count, a truncated header: PROTOCOL_ERROR,
    // and the connection goes on.
    let mut beyond = message(1, 0, &resolution("88.100.1/ABC-123", &[], &[]));
    beyond[20..24].copy_from_slice(&1000u32.to_be_bytes());
    let mut huge = Vec::new();
    bytes(&mut huge, b"88.100.1/ABC-123");
    u32s(&mut huge, u32::MAX);
    for (id, m) in [(10, beyond), (11, message(1, 0, &huge)), (12, vec![0, 0, 0, 1, 0])] {
        stream.write_all(&envelope((2, 10), (2, 11), id, &m)).await.unwrap();
        let r = read_response(&mut stream).await;
        assert_eq!((r.request_id, r.code), (id, 4), "PROTOCOL_ERROR");
    }
    // An envelope announcing more than 262,144 bytes closes the connection.
    stream.write_all(&envelope((2, 10), (2, 11), 13, &[])[..16]).await.unwrap();
    stream.write_all(&262_145u32.to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty());
    // A truncated envelope, then the client goes away: the node serves on.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[2, 10, 2]).await.unwrap();
    drop(half);
    let (r, _) = udp(addr, &envelope((2, 10), (2, 11), 14, &[0; 10])).await;
    assert_eq!((r.request_id, r.code), (14, 4), "a runt message over UDP");
    let partial = envelope((2, 10), (2, 11), 15, &message(1, 0, &resolution("88.100.1/ABC-123", &[], &[])));
    // Fewer bytes than announced: a first piece, kept for the others, and no answer yet.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&partial[..partial.len() - 3], addr).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await.is_err(), "waits");
    let r = tcp(addr, &request(16, TYPICAL_FLAGS, &resolution("88.100.1/ABC-123", &[], &[]))).await;
    assert_eq!((r.request_id, r.code), (16, 1));
    node.stop().await;
}

#[tokio::test]
async fn a_large_answer_over_udp_comes_in_numbered_chunks() {
    let node = start_server().await;
    let id = Identifier::parse("88.100.1/BIG").unwrap();
    let big: Vec<Value> =
        (1..=10).map(|i| Value::new(i, "URL", format!("https://example.com/{}", "x".repeat(200)), 0)).collect();
    node.node.put(&Admin::node(), &id, big, &PutOptions::default()).unwrap();
    let req = request(21, TYPICAL_FLAGS, &resolution("88.100.1/BIG", &[], &[]));
    let (r, sizes) = udp(node.handle, &req).await;
    assert_eq!((r.request_id, r.code), (21, 1));
    assert_eq!(values(&r.body).1.len(), 10);
    assert!(sizes.len() > 1, "{sizes:?}");
    let (last, full) = sizes.split_last().unwrap();
    assert!(full.iter().all(|&(n, tc)| n == 512 && tc), "{sizes:?}");
    assert!(last.0 <= 512 && last.1, "{sizes:?}");
    node.stop().await;
}

#[tokio::test]
async fn below_a_delegation_prefix_records_are_referred_and_identifiers_are_not_served_here() {
    let node = start_server().await;
    let site: idnode::record::site::Site =
        serde_json::from_str(r#"{"servers":[{"serverId":1,"address":"192.0.2.1"}]}"#).unwrap();
    let delegation = Identifier::parse("0.NA/88.100.5").unwrap();
    let sites = vec![Value::new(1, "HS_SITE", site.encode(), 0)];
    node.node.put(&Admin::node(), &delegation, sites, &PutOptions::default()).unwrap();
    let r = tcp(node.handle, &request(31, TYPICAL_FLAGS, &resolution("0.NA/88.100.5.1", &[], &[]))).await;
    assert_eq!(r.code, 303, "PREFIX_REFERRAL");
    let (handle, vals) = values(&r.body);
    assert_eq!(handle, "", "CNRI's referral names no handle");
    assert_eq!(vals.iter().map(|v| (v.0, v.1.as_str())).collect::<Vec<_>>(), [(1, "HS_SITE.PREFIX")]);
    let r = tcp(node.handle, &request(32, TYPICAL_FLAGS, &resolution("88.100.5/X", &[], &[]))).await;
    assert_eq!(r.code, 301, "SERVER_NOT_RESP");
    let old = envelope((2, 4), (0, 0), 33, &message(1, TYPICAL_FLAGS, &resolution("0.NA/88.100.5.1", &[], &[])));
    assert_eq!(tcp(node.handle, &old).await.code, 7, "a prefix referral before 2.5");
    let r = tcp(node.handle, &request(34, TYPICAL_FLAGS, &resolution("0.NA/88.100.5", &[], &["HS_SITE"]))).await;
    assert_eq!((r.code, values(&r.body).1.len()), (1, 1), "the delegation record itself is served");
    node.stop().await;
}

#[tokio::test]
async fn tcp_clients_are_capped_per_address_and_cut_off_when_idle() {
    let node = crate::start_server_with(|c| {
        c.handle.tcp_idle_timeout_secs = 1;
        c.handle.tcp_max_connections_per_source = 1;
    })
    .await;
    let mut first = TcpStream::connect(node.handle).await.unwrap();
    first.write_all(&request(41, TYPICAL_FLAGS, &resolution("88.100.1/ABC-123", &[], &[]))).await.unwrap();
    assert_eq!(read_response(&mut first).await.code, 1);
    let mut second = TcpStream::connect(node.handle).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_millis(500), second.read_to_end(&mut rest))
        .await
        .expect("a second connection from one address is closed at once")
        .unwrap();
    assert!(rest.is_empty());
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(3), first.read_to_end(&mut rest))
        .await
        .expect("an idle client is cut off")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
    node.stop().await;
}

#[tokio::test]
async fn idnode_resolve_asks_over_the_handle_protocol_on_tcp_and_udp() {
    let node = start_server().await;
    let id = Identifier::parse("88.100.1/BIG").unwrap();
    // Over UDP this answer needs several datagrams, which the client reassembles.
    let big: Vec<Value> =
        (1..=10).map(|i| Value::new(i, "URL", format!("https://example.com/{i}/{}", "x".repeat(200)), 0)).collect();
    node.node.put(&Admin::node(), &id, big, &PutOptions::default()).unwrap();
    let server = node.handle.to_string();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_idnode")).args(&args).output().unwrap()
        })
    };
    for transport in [None, Some("--tcp")] {
        let mut args: Vec<String> = ["resolve", "88.100.1/ABC-123", "--protocol", "handle", "--server", &server]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(transport.map(str::to_owned));
        let out = run(args.clone()).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {text} {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("Handle protocol 2.11"), "{text}");
        assert!(text.contains("https://example.com/products/ABC-123"), "{text}");

        args[1] = "88.100.1/BIG".into();
        let out = run(args.clone()).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(text.lines().filter(|l| l.contains("https://example.com/")).count(), 10, "{text}");

        args[1] = "88.100.1/NONE".into();
        let out = run(args).await.unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("response code 100"), "{out:?}");
    }
    node.stop().await;
}

//------------ The node's site and certified responses -------------------------------------------

const CT: u32 = 0x4000_0000;

fn get_site_info(request_id: u32, flags: u32) -> Vec<u8> {
    let mut body = Vec::new();
    bytes(&mut body, b"/"); // what CNRI's client sends
    envelope((2, 11), (2, 11), request_id, &message(2, flags, &body))
}

/// Reads one response over TCP without checking its credential: (envelope, message).
async fn tcp_raw(addr: SocketAddr, request: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut head = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut head)).await.unwrap().unwrap();
    let mut message = vec![0u8; be(&head, 16) as usize];
    stream.read_exact(&mut message).await.unwrap();
    (head.to_vec(), message)
}

/// Checks the HS_SIGNED credential of a response the way CNRI's client does (version 2.11:
/// version, suggested version, session id, request id, counter, then header and body) with the
/// public key the site publishes; returns the response without its credential.
fn verify_certified(head: &[u8], message: &[u8], hs_pubkey: &[u8]) -> Response {
    let body_len = be(message, 20) as usize;
    let signed_end = 24 + body_len;
    let credential = &message[signed_end + 4..];
    assert_eq!(be(message, signed_end) as usize, credential.len());
    let (algorithm, signature) = idnode::handle::credential::signature_of(credential).expect("HS_SIGNED");
    assert_eq!(algorithm, b"SHA-256");
    let (e, n) = idnode::record::site::decode_rsa_pubkey(hs_pubkey).expect("an RSA key in the site");
    let mut signed = vec![head[0], head[1], head[2] & 3, head[3]];
    signed.extend_from_slice(&head[4..12]); // session id, request id
    signed.extend_from_slice(&[0; 4]); // session counter
    signed.extend_from_slice(&message[..signed_end]);
    let key = ring::signature::RsaPublicKeyComponents { n: &n, e: &e };
    key.verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &signed, signature).expect("a valid signature");
    let mut unsigned = message[..signed_end].to_vec();
    unsigned.extend_from_slice(&[0; 4]);
    let mut head = head.to_vec();
    head[16..20].copy_from_slice(&(unsigned.len() as u32).to_be_bytes());
    parse(&head, &unsigned)
}

#[tokio::test]
async fn get_site_info_answers_the_node_s_own_site_over_tcp_and_udp() {
    let node = start_server().await;
    for r in [tcp(node.handle, &get_site_info(9, 0)).await, udp(node.handle, &get_site_info(9, 0)).await.0] {
        assert_eq!((r.opcode, r.code, r.request_id), (2, 1, 9), "{r:?}");
        let site = idnode::record::site::Site::decode(&r.body).expect("the body is one HS_SITE record");
        assert_eq!((site.protocol_version.as_str(), site.primary_site), ("2.11", true));
        let server = &site.servers[0];
        assert_eq!(server.address, node.handle.ip());
        assert!(server.public_key.is_empty(), "no key file: no key");
        let ports: Vec<_> = server.interfaces.iter().map(|i| (i.protocol.as_str(), i.admin, i.port)).collect();
        let (handle, http) = (u32::from(node.handle.port()), u32::from(node.http.port()));
        assert_eq!(ports, [("TCP", true, handle), ("UDP", false, handle), ("HTTP", false, http)]);
    }
    // Asked to certify without a key, the node answers unsigned, as before keys existed.
    assert_eq!(tcp(node.handle, &get_site_info(10, CT)).await.code, 1);
    // With RD the record follows the digest.
    let r = tcp(node.handle, &get_site_info(11, RD)).await;
    assert_eq!(r.body[0], 3, "SHA-256 digest");
    assert!(idnode::record::site::Site::decode(&r.body[33..]).is_some());
    // A body that is not a handle.
    let hostile = envelope((2, 11), (2, 11), 12, &message(2, 0, &[0xff, 0xff, 0xff, 0xff]));
    let r = tcp(node.handle, &hostile).await;
    assert_eq!((r.opcode, r.code), (2, 4), "PROTOCOL_ERROR: {r:?}");
    let r = udp(node.handle, &envelope((2, 11), (2, 11), 13, &message(2, 0, &[]))).await.0;
    assert_eq!((r.opcode, r.code), (2, 4), "PROTOCOL_ERROR: {r:?}");
    node.stop().await;
}

#[tokio::test]
async fn with_a_server_key_certified_requests_get_signed_answers() {
    let node = crate::start_server_with(|config| {
        idnode::handle::key::ServerKey::load_or_create(&config.data_dir).unwrap();
    })
    .await;
    let site = tcp(node.handle, &get_site_info(1, 0)).await;
    let site = idnode::record::site::Site::decode(&site.body).unwrap();
    let hs_pubkey = site.servers[0].public_key.clone();
    assert!(!hs_pubkey.is_empty(), "the site publishes the key");

    let (head, m) = tcp_raw(node.handle, &get_site_info(2, CT)).await;
    let r = verify_certified(&head, &m, &hs_pubkey);
    assert_eq!((r.opcode, r.code, r.request_id), (2, 1, 2));
    assert_eq!(idnode::record::site::Site::decode(&r.body), Some(site));

    let req = request(3, TYPICAL_FLAGS | CT, &resolution("88.100.1/abc-123", &[], &[]));
    let (head, m) = tcp_raw(node.handle, &req).await;
    let r = verify_certified(&head, &m, &hs_pubkey);
    assert_eq!((r.opcode, r.code, r.request_id), (1, 1, 3));
    assert_eq!(values(&r.body).1.len(), 3);
    // Errors are signed too.
    let req = request(4, CT, &resolution("88.100.1/none", &[], &[]));
    let (head, m) = tcp_raw(node.handle, &req).await;
    assert_eq!(verify_certified(&head, &m, &hs_pubkey).code, 100);
    // A tampered answer does not verify.
    let (head, mut m) = tcp_raw(node.handle, &get_site_info(5, CT)).await;
    m[30] ^= 1;
    let tampered = std::panic::catch_unwind(|| verify_certified(&head, &m, &hs_pubkey));
    assert!(tampered.is_err());
    // Uncertified requests stay unsigned (parse() checks the empty credential).
    assert_eq!(tcp(node.handle, &get_site_info(6, 0)).await.code, 1);
    node.stop().await;
}

#[tokio::test]
async fn a_key_file_that_is_not_a_key_stops_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(idnode::handle::key::KEY_FILE), "-----BEGIN PRIVATE KEY-----\nAA==\n").unwrap();
    let mut config = idnode::config::Config { data_dir: dir.path().to_owned(), ..Default::default() };
    for listen in [&mut config.dns.listen, &mut config.http.listen, &mut config.handle.listen] {
        *listen = "127.0.0.1:0".parse().unwrap();
    }
    let registry = std::sync::Arc::new(idnode::registry::Registry::open(&config.data_dir).unwrap());
    let err = idnode::server::Server::start(&config, registry).await.err().expect("a start error");
    assert!(err.to_string().contains("handle-server.key"), "{err}");
}

#[test]
fn admin_init_creates_the_key_and_site_info_prints_cnri_s_siteinfo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("idnode.toml");
    let toml = "[handle]\nlisten = \"0.0.0.0:2641\"\npublic_address = \"192.0.2.7\"\nsite_serial = 4\n";
    std::fs::write(&config, toml).unwrap();
    let idnode = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data", data.to_str().unwrap(), "--config", config.to_str().unwrap()]);
        std::process::Command::new(env!("CARGO_BIN_EXE_idnode")).args(&all).output().unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    let out = idnode(&["admin", "site-info"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("idnode admin init"), "no key yet: {}", text(&out.stderr));
    let out = idnode(&["admin", "init", "--prefix", "88"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Handle server key created"), "{}", text(&out.stdout));

    let out = idnode(&["admin", "site-info", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["protocolVersion"], "2.11");
    assert_eq!((json["serialNumber"].as_u64(), json["primarySite"].as_bool()), (Some(4), Some(true)));
    let server = &json["servers"][0];
    assert_eq!((server["serverId"].as_u64(), server["address"].as_str()), (Some(1), Some("192.0.2.7")));
    assert_eq!(
        (server["publicKey"]["format"].as_str(), server["publicKey"]["value"]["kty"].as_str()),
        (Some("key"), Some("RSA"))
    );
    let site: idnode::record::site::Site = serde_json::from_value(json).unwrap();

    let bin = dir.path().join("siteinfo.bin");
    let out = idnode(&["admin", "site-info", "--binary", bin.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&bin).unwrap();
    assert_eq!(bytes, site.encode(), "the JSON and the binary are the same site");
    assert_eq!(&bytes[..8], &[0, 1, 2, 11, 0, 4, 0x80, 2]);

    let key = data.join(idnode::handle::key::KEY_FILE);
    let out = idnode(&["admin", "init", "--prefix", "88"]);
    assert!(text(&out.stdout).contains("Handle server key kept"), "{}", text(&out.stdout));
    std::fs::write(&key, "not a key").unwrap();
    let out = idnode(&["admin", "site-info"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("handle-server.key"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn the_resolution_cache_serves_repeats_and_every_write_reaches_the_next_answer() {
    let node = start_server().await;
    let addr = node.handle;
    let stats = || node.handle_frontend.cache_stats().expect("the cache is on by default");
    let ask = |handle: &'static str, id: u32, flags: u32| {
        let req = request(id, flags, &resolution(handle, &[], &[]));
        async move { tcp(addr, &req).await }
    };
    let data = |r: &Response| values(&r.body).1.into_iter().map(|v| v.2).collect::<Vec<_>>();
    let url = "https://cache.example/";
    let first = ask("88.100.1/CACHED", 1, TYPICAL_FLAGS).await;
    assert_eq!(first.code, 100, "not yet registered");
    // A cached HANDLE_NOT_FOUND is dropped by the write that creates the identifier.
    let again = ask("88.100.1/CACHED", 2, TYPICAL_FLAGS).await;
    assert_eq!((again.code, again.request_id), (100, 2));
    assert!(stats().hits >= 1, "the repeat was a hit: {:?}", stats());
    let put = |value: &str| {
        let values = vec![Value::new(1, "URL", value, 0)];
        let id = Identifier::parse("88.100.1/Cached").unwrap();
        node.node.put(&Admin::node(), &id, values, &PutOptions::default()).unwrap();
    };
    put(url);
    let created = ask("88.100.1/CACHED", 3, TYPICAL_FLAGS).await;
    assert_eq!((created.code, data(&created)), (1, vec![url.to_owned()]));
    // Over UDP, in another case (the echo is the handle as asked), with a digest.
    let req = request(4, TYPICAL_FLAGS | RD, &resolution("88.100.1/cached", &[], &[]));
    for _ in 0..2 {
        let (r, _) = udp(addr, &req).await;
        assert_eq!((r.code, r.request_id, r.flags & RD), (1, 4, RD));
        let body = resolution("88.100.1/cached", &[], &[]);
        let digest = sha2::Sha256::digest(&message(1, TYPICAL_FLAGS | RD, &body)[..24 + body.len()]);
        assert_eq!(&r.body[1..33], &digest[..], "the digest of this request, not a cached one");
        assert_eq!(values(&r.body[33..]).0, "88.100.1/cached");
    }
    // A write through the HTTP API is seen by the next resolution.
    let auth = crate::hardening::top_admin(&node, "top-secret");
    let url = format!("http://{}/api/handles/88.100.1/CACHED", node.http);
    let body = r#"[{"index":1,"type":"URL","data":"https://new.example/"}]"#;
    let (status, text) =
        tokio::task::spawn_blocking(move || crate::cli::call("PUT", &url, Some(&auth), Some(body))).await.unwrap();
    assert_eq!(status, 200, "{text}");
    let r = ask("88.100.1/CACHED", 5, TYPICAL_FLAGS).await;
    assert_eq!(data(&r), vec!["https://new.example/".to_owned()]);
    node.node.delete(&Admin::node(), &Identifier::parse("88.100.1/CACHED").unwrap(), None).unwrap();
    assert_eq!(ask("88.100.1/CACHED", 6, TYPICAL_FLAGS).await.code, 100, "deleted");
    // Without PO the core answers every time (a later slice may challenge such a request).
    let before = stats().hits;
    ask("88.100.1/ABC-123", 7, 0).await;
    ask("88.100.1/ABC-123", 8, 0).await;
    assert_eq!(stats().hits, before);
    node.stop().await;
}
