//! Which upstream servers stopped answering lately, so that a resolution asks the others first:
//! a delegation to a primary and its mirror keeps being answered at the mirror's speed while
//! the primary hangs, instead of paying `recursive.timeout_ms` on every new question (Unbound
//! keeps the same in its infrastructure cache).
//!
//! A server that timed out or failed is put last for [`HOLD`]; after that it is asked in its
//! turn again, so one that came back is used again within a minute. Bounded: at most
//! [`MAX_SERVERS`] are remembered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// 60 s: how long a server that did not answer is asked last.
const HOLD: Duration = Duration::from_secs(60);
/// 4096: servers remembered at once; when full, the expired are dropped, then all.
const MAX_SERVERS: usize = 4096;

#[derive(Default)]
pub(super) struct Unresponsive {
    until: Mutex<HashMap<SocketAddr, Instant>>,
}

impl Unresponsive {
    /// `servers` in the order to ask them at `now`: those not held back first, each group in
    /// the order given.
    pub(super) fn order(&self, servers: &[SocketAddr], now: Instant) -> Vec<SocketAddr> {
        let until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = |s: &SocketAddr| until.get(s).is_some_and(|t| *t > now);
        let (late, mut first): (Vec<SocketAddr>, Vec<SocketAddr>) = servers.iter().partition(|s| held(s));
        first.extend(late);
        first
    }

    /// `server` did not answer at `now`.
    pub(super) fn failed(&self, server: SocketAddr, now: Instant) {
        let mut until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if until.len() >= MAX_SERVERS {
            until.retain(|_, t| *t > now);
            if until.len() >= MAX_SERVERS {
                until.clear();
            }
        }
        until.insert(server, now + HOLD);
    }

    /// `server` answered.
    pub(super) fn answered(&self, server: SocketAddr) {
        let mut until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        until.remove(&server);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_did_not_answer_is_asked_last_for_a_minute() {
        let (a, b, c): (SocketAddr, SocketAddr, SocketAddr) =
            ("127.0.0.1:53".parse().unwrap(), "127.0.0.2:53".parse().unwrap(), "127.0.0.3:53".parse().unwrap());
        let servers = Unresponsive::default();
        let now = Instant::now();
        assert_eq!(servers.order(&[a, b, c], now), [a, b, c]);
        servers.failed(a, now);
        assert_eq!(servers.order(&[a, b, c], now), [b, c, a]);
        assert_eq!(servers.order(&[a, b, c], now + HOLD + Duration::from_secs(1)), [a, b, c], "after the hold");
        servers.answered(a);
        assert_eq!(servers.order(&[a, b, c], now), [a, b, c]);
        for i in 0..MAX_SERVERS + 10 {
            servers.failed(SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 53)), now);
        }
        assert!(servers.until.lock().unwrap().len() <= MAX_SERVERS, "bounded");
    }
}
