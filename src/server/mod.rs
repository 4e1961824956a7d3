//! Transport: the DNS sockets and their workers. Bytes in, bytes out; no records here.
//!
//! UDP ([`udp`]): one OS thread per worker, each with its own SO_REUSEPORT socket, receiving and
//! sending in batches and answering synchronously.
//!
//! TCP (RFC 7766): a permit is taken before `accept`, so at most `tcp_max_connections` clients
//! are served at once, and at most `tcp_max_connections_per_source` from one address; each
//! connection reads length-prefixed queries one after another, answers them in order, and is
//! closed after `tcp_idle_timeout_secs` without a query or with an answer its client does not
//! read.
//!
//! A panic while answering one query (a bug, never expected) is caught where the transport hands
//! the query over: it is logged, that query gets no answer, and the worker or connection goes
//! on serving.
//!
//! HTTP: the Handle.Net API of [`crate::http`] on its own listener.
//!
//! Shutdown: [`Server::serve`] runs until its `shutdown` future completes, then cancels every
//! worker and connection and waits for them, so the ports can be bound again at once.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::dns::{Frontend, Scratch, Transport, Verdict};
use crate::node::Node;
use crate::registry::Registry;

mod sources;
mod udp;

pub(crate) use sources::Sources;

/// 65535: the largest DNS message (a TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = 65_535;

/// What the DNS transports hand queries to: [`Frontend`] in the node, anything in tests.
pub trait DnsHandler: Send + Sync + 'static {
    /// Answers one request into `out`, synchronously.
    fn handle(&self, request: &[u8], transport: Transport, scratch: &mut Scratch, out: &mut Vec<u8>) -> Verdict;
    /// Starts answering a request that `handle` sent to recursion: the work to spawn (it owns
    /// what it needs), or `None` to drop the query (the node is at its cap of resolutions).
    fn recurse(&self, request: &[u8], transport: Transport) -> Option<impl Future<Output = Vec<u8>> + Send + 'static>;
}

impl DnsHandler for Frontend {
    fn handle(&self, request: &[u8], transport: Transport, scratch: &mut Scratch, out: &mut Vec<u8>) -> Verdict {
        Frontend::handle(self, request, transport, scratch, out)
    }

    fn recurse(&self, request: &[u8], transport: Transport) -> Option<impl Future<Output = Vec<u8>> + Send + 'static> {
        Frontend::recurse(self, request, transport)
    }
}

/// Calls the handler; a panic in it drops this one query instead of the worker.
fn answer<H: DnsHandler>(
    handler: &H,
    request: &[u8],
    transport: Transport,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Verdict {
    match std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request, transport, scratch, out))) {
        Ok(verdict) => verdict,
        Err(_) => {
            let shown = &request[..request.len().min(512)];
            tracing::error!(request = %hex::encode(shown), "answering a query panicked; it was dropped, serving goes on");
            Verdict::Drop
        }
    }
}

/// Calls the handler's `recurse`; a panic in it drops this one query, like one in `handle`.
fn start_recursion<H: DnsHandler>(
    handler: &H,
    request: &[u8],
    transport: Transport,
) -> Option<impl Future<Output = Vec<u8>> + Send + 'static> {
    std::panic::catch_unwind(AssertUnwindSafe(|| handler.recurse(request, transport))).unwrap_or_else(|_| {
        tracing::error!("starting a recursion panicked; the query was dropped, serving goes on");
        None
    })
}

/// The node and the DNS front end that `config` describes over `registry`, wired together: the
/// front end's cache subscribes to the node's writes.
pub fn assemble(
    config: &Config,
    registry: Arc<Registry>,
) -> Result<(Arc<Node>, Arc<Frontend>), crate::config::ConfigError> {
    let frontend = Arc::new(Frontend::from_config(config, registry.clone())?);
    let mut node = Node::new(registry, config.dns.zones.clone());
    node.subscribe(frontend.clone());
    Ok((Arc::new(node), frontend))
}

pub struct Server {
    node: Arc<Node>,
    frontend: Arc<Frontend>,
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
    http: crate::http::HttpListener,
    tcp_limits: TcpLimits,
    /// Response rate limiting for UDP; `None` when `dns.rrl.responses_per_second` is 0.
    rrl: Option<Arc<crate::dns::rrl::Rrl>>,
}

#[derive(Debug, Clone, Copy)]
struct TcpLimits {
    max_connections: usize,
    per_source: usize,
    idle_timeout: Duration,
}

impl Server {
    /// Binds every socket now, so that the caller learns the address (port 0 works) and a busy
    /// port is an error before anything is served.
    pub async fn bind(config: &Config, node: Arc<Node>, frontend: Arc<Frontend>) -> anyhow::Result<Self> {
        let addr = config.dns.listen;
        let tcp = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on TCP {addr}"))?;
        // UDP takes the port TCP got, so port 0 gives one port for both.
        let addr = tcp.local_addr()?;
        let udp = (0..config.udp_workers())
            .map(|_| udp::bind(addr).with_context(|| format!("cannot listen on UDP {addr}")))
            .collect::<anyhow::Result<_>>()?;
        let http = crate::http::HttpListener::bind(&config.http).await?;
        let tcp_limits = TcpLimits {
            max_connections: config.dns.tcp_max_connections.max(1),
            per_source: config.dns.tcp_max_connections_per_source.max(1),
            idle_timeout: Duration::from_secs(config.dns.tcp_idle_timeout_secs.max(1)),
        };
        let rrl = crate::dns::rrl::Rrl::new(&config.dns.rrl)?.map(Arc::new);
        Ok(Self { node, frontend, udp, tcp, http, tcp_limits, rrl })
    }

    /// The DNS address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; the unspecified one is never reached.
        self.tcp.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The HTTP API's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` completes, then drains every task.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let frontend = self.frontend;
        let runtime = tokio::runtime::Handle::current();
        let workers: Vec<_> = self
            .udp
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let (frontend, tracker, token, runtime) =
                    (frontend.clone(), tracker.clone(), token.clone(), runtime.clone());
                let rrl = self.rrl.clone();
                std::thread::Builder::new()
                    .name(format!("udp-worker-{i}"))
                    .spawn(move || udp::worker(socket, &frontend, rrl.as_ref(), &tracker, &token, &runtime))
            })
            .collect::<Result<_, _>>()
            .context("cannot start the UDP workers")?;
        let http = tracker.spawn(crate::http::serve(self.http, self.node, token.clone()));
        tracker.spawn(tcp_acceptor(self.tcp, frontend, self.tcp_limits, tracker.clone(), token.clone()));
        shutdown.await;
        token.cancel();
        // The workers notice within one receive timeout.
        tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(w.join()))).await?;
        tracker.close();
        tracker.wait().await;
        http.await.context("HTTP server failed")?;
        Ok(())
    }
}

async fn tcp_acceptor<H: DnsHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: TcpLimits,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let sources = Sources::default();
    loop {
        let permit = tokio::select! {
            _ = token.cancelled() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return, // closed: never, the semaphore lives here
            },
        };
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (handler, token, sources) = (handler.clone(), token.clone(), sources.clone());
        tracker.spawn(async move {
            let Some(_slot) = sources.take(peer.ip(), limits.per_source) else {
                tracing::debug!(%peer, "TCP connection refused: too many from this address");
                drop(permit);
                return;
            };
            tokio::select! {
                _ = token.cancelled() => {}
                r = tcp_connection(stream, &*handler, limits.idle_timeout) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "TCP connection ended");
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn tcp_connection<H: DnsHandler>(
    mut stream: TcpStream,
    handler: &H,
    idle_timeout: Duration,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    let mut framed = Vec::with_capacity(MAX_MESSAGE + 2);
    let mut scratch = Scratch::default();
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle_timeout, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()), // idle
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let len = usize::from(u16::from_be_bytes(len));
        // A client that sends a length and then stalls is cut off like an idle one.
        match tokio::time::timeout(idle_timeout, stream.read_exact(&mut buf[..len])).await {
            Err(_) => return Ok(()),
            Ok(r) => r?,
        };
        match answer(handler, &buf[..len], Transport::Tcp, &mut scratch, &mut out) {
            Verdict::Respond => {}
            // RFC 7766 allows closing on a message that is not worth an answer.
            Verdict::Drop => return Ok(()),
            Verdict::Recurse => match start_recursion(handler, &buf[..len], Transport::Tcp) {
                Some(resolution) => out = resolution.await,
                // At the cap of resolutions in flight: closed, like a query not worth an answer.
                None => return Ok(()),
            },
        }
        let Ok(out_len) = u16::try_from(out.len()) else { return Ok(()) };
        framed.clear();
        framed.extend_from_slice(&out_len.to_be_bytes());
        framed.extend_from_slice(&out);
        // A client that does not read its answers holds a slot no longer than an idle one.
        match tokio::time::timeout(idle_timeout, stream.write_all(&framed)).await {
            Err(_) => return Ok(()),
            Ok(r) => r?,
        }
    }
}
