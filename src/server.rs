//! Transport: the DNS sockets and their workers. Bytes in, bytes out; no records here.
//!
//! UDP ([`udp`]): one OS thread per worker, each with its own SO_REUSEPORT socket, receiving and
//! sending in batches and answering synchronously.
//!
//! TCP (RFC 7766): a permit is taken before `accept`, so at most `tcp_max_connections` clients
//! are served at once; each connection reads length-prefixed queries one after another, answers
//! them in order, and is closed after `tcp_idle_timeout_secs` without a query.
//!
//! HTTP: the Handle.Net API of [`crate::http`] on its own listener.
//!
//! Shutdown: [`Server::serve`] runs until its `shutdown` future completes, then cancels every
//! worker and connection and waits for them, so the ports can be bound again at once.

use std::future::Future;
use std::net::SocketAddr;
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

mod udp;

/// 65535: the largest DNS message (a TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = 65_535;

pub struct Server {
    node: Arc<Node>,
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
    http: crate::http::HttpListener,
    max_connections: usize,
    idle_timeout: Duration,
}

impl Server {
    /// Binds every socket now, so that the caller learns the address (port 0 works) and a busy
    /// port is an error before anything is served.
    pub async fn bind(config: &Config, node: Arc<Node>) -> anyhow::Result<Self> {
        let addr = config.dns.listen;
        let tcp = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on TCP {addr}"))?;
        // UDP takes the port TCP got, so port 0 gives one port for both.
        let addr = tcp.local_addr()?;
        let udp = (0..config.udp_workers())
            .map(|_| udp::bind(addr).with_context(|| format!("cannot listen on UDP {addr}")))
            .collect::<anyhow::Result<_>>()?;
        let http = crate::http::HttpListener::bind(&config.http).await?;
        Ok(Self {
            node,
            udp,
            tcp,
            http,
            max_connections: config.dns.tcp_max_connections.max(1),
            idle_timeout: Duration::from_secs(config.dns.tcp_idle_timeout_secs.max(1)),
        })
    }

    /// The DNS address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr().expect("bound listener has an address")
    }

    /// The HTTP API's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` completes, then drains every task.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let frontend = self.node.dns().clone();
        let runtime = tokio::runtime::Handle::current();
        let workers: Vec<_> = self
            .udp
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let (frontend, tracker, token, runtime) =
                    (frontend.clone(), tracker.clone(), token.clone(), runtime.clone());
                std::thread::Builder::new()
                    .name(format!("udp-worker-{i}"))
                    .spawn(move || udp::worker(socket, &frontend, &tracker, &token, &runtime))
            })
            .collect::<Result<_, _>>()
            .context("cannot start the UDP workers")?;
        let http = tracker.spawn(crate::http::serve(self.http, self.node, token.clone()));
        tracker.spawn(tcp_acceptor(
            self.tcp,
            frontend,
            self.max_connections,
            self.idle_timeout,
            tracker.clone(),
            token.clone(),
        ));
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

async fn tcp_acceptor(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    max_connections: usize,
    idle_timeout: Duration,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            _ = token.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
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
        let (frontend, token) = (frontend.clone(), token.clone());
        tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                r = tcp_connection(stream, &frontend, idle_timeout) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "TCP connection ended");
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn tcp_connection(mut stream: TcpStream, frontend: &Frontend, idle_timeout: Duration) -> std::io::Result<()> {
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
        match frontend.handle(&buf[..len], Transport::Tcp, &mut scratch, &mut out) {
            Verdict::Respond => {}
            // RFC 7766 allows closing on a message that is not worth an answer.
            Verdict::Drop => return Ok(()),
            Verdict::Recurse => match frontend.recurse(&buf[..len], Transport::Tcp).await {
                Some(response) => out = response,
                None => return Ok(()),
            },
        }
        framed.clear();
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
    }
}
