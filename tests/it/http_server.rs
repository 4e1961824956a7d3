//! The HTTP listener's limits over real sockets on the loopback: header, idle and request
//! timeouts, the connection caps, HTTPS and its configuration errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idnode::config::HttpConfig;
use idnode::http::HttpListener;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::start_server_with;

const GET: &str = "GET /api/handles/88.100.1/ABC-123 HTTP/1.1\r\nHost: idnode\r\n\r\n";

/// Reads one response: its status and its body (by Content-Length), within 3 s.
async fn read_response<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(3), async {
        let mut status = String::new();
        r.read_line(&mut status).await.unwrap();
        let code = status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{status:?}"));
        let mut length = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).await.unwrap();
        (code, String::from_utf8(body).unwrap())
    })
    .await
    .expect("a response within 3 s")
}

/// Reads until the server closes the connection (a reset counts); panics after `within`.
/// Returns what was read and when the connection closed.
async fn until_closed<R: AsyncRead + Unpin>(r: &mut R, within: Duration) -> (Vec<u8>, Instant) {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, r.read_to_end(&mut out)).await.expect("the server closes the connection");
    (out, Instant::now())
}

async fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).await.unwrap())
}

/// A keep-alive request answered with the demo identifier.
async fn get_abc<S: AsyncRead + AsyncWrite + Unpin>(s: &mut BufReader<S>) {
    s.get_mut().write_all(GET.as_bytes()).await.unwrap();
    let (status, body) = read_response(s).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((json["responseCode"].as_u64(), json["handle"].as_str()), (Some(1), Some("88.100.1/ABC-123")), "{json}");
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_cut_off_after_the_header_timeout() {
    let node = start_server_with(|c| c.http.header_timeout_secs = 1).await;
    let mut s = connect(node.http).await;
    let start = Instant::now();
    s.get_mut().write_all(b"GET /api/handles/88.100.1/ABC-123 HTTP/1.1\r\nHost: idn").await.unwrap();
    let (out, closed) = until_closed(&mut s, Duration::from_secs(4)).await;
    let waited = closed - start;
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}");
    assert!(!String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"), "{out:?}");
    // The node still serves.
    get_abc(&mut connect(node.http).await).await;
    node.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let node = start_server_with(|c| c.http.header_timeout_secs = 1).await;
    let mut s = connect(node.http).await;
    get_abc(&mut s).await;
    let answered = Instant::now();
    let (out, closed) = until_closed(&mut s, Duration::from_secs(4)).await;
    let waited = closed - answered;
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}: {out:?}");
    node.stop().await;
}

/// Sends an authenticated PUT (an anonymous write is refused before its body is read) whose
/// body promises 100 bytes and stops after 10.
async fn start_stalled_write(node: &crate::TestNode, s: &mut BufReader<TcpStream>) {
    let auth = crate::hardening::top_admin(node, "top-secret");
    let head = format!(
        "PUT /api/handles/88.100.1/SLOW HTTP/1.1\r\nHost: idnode\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\n"
    );
    s.get_mut().write_all(format!("{head}Content-Length: 100\r\n\r\n{{\"values\":").as_bytes()).await.unwrap();
}

#[tokio::test]
async fn a_stalled_body_gets_503_after_the_request_timeout() {
    let node = start_server_with(|c| c.http.request_timeout_secs = 1).await;
    let mut s = connect(node.http).await;
    let start = Instant::now();
    start_stalled_write(&node, &mut s).await;
    let (status, body) = read_response(&mut s).await;
    assert!(start.elapsed() >= Duration::from_millis(900), "{:?}", start.elapsed());
    assert_eq!(status, 503, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["responseCode"], 3, "SERVER_TOO_BUSY: {json}");
    assert!(json["message"].is_string(), "{json}");
    until_closed(&mut s, Duration::from_secs(2)).await;
    node.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_cut_off_after_the_idle_timeout() {
    let node = start_server_with(|c| c.http.idle_timeout_secs = 1).await;
    let mut s = connect(node.http).await;
    let start = Instant::now();
    start_stalled_write(&node, &mut s).await;
    // Long before the 30 s request timeout.
    let (out, closed) = until_closed(&mut s, Duration::from_secs(4)).await;
    let waited = closed - start;
    assert!(waited >= Duration::from_millis(900), "closed after {waited:?}");
    let out = String::from_utf8_lossy(&out);
    assert!(!out.starts_with("HTTP/1.1 2") && !out.starts_with("HTTP/1.1 503"), "{out}");
    node.stop().await;
}

#[tokio::test]
async fn a_third_connection_waits_while_two_are_open() {
    let node = start_server_with(|c| c.http.max_connections = 2).await;
    let mut a = connect(node.http).await;
    let mut b = connect(node.http).await;
    get_abc(&mut a).await;
    get_abc(&mut b).await;
    let mut c = connect(node.http).await; // the kernel completes the handshake; nobody accepts
    c.get_mut().write_all(GET.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), c.read(&mut byte)).await;
    assert!(early.is_err(), "the third connection was served while two were open: {early:?}");
    drop(a);
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 200, "{body}");
    get_abc(&mut b).await;
    node.stop().await;
}

#[tokio::test]
async fn a_second_connection_from_one_address_is_closed_while_another_address_is_served() {
    let node = start_server_with(|c| c.http.max_connections_per_source = 1).await;
    let mut first = connect(node.http).await;
    get_abc(&mut first).await;
    let mut second = connect(node.http).await;
    let _ = second.get_mut().write_all(GET.as_bytes()).await; // may already be reset
    let (out, _) = until_closed(&mut second, Duration::from_secs(3)).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    // Another source address on the loopback.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = BufReader::new(socket.connect(node.http).await.unwrap());
    get_abc(&mut other).await;
    // The first one is still served, and once it closes its address may connect again.
    get_abc(&mut first).await;
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        let mut s = connect(node.http).await;
        if s.get_mut().write_all(GET.as_bytes()).await.is_ok() {
            let mut byte = [0u8; 1];
            if let Ok(Ok(1)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut byte)).await {
                again = Some(byte[0]);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(again, Some(b'H'), "127.0.0.1 is served again after its connection closed");
    node.stop().await;
}

#[tokio::test]
async fn open_connections_do_not_keep_the_node_from_stopping() {
    let node = start_server_with(|_| {}).await;
    let http = node.http;
    let mut idle = connect(http).await;
    get_abc(&mut idle).await;
    let mut half = connect(http).await;
    half.get_mut().write_all(b"GET /api/handles/88.100.1/ABC-123 HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the server has read the partial head
    tokio::time::timeout(Duration::from_secs(5), node.stop()).await.expect("shutdown finishes");
    std::net::TcpListener::bind(http).expect("HTTP port is free again");
}

struct Tls {
    dir: tempfile::TempDir,
    cert: CertificateDer<'static>,
}

/// A self-signed certificate for `localhost`, written as PEM to `cert.pem` and `key.pem`.
fn self_signed() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), key.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.signing_key.serialize_pem()).unwrap();
    Tls { dir, cert: key.cert.der().clone() }
}

async fn start_https(tls: &Tls) -> crate::TestNode {
    let (cert, key) = (tls.dir.path().join("cert.pem"), tls.dir.path().join("key.pem"));
    start_server_with(|c| {
        c.http.tls_cert = Some(cert);
        c.http.tls_key = Some(key);
    })
    .await
}

/// A TLS client that trusts only `cert`, connected to `addr` as `localhost`.
async fn connect_tls(
    addr: SocketAddr,
    cert: &CertificateDer<'static>,
) -> BufReader<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    BufReader::new(stream)
}

#[tokio::test]
async fn https_serves_the_api_with_the_configured_certificate() {
    let tls = self_signed();
    let node = start_https(&tls).await;
    let mut s = connect_tls(node.http, &tls.cert).await;
    get_abc(&mut s).await;
    get_abc(&mut s).await; // keep-alive over TLS
    node.stop().await;
}

#[tokio::test]
async fn a_reload_serves_the_renewed_certificate_to_new_connections() {
    let tls = self_signed();
    let node = start_https(&tls).await;
    let mut before = connect_tls(node.http, &tls.cert).await;
    // The certificate renewed in place, as certbot does, then the node reloads (SIGHUP).
    let renewed = self_signed();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.dir.path().join(file), tls.dir.path().join(file)).unwrap();
    }
    let (cert, key) = (tls.dir.path().join("cert.pem"), tls.dir.path().join("key.pem"));
    node.tls.as_ref().unwrap().install(idnode::http::TlsReloader::prepare(&cert, &key).unwrap());
    // A client that trusts only the renewed certificate connects; the open connection goes on.
    get_abc(&mut connect_tls(node.http, &renewed.cert).await).await;
    get_abc(&mut before).await;
    node.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_http_answer_and_https_goes_on() {
    let tls = self_signed();
    let node = start_https(&tls).await;
    let mut plain = connect(node.http).await;
    plain.get_mut().write_all(GET.as_bytes()).await.unwrap();
    let (out, _) = until_closed(&mut plain, Duration::from_secs(3)).await;
    assert!(!out.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&out));
    get_abc(&mut connect_tls(node.http, &tls.cert).await).await;
    node.stop().await;
}

async fn bind_error(adjust: impl FnOnce(&mut HttpConfig)) -> String {
    let mut config = HttpConfig { listen: "127.0.0.1:0".parse().unwrap(), ..HttpConfig::default() };
    adjust(&mut config);
    match HttpListener::bind(&config).await {
        Ok(_) => panic!("{config:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn tls_configuration_errors_name_the_field_or_the_file() {
    let tls = self_signed();
    let (cert, key) = (tls.dir.path().join("cert.pem"), tls.dir.path().join("key.pem"));
    let err = bind_error(|c| c.tls_cert = Some(cert.clone())).await;
    assert!(err.contains("http.tls_key"), "{err}");
    let err = bind_error(|c| c.tls_key = Some(key.clone())).await;
    assert!(err.contains("http.tls_cert"), "{err}");
    let missing = tls.dir.path().join("missing.pem");
    let err = bind_error(|c| (c.tls_cert, c.tls_key) = (Some(missing.clone()), Some(key.clone()))).await;
    assert!(err.contains(&missing.display().to_string()), "{err}");
    let garbage = tls.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let err = bind_error(|c| (c.tls_cert, c.tls_key) = (Some(cert.clone()), Some(garbage.clone()))).await;
    assert!(err.contains(&garbage.display().to_string()), "{err}");
    // The key of another certificate.
    let other = self_signed();
    let other_key = other.dir.path().join("key.pem");
    let err = bind_error(|c| (c.tls_cert, c.tls_key) = (Some(cert.clone()), Some(other_key.clone()))).await;
    assert!(err.contains(&other_key.display().to_string()), "{err}");
    // And through the node's startup.
    let dir = tempfile::tempdir().unwrap();
    let mut config = idnode::config::Config { data_dir: dir.path().to_owned(), ..Default::default() };
    config.dns.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.http.tls_cert = Some(cert);
    let registry = Arc::new(idnode::registry::Registry::open(dir.path()).unwrap());
    let err = idnode::server::Server::start(&config, registry).await.err().expect("cert without key");
    assert!(format!("{err:#}").contains("http.tls_key"), "{err:#}");
}
