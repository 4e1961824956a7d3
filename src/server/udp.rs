//! The UDP workers. Each is a long-lived OS thread owning one socket (all bound to the same
//! address with SO_REUSEPORT, so the kernel spreads clients over them) and its buffers. A worker
//! receives a batch of queries with one system call (recvmmsg on Linux, blocking until the first
//! arrives and taking whatever else is queued), answers each synchronously with the front end
//! ([`crate::dns::Frontend`]) into a reused buffer, and sends all answers with one system call
//! (sendmmsg). No task, no wakeup and no allocation per packet; only a recursive node's cache
//! miss comes back deferred and is spawned on the runtime, so that waiting on other servers
//! never holds up the worker.
//!
//! On other systems the same loop runs with batches of one (recv_from, send_to).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DnsHandler, answer, count_dns, sampled};
use crate::dns::framing::MAX_MESSAGE;
use crate::dns::rrl::{self, Action, Rrl};
use crate::dns::{Scratch, Transport, Verdict};
use crate::stats::{Counter, Outcome, Protocol as Lookup, Stats};

/// 100 ms: how long a UDP worker blocks in receive before it looks whether to stop.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// 1 MiB: the receive queue asked of the kernel for each socket, NSD's default `so-rcvbuf`. The
/// system default (208 KiB on Linux, a few hundred queries, 1-2 ms at 150,000 queries/s) dropped
/// 0.01-0.02% of queries whenever a worker waited for a core (benches/soak); this absorbs a
/// wait of 10 ms and more. Linux caps it at `net.core.rmem_max`.
const RECEIVE_BUFFER: usize = 1 << 20;

/// Datagrams per receive and per send system call: enough to empty a busy socket's queue in a
/// few calls, few enough that the first answer of a batch is not kept waiting.
const BATCH: usize = if cfg!(target_os = "linux") { 32 } else { 1 };

pub(super) fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(STOP_CHECK))?;
    Ok(socket.into())
}

pub(super) fn worker<H: DnsHandler>(
    socket: UdpSocket,
    frontend: &Arc<H>,
    rrl: Option<&Arc<Rrl>>,
    stats: &Arc<Stats>,
    tracker: &TaskTracker,
    token: &CancellationToken,
    runtime: &tokio::runtime::Handle,
) {
    let socket = Arc::new(socket);
    let mut batch = Batch::new();
    let mut scratch = Scratch::default();
    let mut counter = Counter::new(stats.clone());
    let mut prefix = Vec::with_capacity(64);
    let mut n = 0;
    while !token.is_cancelled() {
        counter.tick();
        let received = match batch.receive(&socket) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
        batch.replies = 0;
        for i in 0..received {
            let query = &batch.queries[i][..batch.lengths[i]];
            let started = sampled(&mut n);
            match answer(&**frontend, query, Transport::Udp, &mut scratch, &mut batch.answers[batch.replies]) {
                Verdict::Respond => {
                    let out = &batch.answers[batch.replies];
                    count_dns(&mut counter, &**frontend, Lookup::DnsUdp, &scratch, out, &mut prefix, started);
                    if let (Some(rrl), Some(peer)) = (rrl, rrl.and_then(|_| batch.peer(i))) {
                        let out = &mut batch.answers[batch.replies];
                        match rrl.check(peer.ip(), out, std::time::Instant::now()) {
                            Action::Send => {}
                            Action::Slip => rrl::truncate(out),
                            Action::Drop => continue,
                        }
                    }
                    batch.reply_to[batch.replies] = i;
                    batch.replies += 1;
                }
                // Transfers are TCP only: the front end answers NOTIMP over UDP.
                Verdict::Drop | Verdict::Transfer => {}
                // A recursive node's miss waits on other servers: never on this worker. At the
                // cap of resolutions in flight the front end dropped it, before any task existed.
                Verdict::Defer(pending) => {
                    let Some(peer) = batch.peer(i) else { continue };
                    let (socket, token, rrl) = (socket.clone(), token.clone(), rrl.cloned());
                    let stats = stats.clone();
                    tracker.spawn_on(
                        async move {
                            tokio::select! {
                                _ = token.cancelled() => {}
                                mut response = pending.resolve() => {
                                    stats.count(Lookup::DnsUdp, Outcome::of_dns(&response), None);
                                    let now = std::time::Instant::now();
                                    let action = rrl.map_or(Action::Send, |r| r.check(peer.ip(), &response, now));
                                    match action {
                                        Action::Send => {}
                                        Action::Slip => rrl::truncate(&mut response),
                                        Action::Drop => return,
                                    }
                                    // A UDP send does not block for long; the socket stays
                                    // blocking for the worker's sake.
                                    let _ = socket.send_to(&response, peer);
                                }
                            }
                        },
                        runtime,
                    );
                }
            }
        }
        batch.send(&socket);
    }
}

/// One worker's buffers: the queries of a batch, their senders, and the answers to send.
struct Batch {
    queries: Vec<Vec<u8>>,
    lengths: [usize; BATCH],
    answers: Vec<Vec<u8>>,
    /// Answer `k` goes to the sender of query `reply_to[k]`.
    reply_to: [usize; BATCH],
    replies: usize,
    #[cfg(target_os = "linux")]
    senders: [SenderAddr; BATCH],
    #[cfg(not(target_os = "linux"))]
    senders: [Option<SocketAddr>; BATCH],
}

impl Batch {
    fn new() -> Self {
        Self {
            queries: (0..BATCH).map(|_| vec![0; MAX_MESSAGE]).collect(),
            lengths: [0; BATCH],
            answers: (0..BATCH).map(|_| Vec::with_capacity(MAX_MESSAGE)).collect(),
            reply_to: [0; BATCH],
            replies: 0,
            senders: std::array::from_fn(|_| Default::default()),
        }
    }
}

/// A sender's address as the kernel wrote it.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy)]
struct SenderAddr {
    name: libc::sockaddr_storage,
    len: libc::socklen_t,
}

#[cfg(target_os = "linux")]
impl Default for SenderAddr {
    fn default() -> Self {
        // SAFETY: all zeros is a valid sockaddr_storage (family AF_UNSPEC).
        Self { name: unsafe { std::mem::zeroed() }, len: 0 }
    }
}

// recvmmsg and sendmmsg straight from libc: nix's wrappers need the reply count read back
// through addresses they leave uninitialised for sends, and socket2 has no batched calls.
#[cfg(target_os = "linux")]
impl Batch {
    /// Receives up to [`BATCH`] queries, blocking (at most [`STOP_CHECK`]) for the first.
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.queries[i].as_mut_ptr().cast(),
            iov_len: self.queries[i].len(),
        });
        // SAFETY: zeroed mmsghdrs are valid; every pointer set below stays valid during the call.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, header) in headers.iter_mut().enumerate() {
            header.msg_hdr.msg_iov = &mut iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = (&raw mut self.senders[i].name).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: `headers` describes BATCH valid buffers and address slots owned by `self`.
        let received = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let received = received as usize;
        for (i, header) in headers[..received].iter().enumerate() {
            self.lengths[i] = header.msg_len as usize;
            self.senders[i].len = header.msg_hdr.msg_namelen;
        }
        Ok(received)
    }

    /// Sends the batch's answers; one that cannot be sent is skipped, not retried.
    fn send(&mut self, socket: &UdpSocket) {
        use std::os::fd::AsRawFd;
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|k| libc::iovec {
            iov_base: self.answers[k].as_mut_ptr().cast(),
            iov_len: self.answers[k].len(),
        });
        // SAFETY: as in `receive`.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (k, header) in headers[..self.replies].iter_mut().enumerate() {
            let to = &mut self.senders[self.reply_to[k]];
            header.msg_hdr.msg_iov = &mut iovecs[k];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = (&raw mut to.name).cast();
            header.msg_hdr.msg_namelen = to.len;
        }
        let mut sent = 0;
        while sent < self.replies {
            // SAFETY: headers[sent..replies] point at live answers and addresses.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[sent..].as_mut_ptr(),
                    (self.replies - sent) as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                // The answer at `sent` failed (an unreachable client, say): drop it, go on.
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::debug!(error = %e, peer = ?self.peer(self.reply_to[sent]), "UDP send failed");
                    sent += 1;
                }
            } else {
                sent += n as usize;
            }
        }
    }

    fn peer(&self, i: usize) -> Option<SocketAddr> {
        let sender = &self.senders[i];
        let mut storage = socket2::SockAddrStorage::zeroed();
        // SAFETY: sockaddr_storage is this platform's own storage type, and `len` is what the
        // kernel wrote into it.
        unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = sender.name;
            socket2::SockAddr::new(storage, sender.len)
        }
        .as_socket()
    }
}

#[cfg(not(target_os = "linux"))]
impl Batch {
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        let (len, peer) = socket.recv_from(&mut self.queries[0])?;
        self.lengths[0] = len;
        self.senders[0] = Some(peer);
        Ok(1)
    }

    fn send(&mut self, socket: &UdpSocket) {
        for k in 0..self.replies {
            let Some(peer) = self.peer(self.reply_to[k]) else { continue };
            if let Err(e) = socket.send_to(&self.answers[k], peer) {
                tracing::debug!(error = %e, %peer, "UDP send failed");
            }
        }
    }

    fn peer(&self, i: usize) -> Option<SocketAddr> {
        self.senders[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes each query, but panics on one that starts with `!`.
    struct Fragile;

    impl DnsHandler for Fragile {
        fn handle(&self, request: &[u8], _: Transport, _: &mut Scratch, out: &mut Vec<u8>) -> Verdict {
            assert!(!request.starts_with(b"!"), "a bug met a hostile query");
            out.clear();
            out.extend_from_slice(request);
            Verdict::Respond
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_receive_queue_is_as_large_as_the_kernel_allows_up_to_a_mebibyte() {
        let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse::<usize>().unwrap();
        // Linux reports twice what was granted (the other half is its bookkeeping).
        let granted = socket2::SockRef::from(&socket).recv_buffer_size().unwrap() / 2;
        assert!(granted >= RECEIVE_BUFFER.min(cap), "{granted} bytes granted, rmem_max {cap}");
    }

    #[test]
    fn a_panic_drops_one_query_and_the_worker_goes_on() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let (tracker, token) = (TaskTracker::new(), CancellationToken::new());
        let stop = token.clone();
        let handle = runtime.handle().clone();
        let stats = Arc::new(Stats::empty());
        let worker =
            std::thread::spawn(move || worker(socket, &Arc::new(Fragile), None, &stats, &tracker, &token, &handle));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        for round in 0..3 {
            client.send_to(b"!boom", addr).unwrap();
            client.send_to(format!("ok {round}").as_bytes(), addr).unwrap();
            let n = client.recv(&mut buf).expect("the worker still answers after a panic");
            assert_eq!(&buf[..n], format!("ok {round}").as_bytes(), "the panicking query got no answer");
        }
        stop.cancel();
        worker.join().unwrap();
    }
}
