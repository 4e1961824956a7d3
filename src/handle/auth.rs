//! Challenge-response authentication, as CNRI's 9.x server runs it (docs/handle-protocol.md,
//! "Authentication").
//!
//! A request that needs an administrator is not run: the node keeps it, and answers
//! AUTHENTICATION_NEEDED with a random 16-byte nonce and the request's digest, the envelope's
//! session id naming the challenge. The client answers (RESPONSE_TO_CHALLENGE, on any
//! connection: CNRI's client opens a new one) with the challenge id, the administrator
//! (`index:identifier`, index 0 for any key of that type) and a proof computed over nonce and
//! digest ([`super::proof`]). The node checks the proof through the core's authenticator, which
//! bounds failures per source and user, and then runs the kept request as that administrator,
//! answering with its opcode and the answer's request id.
//!
//! Challenges are bounded: at most [`MAX_PENDING`] kept, holding at most [`MAX_PENDING_BYTES`]
//! of requests, each for [`CHALLENGE_TTL`]; the oldest goes first. One client (an IPv4 address,
//! an IPv6 /64) keeps at most [`MAX_PENDING_PER_CLIENT`]: beyond that its own oldest goes, so a
//! client that never answers pushes out only its own challenges, not other clients'. A
//! challenge is answered once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore as _};

use super::message::{Envelope, Reader, WireError};

/// 60 s: how long a challenge waits for its answer (CNRI's `max_auth_time` as hdl-setup-server
/// writes it).
pub(super) const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// 4,096: challenges kept at once. Honest clients answer within a round trip; a flood of
/// requests without answers pushes out only the oldest.
pub(super) const MAX_PENDING: usize = 4096;
/// 16 MiB: bytes of kept requests at once (a request may be up to 256 KiB).
pub(super) const MAX_PENDING_BYTES: usize = 16 << 20;
/// 128: challenges kept at once for one client. An SDK's pool of connections, or a batch tool,
/// has a few outstanding at a time; it takes 32 flooding clients to fill [`MAX_PENDING`].
pub(super) const MAX_PENDING_PER_CLIENT: usize = 128;

/// A request kept until its challenge is answered.
pub(super) struct Pending {
    pub(super) nonce: [u8; 16],
    /// The request digest the challenge carried, without its code byte.
    pub(super) digest: Vec<u8>,
    pub(super) envelope: Envelope,
    /// The request message as received.
    pub(super) message: Vec<u8>,
    /// The session the challenge was sent in (its id is the session's).
    pub(super) session: Option<u32>,
    /// The client it was sent to ([`crate::auth::client_of`]).
    client: Option<IpAddr>,
}

impl Pending {
    /// What the client's proof covers: nonce, then digest.
    pub(super) fn signed(&self) -> Vec<u8> {
        [&self.nonce[..], &self.digest].concat()
    }
}

/// The challenges waiting for their answers.
#[derive(Default)]
pub(super) struct Challenges {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<u32, (Pending, Instant)>,
    /// Challenge ids, oldest first.
    order: VecDeque<u32>,
    bytes: usize,
    /// The ids of the challenges kept for each client, oldest first; a client with none has no
    /// entry.
    per_client: HashMap<IpAddr, VecDeque<u32>>,
}

impl Inner {
    fn remove(&mut self, id: u32) -> Option<(Pending, Instant)> {
        let removed = self.by_id.remove(&id)?;
        self.bytes -= removed.0.message.len();
        if let Some(client) = removed.0.client {
            if let Some(ids) = self.per_client.get_mut(&client) {
                ids.retain(|kept| *kept != id);
                if ids.is_empty() {
                    self.per_client.remove(&client);
                }
            }
        }
        Some(removed)
    }

    /// Drops `client`'s oldest challenge when it has its fill.
    fn make_room_for(&mut self, client: IpAddr) {
        let oldest = match self.per_client.get(&client) {
            Some(ids) if ids.len() >= MAX_PENDING_PER_CLIENT => ids.front().copied(),
            _ => None,
        };
        if let Some(id) = oldest {
            self.remove(id);
        }
    }
}

impl Challenges {
    /// Keeps the request (`envelope`, `message`) whose digest is `digest`, sent by `source`;
    /// returns the challenge's id and nonce. The id is `fixed` (a session's id: a challenge
    /// inside a session is named by it) or random, never 0.
    pub(super) fn issue(
        &self,
        envelope: &Envelope,
        message: &[u8],
        digest: Vec<u8>,
        fixed: Option<u32>,
        source: Option<IpAddr>,
        now: Instant,
    ) -> (u32, [u8; 16]) {
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let client = source.map(crate::auth::client_of);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = client {
            inner.make_room_for(client);
        }
        while let Some(&oldest) = inner.order.front() {
            let expired = inner.by_id.get(&oldest).is_none_or(|(_, at)| now.duration_since(*at) > CHALLENGE_TTL);
            let full = inner.by_id.len() >= MAX_PENDING || inner.bytes + message.len() > MAX_PENDING_BYTES;
            if !expired && !full {
                break;
            }
            inner.order.pop_front();
            inner.remove(oldest);
        }
        // Answered challenges leave their ids behind in `order`; drop them before they add up.
        if inner.order.len() >= 2 * MAX_PENDING {
            let Inner { by_id, order, .. } = &mut *inner;
            order.retain(|id| by_id.contains_key(id));
        }
        let id = match fixed {
            Some(id) => {
                inner.remove(id);
                id
            }
            None => loop {
                // 1..=i32::MAX: the Java SDKs keep ids in an `int` and Teleinfo's id-pointer-sdk
                // (MessagePacketsManager) sends `sessionId > 0 ? sessionId : 0`, so an id with the
                // top bit set comes back as 0 and the answer finds no challenge (405).
                let id = OsRng.next_u32() >> 1;
                if id != 0 && !inner.by_id.contains_key(&id) {
                    break id;
                }
            },
        };
        let pending = Pending { nonce, digest, envelope: *envelope, message: message.to_vec(), session: fixed, client };
        inner.bytes += message.len();
        if let Some(client) = client {
            inner.per_client.entry(client).or_default().push_back(id);
        }
        inner.by_id.insert(id, (pending, now));
        inner.order.push_back(id);
        (id, nonce)
    }

    /// The request challenge `id` kept, once: `None` when there is no such challenge or it
    /// expired.
    pub(super) fn take(&self, id: u32, now: Instant) -> Option<Pending> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (pending, at) = inner.remove(id)?;
        // Its id stays in `order` until it reaches the front, where a missing entry is skipped.
        (now.duration_since(at) <= CHALLENGE_TTL).then_some(pending)
    }

    /// How many challenges are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).by_id.len()
    }
}

/// The body of a RESPONSE_TO_CHALLENGE: key type, administrator identifier and index, proof.
pub(super) struct Answer<'a> {
    pub(super) kind: &'a [u8],
    pub(super) admin: &'a [u8],
    pub(super) index: u32,
    pub(super) proof: &'a [u8],
}

impl<'a> Answer<'a> {
    pub(super) fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        Ok(Self { kind: r.bytes()?, admin: r.bytes()?, index: r.u32()?, proof: r.bytes()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::message::Version;

    fn envelope() -> Envelope {
        Envelope {
            version: Version::new(2, 11),
            suggested: Version::new(2, 11),
            flags: 0,
            session_id: 0,
            request_id: 7,
            message_id: 0,
            message_length: 0,
        }
    }

    #[test]
    fn a_challenge_is_answered_once_and_within_its_time() {
        let challenges = Challenges::default();
        let t0 = Instant::now();
        let (id, nonce) = challenges.issue(&envelope(), b"request", vec![1, 2], None, None, t0);
        assert_ne!(id, 0);
        let (other, other_nonce) = challenges.issue(&envelope(), b"request", vec![1, 2], None, None, t0);
        assert_ne!((id, nonce), (other, other_nonce), "random ids and nonces");
        let pending = challenges.take(id, t0).expect("kept");
        assert_eq!((pending.message.as_slice(), pending.signed()), (&b"request"[..], [&nonce[..], &[1, 2]].concat()));
        assert!(challenges.take(id, t0).is_none(), "once");
        assert!(challenges.take(other, t0 + CHALLENGE_TTL + Duration::from_secs(1)).is_none(), "expired");
    }

    #[test]
    fn challenge_ids_are_positive_java_ints() {
        let challenges = Challenges::default();
        let t0 = Instant::now();
        for _ in 0..1000 {
            let (id, _) = challenges.issue(&envelope(), b"r", vec![], None, None, t0);
            assert!((1..=i32::MAX as u32).contains(&id), "{id:#x} is not a positive Java int");
        }
    }

    #[test]
    fn a_flood_of_unanswered_challenges_stays_bounded() {
        let challenges = Challenges::default();
        let t0 = Instant::now();
        let first = challenges.issue(&envelope(), b"r", vec![], None, None, t0).0;
        for _ in 0..MAX_PENDING + 10 {
            challenges.issue(&envelope(), b"r", vec![], None, None, t0);
        }
        assert_eq!(challenges.len(), MAX_PENDING);
        assert!(challenges.take(first, t0).is_none(), "the oldest went first");
        let big = vec![0u8; 1 << 20];
        for _ in 0..40 {
            challenges.issue(&envelope(), &big, vec![], None, None, t0);
        }
        assert!(challenges.inner.lock().unwrap().bytes <= MAX_PENDING_BYTES);
    }

    #[test]
    fn a_client_flooding_challenges_pushes_out_only_its_own() {
        let challenges = Challenges::default();
        let t0 = Instant::now();
        let honest: IpAddr = "192.0.2.1".parse().unwrap();
        let kept = challenges.issue(&envelope(), b"r", vec![], None, Some(honest), t0).0;
        let flooder: IpAddr = "2001:db8::1".parse().unwrap();
        let first = challenges.issue(&envelope(), b"r", vec![], None, Some(flooder), t0).0;
        for n in 0..MAX_PENDING * 2 {
            // Every address of the flooder's /64 is the same client.
            let from = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, n as u16));
            challenges.issue(&envelope(), b"r", vec![], None, Some(from), t0);
        }
        assert_eq!(challenges.len(), 1 + MAX_PENDING_PER_CLIENT);
        assert!(challenges.take(first, t0).is_none(), "the flooder's oldest went");
        assert!(challenges.take(kept, t0).is_some(), "the honest client's challenge stayed");
        assert_eq!(challenges.inner.lock().unwrap().per_client.len(), 1, "counts leave with their challenges");
    }
}
