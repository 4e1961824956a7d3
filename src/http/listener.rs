//! The HTTP listener: accepts connections and runs each through hyper's HTTP/1 server with the
//! limits of [`HttpConfig`], optionally behind TLS.
//!
//! - Connections: a permit is taken before `accept`, so at most `max_connections` are open at
//!   once; a connection from an address that already has `max_connections_per_source` open is
//!   closed at once.
//! - Headers: hyper's `header_read_timeout`. In hyper 1.x (checked in hyper 1.12,
//!   `src/proto/h1/conn.rs`) `poll_read_head` starts that timer whenever it begins to wait for
//!   a request head, and `State::idle` sets `notify_read` after each response when the timeout
//!   is configured "so we can close the connection if another header isn't received in a
//!   timely manner": the header timeout is also the keep-alive timeout.
//! - Idle: the socket is wrapped in a [`TimeoutStream`], so a read or a write that waits for
//!   `idle_timeout_secs` fails with `TimedOut` and hyper drops the connection (a client that
//!   stops sending its body or stops reading its response).
//! - Requests: the router's future, which reads the body, is bounded by `request_timeout_secs`;
//!   then the client gets 503 with `{"responseCode": 3, "message": ...}` and the connection is
//!   closed. A write the handler had already handed to the blocking pool still completes.
//! - TLS: with `tls_cert` and `tls_key`, only HTTPS (rustls with ring, ALPN `http/1.1`).
//! - Shutdown: on the token the loop stops accepting, every connection finishes the request in
//!   flight, its response included, and closes
//!   ([`hyper::server::conn::http1::Connection::graceful_shutdown`]; at most [`SHUTDOWN_GRACE`]);
//!   one without a request in flight gets [`FLUSH_GRACE`], so a client that is still sending a
//!   request head does not hold the node up. [`HttpListener::serve`] returns once all are closed.
//!
//! Each request carries [`ConnectInfo`]`<SocketAddr>` with the client's address.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::response;
use crate::accept::{Caps, accept};
use crate::code::ResponseCode;
use crate::config::HttpConfig;

/// 10 s: how long a connection may take, after shutdown begins, to finish the request in flight
/// (handlers answer in milliseconds; systemd waits 90 s before it kills a stopping service).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// 1 s: after shutdown begins, how long a connection without a request in flight may take to
/// flush what it has written and close; a client still sending a request head is then cut off.
pub const FLUSH_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("http.tls_cert is set but http.tls_key is not: set both for HTTPS, or neither")]
    CertWithoutKey,
    #[error("http.tls_key is set but http.tls_cert is not: set both for HTTPS, or neither")]
    KeyWithoutCert,
    #[error(transparent)]
    Tls(#[from] TlsError),
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {} (http.tls_cert): {source}", .path.display())]
    ReadCert { path: PathBuf, source: pem::Error },
    #[error("the TLS certificate file {} (http.tls_cert) holds no PEM certificate", .path.display())]
    NoCert { path: PathBuf },
    #[error("cannot read the TLS private key {} (http.tls_key): {source}", .path.display())]
    ReadKey { path: PathBuf, source: pem::Error },
    #[error("the TLS certificate {} and key {} do not work together: {source}", .cert.display(), .key.display())]
    Config { cert: PathBuf, key: PathBuf, source: rustls::Error },
}

/// The numbers of [`HttpConfig`], each at least one second or one connection.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    idle_timeout: Duration,
    request_timeout: Duration,
    handshake_timeout: Duration,
}

impl Limits {
    fn new(config: &HttpConfig) -> Self {
        let secs = |n: u64| Duration::from_secs(n.max(1));
        Self {
            header_timeout: secs(config.header_timeout_secs),
            idle_timeout: secs(config.idle_timeout_secs),
            request_timeout: secs(config.request_timeout_secs),
            handshake_timeout: secs(config.tls_handshake_timeout_secs),
        }
    }
}

/// A bound HTTP(S) listener with its limits; [`HttpListener::serve`] runs it.
pub struct HttpListener {
    tcp: TcpListener,
    /// The TLS configuration new connections get; swapped by [`TlsReloader::reload`].
    tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
    /// Read as each connection starts; a reload may change them ([`HttpTimeouts`]).
    limits: Arc<ArcSwap<Limits>>,
    /// How many connections at once and from one address; a reload may change them.
    caps: Arc<Caps>,
}

/// Changes an HTTP listener's timeouts while it serves: connections accepted from then on get
/// the new ones, open ones keep theirs.
#[derive(Clone)]
pub struct HttpTimeouts(Arc<ArcSwap<Limits>>);

impl HttpTimeouts {
    pub fn set(&self, config: &HttpConfig) {
        self.0.store(Arc::new(Limits::new(config)));
    }
}

/// Replaces a listener's certificate and key while it serves: connections accepted from then
/// on get the new ones, open ones keep theirs.
#[derive(Clone)]
pub struct TlsReloader(Arc<ArcSwap<TlsAcceptor>>);

impl TlsReloader {
    /// Reads `cert` and `key` (the same checks as at start), ready to [`install`](Self::install).
    pub fn prepare(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor::from(Arc::new(server_config(cert, key)?)))
    }

    /// Serves `prepared` to the connections accepted from now on.
    pub fn install(&self, prepared: TlsAcceptor) {
        self.0.store(Arc::new(prepared));
    }
}

impl HttpListener {
    /// Loads the TLS files (if any), then binds `config.listen`, so that a bad file or a busy
    /// port is an error before anything is served.
    pub async fn bind(config: &HttpConfig) -> Result<Self, ListenError> {
        let tls = tls_acceptor(config)?.map(|acceptor| Arc::new(ArcSwap::from_pointee(acceptor)));
        let addr = config.listen;
        let tcp = TcpListener::bind(addr).await.map_err(|source| ListenError::Bind { addr, source })?;
        let caps = Caps::new(config.max_connections, config.max_connections_per_source);
        Ok(Self { tcp, tls, limits: Arc::new(ArcSwap::from_pointee(Limits::new(config))), caps })
    }

    /// Its connection caps, which a reload may change while it serves.
    pub fn caps(&self) -> Arc<Caps> {
        self.caps.clone()
    }

    pub fn timeouts(&self) -> HttpTimeouts {
        HttpTimeouts(self.limits.clone())
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Whether the listener speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// What replaces the certificate and key while the listener serves; `None` without TLS.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.clone().map(TlsReloader)
    }

    /// Serves `router` until `token` is cancelled, then closes the listening socket, lets every
    /// connection finish and returns.
    pub async fn serve(self, router: Router, token: CancellationToken) {
        let Self { tcp, tls, limits, caps } = self;
        let tracker = TaskTracker::new();
        accept(&tcp, &caps, &tracker, &token, "HTTP", |stream, peer| {
            let tls = tls.as_ref().map(|t| TlsAcceptor::clone(&t.load()));
            let limits = **limits.load();
            let (router, token) = (router.clone(), token.clone());
            // The connection watches the token itself: it finishes its request and closes.
            async move { connection(stream, peer, router, tls, limits, &token).await }
        })
        .await;
        drop(tcp);
        tracker.close();
        tracker.wait().await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    token: &CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let mut io = TimeoutStream::new(stream);
    io.set_read_timeout(Some(limits.idle_timeout));
    io.set_write_timeout(Some(limits.idle_timeout));
    let io = Box::pin(io);
    let Some(acceptor) = tls else {
        return http(io, peer, router, limits, token).await;
    };
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(io));
    let io = tokio::select! {
        _ = token.cancelled() => return,
        r = handshake => match r {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    http(io, peer, router, limits, token).await;
}

/// Serves HTTP/1.1 on one connection until the client closes it, a timeout or an error ends
/// it, or shutdown begins.
async fn http<I>(io: I, peer: SocketAddr, router: Router, limits: Limits, token: &CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = TowerToHyperService::new(router);
    let request_timeout = limits.request_timeout;
    // Requests whose response has not been sent whole: shutdown waits for them.
    let (in_flight, mut idle) = watch::channel(0usize);
    let service = service_fn(move |mut request: Request<Incoming>| {
        let guard = InFlight::enter(&in_flight);
        request.extensions_mut().insert(ConnectInfo(peer));
        let handler = hyper::service::Service::call(&router, request);
        async move {
            let response = match tokio::time::timeout(request_timeout, handler).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    tracing::debug!(%peer, "HTTP request timed out");
                    timed_out(request_timeout)
                }
            };
            // The guard lives as long as the body, which hyper drops once it has taken all of it.
            let response = response.map(|body| Counted { body, _guard: guard });
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let drained = async {
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, idle.wait_for(|n| *n == 0)).await;
                tokio::time::sleep(FLUSH_GRACE).await;
            };
            tokio::select! {
                r = conn.as_mut() => r,
                () = drained => {
                    tracing::debug!(%peer, "HTTP connection cut off at shutdown");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}

/// One request counted in a connection's `in_flight` until dropped.
struct InFlight(watch::Sender<usize>);

impl InFlight {
    fn enter(count: &watch::Sender<usize>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that keeps its request counted as in flight.
struct Counted {
    body: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    // Forwarded, so that hyper still sends Content-Length rather than chunks.
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// 503 in the API's error shape; the connection is closed after it, since the request's body
/// may be half read.
fn timed_out(limit: Duration) -> Response {
    let message = format!("the request was not completed within {} s", limit.as_secs());
    let mut response = response::error(ResponseCode::ServerTooBusy, None, message).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn tls_acceptor(config: &HttpConfig) -> Result<Option<TlsAcceptor>, ListenError> {
    match (&config.tls_cert, &config.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsAcceptor::from(Arc::new(server_config(cert, key)?)))),
        (Some(_), None) => Err(ListenError::CertWithoutKey),
        (None, Some(_)) => Err(ListenError::KeyWithoutCert),
    }
}

/// A rustls server configuration (ring, TLS 1.2 and 1.3, ALPN `http/1.1`) from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let read_cert = |source| TlsError::ReadCert { path: cert.to_owned(), source };
    let chain =
        CertificateDer::pem_file_iter(cert).map_err(read_cert)?.collect::<Result<Vec<_>, _>>().map_err(read_cert)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert { path: cert.to_owned() });
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::ReadKey { path: key.to_owned(), source })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private_key))
        .map_err(|source| TlsError::Config { cert: cert.to_owned(), key: key.to_owned(), source })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(config: HttpConfig, router: Router) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = HttpListener::bind(&config).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(listener.serve(router, token.clone()));
        (addr, token, task)
    }

    fn local() -> HttpConfig {
        HttpConfig { listen: "127.0.0.1:0".parse().unwrap(), ..HttpConfig::default() }
    }

    /// Sends `request` and reads until the server closes (at most 5 s).
    async fn exchange(addr: SocketAddr, request: &str) -> (SocketAddr, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let me = stream.local_addr().unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await.unwrap().unwrap();
        (me, String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn handlers_see_the_client_address() {
        let router =
            Router::new().route("/", get(|ConnectInfo(a): ConnectInfo<SocketAddr>| async move { a.to_string() }));
        let (addr, token, task) = start(local(), router).await;
        let (me, reply) = exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with(&format!("\r\n\r\n{me}")), "{reply}");
        token.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_slow_handler_gets_503_in_the_api_shape() {
        let router = Router::new().route(
            "/",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        );
        let (addr, token, task) = start(HttpConfig { request_timeout_secs: 1, ..local() }, router).await;
        let started = std::time::Instant::now();
        let (_, reply) = exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        let body: serde_json::Value = serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["responseCode"], 3, "{body}");
        assert!(body["message"].as_str().unwrap().contains("1 s"), "{body}");
        token.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_lets_the_request_in_flight_finish() {
        let router = Router::new().route(
            "/",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "late"
            }),
        );
        let (addr, token, task) = start(local(), router).await;
        let request = tokio::spawn(exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel();
        let (_, reply) = request.await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("late"), "{reply}");
        tokio::time::timeout(Duration::from_secs(3), task).await.unwrap().unwrap();
    }
}
