//! Connections per client address, shared by the two TCP listeners (DNS over TCP in
//! [`crate::server`], HTTP in [`crate::http`]), so one address cannot take every connection slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

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
