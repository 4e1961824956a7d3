//! Administration over the Handle protocol, over real sockets: challenge-response with secret
//! and public keys, the national system's login, every write opcode, non-public reads. Requests
//! and answers are built here from the protocol's layouts (docs/handle-protocol.md), the proofs
//! computed as CNRI's 9.x client computes them, with crates the node does not use for the
//! purpose (the `rsa` crate signs; the node verifies with `ring`).

use std::net::SocketAddr;
use std::time::Duration;

use hmac::Mac;
use idnode::auth::{Admin, prefix_admin_values};
use idnode::identifier::Identifier;
use idnode::node::PutOptions;
use idnode::record::{Permissions, Value};
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{TestNode, start_server};

const PUBLIC_ONLY: u32 = 0x0100_0000;

/// One message to send: opcode, flags, body, envelope ids.
struct Out {
    opcode: u32,
    flags: u32,
    body: Vec<u8>,
    session: u32,
    request: u32,
}

impl Out {
    fn new(opcode: u32, request: u32, body: Vec<u8>) -> Self {
        Self { opcode, flags: 0, body, session: 0, request }
    }

    /// Envelope (2.10 suggesting 2.11, as the national SDKs send) + header + body + empty
    /// credential.
    fn bytes(&self) -> Vec<u8> {
        let mut m = Vec::new();
        for n in [self.opcode, 0, self.flags] {
            m.extend_from_slice(&n.to_be_bytes());
        }
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // serial, recursion, reserved, expiration
        m.extend_from_slice(&(self.body.len() as u32).to_be_bytes());
        m.extend_from_slice(&self.body);
        m.extend_from_slice(&[0, 0, 0, 0]);
        let mut e = vec![2, 10, 2, 11];
        for n in [self.session, self.request, 0, m.len() as u32] {
            e.extend_from_slice(&n.to_be_bytes());
        }
        e.extend_from_slice(&m);
        e
    }
}

/// A response: envelope session and request ids, opcode, code, body.
#[derive(Debug)]
struct In {
    session: u32,
    request: u32,
    opcode: u32,
    code: u32,
    body: Vec<u8>,
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn string(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

async fn exchange(stream: &mut TcpStream, out: &Out) -> In {
    stream.write_all(&out.bytes()).await.unwrap();
    let mut head = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head)).await.unwrap().unwrap();
    let mut m = vec![0u8; word(&head, 16) as usize];
    stream.read_exact(&mut m).await.unwrap();
    let body_len = word(&m, 20) as usize;
    In {
        session: word(&head, 4),
        request: word(&head, 8),
        opcode: word(&m, 0),
        code: word(&m, 4),
        body: m[24..24 + body_len].to_vec(),
    }
}

async fn once(addr: SocketAddr, out: &Out) -> In {
    exchange(&mut TcpStream::connect(addr).await.unwrap(), out).await
}

/// A HandleValue: index, timestamp, relative TTL 86400, permissions, type, data, no references.
fn value(index: u32, kind: &str, data: &str, permissions: u8) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&index.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0x51, 0x80, permissions]);
    string(&mut v, kind.as_bytes());
    string(&mut v, data.as_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

/// Handle, value count, values: the body of CREATE_HANDLE, ADD_VALUE, MODIFY_VALUE.
fn with_values(handle: &str, values: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, handle.as_bytes());
    b.extend_from_slice(&(values.len() as u32).to_be_bytes());
    values.iter().for_each(|v| b.extend_from_slice(v));
    b
}

fn handle_only(handle: &str) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, handle.as_bytes());
    b
}

fn resolution(handle: &str) -> Vec<u8> {
    let mut b = handle_only(handle);
    b.extend_from_slice(&[0; 8]); // no indexes, no types
    b
}

/// What the client signs: the challenge's nonce, then the request digest without its code.
fn challenge_message(challenge: &In) -> Vec<u8> {
    assert_eq!((challenge.code, challenge.body[0]), (402, 3), "a challenge with a SHA-256 digest");
    let digest = &challenge.body[1..33];
    assert_eq!(word(&challenge.body, 33), 16);
    [&challenge.body[37..53], digest].concat()
}

/// The 2.7+ secret-key proof: 0x22, salt, iterations, key bits, HMAC-SHA1 under PBKDF2's key.
fn secret_proof(secret: &[u8], challenge: &In) -> Vec<u8> {
    let salt = b"client-salt-0123";
    let key = pbkdf2::pbkdf2_hmac_array::<sha1::Sha1, 20>(secret, salt, 10_000);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&challenge_message(challenge));
    let mut proof = vec![0x22];
    string(&mut proof, salt);
    proof.extend_from_slice(&10_000u32.to_be_bytes());
    proof.extend_from_slice(&160u32.to_be_bytes());
    string(&mut proof, &mac.finalize().into_bytes());
    proof
}

fn answer(kind: &str, admin: &str, index: u32, proof: &[u8], challenge: &In, request: u32) -> Out {
    let mut b = Vec::new();
    string(&mut b, kind.as_bytes());
    string(&mut b, admin.as_bytes());
    b.extend_from_slice(&index.to_be_bytes());
    string(&mut b, proof);
    Out { session: challenge.session, ..Out::new(200, request, b) }
}

/// Sends `out`, answers its challenge with `secret` as `300:0.NA/88.100` on a new connection
/// (as CNRI's client does), and returns the final response.
async fn as_operator(addr: SocketAddr, out: &Out, secret: &[u8]) -> In {
    let challenge = once(addr, out).await;
    assert_eq!((challenge.opcode, challenge.request), (out.opcode, out.request), "{challenge:?}");
    let proof = secret_proof(secret, &challenge);
    once(addr, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, out.request + 1000)).await
}

async fn operator_node() -> TestNode {
    let node = start_server().await;
    let id = Identifier::parse("0.NA/88.100").unwrap();
    let values = prefix_admin_values((300, id.as_str()), Some("s3cret"), 0);
    node.node.put(&Admin::node(), &id, values, &PutOptions::default()).unwrap();
    node
}

async fn resolve(addr: SocketAddr, handle: &str) -> In {
    once(addr, &Out { flags: PUBLIC_ONLY, ..Out::new(1, 1, resolution(handle)) }).await
}

#[tokio::test]
async fn a_secret_key_operator_creates_changes_and_deletes_an_identifier() {
    let node = operator_node().await;
    let addr = node.handle;
    let create = Out::new(100, 7, with_values("88.100/NEW", &[value(1, "URL", "https://a.example/", 0x0e)]));
    let created = as_operator(addr, &create, b"s3cret").await;
    assert_eq!((created.opcode, created.code, created.request), (100, 1, 1007), "{created:?}");
    assert_eq!(created.body, handle_only("88.100/NEW"), "the created handle");
    let resolved = resolve(addr, "88.100/new").await;
    assert_eq!(resolved.code, 1);
    assert!(String::from_utf8_lossy(&resolved.body).contains("https://a.example/"));

    let again = as_operator(addr, &create, b"s3cret").await;
    assert_eq!(again.code, 101, "HANDLE_ALREADY_EXISTS");
    let add = Out::new(102, 8, with_values("88.100/NEW", &[value(2, "EMAIL", "q@a.example", 0x0e)]));
    assert_eq!(as_operator(addr, &add, b"s3cret").await.code, 1);
    assert_eq!(as_operator(addr, &add, b"s3cret").await.code, 201, "VALUE_ALREADY_EXISTS");
    let modify = Out::new(104, 9, with_values("88.100/NEW", &[value(1, "URL", "https://b.example/", 0x0e)]));
    assert_eq!(as_operator(addr, &modify, b"s3cret").await.code, 1);
    let absent = Out::new(104, 10, with_values("88.100/NEW", &[value(5, "URL", "x", 0x0e)]));
    assert_eq!(as_operator(addr, &absent, b"s3cret").await.code, 200, "VALUES_NOT_FOUND");
    let resolved = resolve(addr, "88.100/NEW").await;
    let text = String::from_utf8_lossy(&resolved.body).into_owned();
    assert!(text.contains("https://b.example/") && text.contains("q@a.example"), "{text}");
    let mut remove = handle_only("88.100/NEW");
    remove.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(as_operator(addr, &Out::new(103, 11, remove), b"s3cret").await.code, 1);
    assert!(!String::from_utf8_lossy(&resolve(addr, "88.100/NEW").await.body).contains("q@a.example"));
    assert_eq!(as_operator(addr, &Out::new(101, 12, handle_only("88.100/NEW")), b"s3cret").await.code, 1);
    assert_eq!(resolve(addr, "88.100/NEW").await.code, 100, "deleted");
    node.stop().await;
}

#[tokio::test]
async fn wrong_proofs_stale_challenges_and_foreign_prefixes_are_refused() {
    let node = operator_node().await;
    let addr = node.handle;
    let create = Out::new(100, 7, with_values("88.100/NOPE", &[value(1, "URL", "x", 0x0e)]));
    let wrong = as_operator(addr, &create, b"not the secret").await;
    assert_eq!((wrong.opcode, wrong.code), (100, 403), "{wrong:?}");
    assert_eq!(resolve(addr, "88.100/NOPE").await.code, 100, "nothing was created");

    let challenge = once(addr, &create).await;
    let proof = secret_proof(b"s3cret", &challenge);
    let first = once(addr, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, 2)).await;
    assert!(matches!(first.code, 1 | 403), "passes, or is still backed off after the failure: {first:?}");
    let replay = once(addr, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, 3)).await;
    assert_eq!(replay.code, 405, "a challenge is answered once");

    // 88.100's operator has no right under 88.200.
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the backoff of the failure
    let foreign = Out::new(100, 20, with_values("88.200/X", &[value(1, "URL", "x", 0x0e)]));
    assert_eq!(as_operator(addr, &foreign, b"s3cret").await.code, 401, "INSUFFICIENT_PERMISSIONS");

    // The UDP thread serves no administration.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&create.bytes(), addr).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await.unwrap().unwrap();
    assert_eq!(word(&buf[..n], 24), 4, "PROTOCOL_ERROR over UDP");
    node.stop().await;
}

#[tokio::test]
async fn a_key_pair_logs_in_once_per_connection_as_the_national_sdks_do() {
    let node = start_server().await;
    let addr = node.handle;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let mut encoded = Vec::new();
    string(&mut encoded, b"RSA_PUB_KEY");
    encoded.extend_from_slice(&[0, 0]);
    string(&mut encoded, &private.e().to_bytes_be());
    string(&mut encoded, &[&[0u8][..], &private.n().to_bytes_be()].concat()); // Java's sign byte
    let id = Identifier::parse("0.NA/88.100").unwrap();
    let mut values = prefix_admin_values((300, id.as_str()), None, 0);
    let mut key = Value::new(300, "HS_PUBKEY", encoded, 0);
    key.permissions = Permissions::new(true, true, true, false);
    values.push(key);
    node.node.put(&Admin::node(), &id, values, &PutOptions::default()).unwrap();

    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut login = handle_only("0.NA/88.100");
    login.extend_from_slice(&300u32.to_be_bytes());
    let login = Out { session: 10_001, ..Out::new(2001, 1, login) };
    let challenge = exchange(&mut stream, &login).await;
    assert_eq!((challenge.opcode, challenge.code), (2001, 402));
    let signed = challenge_message(&challenge);
    let signature = private.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(&signed)).unwrap();
    let mut proof = Vec::new();
    string(&mut proof, b"SHA-256");
    string(&mut proof, &signature);
    let logged_in = exchange(&mut stream, &answer("HS_PUBKEY", "0.NA/88.100", 0, &proof, &challenge, 2)).await;
    assert_eq!((logged_in.opcode, logged_in.code, logged_in.request), (2001, 1, 2), "{logged_in:?}");

    // On that connection, writes need no further challenge.
    let create = Out { session: 10_001, ..Out::new(100, 3, with_values("88.100/K", &[value(1, "URL", "k", 0x0e)])) };
    let created = exchange(&mut stream, &create).await;
    assert_eq!((created.opcode, created.code), (100, 1), "{created:?}");
    // Another connection is not logged in.
    let other = once(addr, &Out::new(101, 4, handle_only("88.100/K"))).await;
    assert_eq!(other.code, 402);
    // A signature by another key does not pass.
    let stranger = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let forged = stranger
        .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(challenge_message(&other)))
        .unwrap();
    let mut proof = Vec::new();
    string(&mut proof, b"SHA-256");
    string(&mut proof, &forged);
    let refused = once(addr, &answer("HS_PUBKEY", "0.NA/88.100", 300, &proof, &other, 5)).await;
    assert_eq!((refused.opcode, refused.code), (101, 403));
    node.stop().await;
}

#[tokio::test]
async fn non_public_values_are_read_after_a_challenge_when_public_only_is_clear() {
    let node = operator_node().await;
    let addr = node.handle;
    let mut private = Value::new(2, "EMAIL", "hidden@a.example", 0);
    private.permissions = Permissions::new(true, true, false, false);
    let values = vec![Value::new(1, "URL", "https://open.example/", 0), private];
    node.node.put(&Admin::node(), &Identifier::parse("88.100/P").unwrap(), values, &PutOptions::default()).unwrap();

    let public = resolve(addr, "88.100/P").await;
    assert_eq!(public.code, 1);
    assert!(!String::from_utf8_lossy(&public.body).contains("hidden@"));
    let all = as_operator(addr, &Out::new(1, 30, resolution("88.100/P")), b"s3cret").await;
    assert_eq!((all.opcode, all.code), (1, 1), "{all:?}");
    assert!(String::from_utf8_lossy(&all.body).contains("hidden@a.example"));
    // Nothing withheld: no challenge.
    let open = vec![Value::new(1, "URL", "https://open.example/", 0)];
    node.node.put(&Admin::node(), &Identifier::parse("88.100/Q").unwrap(), open, &PutOptions::default()).unwrap();
    assert_eq!(once(addr, &Out::new(1, 31, resolution("88.100/Q"))).await.code, 1);
    node.stop().await;
}

/// Reads one response from `stream`, with the flags of its header.
async fn read(stream: &mut TcpStream) -> (In, u32) {
    let mut head = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut head)).await.unwrap().unwrap();
    let mut m = vec![0u8; word(&head, 16) as usize];
    stream.read_exact(&mut m).await.unwrap();
    let body = m[24..24 + word(&m, 20) as usize].to_vec();
    (In { session: word(&head, 4), request: word(&head, 8), opcode: word(&m, 0), code: word(&m, 4), body }, word(&m, 8))
}

#[tokio::test]
async fn an_operator_lists_a_prefix_in_messages_of_500_names() {
    let node = operator_node().await;
    let addr = node.handle;
    let ops = (0..1200)
        .map(|i| idnode::node::Op::Put {
            id: Identifier::parse(&format!("88.100.9/ITEM-{i:04}")).unwrap(),
            values: vec![Value::new(1, "URL", "x", 0)],
            options: PutOptions::default(),
        })
        .collect();
    node.node.batch(&Admin::node(), ops).unwrap();

    let list = Out::new(105, 40, handle_only("0.NA/88.100.9"));
    let challenge = once(addr, &list).await;
    assert_eq!((challenge.opcode, challenge.code), (105, 402));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let proof = secret_proof(b"s3cret", &challenge);
    let reply = answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, 41);
    stream.write_all(&reply.bytes()).await.unwrap();
    let mut names = Vec::new();
    let mut counts = Vec::new();
    loop {
        let (page, flags) = read(&mut stream).await;
        assert_eq!((page.opcode, page.code, page.request), (105, 1, 41), "{page:?}");
        let n = word(&page.body, 0) as usize;
        counts.push(n);
        let mut at = 4;
        for _ in 0..n {
            let len = word(&page.body, at) as usize;
            names.push(String::from_utf8(page.body[at + 4..at + 4 + len].to_vec()).unwrap());
            at += 4 + len;
        }
        if flags & 0x0400_0000 == 0 {
            break;
        }
    }
    assert_eq!(counts, [500, 500, 200], "the continuous flag on all but the last");
    assert_eq!(names.first().map(String::as_str), Some("88.100.9/ITEM-0000"));
    assert_eq!(names.len(), 1200);
    names.dedup();
    assert_eq!(names.len(), 1200, "no name twice across pages");

    // Derived prefixes of 88.100: the demo's 88.100.1; 88.100.9 has no prefix record.
    let derived = as_operator(addr, &Out::new(106, 42, handle_only("88.100")), b"s3cret").await;
    assert_eq!(derived.code, 1, "{derived:?}");
    assert!(String::from_utf8_lossy(&derived.body).contains("88.100.1"));
    // The operator of 88.100 may not list 88.200.
    let foreign = as_operator(addr, &Out::new(105, 43, handle_only("0.NA/88.200")), b"s3cret").await;
    assert_eq!(foreign.code, 401);
    node.stop().await;
}
