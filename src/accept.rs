//! Accepting TCP connections within bounds, for every TCP listener of the node (DNS and the
//! Handle protocol in [`crate::server`], HTTP in [`crate::http`]): a permit is taken before
//! `accept`, so at most `max_connections` clients are served at once, and one address holds at
//! most `per_source` of them, so it cannot take every slot. The bounds may change while the
//! listener runs (a configuration reload, [`Caps::set`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// 50 ms: the pause after a failed `accept` (out of file descriptors and the like), so the loop
/// backs off instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The connection bounds of one listener: how many clients at once, and how many from one
/// address. Shared with the configuration reload, which may change them while it runs.
#[derive(Debug)]
pub struct Caps(watch::Sender<(usize, usize)>);

impl Caps {
    /// Bounds of at least one connection, and at most what a semaphore can count.
    pub fn new(max_connections: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self(watch::Sender::new(Self::bounded(max_connections, per_source))))
    }

    fn bounded(max_connections: usize, per_source: usize) -> (usize, usize) {
        (max_connections.clamp(1, Semaphore::MAX_PERMITS), per_source.max(1))
    }

    /// New bounds for the connections accepted from now on. Open connections are not cut: a
    /// lower `max_connections` takes effect as they end.
    pub fn set(&self, max_connections: usize, per_source: usize) {
        self.0.send_replace(Self::bounded(max_connections, per_source));
    }

    /// `(max_connections, per_source)` now.
    pub fn get(&self) -> (usize, usize) {
        *self.0.borrow()
    }
}

/// A listener's timeout that a reload may change: each connection reads it as it starts, so
/// open connections keep the one they started with.
#[derive(Debug)]
pub struct Timeout(std::sync::atomic::AtomicU64);

impl Timeout {
    /// At least one second, like every timeout of the settings.
    pub fn new(timeout: Duration) -> Arc<Self> {
        let this = Arc::new(Self(Default::default()));
        this.set(timeout);
        this
    }

    pub fn set(&self, timeout: Duration) {
        let millis = u64::try_from(timeout.max(Duration::from_secs(1)).as_millis()).unwrap_or(u64::MAX);
        self.0.store(millis, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Accepts connections on `listener` until `token` is cancelled, each served by `serve` on a
/// task of `tracker` within `caps`. A connection over its address's cap is closed at once.
/// `serve` owns the connection's shutdown: it watches `token` itself. `what` names the listener
/// in logs.
pub(crate) async fn accept<F, Fut>(
    listener: &TcpListener,
    caps: &Caps,
    tracker: &TaskTracker,
    token: &CancellationToken,
    what: &'static str,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut changes = caps.0.subscribe();
    let mut bounds = Bounds { permits: Arc::new(Semaphore::new(0)), max_connections: 0, per_source: 0, owed: 0 };
    bounds.resize(*changes.borrow_and_update());
    let sources = Sources::default();
    loop {
        let permit = tokio::select! {
            _ = token.cancelled() => return,
            Ok(()) = changes.changed() => {
                bounds.changed(*changes.borrow_and_update(), what);
                continue;
            }
            p = bounds.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return, // closed: never, the semaphore lives here
            },
        };
        if bounds.owed > 0 {
            permit.forget();
            bounds.owed -= 1;
            continue;
        }
        // Waiting for a client with a permit in hand: a lower cap may want it back.
        let accepted = loop {
            tokio::select! {
                _ = token.cancelled() => return,
                Ok(()) = changes.changed() => {
                    bounds.changed(*changes.borrow_and_update(), what);
                    if bounds.owed > 0 {
                        break None;
                    }
                }
                r = listener.accept() => match r {
                    Ok(r) => break Some(r),
                    Err(e) => {
                        tracing::warn!(error = %e, "{what} accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        };
        let Some((stream, peer)) = accepted else {
            permit.forget();
            bounds.owed -= 1;
            continue;
        };
        let Some(slot) = sources.take(peer.ip(), bounds.per_source) else {
            tracing::debug!(%peer, "{what} connection closed: too many from this address");
            continue;
        };
        let connection = serve(stream, peer);
        tracker.spawn(async move {
            connection.await;
            drop((slot, permit));
        });
    }
}

/// The bounds an accept loop works by, and its permits.
struct Bounds {
    permits: Arc<Semaphore>,
    max_connections: usize,
    per_source: usize,
    /// Permits to take out of use as connections give them back, after the cap was lowered
    /// below the connections open.
    owed: usize,
}

impl Bounds {
    /// Takes new bounds: more permits at once, fewer as they come back.
    fn resize(&mut self, (max_connections, per_source): (usize, usize)) {
        if max_connections >= self.max_connections {
            let more = max_connections - self.max_connections;
            let repaid = more.min(self.owed);
            self.owed -= repaid;
            self.permits.add_permits(more - repaid);
        } else {
            let fewer = self.max_connections - max_connections;
            self.owed += fewer - self.permits.forget_permits(fewer);
        }
        (self.max_connections, self.per_source) = (max_connections, per_source);
    }

    fn changed(&mut self, bounds: (usize, usize), what: &str) {
        self.resize(bounds);
        let (max_connections, per_source) = bounds;
        tracing::info!(max_connections, per_source, "{what}: connection caps changed");
    }
}

/// Open connections per client address; an address leaves the map when its last one closes.
#[derive(Default, Clone)]
pub(crate) struct Sources(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Sources {
    /// A slot for one more connection from `ip`, or `None` when it has `cap` already.
    pub(crate) fn take(&self, ip: IpAddr, cap: usize) -> Option<SourceSlot> {
        // An IPv4 client of a dual-stack socket appears as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.get(&ip).copied().unwrap_or(0);
        if n >= cap {
            return None;
        }
        open.insert(ip, n + 1);
        Some(SourceSlot { sources: self.0.clone(), ip })
    }
}

pub(crate) struct SourceSlot {
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_counts_leave_the_map_at_zero() {
        let sources = Sources::default();
        let ip: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let a = sources.take(ip, 2).unwrap();
        let b = sources.take("127.0.0.1".parse().unwrap(), 2).unwrap();
        assert!(sources.take(ip, 2).is_none(), "a mapped address counts as its IPv4 address");
        drop(a);
        assert_eq!(sources.0.lock().unwrap().len(), 1);
        drop(b);
        assert!(sources.0.lock().unwrap().is_empty());
    }

    /// Waits (at most 5 s) until `served` reaches `n`.
    async fn served_reaches(served: &std::sync::atomic::AtomicUsize, n: usize) -> bool {
        for _ in 0..500 {
            if served.load(std::sync::atomic::Ordering::SeqCst) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Caps raised while the listener waits at its cap let the waiting client in at once;
    /// lowered below the connections open, they hold new ones back until enough have ended.
    #[tokio::test]
    async fn caps_changed_while_listening_apply_to_the_next_connections() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (caps, tracker, token) = (Caps::new(1, 8), TaskTracker::new(), CancellationToken::new());
        let served = Arc::new(AtomicUsize::new(0));
        let task = {
            let (caps, tracker, token, served) = (caps.clone(), tracker.clone(), token.clone(), served.clone());
            tokio::spawn(async move {
                accept(&listener, &caps, &tracker, &token, "test", |mut stream, _| {
                    served.fetch_add(1, Ordering::SeqCst);
                    // Served until the client closes.
                    async move { while stream.read(&mut [0; 64]).await.is_ok_and(|n| n > 0) {} }
                })
                .await
            })
        };
        let connect = || tokio::net::TcpStream::connect(addr);
        let first = connect().await.unwrap();
        assert!(served_reaches(&served, 1).await);
        let second = connect().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(served.load(Ordering::SeqCst), 1, "held back at the cap of one");
        caps.set(3, 8);
        assert!(served_reaches(&served, 2).await, "let in once the cap is raised");
        // Two open; down to one: a third waits until both have ended.
        caps.set(1, 8);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = connect().await.unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(served.load(Ordering::SeqCst), 2, "one still open, and the cap is one");
        drop(second);
        assert!(served_reaches(&served, 3).await, "in once the open ones ended");
        assert_eq!(caps.get(), (1, 8));
        drop(third);
        token.cancel();
        task.await.unwrap();
    }

    #[test]
    fn per_source_slots_are_capped_and_given_back() {
        let sources = Sources::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = sources.take(a, 2).unwrap();
        let _second = sources.take(a, 2).unwrap();
        assert!(sources.take(a, 2).is_none(), "a third from one address is refused");
        assert!(sources.take(b, 2).is_some(), "another address is not");
        drop(first);
        assert!(sources.take(a, 2).is_some(), "a closed connection gives its slot back");
    }
}
