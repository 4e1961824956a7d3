//! Accepting TCP connections within bounds, for every TCP listener of the node (DNS and the
//! Handle protocol in [`crate::server`], HTTP in [`crate::http`]): a permit is taken before
//! `accept`, so at most `max_connections` clients are served at once, and one address holds at
//! most `per_source` of them, so it cannot take every slot.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// 50 ms: the pause after a failed `accept` (out of file descriptors and the like), so the loop
/// backs off instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub(crate) max_connections: usize,
    pub(crate) per_source: usize,
}

/// Accepts connections on `listener` until `token` is cancelled, each served by `serve` on a
/// task of `tracker` within `caps`. A connection over its address's cap is closed at once.
/// `serve` owns the connection's shutdown: it watches `token` itself. `what` names the listener
/// in logs.
pub(crate) async fn accept<F, Fut>(
    listener: &TcpListener,
    caps: Caps,
    tracker: &TaskTracker,
    token: &CancellationToken,
    what: &'static str,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(caps.max_connections.max(1)));
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
                    tracing::warn!(error = %e, "{what} accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some(slot) = sources.take(peer.ip(), caps.per_source.max(1)) else {
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
