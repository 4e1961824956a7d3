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

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DnsHandler, answer, count_dns, sampled};
use crate::accept::{Caps, Timeout, accept};
use crate::dns::framing::{self, FrameError, MAX_MESSAGE};
use crate::dns::{Scratch, Transport, Verdict};
use crate::stats::{Counter, Protocol, Stats};

#[derive(Debug, Clone)]
pub(super) struct TcpLimits {
    /// How many connections at once and from one address; a reload may change them.
    pub(super) caps: Arc<Caps>,
    /// Read as each connection starts; a reload may change it.
    pub(super) idle_timeout: Arc<Timeout>,
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
        let idle_timeout = limits.idle_timeout.get();
        async move {
            let mut counter = Counter::new(stats);
            tokio::select! {
                _ = token.cancelled() => {}
                r = connection(stream, peer, &*handler, idle_timeout, &mut counter) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "TCP connection ended");
                    }
                }
            }
        }
    })
    .await
}

/// Answers go out in batches: those to the queries a client sent together are written with
/// one system call once no further whole query is waiting, or at this many bytes.
const WRITE_BATCH: usize = 32 * 1024;

/// Serves one connection: `Ok` when the client closed, went idle, or sent a query not worth an
/// answer. Queries are read through a buffer, so a client that pipelines them (RFC 7766 6.2.1.1)
/// costs a read per batch rather than two per query.
async fn connection<H: DnsHandler>(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    handler: &H,
    idle_timeout: Duration,
    counter: &mut Counter,
) -> Result<(), FrameError> {
    stream.set_nodelay(true)?;
    let mut stream = BufReader::with_capacity(16 * 1024, stream);
    let idle = Some(idle_timeout);
    let mut request = Vec::with_capacity(MAX_MESSAGE);
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    let mut answers = Vec::with_capacity(WRITE_BATCH + MAX_MESSAGE + 2);
    let mut scratch = Scratch::default();
    let mut prefix = Vec::new();
    let mut n = 0;
    loop {
        if !framing::holds_message(stream.buffer()) {
            // About to wait for the client: what it was sent so far goes out first.
            match flush(stream.get_mut(), &mut answers, idle).await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
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
            Verdict::Drop => return flush(stream.get_mut(), &mut answers, idle).await.map(drop),
            Verdict::Defer(pending) => {
                if !flush(stream.get_mut(), &mut answers, idle).await? {
                    return Ok(());
                }
                out = pending.resolve().await;
            }
            // The transfer writes its own messages, each within the timeout; the connection then
            // serves further queries (a secondary asks for the SOA and the IXFR on one).
            Verdict::Transfer => {
                if !flush(stream.get_mut(), &mut answers, idle).await? {
                    return Ok(());
                }
                handler.transfer(&request, peer, stream.get_mut(), idle_timeout).await?;
                continue;
            }
        }
        count_dns(counter, handler, Protocol::DnsTcp, &scratch, &out, &mut prefix, started);
        // An answer no length prefix can carry ends the connection, as RFC 7766 allows.
        if framing::append(&mut answers, &out).is_err() {
            return flush(stream.get_mut(), &mut answers, idle).await.map(drop);
        }
        if answers.len() >= WRITE_BATCH && !flush(stream.get_mut(), &mut answers, idle).await? {
            return Ok(());
        }
    }
}

/// Writes the batched answers; `false` when the client does not read them within the idle
/// timeout, which holds a slot no longer than an idle client does.
async fn flush(stream: &mut TcpStream, answers: &mut Vec<u8>, idle: Option<Duration>) -> Result<bool, FrameError> {
    if answers.is_empty() {
        return Ok(true);
    }
    let written = framing::write_framed(stream, answers, idle).await;
    answers.clear();
    match written {
        Ok(()) => Ok(true),
        Err(FrameError::Idle(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
