//! Administration over the Handle protocol, over real sockets: challenge-response with secret
//! and public keys, the national system's login, every write opcode, non-public reads. Requests
//! and answers are built here from the protocol's layouts (docs/handle-protocol.md), the proofs
//! computed as CNRI's 9.x client computes them, with crates the node does not use for the
//! purpose (the `rsa` crate signs; the node verifies with `ring`).

use std::net::SocketAddr;
use std::time::Duration;

use hmac::Mac;
use idnode::auth::{Admin, prefix_admin_values};
use idnode::config::QuotaOverride;
use idnode::identifier::Identifier;
use idnode::node::PutOptions;
use idnode::record::{Permissions, Value};
use rsa::traits::PublicKeyParts;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{TestNode, start_server, start_server_with};

const PUBLIC_ONLY: u32 = 0x0100_0000;

/// One message to send: opcode, flags, body, envelope ids.
pub(crate) struct Out {
    pub(crate) opcode: u32,
    pub(crate) flags: u32,
    pub(crate) body: Vec<u8>,
    pub(crate) session: u32,
    pub(crate) request: u32,
}

impl Out {
    pub(crate) fn new(opcode: u32, request: u32, body: Vec<u8>) -> Self {
        Self { opcode, flags: 0, body, session: 0, request }
    }

    /// Envelope (2.10 suggesting 2.11, as the national SDKs send) + header + body + empty
    /// credential.
    pub(crate) fn bytes(&self) -> Vec<u8> {
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
pub(crate) struct In {
    pub(crate) session: u32,
    pub(crate) request: u32,
    pub(crate) opcode: u32,
    pub(crate) code: u32,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

pub(crate) fn string(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

pub(crate) async fn exchange(stream: &mut TcpStream, out: &Out) -> In {
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

pub(crate) async fn once(addr: SocketAddr, out: &Out) -> In {
    exchange(&mut TcpStream::connect(addr).await.unwrap(), out).await
}

/// A HandleValue: index, timestamp, relative TTL 86400, permissions, type, data, no references.
pub(crate) fn value(index: u32, kind: &str, data: &str, permissions: u8) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&index.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0x51, 0x80, permissions]);
    string(&mut v, kind.as_bytes());
    string(&mut v, data.as_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v
}

/// Handle, value count, values: the body of CREATE_HANDLE, ADD_VALUE, MODIFY_VALUE.
pub(crate) fn with_values(handle: &str, values: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, handle.as_bytes());
    b.extend_from_slice(&(values.len() as u32).to_be_bytes());
    values.iter().for_each(|v| b.extend_from_slice(v));
    b
}

pub(crate) fn handle_only(handle: &str) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, handle.as_bytes());
    b
}

pub(crate) fn resolution(handle: &str) -> Vec<u8> {
    let mut b = handle_only(handle);
    b.extend_from_slice(&[0; 8]); // no indexes, no types
    b
}

/// What the client signs: the challenge's nonce, then the request digest without its code.
pub(crate) fn challenge_message(challenge: &In) -> Vec<u8> {
    assert_eq!((challenge.code, challenge.body[0]), (402, 3), "a challenge with a SHA-256 digest");
    let digest = &challenge.body[1..33];
    assert_eq!(word(&challenge.body, 33), 16);
    [&challenge.body[37..53], digest].concat()
}

/// The 2.7+ secret-key proof: 0x22, salt, iterations, key bits, HMAC-SHA1 under PBKDF2's key.
pub(crate) fn secret_proof(secret: &[u8], challenge: &In) -> Vec<u8> {
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

pub(crate) fn answer(kind: &str, admin: &str, index: u32, proof: &[u8], challenge: &In, request: u32) -> Out {
    let mut b = Vec::new();
    string(&mut b, kind.as_bytes());
    string(&mut b, admin.as_bytes());
    b.extend_from_slice(&index.to_be_bytes());
    string(&mut b, proof);
    Out { session: challenge.session, ..Out::new(200, request, b) }
}

/// Sends `out`, answers its challenge with `secret` as `300:0.NA/88.100` on a new connection
/// (as CNRI's client does), and returns the final response.
pub(crate) async fn as_operator(addr: SocketAddr, out: &Out, secret: &[u8]) -> In {
    let challenge = once(addr, out).await;
    assert_eq!((challenge.opcode, challenge.request), (out.opcode, out.request), "{challenge:?}");
    let proof = secret_proof(secret, &challenge);
    once(addr, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, out.request + 1000)).await
}

async fn operator_node() -> TestNode {
    operator_on(start_server().await)
}

/// `node` with the operator `300:0.NA/88.100` (secret "s3cret").
pub(crate) fn operator_on(node: TestNode) -> TestNode {
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
    // As CNRI's Util.getBytesFromPublicKey ends every RSA key (the CNRI client check found
    // such keys refused).
    encoded.extend_from_slice(&[0, 0, 0, 0]);
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

/// Sends `out` in one datagram from `socket` and reads one datagram back (small answers only).
async fn over_udp(socket: &UdpSocket, addr: SocketAddr, out: &Out) -> In {
    socket.send_to(&out.bytes(), addr).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf)).await.unwrap().unwrap();
    let m = &buf[20..n];
    In {
        session: word(&buf, 4),
        request: word(&buf, 8),
        opcode: word(m, 0),
        code: word(m, 4),
        body: m[24..24 + word(m, 20) as usize].to_vec(),
    }
}

/// CNRI's client sends a resolution with public-only clear over UDP and answers its challenge
/// over UDP too (the CNRI client check found that answer refused with PROTOCOL_ERROR); the node
/// checks it off the UDP receiving thread.
#[tokio::test]
async fn a_challenge_of_a_udp_resolution_is_answered_over_udp() {
    let node = operator_node().await;
    let addr = node.handle;
    let mut private = Value::new(2, "EMAIL", "hidden@u.example", 0);
    private.permissions = Permissions::new(true, true, false, false);
    let values = vec![Value::new(1, "URL", "https://u.example/", 0), private];
    node.node.put(&Admin::node(), &Identifier::parse("88.100/U").unwrap(), values, &PutOptions::default()).unwrap();

    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let challenge = over_udp(&socket, addr, &Out::new(1, 40, resolution("88.100/U"))).await;
    assert_eq!((challenge.opcode, challenge.request), (1, 40), "{challenge:?}");
    let proof = secret_proof(b"s3cret", &challenge);
    let all = over_udp(&socket, addr, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, 41)).await;
    assert_eq!((all.opcode, all.code, all.request), (1, 1, 41), "{all:?}");
    assert!(String::from_utf8_lossy(&all.body).contains("hidden@u.example"));

    let again = over_udp(&socket, addr, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, 42)).await;
    assert_eq!(again.code, 405, "a challenge is answered once, over UDP too");
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

/// RFC 2409's 1024-bit MODP group, the size of Java's default Diffie-Hellman parameters.
const MODP_1024: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
);

/// `out` signed in session `session` with `key` and `counter` (an HS_MAC credential, as CNRI's
/// client writes it from 2.7: HMAC-SHA256 over versions, ids, counter, header and body).
fn in_session(out: &Out, session: u32, counter: u32, key: &[u8]) -> Vec<u8> {
    let mut bytes = Out { session, ..Out::new(out.opcode, out.request, out.body.clone()) }.bytes();
    bytes.truncate(bytes.len() - 4); // the empty credential
    let signed = &bytes[20..];
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(&[2, 10, 2, 11]);
    for n in [session, out.request, counter] {
        mac.update(&n.to_be_bytes());
    }
    mac.update(signed);
    let mac = mac.finalize().into_bytes();
    let mut credential = vec![0, 0, 0, 0, 0, 0, 0, 0];
    credential.extend_from_slice(&counter.to_be_bytes());
    string(&mut credential, b"HS_MAC");
    credential.extend_from_slice(&((4 + 11 + 4 + mac.len()) as u32).to_be_bytes());
    string(&mut credential, b"HMAC-SHA256");
    string(&mut credential, &mac);
    string(&mut bytes, &credential);
    let length = (bytes.len() - 20) as u32;
    bytes[16..20].copy_from_slice(&length.to_be_bytes());
    bytes
}

async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> In {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read(&mut stream).await.0
}

#[tokio::test]
async fn a_session_is_set_up_authenticated_once_and_ended_as_cnri_s_client_does() {
    use num_bigint_dig::BigUint;
    // Sessions need the server key: the setup's answer is signed with it.
    let node = operator_on(
        crate::start_server_with(|config| {
            idnode::handle::key::ServerKey::load_or_create(&config.data_dir).unwrap();
        })
        .await,
    );
    let addr = node.handle;
    // SESSION_SETUP, mode 4 (Diffie-Hellman), CT and RD set as CNRI's client sends it.
    let p = BigUint::parse_bytes(MODP_1024.as_bytes(), 16).unwrap();
    let x = BigUint::from_bytes_be(b"the client's secret exponent");
    let y = BigUint::from(2u32).modpow(&x, &p);
    let mut dh = Vec::new();
    string(&mut dh, b"DH_PUB_KEY");
    dh.extend_from_slice(&[0, 0]);
    for n in [&y, &p, &BigUint::from(2u32)] {
        string(&mut dh, &[&[0u8][..], &n.to_bytes_be()].concat());
    }
    let mut body = vec![0, 4];
    body.extend_from_slice(&86_400u32.to_be_bytes());
    string(&mut body, b"0.NA/88.100");
    body.extend_from_slice(&300u32.to_be_bytes());
    string(&mut body, &dh);
    body.extend_from_slice(&[0, 0]);
    let setup = Out { flags: 0x4080_0000, ..Out::new(400, 50, body) };
    let response = once(addr, &setup).await;
    assert_eq!((response.opcode, response.code), (400, 1), "{response:?}");
    let session = response.session;
    assert_ne!(session, 0, "the session's id");
    // Body: digest (code 3 and SHA-256), mode, data (cipher, the node's DH value), 2 zero bytes.
    let mut at = 33;
    assert_eq!(&response.body[at..at + 2], &[0, 4]);
    at += 2;
    let data = &response.body[at + 4..at + 4 + word(&response.body, at) as usize];
    assert_eq!(word(data, 0), 3, "AES");
    let mut r = 4 + 4 + 10 + 2;
    let theirs = BigUint::from_bytes_be(&data[r + 4..r + 4 + word(data, r) as usize]);
    r += 4 + word(data, r) as usize;
    assert_eq!(BigUint::from_bytes_be(&data[r + 4..r + 4 + word(data, r) as usize]), p, "the client's group");
    let shared = theirs.modpow(&x, &p).to_bytes_be();
    let key = &shared[..32];

    // The first write of the session is challenged with the session's id, then runs.
    let create = Out::new(100, 51, with_values("88.100/S", &[value(1, "URL", "s", 0x0e)]));
    let challenge = send_raw(addr, &in_session(&create, session, 1, key)).await;
    assert_eq!((challenge.code, challenge.session), (402, session), "{challenge:?}");
    let proof = secret_proof(b"s3cret", &challenge);
    let created = once(addr, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, 52)).await;
    assert_eq!((created.opcode, created.code), (100, 1), "{created:?}");
    // Later requests of the session run without a challenge, each with a new counter.
    let delete = Out::new(101, 53, handle_only("88.100/S"));
    let deleted = send_raw(addr, &in_session(&delete, session, 2, key)).await;
    assert_eq!((deleted.opcode, deleted.code), (101, 1), "{deleted:?}");
    assert_eq!(send_raw(addr, &in_session(&delete, session, 2, key)).await.code, 505, "a replay");
    assert_eq!(send_raw(addr, &in_session(&delete, session, 3, &[0; 32])).await.code, 403, "a forged MAC");
    // SESSION_TERMINATE ends it; the client then learns to set up another.
    let end = Out::new(401, 54, handle_only("/"));
    assert_eq!(send_raw(addr, &in_session(&end, session, 4, key)).await.code, 1);
    assert_eq!(send_raw(addr, &in_session(&delete, session, 5, key)).await.code, 500, "SESSION_TIMEOUT");
    node.stop().await;
}

#[tokio::test]
async fn a_request_in_pieces_over_udp_is_answered_once_whole() {
    let node = start_server().await;
    // A resolution asking 81 types: over 1,700 bytes, in pieces of 492 as CNRI's client cuts them.
    let mut body = handle_only("88.100.1/ABC-123");
    body.extend_from_slice(&[0, 0, 0, 0]);
    body.extend_from_slice(&80u32.to_be_bytes());
    for i in 0..80 {
        string(&mut body, format!("TYPE-{i:03}-PADDING").as_bytes());
    }
    string(&mut body, b"URL");
    body[24..28].copy_from_slice(&81u32.to_be_bytes()); // the type list: 80 fillers and URL
    let whole = Out { flags: PUBLIC_ONLY, ..Out::new(1, 77, body) }.bytes();
    let message = &whole[20..];
    let pieces: Vec<&[u8]> = message.chunks(492).collect();
    assert!(pieces.len() >= 3, "{} bytes", message.len());
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (i, piece) in pieces.iter().enumerate().rev() {
        let mut datagram = whole[..20].to_vec();
        datagram[2] |= 0x20; // TC
        datagram[12..16].copy_from_slice(&(i as u32).to_be_bytes());
        datagram.extend_from_slice(piece);
        socket.send_to(&datagram, node.handle).await.unwrap();
    }
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await.unwrap().unwrap();
    let response = &buf[..n];
    assert_eq!(
        (word(response, 8), word(response, 20), word(response, 24)),
        (77, 1, 1),
        "request 77, RESOLUTION, SUCCESS"
    );
    assert!(String::from_utf8_lossy(response).contains("https://example.com/products/ABC-123"));
    // Nothing else comes: the pieces made one request.
    let more = tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf)).await;
    assert!(more.is_err(), "one answer");
    node.stop().await;
}

/// RESOLUTION of `handle` asking for the site types, as CNRI's client asks a prefix record.
pub(crate) fn site_query(handle: &str, request: u32) -> Out {
    let mut b = handle_only(handle);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
    string(&mut b, b"HS_SITE");
    string(&mut b, b"HS_SERV");
    Out { flags: PUBLIC_ONLY, ..Out::new(1, request, b) }
}

/// The (type, data) of each HandleValue in a resolution or referral body.
pub(crate) fn typed_values(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut at = 4 + word(body, 0) as usize;
    let n = word(body, at);
    at += 4;
    let mut out = Vec::new();
    for _ in 0..n {
        at += 14;
        let kind = String::from_utf8(body[at + 4..at + 4 + word(body, at) as usize].to_vec()).unwrap();
        at += 4 + kind.len();
        let data = body[at + 4..at + 4 + word(body, at) as usize].to_vec();
        at += 4 + data.len() + 4 + 8 * word(body, at + 4 + data.len()) as usize;
        out.push((kind, data));
    }
    out
}

#[tokio::test]
async fn a_client_rooted_at_the_top_level_node_finds_the_secondary_and_resolves_there() {
    let secondary = crate::start_server_with(|c| c.dns.zones = vec!["88.100".into()]).await;
    let top = crate::start_server_with(|c| c.dns.zones = vec!["88".into()]).await;
    // The secondary's own site, registered at the top-level node as the delegation of 88.100.
    let mut info = Vec::new();
    string(&mut info, b"/");
    let site = once(secondary.handle, &Out::new(2, 1, info)).await;
    assert_eq!(site.code, 1);
    let delegation = vec![Value::new(1, "HS_SITE", site.body.clone(), 0)];
    top.node
        .put(&Admin::node(), &Identifier::parse("0.NA/88.100").unwrap(), delegation, &PutOptions::default())
        .unwrap();

    // CNRI's client asks its root for the prefix record of 88.100.1/ABC-123's prefix ...
    let referral = once(top.handle, &site_query("0.NA/88.100.1", 2)).await;
    assert_eq!(referral.code, 303, "PREFIX_REFERRAL: {referral:?}");
    let referred = typed_values(&referral.body);
    assert_eq!(referred, [("HS_SITE.PREFIX".to_owned(), site.body.clone())], "the delegation's site");
    let found = idnode::record::site::Site::decode(&referred[0].1).unwrap();
    let tcp = found.servers[0].interfaces.iter().find(|i| i.protocol == "TCP").unwrap();
    let next = SocketAddr::new(found.servers[0].address, tcp.port as u16);
    assert_eq!(next, secondary.handle);
    // ... asks the referred site the same, and gets the site homing the prefix ...
    let homed = once(next, &site_query("0.NA/88.100.1", 3)).await;
    assert_eq!(homed.code, 1, "{homed:?}");
    let sites = typed_values(&homed.body);
    assert!(sites.iter().any(|(t, d)| t == "HS_SITE" && *d == site.body), "{sites:?}");
    // ... and resolves the identifier there.
    let resolved = resolve(next, "88.100.1/ABC-123").await;
    assert_eq!(resolved.code, 1);
    assert!(String::from_utf8_lossy(&resolved.body).contains("https://example.com/products/ABC-123"));
    // A plain resolution of the prefix record is the record as stored: no site is added.
    let plain = resolve(next, "0.NA/88.100.1").await;
    assert!(typed_values(&plain.body).iter().all(|(t, _)| t != "HS_SITE"), "{plain:?}");
    // The top-level node answers for an identifier it delegated with SERVER_NOT_RESP.
    assert_eq!(resolve(top.handle, "88.100.1/ABC-123").await.code, 301);
    top.stop().await;
    secondary.stop().await;
}

/// A secondary node serving 88.100 and a top-level node serving 88, and the secondary's site
/// (GET_SITE_INFO), not yet registered at the top-level node.
pub(crate) async fn top_and_secondary() -> (TestNode, TestNode, Vec<u8>) {
    let secondary = crate::start_server_with(|c| c.dns.zones = vec!["88.100".into()]).await;
    let top = crate::start_server_with(|c| c.dns.zones = vec!["88".into()]).await;
    let mut info = Vec::new();
    string(&mut info, b"/");
    let site = once(secondary.handle, &Out::new(2, 1, info)).await.body;
    (top, secondary, site)
}

/// Stores `data` as value 1 of type `kind` of `id` at `node`, as the node itself.
pub(crate) fn put_value(node: &TestNode, id: &str, kind: &str, data: Vec<u8>) {
    let values = vec![Value::new(1, kind, data, 0)];
    node.node.put(&Admin::node(), &Identifier::parse(id).unwrap(), values, &PutOptions::default()).unwrap();
}

#[tokio::test]
async fn a_recursive_node_resolves_requests_asking_for_recursion_down_the_tree() {
    let (top, secondary, site) = top_and_secondary().await;
    put_value(&top, "0.NA/88.100", "HS_SITE", site);
    let root = top.handle;
    let recursive = crate::start_server_with(|c| c.recursive.handle_roots = vec![root]).await;
    let ask = |handle: &str, request: u32, flags: u32| Out { flags, ..Out::new(1, request, resolution(handle)) };
    const REC_PO_RD: u32 = 0x1000_0000 | PUBLIC_ONLY | 0x0080_0000;

    let answer = once(recursive.handle, &ask("88.100.1/ABC-123", 5, REC_PO_RD)).await;
    assert_eq!((answer.opcode, answer.code, answer.request), (1, 1, 5), "{answer:?}");
    assert!(String::from_utf8_lossy(&answer.body).contains("https://example.com/products/ABC-123"));
    // The digest the secondary computed covers the request as the client sent it.
    let sent = ask("88.100.1/ABC-123", 5, REC_PO_RD).bytes();
    assert_eq!(&answer.body[1..33], &sha2::Sha256::digest(&sent[20..sent.len() - 4])[..]);
    // The sites of 88.100.1 are kept: with the top-level node gone, it still resolves.
    top.stop().await;
    let again = once(recursive.handle, &ask("88.100.1/ABC-123", 6, REC_PO_RD)).await;
    assert_eq!(again.code, 1, "{again:?}");
    // An unknown identifier under a known prefix is the secondary's HANDLE_NOT_FOUND.
    assert_eq!(once(recursive.handle, &ask("88.100.1/NOPE", 7, REC_PO_RD)).await.code, 100);
    // Without the recursion flag the node answers for itself; over UDP the recursion is done
    // off the receiving thread, and answered.
    assert_ne!(once(recursive.handle, &ask("88.100.1/ABC-123", 8, PUBLIC_ONLY)).await.code, 2);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&ask("88.100.1/ABC-123", 9, REC_PO_RD).bytes(), recursive.handle).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await.unwrap().unwrap();
    assert_eq!((word(&buf[..n], 8), word(&buf[..n], 24)), (9, 1), "SUCCESS over UDP");
    // A prefix no node serves, the roots gone: an error, not a hang.
    let lost = once(recursive.handle, &ask("77.1/X", 10, REC_PO_RD)).await;
    assert_eq!(lost.code, 2, "{lost:?}");
    // The answers themselves are kept for their TTL (a day here), not-found ones for
    // max_negative_ttl: with the secondary gone too, they are still given, each with this
    // request's id and digest; a request asking a signed answer is not served from them.
    secondary.stop().await;
    let kept = once(recursive.handle, &ask("88.100.1/ABC-123", 11, REC_PO_RD)).await;
    assert_eq!((kept.code, kept.request), (1, 11), "{kept:?}");
    let sent = ask("88.100.1/ABC-123", 11, REC_PO_RD).bytes();
    assert_eq!(&kept.body[1..33], &sha2::Sha256::digest(&sent[20..sent.len() - 4])[..]);
    assert_eq!(once(recursive.handle, &ask("88.100.1/NOPE", 12, REC_PO_RD)).await.code, 100);
    const CT: u32 = 0x4000_0000;
    assert_eq!(once(recursive.handle, &ask("88.100.1/ABC-123", 13, REC_PO_RD | CT)).await.code, 2);
    recursive.stop().await;
}

//------------ Quotas ------------------------------------------------------------------------

/// Logs `stream` in with LOGIN_ID_SYSTEM (2001) as `300:0.NA/88.100` with its secret, as
/// Teleinfo's SDK does: GET_SITE_INFO first on the same connection with the session id the SDK
/// picked (10001 and up), then the login.
async fn log_in_with_secret(stream: &mut TcpStream, secret: &[u8]) {
    let site = Out { session: 10_001, ..Out::new(2, 90, handle_only("/")) };
    assert_eq!(exchange(stream, &site).await.code, 1, "GET_SITE_INFO");
    log_in_without_site(stream, secret).await;
}

/// As CAICT's ID-SDK 2.0.3 logs in: GET_SITE_INFO with session id 0 when its channel opens
/// (IdentifierResolveEngine.createConnection), then the login.
async fn log_in_as_caict(stream: &mut TcpStream, secret: &[u8]) {
    assert_eq!(exchange(stream, &Out::new(2, 90, handle_only("/"))).await.code, 1, "GET_SITE_INFO");
    log_in_without_site(stream, secret).await;
}

/// The login alone.
async fn log_in_without_site(stream: &mut TcpStream, secret: &[u8]) {
    let mut login = handle_only("0.NA/88.100");
    login.extend_from_slice(&300u32.to_be_bytes());
    let challenge = exchange(stream, &Out::new(2001, 1, login)).await;
    assert_eq!((challenge.opcode, challenge.code), (2001, 402));
    let proof = secret_proof(secret, &challenge);
    let logged_in = exchange(stream, &answer("HS_SECKEY", "0.NA/88.100", 300, &proof, &challenge, 2)).await;
    assert_eq!((logged_in.opcode, logged_in.code), (2001, 1), "{logged_in:?}");
}

/// The message of an error body (no digest asked for).
fn error_message(response: &In) -> String {
    assert_eq!(word(&response.body, 0) as usize, response.body.len() - 4, "{response:?}");
    String::from_utf8(response.body[4..].to_vec()).unwrap()
}

fn create(handle: &str, request: u32) -> Out {
    Out::new(100, request, with_values(handle, &[value(1, "URL", "https://q.example/", 0x0e)]))
}

#[tokio::test]
async fn a_client_logged_in_with_2001_gets_the_national_quota_codes_604_and_603() {
    let node = operator_on(
        start_server_with(|c| {
            let o = QuotaOverride { identifiers: Some(1), daily_requests: Some(4), ..QuotaOverride::default() };
            c.quota.prefix.insert("88.100".into(), o);
        })
        .await,
    );
    let mut stream = TcpStream::connect(node.handle).await.unwrap();
    log_in_with_secret(&mut stream, b"s3cret").await;
    // The day's requests: 1.
    assert_eq!(exchange(&mut stream, &create("88.100/A", 3)).await.code, 1);
    // 2: the prefix is full.
    let full = exchange(&mut stream, &create("88.100/B", 4)).await;
    assert_eq!((full.opcode, full.code), (100, 604), "{full:?}");
    let message = error_message(&full);
    assert!(message.contains("88.100") && message.contains("604"), "{message}");
    // 3: a resolution as the administrator (public-only clear) counts; 4: a delete.
    assert_eq!(exchange(&mut stream, &Out::new(1, 5, resolution("88.100/A"))).await.code, 1);
    assert_eq!(exchange(&mut stream, &Out::new(101, 6, handle_only("88.100/A"))).await.code, 1);
    // 5: over the day's 4.
    let over = exchange(&mut stream, &create("88.100/B", 7)).await;
    assert_eq!((over.opcode, over.code), (100, 603), "{over:?}");
    assert!(error_message(&over).contains("603"), "{over:?}");
    assert!(node.registry.get(&Identifier::parse("88.100/B").unwrap()).unwrap().is_none());
    // Anonymous resolutions are not counted.
    assert_eq!(resolve(node.handle, "88.100.1/ABC-123").await.code, 1);
    node.stop().await;
}

#[tokio::test]
async fn a_client_that_did_not_log_in_gets_rc_error_naming_604() {
    let node = operator_on(start_server_with(|c| c.quota.identifiers = 1).await);
    let addr = node.handle;
    assert_eq!(as_operator(addr, &create("88.100/A", 7), b"s3cret").await.code, 1);
    let refused = as_operator(addr, &create("88.100/B", 8), b"s3cret").await;
    // CNRI's client throws on 604; RC_ERROR it reports with the message.
    assert_eq!((refused.opcode, refused.code), (100, 2), "{refused:?}");
    let message = error_message(&refused);
    assert!(message.contains("604") && message.contains("RC_REGISTER_COUNT_LIMIT"), "{message}");
    node.stop().await;
}

#[tokio::test]
async fn a_client_logged_in_without_asking_the_site_gets_rc_error_naming_604() {
    let node = operator_on(start_server_with(|c| c.quota.identifiers = 1).await);
    let mut stream = TcpStream::connect(node.handle).await.unwrap();
    log_in_without_site(&mut stream, b"s3cret").await;
    assert_eq!(exchange(&mut stream, &create("88.100/A", 3)).await.code, 1);
    // CAICT's SDK logs in so, and knows 407, 408 and 3001, not 603-605.
    let refused = exchange(&mut stream, &create("88.100/B", 4)).await;
    assert_eq!((refused.opcode, refused.code), (100, 2), "{refused:?}");
    assert!(error_message(&refused).contains("604"), "{refused:?}");
    node.stop().await;
}

#[tokio::test]
async fn caict_s_login_after_asking_the_site_with_session_id_0_gets_rc_error_naming_604() {
    let node = operator_on(start_server_with(|c| c.quota.identifiers = 1).await);
    let mut stream = TcpStream::connect(node.handle).await.unwrap();
    log_in_as_caict(&mut stream, b"s3cret").await;
    assert_eq!(exchange(&mut stream, &create("88.100/A", 3)).await.code, 1);
    // CAICT's decoder knows 407, 408 and 3001, not 603-605: on 604 it throws "未知响应码: 604"
    // and the application never sees the message (conformance/national-sdk/run-caict).
    let refused = exchange(&mut stream, &create("88.100/B", 4)).await;
    assert_eq!((refused.opcode, refused.code), (100, 2), "{refused:?}");
    assert!(error_message(&refused).contains("604"), "{refused:?}");
    node.stop().await;
}

#[tokio::test]
async fn a_caict_channel_s_anonymous_lookups_get_the_public_values_and_others_are_challenged() {
    let node = operator_node().await;
    // ABC-123 holds a value only administrators may read (index 50, the demo's).
    let ask = Out::new(1, 21, resolution("88.100.1/ABC-123"));
    // CAICT's SDK opens its channel with GET_SITE_INFO at session id 0, never sets public-only
    // and answers challenges only to log in: its lookups get the public values.
    let mut channel = TcpStream::connect(node.handle).await.unwrap();
    assert_eq!(exchange(&mut channel, &Out::new(2, 20, handle_only("/"))).await.code, 1);
    let looked_up = exchange(&mut channel, &ask).await;
    assert_eq!((looked_up.opcode, looked_up.code), (1, 1), "{looked_up:?}");
    assert!(String::from_utf8_lossy(&looked_up.body).contains("https://example.com/products/ABC-123"));
    // Any other client asking for every value is challenged, as CNRI's server does.
    assert_eq!(once(node.handle, &ask).await.code, 402);
    node.stop().await;
}

#[tokio::test]
async fn teleinfo_resolutions_with_their_trailing_field_and_keep_alives_are_answered_on_a_logged_in_connection() {
    let node = operator_node().await;
    let mut stream = TcpStream::connect(node.handle).await.unwrap();
    log_in_with_secret(&mut stream, b"s3cret").await;
    // The SDK's own session id on every request, no MAC; RECU_AUTH (0x4) set; `bytes authBytes`
    // (empty) after the type list.
    let teleinfo = |handle: &str, request: u32, session: u32| {
        let mut body = resolution(handle);
        body.extend_from_slice(&[0, 0, 0, 0]);
        Out { flags: PUBLIC_ONLY | 0x1000_0000 | 0x4, session, ..Out::new(1, request, body) }
    };
    let resolved = exchange(&mut stream, &teleinfo("88.100.1/ABC-123", 11, 10_001)).await;
    assert_eq!((resolved.opcode, resolved.code, resolved.request), (1, 1, 11), "{resolved:?}");
    assert!(String::from_utf8_lossy(&resolved.body).contains("https://example.com/products/ABC-123"));
    // The keep-alive: a resolution of "0" with session id 0, answered with an ordinary code.
    let alive = exchange(&mut stream, &teleinfo("0", 12, 0)).await;
    assert!(matches!(alive.code, 100 | 102 | 200), "{alive:?}");
    // Still logged in: a write runs without a challenge (never a 402 on a logged-in connection).
    let created = exchange(&mut stream, &create("88.100/ALIVE", 13)).await;
    assert_eq!((created.opcode, created.code), (100, 1), "{created:?}");
    node.stop().await;
}
