//! Handle protocol sockets (RFC 3652 section 3; docs/handle-protocol.md): TCP and UDP on one
//! address, answered by [`crate::handle::Frontend`].
//!
//! TCP: a permit is taken before `accept` (at most `handle.tcp_max_connections` clients, at
//! most `tcp_max_connections_per_source` from one address); a connection reads envelope and
//! message, answers, and reads the next, in order (CNRI's client sends one message per
//! connection, the national SDKs keep connections open). An envelope that announces more than
//! 262,144 bytes, a message cut short, a response sent to the node, and a client idle, slow to
//! send or slow to read for `tcp_idle_timeout_secs` all close the connection.
//!
//! UDP: one OS thread owns the socket and its buffers, receives a datagram, answers it
//! synchronously and sends the answer in numbered 492-byte chunks when it exceeds one 512-byte
//! datagram. A request spread over several datagrams is put back together first
//! ([`crate::handle::reassembly`]). A datagram that may block goes to other threads, each with a
//! clone of the socket: an answer to a challenge or a session setup (CNRI's client sends both
//! over UDP; each costs CPU) to one thread, and on a recursive node a recursive resolution
//! (which waits on other nodes) to one of [`RELAY_THREADS`].

use std::net::{SocketAddr, UdpSocket};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tcp::TcpLimits;
use crate::accept::accept;
use crate::handle::message::{ENVELOPE_LEN, Envelope, MAX_MESSAGE_LEN, udp_datagrams};
use crate::handle::reassembly::Reassembly;
use crate::handle::{Connection, Frontend, Verdict};
use crate::stats::dns::Source;
use crate::stats::{Counter, Outcome, Protocol, Stats};

/// 100 ms: how long the UDP thread blocks in receive before it looks whether to stop.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// 65,535: the largest UDP datagram; a bigger one is cut by the kernel and then refused.
const MAX_DATAGRAM: usize = 65_535;

/// Unix time in whole seconds, for response expirations.
fn now() -> u32 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Counts the answer `out` to `request` (a message) when it answers a resolution.
fn count(counter: &mut Counter, protocol: Protocol, request: &[u8], encrypted: bool, out: &[u8]) {
    if let Some((code, prefix)) = crate::handle::lookup(request, encrypted, out) {
        counter.count(protocol, Outcome::of_handle(code), prefix);
    }
}

/// [`count`] for a datagram: a whole request, or the last piece of one (whose handle is not
/// read).
fn count_datagram(counter: &mut Counter, datagram: &[u8], out: &[u8]) {
    let whole = Envelope::decode(datagram).is_ok_and(|e| {
        e.flags & crate::handle::message::ENV_ENCRYPTED == 0
            && e.message_length as usize + ENVELOPE_LEN == datagram.len()
    });
    count(counter, Protocol::HandleUdp, datagram.get(ENVELOPE_LEN..).unwrap_or_default(), !whole, out);
}

/// Calls the front end; a panic (a bug, never expected) drops this one message.
fn answer(frontend: &Frontend, f: impl FnOnce(&Frontend) -> Verdict) -> Verdict {
    std::panic::catch_unwind(AssertUnwindSafe(|| f(frontend))).unwrap_or_else(|_| {
        tracing::error!("answering a Handle message panicked; it was dropped, serving goes on");
        Verdict::Drop
    })
}

//------------ UDP -----------------------------------------------------------------------------

pub(super) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    Ok(socket)
}

/// 64: datagrams that may block (answers to challenges, session setups) waiting for the UDP
/// socket's slow thread, and as many recursive resolutions waiting for the relay threads; beyond
/// that one is answered on the receiving thread with PROTOCOL_ERROR, and the client moves to
/// TCP.
const SLOW_QUEUE: usize = 64;
/// 8: recursive resolutions a recursive node relays over UDP at once, each waiting on other
/// nodes (at most `[recursive] max_in_flight` over every transport).
pub(super) const RELAY_THREADS: usize = 8;

/// Threads answering datagrams that may block, fed by one bounded queue.
struct Pool {
    queue: SyncSender<(Vec<u8>, SocketAddr)>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// `threads` threads named `name`, each with its own clone of `socket`; `None` when not one
    /// could start (the receiving thread then refuses what would have gone to them).
    fn start(
        socket: &UdpSocket,
        frontend: &Arc<Frontend>,
        stats: &Arc<Stats>,
        name: &str,
        threads: usize,
    ) -> Option<Self> {
        let (queue, rx) = sync_channel::<(Vec<u8>, SocketAddr)>(SLOW_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = Vec::new();
        for _ in 0..threads {
            let clone = match socket.try_clone() {
                Ok(clone) => clone,
                Err(e) => {
                    tracing::warn!(error = %e, name, "no socket clone for slow Handle datagrams");
                    break;
                }
            };
            let (frontend, rx, counter) = (frontend.clone(), rx.clone(), Counter::new(stats.clone()));
            let spawned = std::thread::Builder::new().name(name.into());
            match spawned.spawn(move || slow_worker(&clone, &frontend, &rx, counter)) {
                Ok(thread) => started.push(thread),
                Err(e) => {
                    tracing::warn!(error = %e, name, "no thread for slow Handle datagrams");
                    break;
                }
            }
        }
        (!started.is_empty()).then_some(Self { queue, threads: started })
    }

    /// Closes the queue and waits for the threads to finish what they hold; their socket clones
    /// close with them.
    fn stop(self) {
        drop(self.queue);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a slow Handle UDP thread panicked");
            }
        }
    }
}

/// Receives and answers datagrams until `token` is cancelled. A datagram that may block
/// ([`Frontend::datagram_may_block`]) is copied to another thread ([`Pool`]), so that a proof,
/// a durable write or another node never delays the queries behind it.
pub(super) fn udp_worker(socket: UdpSocket, frontend: &Arc<Frontend>, stats: &Arc<Stats>, token: &CancellationToken) {
    let slow = Pool::start(&socket, frontend, stats, "handle-udp-slow", 1);
    let relay =
        frontend.is_recursive().then(|| Pool::start(&socket, frontend, stats, "handle-udp-relay", RELAY_THREADS));
    let mut counter = Counter::new(stats.clone());
    let mut sampled = 0;
    let relay = relay.flatten();
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(MAX_MESSAGE_LEN);
    let mut chunk = Vec::with_capacity(512);
    let mut pieces = Reassembly::default();
    while !token.is_cancelled() {
        counter.tick();
        let (len, peer) = match socket.recv_from(&mut datagram) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "Handle UDP receive failed");
                continue;
            }
        };
        let request = &datagram[..len];
        if frontend.datagram_may_block(request) {
            let pool = if frontend.datagram_relays(request) { relay.as_ref() } else { slow.as_ref() };
            if pool.is_some_and(|p| p.queue.try_send((request.to_vec(), peer)).is_ok()) {
                continue;
            }
        }
        let mut conn = Connection::new(Some(peer.ip()));
        let started = super::sampled(&mut sampled);
        let verdict = answer(frontend, |f| f.answer_datagram(request, now(), &mut conn, &mut pieces, &mut out));
        if let Verdict::Respond(envelope) = verdict {
            count_datagram(&mut counter, request, &out);
            if let Some(started) = started {
                counter.dns().time(Source::Handle, started.elapsed());
            }
            send_datagrams(&socket, peer, &envelope, &out, &mut chunk);
        }
    }
    // The port is free again once every clone is closed.
    slow.into_iter().chain(relay).for_each(Pool::stop);
}

/// Answers datagrams that may block, one at a time, until the queue closes.
fn slow_worker(
    socket: &UdpSocket,
    frontend: &Frontend,
    queue: &Mutex<Receiver<(Vec<u8>, SocketAddr)>>,
    mut counter: Counter,
) {
    let mut out = Vec::with_capacity(MAX_MESSAGE_LEN);
    let mut chunk = Vec::with_capacity(512);
    loop {
        // One thread waits in `recv` holding the lock; the others wait for the lock.
        let job = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
        let Ok((request, peer)) = job else { break };
        let mut conn = Connection::new(Some(peer.ip()));
        let verdict = answer(frontend, |f| f.answer_datagram_blocking(&request, now(), &mut conn, &mut out));
        if let Verdict::Respond(envelope) = verdict {
            count_datagram(&mut counter, &request, &out);
            send_datagrams(socket, peer, &envelope, &out, &mut chunk);
        }
    }
}

fn send_datagrams(socket: &UdpSocket, peer: SocketAddr, envelope: &Envelope, out: &[u8], chunk: &mut Vec<u8>) {
    udp_datagrams(envelope, out, chunk, |d| {
        if let Err(e) = socket.send_to(d, peer) {
            tracing::debug!(error = %e, %peer, "Handle UDP send failed");
        }
    });
}

//------------ TCP -----------------------------------------------------------------------------

/// Accepts Handle protocol connections until `token` is cancelled (see [`crate::accept`]).
pub(super) async fn acceptor(
    listener: TcpListener,
    frontend: Arc<Frontend>,
    limits: TcpLimits,
    stats: Arc<Stats>,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    accept(&listener, &limits.caps, &tracker, &token, "Handle TCP", |stream, peer| {
        let (frontend, token, stats) = (frontend.clone(), token.clone(), stats.clone());
        let idle_timeout = limits.idle_timeout.get();
        async move {
            let mut counter = Counter::new(stats);
            tokio::select! {
                _ = token.cancelled() => {}
                r = connection(stream, peer, frontend, idle_timeout, &mut counter) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, %peer, "Handle TCP connection ended");
                    }
                }
            }
        }
    })
    .await
}

/// Serves one connection until the client closes it, goes idle or sends what closes it.
async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    frontend: Arc<Frontend>,
    idle: Duration,
    counter: &mut Counter,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut head = [0u8; ENVELOPE_LEN];
    let mut message = Vec::new();
    let mut out = Vec::new();
    let mut conn = Connection::new(Some(peer.ip()));
    let mut framed = Vec::new();
    let mut sampled = 0;
    loop {
        // The first byte may be waited for as long as the idle timeout; the whole envelope too.
        match tokio::time::timeout(idle, stream.read_exact(&mut head)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let Ok(envelope) = Envelope::decode(&head) else {
            return Ok(()); // longer than any message may be: nothing worth reading
        };
        // The buffer grows with the bytes that arrive, never ahead of them from the length
        // field, and never past MAX_MESSAGE_LEN (checked by the envelope's decoding).
        let len = envelope.message_length as usize;
        message.clear();
        match tokio::time::timeout(idle, (&mut stream).take(len as u64).read_to_end(&mut message)).await {
            Ok(Ok(n)) if n == len => {}
            Ok(Ok(_)) => return Ok(()), // the client closed mid-message
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let started = super::sampled(&mut sampled);
        let verdict = if frontend.may_block(&envelope, &message) {
            // A proof to check or a durable write: on the blocking pool, the state moving along.
            let frontend = frontend.clone();
            let (moved_message, mut moved_out, mut moved_conn) =
                (std::mem::take(&mut message), std::mem::take(&mut out), conn.clone());
            let (verdict, m, o, c) = tokio::task::spawn_blocking(move || {
                let verdict =
                    answer(&frontend, |f| f.answer(&envelope, &moved_message, now(), &mut moved_conn, &mut moved_out));
                (verdict, moved_message, moved_out, moved_conn)
            })
            .await
            .map_err(std::io::Error::other)?;
            (message, out, conn) = (m, o, c);
            verdict
        } else {
            answer(&frontend, |f| f.answer(&envelope, &message, now(), &mut conn, &mut out))
        };
        let Verdict::Respond(mut response) = verdict else {
            return Ok(());
        };
        let encrypted = envelope.flags & crate::handle::message::ENV_ENCRYPTED != 0;
        count(counter, Protocol::HandleTcp, &message, encrypted, &out);
        if let Some(started) = started {
            counter.dns().time(Source::Handle, started.elapsed());
        }
        // A listing goes on, one page a message, while the client reads.
        let mut listing = conn.take_listing();
        loop {
            framed.clear();
            response.encode(&mut framed);
            framed.extend_from_slice(&out);
            match tokio::time::timeout(idle, stream.write_all(&framed)).await {
                Ok(r) => r?,
                Err(_) => return Ok(()), // a client that does not read holds a slot no longer
            }
            let Some(next) = listing.as_mut() else { break };
            let (envelope, more) = frontend.next_page(next, now(), &mut out);
            response = envelope;
            if !more {
                listing = None;
            }
        }
    }
}
