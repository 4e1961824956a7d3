//! Requests spread over several UDP datagrams (RFC 3652 section 3.2.1, as CNRI's client and
//! server split them): each datagram carries the envelope with the whole message's length, its
//! sequence number as message id and TC set, and exactly 492 bytes of the message (the last
//! fewer). The node puts them back together by client address and request id, as CNRI's server
//! does, and answers once the last piece is in.
//!
//! Bounded: at most [`MAX_PARTIAL`] requests in pieces at once holding at most
//! [`MAX_PARTIAL_BYTES`], each waiting at most [`WAIT`] for its pieces (CNRI's server waits 5
//! s); the oldest goes first. A piece that does not fit its announced message (wrong size, a
//! sequence number past the end, a length that changed) drops the request.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::message::{Envelope, UDP_CHUNK};

/// 5 s: how long the pieces of one request may take to arrive.
pub const WAIT: Duration = Duration::from_secs(5);
/// 1,024: requests in pieces at once.
pub const MAX_PARTIAL: usize = 1024;
/// 8 MiB: bytes those requests may hold at once.
pub const MAX_PARTIAL_BYTES: usize = 8 << 20;

/// One request whose pieces are arriving.
struct Partial {
    envelope: Envelope,
    message: Vec<u8>,
    /// Which pieces are in.
    have: Vec<bool>,
    missing: usize,
    started: Instant,
}

/// The requests in pieces of one UDP socket (owned by its thread).
#[derive(Default)]
pub struct Reassembly {
    partial: HashMap<(IpAddr, u32), Partial>,
    /// Keys, oldest first (a key whose request completed stays until it reaches the front).
    order: VecDeque<((IpAddr, u32), Instant)>,
    bytes: usize,
}

impl Reassembly {
    /// Takes the piece `piece` (the bytes after `envelope`) of a request from `source`; returns
    /// the whole message, with its first piece's envelope, once every piece is in.
    pub fn add(
        &mut self,
        source: IpAddr,
        envelope: &Envelope,
        piece: &[u8],
        now: Instant,
    ) -> Option<(Envelope, Vec<u8>)> {
        self.expire(now);
        let len = envelope.message_length as usize;
        let count = len.div_ceil(UDP_CHUNK).max(1);
        let index = envelope.message_id as usize;
        let expected = if index + 1 == count { len - UDP_CHUNK * (count - 1) } else { UDP_CHUNK };
        let key = (source, envelope.request_id);
        if index >= count || piece.len() != expected {
            self.drop_request(&key);
            return None;
        }
        if !self.partial.contains_key(&key) {
            // Completed requests leave their keys behind in `order`; drop them before they add up.
            if self.order.len() >= 2 * MAX_PARTIAL {
                let partial = &self.partial;
                self.order.retain(|(k, at)| partial.get(k).is_some_and(|p| p.started == *at));
            }
            while self.partial.len() >= MAX_PARTIAL || self.bytes + len > MAX_PARTIAL_BYTES {
                let (oldest, _) = self.order.pop_front()?;
                self.drop_request(&oldest);
            }
            let partial = Partial {
                envelope: *envelope,
                message: vec![0; len],
                have: vec![false; count],
                missing: count,
                started: now,
            };
            self.bytes += len;
            self.partial.insert(key, partial);
            self.order.push_back((key, now));
        }
        let partial = self.partial.get_mut(&key)?;
        if partial.envelope.message_length != envelope.message_length {
            self.drop_request(&key);
            return None;
        }
        if !partial.have[index] {
            partial.have[index] = true;
            partial.missing -= 1;
            partial.message[index * UDP_CHUNK..index * UDP_CHUNK + piece.len()].copy_from_slice(piece);
        }
        if partial.missing > 0 {
            return None;
        }
        let done = self.partial.remove(&key)?;
        self.bytes -= done.message.len();
        let envelope =
            Envelope { message_id: 0, flags: done.envelope.flags & !super::message::ENV_TRUNCATED, ..done.envelope };
        Some((envelope, done.message))
    }

    fn drop_request(&mut self, key: &(IpAddr, u32)) {
        if let Some(gone) = self.partial.remove(key) {
            self.bytes -= gone.message.len();
        }
    }

    /// Drops what waited longer than [`WAIT`].
    fn expire(&mut self, now: Instant) {
        while let Some(&(key, at)) = self.order.front() {
            let stale = self.partial.get(&key).is_none_or(|p| p.started != at);
            if !stale && now.duration_since(at) <= WAIT {
                break;
            }
            self.order.pop_front();
            if !stale {
                self.drop_request(&key);
            }
        }
    }

    /// Requests in pieces now.
    pub fn len(&self) -> usize {
        self.partial.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::message::{ENV_TRUNCATED, Version};

    fn envelope(request_id: u32, index: u32, len: usize) -> Envelope {
        Envelope {
            version: Version::new(2, 11),
            suggested: Version::new(2, 11),
            flags: ENV_TRUNCATED,
            session_id: 0,
            request_id,
            message_id: index,
            message_length: len as u32,
        }
    }

    const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn pieces_in_any_order_make_the_message_once() {
        let message: Vec<u8> = (0..1200u32).map(|i| i as u8).collect();
        let mut r = Reassembly::default();
        let now = Instant::now();
        let pieces: Vec<&[u8]> = message.chunks(UDP_CHUNK).collect();
        assert_eq!(pieces.len(), 3);
        assert!(r.add(HOST, &envelope(7, 2, 1200), pieces[2], now).is_none());
        assert!(r.add(HOST, &envelope(7, 0, 1200), pieces[0], now).is_none());
        assert!(r.add(HOST, &envelope(7, 0, 1200), pieces[0], now).is_none(), "a repeated piece");
        let (e, whole) = r.add(HOST, &envelope(7, 1, 1200), pieces[1], now).expect("complete");
        assert_eq!((whole, e.message_id, e.flags & ENV_TRUNCATED), (message, 0, 0));
        assert!(r.is_empty());
    }

    #[test]
    fn pieces_that_do_not_fit_and_stale_requests_are_dropped() {
        let mut r = Reassembly::default();
        let now = Instant::now();
        assert!(r.add(HOST, &envelope(1, 0, 1000), &[0; 100], now).is_none(), "a first piece must be 492 bytes");
        assert!(r.add(HOST, &envelope(1, 5, 1000), &[0; 16], now).is_none(), "past the end");
        assert!(r.is_empty());
        r.add(HOST, &envelope(2, 0, 1000), &[0; UDP_CHUNK], now);
        assert_eq!(r.len(), 1);
        assert!(r.add(HOST, &envelope(3, 0, 1000), &[0; UDP_CHUNK], now + WAIT + Duration::from_secs(1)).is_none());
        assert_eq!(r.len(), 1, "the stale request went, the new one waits");
    }

    #[test]
    fn a_flood_of_first_pieces_stays_bounded() {
        let mut r = Reassembly::default();
        let now = Instant::now();
        for id in 0..(MAX_PARTIAL as u32 + 100) {
            r.add(HOST, &envelope(id, 0, 200_000), &[0; UDP_CHUNK], now);
        }
        assert!(r.len() <= MAX_PARTIAL && r.bytes <= MAX_PARTIAL_BYTES, "{} requests, {} bytes", r.len(), r.bytes);
    }
}
