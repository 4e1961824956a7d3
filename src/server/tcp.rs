//! DNS over TCP (RFC 7766). A permit is taken before `accept`, so at most
//! `tcp_max_connections` clients are served at once, and at most
//! `tcp_max_connections_per_source` from one address; each connection reads length-prefixed
//! queries ([`crate::dns::framing`]) one after another, answers them in order, and is closed
//! after `tcp_idle_timeout_secs` without a query or with an answer its client does not read.
//!
//! A deferred answer (a recursive node's cache miss) is awaited on the connection's own task:
//! answers go out in order, and the connection counts against the caps while it waits. So is a
//! zone transfer ([`crate::dns::xfr`]), whose messages the connection writes as its client
//! reads them.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DnsHandler, answer, count_dns, sampled};
use crate::accept::{Caps, accept};
use crate::dns::framing::{self, FrameError, MAX_MESSAGE};
use crate::dns::{Scratch, Transport, Verdict};
use crate::stats::{Counter, Protocol, Stats};

#[derive(Debug, Clone)]
pub(super) struct TcpLimits {
    /// How many connections at once and from one address; a reload may change them.
    pub(super) caps: Arc<Caps>,
    pub(super) idle_timeout: Duration,
}

/// Accepts DNS connections until `token` is cancelled (see [`crate::accept`]).
pub(super) async fn acceptor<H: DnsHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: TcpLimits,
    stats: Arc<Stats>,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    accept(&listener, &limits.caps, &tracker, &token, "DNS TCP", |stream, peer| {
        let (handler, token, stats) = (handler.clone(), token.clone(), stats.clone());
        async move {
            let mut counter = Counter::new(stats);
            tokio::select! {
                _ = token.cancelled() => {}
                r = connection(stream, peer, &*handler, limits.idle_timeout, &mut counter) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "TCP connection ended");
                    }
                }
            }
        }
    })
    .await
}

/// Serves one connection: `Ok` when the client closed, went idle, or sent a query not worth an
/// answer.
async fn connection<H: DnsHandler>(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    handler: &H,
    idle_timeout: Duration,
    counter: &mut Counter,
) -> Result<(), FrameError> {
    stream.set_nodelay(true)?;
    let idle = Some(idle_timeout);
    let mut request = Vec::with_capacity(MAX_MESSAGE);
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    let mut framed = Vec::with_capacity(MAX_MESSAGE + 2);
    let mut scratch = Scratch::default();
    let mut prefix = Vec::new();
    let mut n = 0;
    loop {
        match framing::read(&mut stream, &mut request, MAX_MESSAGE, idle).await {
            Ok(true) => {}
            Ok(false) | Err(FrameError::Idle(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        let started = sampled(&mut n);
        match answer(handler, &request, Transport::Tcp, &mut scratch, &mut out) {
            Verdict::Respond => {}
            // RFC 7766 allows closing on a message that is not worth an answer; a recursive node
            // at its cap of resolutions in flight drops the query the same way.
            Verdict::Drop => return Ok(()),
            Verdict::Defer(pending) => out = pending.resolve().await,
            // The transfer writes its own messages, each within the timeout; the connection then
            // serves further queries (a secondary asks for the SOA and the IXFR on one).
            Verdict::Transfer => {
                handler.transfer(&request, peer, &mut stream, idle_timeout).await?;
                continue;
            }
        }
        count_dns(counter, handler, Protocol::DnsTcp, &scratch, &out, &mut prefix, started);
        // A client that does not read its answers holds a slot no longer than an idle one.
        match framing::write(&mut stream, &out, &mut framed, idle).await {
            Ok(()) => {}
            Err(FrameError::Idle(_) | FrameError::TooLong { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
