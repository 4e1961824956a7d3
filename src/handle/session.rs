//! Sessions, as CNRI's 9.x client sets them up before any administration (docs/handle-protocol.md,
//! "Sessions"): SESSION_SETUP agrees a 32-byte session key by Diffie-Hellman (key exchange mode
//! 4, the client's default, the only one served), the node answering with its own public value
//! in a response signed with the server key; every later request of the session carries an
//! `HS_MAC` credential, HMAC-SHA256 under the session key over the same bytes a signature
//! covers, with a counter that never repeats. The session is authenticated by the first
//! challenge answered in it (the challenge's id is the session's) and then runs its requests as
//! that administrator without further challenges. SESSION_TERMINATE ends it.
//!
//! Bounded: at most [`MAX_SESSIONS`] at once (the least recently used goes first), at most
//! [`MAX_SESSIONS_PER_CLIENT`] for one client (an IPv4 address, an IPv6 /64: its own least
//! recently used goes first, so one client's setups cannot push out other clients' sessions),
//! each for at most [`MAX_SESSION_TIME`] and [`IDLE_TIME`] without a request; Diffie-Hellman
//! groups of 1024 to 4096 bits.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use hmac::{Hmac, Mac as _};
use num_bigint_dig::BigUint;
use sha2::Sha256;

use super::credential::signed_prefix;
use super::message::{Reader, Request, write_bytes, write_u32};
use crate::auth::Admin;
use crate::code::ResponseCode;

/// 4,096: sessions at once. CNRI's client keeps one per server and identity.
pub(super) const MAX_SESSIONS: usize = 4096;
/// 128: sessions at once for one client. CNRI's client keeps one per administrator and server;
/// a host running many tools or SDK instances has a few dozen. It takes 32 clients to fill
/// [`MAX_SESSIONS`].
pub(super) const MAX_SESSIONS_PER_CLIENT: usize = 128;
/// 24 hours: the longest a session lives (CNRI's client asks 86,400 s).
pub(super) const MAX_SESSION_TIME: Duration = Duration::from_secs(86_400);
/// 30 minutes: a session unused this long ends (the client sets up another on SESSION_TIMEOUT).
pub(super) const IDLE_TIME: Duration = Duration::from_secs(1800);
/// 256: counters remembered per session to refuse a replayed request.
const COUNTERS_KEPT: usize = 256;
/// Key exchange mode 4: Diffie-Hellman.
const MODE_DH: u16 = 4;
/// Session cipher 3: AES (CNRI's default), for the messages a client encrypts.
const CIPHER_AES: u32 = 3;
/// 16: AES's block, and the IV in front of an encrypted message.
const AES_BLOCK: usize = 16;

/// A session's state.
struct Session {
    key: [u8; 32],
    /// The identity the client named at setup; the challenge answered in the session must be
    /// this administrator's.
    identity: Option<(String, u32)>,
    admin: Option<Admin>,
    created: Instant,
    used: Instant,
    counters: BTreeSet<u32>,
    /// The client that set it up ([`crate::auth::client_of`]).
    client: Option<IpAddr>,
}

/// The sessions of the node.
#[derive(Default)]
pub(super) struct Sessions {
    inner: Mutex<HashMap<u32, Session>>,
}

/// Why a request of a session is refused.
pub(super) type Refusal = (ResponseCode, &'static str);

/// What a session request proved.
#[derive(Debug, Clone)]
pub(super) struct InSession {
    pub(super) id: u32,
    /// The administrator the session authenticated as, once a challenge was answered in it.
    pub(super) admin: Option<Admin>,
}

impl Sessions {
    /// Answers a SESSION_SETUP body from `source`: the new session's id and the response's body
    /// (after the digest), or the refusal.
    pub(super) fn setup(&self, body: &[u8], source: Option<IpAddr>, now: Instant) -> Result<(u32, Vec<u8>), Refusal> {
        let malformed = (ResponseCode::InvalidSessionSetup, "the session setup request is malformed");
        let mut r = Reader::new(body);
        let mode = r.u16().map_err(|_| malformed)?;
        let _timeout = r.u32().map_err(|_| malformed)?;
        let identity = r.bytes().map_err(|_| malformed)?;
        let index = r.u32().map_err(|_| malformed)?;
        if mode != MODE_DH {
            return Err((ResponseCode::SessionFailed, "only key exchange mode 4 (Diffie-Hellman) is served"));
        }
        let public = r.bytes().map_err(|_| malformed)?;
        let (theirs, p, g) = dh_public(public).ok_or(malformed)?;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let x = BigUint::from_bytes_be(&secret);
        let ours = g.modpow(&x, &p);
        let key = session_key(&theirs.modpow(&x, &p));
        let identity = match (std::str::from_utf8(identity), identity.is_empty()) {
            (_, true) => None,
            (Ok(handle), false) => Some((handle.to_owned(), index)),
            (Err(_), false) => return Err(malformed),
        };
        let mut data = Vec::new();
        write_u32(&mut data, CIPHER_AES);
        data.extend_from_slice(&dh_encode(&ours, &p, &g));
        let mut response = Vec::new();
        response.extend_from_slice(&MODE_DH.to_be_bytes());
        write_bytes(&mut response, &data);
        response.extend_from_slice(&[0, 0]); // as CNRI writes it
        let client = source.map(crate::auth::client_of);
        let counters = BTreeSet::new();
        let session = Session { key, identity, admin: None, created: now, used: now, counters, client };
        Ok((self.insert(session, now), response))
    }

    fn insert(&self, session: Session, now: Instant) -> u32 {
        let mut sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| alive(s, now));
        let client = session.client;
        let its_own = |s: &Session| client.is_some() && s.client == client;
        let crowded = sessions.values().filter(|s| its_own(s)).count() >= MAX_SESSIONS_PER_CLIENT;
        if crowded || sessions.len() >= MAX_SESSIONS {
            let candidates = sessions.iter().filter(|(_, s)| !crowded || its_own(s));
            if let Some(oldest) = candidates.min_by_key(|(_, s)| s.used).map(|(id, _)| *id) {
                sessions.remove(&oldest);
            }
        }
        let id = loop {
            // 1..=i32::MAX, as challenge ids (auth.rs): Java clients test `sessionId > 0`.
            let id = OsRng.next_u32() >> 1;
            if id != 0 && !sessions.contains_key(&id) {
                break id;
            }
        };
        sessions.insert(id, session);
        id
    }

    /// Checks a request that carries an `HS_MAC` credential: its session exists, the MAC is the
    /// session key's over the request, and its counter is new. `None` when the request carries
    /// no MAC (it is not a session request; the national SDKs send their own session ids
    /// without one).
    pub(super) fn check(&self, request: &Request<'_>, now: Instant) -> Option<Result<InSession, Refusal>> {
        let (counter, mac) = hs_mac(request.credential)?;
        let id = request.envelope.session_id;
        let mut sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = sessions.get_mut(&id).filter(|s| alive(s, now)) else {
            return Some(Err((ResponseCode::SessionTimeout, "no such session, or it expired: set up another")));
        };
        let mut expected = Hmac::<Sha256>::new_from_slice(&session.key).expect("HMAC takes any key");
        expected.update(&signed_prefix(&request.envelope, counter));
        expected.update(request.signed);
        if expected.verify_slice(mac).is_err() {
            return Some(Err((ResponseCode::AuthenticationFailed, "the session MAC does not match")));
        }
        if session.counters.contains(&counter)
            || (session.counters.len() == COUNTERS_KEPT && session.counters.first().is_some_and(|&c| counter < c))
        {
            return Some(Err((ResponseCode::SessionMessageRejected, "a session message was replayed")));
        }
        session.counters.insert(counter);
        if session.counters.len() > COUNTERS_KEPT {
            session.counters.pop_first();
        }
        session.used = now;
        Some(Ok(InSession { id, admin: session.admin.clone() }))
    }

    /// The plaintext of a message that CNRI's client encrypted in session `id` (EC set in the
    /// envelope): the 16-byte IV, then AES-128-CBC with PKCS #5 padding under the first 16 bytes
    /// of the session key (CNRI's `SessionInfo.encryptBuffer` from 2.4, cipher 3). The plaintext is
    /// the whole message, its `HS_MAC` credential included, which [`check`](Self::check) then
    /// verifies as for any session request.
    pub(super) fn decrypt(&self, id: u32, message: &[u8], now: Instant) -> Result<Vec<u8>, Refusal> {
        use aes::cipher::{BlockDecryptMut as _, KeyIvInit as _, block_padding::Pkcs7};
        let key = {
            let sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let Some(session) = sessions.get(&id).filter(|s| alive(s, now)) else {
                return Err((ResponseCode::SessionTimeout, "no such session, or it expired: set up another"));
            };
            session.key
        };
        let failed = (ResponseCode::SessionFailed, "the message does not decrypt with the session key");
        let (iv, ciphertext) = message.split_at_checked(AES_BLOCK).ok_or(failed)?;
        let decryptor = cbc::Decryptor::<aes::Aes128>::new_from_slices(&key[..16], iv).map_err(|_| failed)?;
        decryptor.decrypt_padded_vec_mut::<Pkcs7>(ciphertext).map_err(|_| failed)
    }

    /// Records that the challenge of session `id` was answered by `admin`; refused when the
    /// session named another identity at setup.
    pub(super) fn authenticate(&self, id: u32, admin: &Admin) -> Result<(), Refusal> {
        let mut sessions = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(session) = sessions.get_mut(&id) else {
            return Err((ResponseCode::SessionTimeout, "no such session, or it expired: set up another"));
        };
        if let Some((handle, index)) = &session.identity {
            let same = handle.eq_ignore_ascii_case(&admin.identifier) && (*index == 0 || *index == admin.index);
            if !same {
                return Err((ResponseCode::AuthenticationFailed, "the answer is not the session's identity's"));
            }
        }
        session.admin = Some(admin.clone());
        Ok(())
    }

    /// Ends session `id` (SESSION_TERMINATE).
    pub(super) fn end(&self, id: u32) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    #[cfg(test)]
    fn key(&self, id: u32) -> Option<[u8; 32]> {
        self.inner.lock().unwrap().get(&id).map(|s| s.key)
    }
}

fn alive(session: &Session, now: Instant) -> bool {
    now.duration_since(session.created) < MAX_SESSION_TIME && now.duration_since(session.used) < IDLE_TIME
}

/// The counter and MAC of an `HS_MAC` credential section, if it is one.
fn hs_mac(credential: &[u8]) -> Option<(u32, &[u8])> {
    let mut r = Reader::new(credential);
    r.take(4).ok()?; // version, reserved, flags
    r.bytes().ok()?; // signer handle
    let counter = r.u32().ok()?;
    if r.bytes().ok()? != b"HS_MAC" {
        return None;
    }
    r.u32().ok()?; // length of what follows
    let algorithm = r.bytes().ok()?;
    let mac = r.bytes().ok()?;
    (algorithm == b"HMAC-SHA256").then_some((counter, mac))
}

/// A Diffie-Hellman public value in Handle's key encoding (`DH_PUB_KEY`: y, p, g), checked: a
/// prime of 1024 to 4096 bits, and y and g strictly between 1 and p - 1.
fn dh_public(data: &[u8]) -> Option<(BigUint, BigUint, BigUint)> {
    let mut r = Reader::new(data);
    if r.bytes().ok()? != b"DH_PUB_KEY" {
        return None;
    }
    r.u16().ok()?;
    let mut int = || r.bytes().ok().map(BigUint::from_bytes_be);
    let (y, p, g) = (int()?, int()?, int()?);
    let one = BigUint::from(1u32);
    let top = &p - &one;
    let inside = |n: &BigUint| *n > one && *n < top;
    ((1024..=4096).contains(&p.bits()) && inside(&y) && inside(&g)).then_some((y, p, g))
}

/// Handle's encoding of a Diffie-Hellman public value, integers as Java writes them (a leading
/// zero byte when the top bit is set).
fn dh_encode(y: &BigUint, p: &BigUint, g: &BigUint) -> Vec<u8> {
    let mut out = Vec::new();
    write_bytes(&mut out, b"DH_PUB_KEY");
    out.extend_from_slice(&[0, 0]);
    for n in [y, p, g] {
        let mut bytes = n.to_bytes_be();
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        write_bytes(&mut out, &bytes);
    }
    out
}

/// The session key from the shared secret as CNRI takes it: the secret's bytes without leading
/// zeros (but at least 32), the first 32 of them.
fn session_key(shared: &BigUint) -> [u8; 32] {
    let bytes = shared.to_bytes_be();
    let mut padded = vec![0u8; 32usize.saturating_sub(bytes.len())];
    padded.extend_from_slice(&bytes);
    let mut key = [0u8; 32];
    key.copy_from_slice(&padded[..32]);
    key
}

impl super::Frontend {
    /// SESSION_SETUP: a new session, its id in the envelope; the response is signed with the
    /// server key (the client asks for it, and trusts the node's Diffie-Hellman value only so).
    pub(super) fn session_setup(
        &self,
        request: &Request<'_>,
        source: Option<IpAddr>,
        now: u32,
        out: &mut Vec<u8>,
    ) -> super::Envelope {
        if self.site.key().is_none() {
            let text = "this node has no server key to sign a session with: run idnode admin init";
            return super::error(request, ResponseCode::SessionFailed, text, now, out);
        }
        match self.sessions.setup(request.body, source, Instant::now()) {
            Ok((id, body)) => {
                let mut envelope =
                    request.respond(ResponseCode::Success.number(), now, out, |out| out.extend_from_slice(&body));
                envelope.session_id = id;
                envelope
            }
            Err((code, text)) => super::error(request, code, text, now, out),
        }
    }

    /// SESSION_TERMINATE: ends the session the request was signed in.
    pub(super) fn session_end(
        &self,
        request: &Request<'_>,
        conn: &super::Connection,
        now: u32,
        out: &mut Vec<u8>,
    ) -> super::Envelope {
        match conn.session_id() {
            Some(id) => {
                self.sessions.end(id);
                request.respond(ResponseCode::Success.number(), now, out, |_| {})
            }
            None => {
                super::error(request, ResponseCode::SessionTimeout, "the request is not signed in a session", now, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::message::{Envelope, Header, Version, write_u32};

    /// RFC 2409's 1024-bit MODP group (Oakley group 2), generator 2.
    const P: &str = concat!(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    );

    fn setup_body(y: &BigUint, p: &BigUint, identity: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MODE_DH.to_be_bytes());
        write_u32(&mut b, 86_400);
        write_bytes(&mut b, identity.as_bytes());
        write_u32(&mut b, 300);
        write_bytes(&mut b, &dh_encode(y, p, &BigUint::from(2u32)));
        b.extend_from_slice(&[0, 0]);
        b
    }

    /// The client's side: its secret, and the session key from the node's answer.
    fn agree(sessions: &Sessions) -> (u32, [u8; 32]) {
        let p = BigUint::parse_bytes(P.as_bytes(), 16).unwrap();
        let x = BigUint::from(0x1234_5678_9abc_def1u64);
        let y = BigUint::from(2u32).modpow(&x, &p);
        let (id, body) = sessions.setup(&setup_body(&y, &p, "0.NA/88.100"), None, Instant::now()).unwrap();
        let mut r = Reader::new(&body);
        assert_eq!(r.u16().unwrap(), MODE_DH);
        let data = r.bytes().unwrap();
        assert_eq!(r.take(2).unwrap(), [0, 0]);
        assert_eq!(&data[..4], &CIPHER_AES.to_be_bytes());
        let (theirs, p2, _) = dh_public(&data[4..]).unwrap();
        assert_eq!(p2, p);
        (id, session_key(&theirs.modpow(&x, &p)))
    }

    fn signed_request(id: u32, counter: u32, key: &[u8; 32]) -> (Envelope, Vec<u8>) {
        let envelope = Envelope {
            version: Version::new(2, 11),
            suggested: Version::new(2, 11),
            flags: 0,
            session_id: id,
            request_id: 9,
            message_id: 0,
            message_length: 0,
        };
        let mut m = Vec::new();
        Header { opcode: 101, body_length: 10, ..Header::default() }.encode(&mut m);
        write_bytes(&mut m, b"88.1/X");
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(&signed_prefix(&envelope, counter));
        mac.update(&m);
        let mut credential = vec![0, 0, 0, 0];
        write_bytes(&mut credential, b"");
        write_u32(&mut credential, counter);
        write_bytes(&mut credential, b"HS_MAC");
        let mac = mac.finalize().into_bytes();
        write_u32(&mut credential, (4 + 11 + 4 + mac.len()) as u32);
        write_bytes(&mut credential, b"HMAC-SHA256");
        write_bytes(&mut credential, &mac);
        write_bytes(&mut m, &credential);
        (envelope, m)
    }

    #[test]
    fn both_sides_agree_on_the_key_and_requests_are_checked_by_their_mac() {
        let sessions = Sessions::default();
        let (id, key) = agree(&sessions);
        assert_eq!(sessions.key(id), Some(key), "the client's key is the node's");
        let now = Instant::now();
        let (envelope, m) = signed_request(id, 1, &key);
        let request = Request::decode(envelope, &m).unwrap();
        assert!(matches!(sessions.check(&request, now), Some(Ok(InSession { admin: None, .. }))));
        assert!(matches!(sessions.check(&request, now), Some(Err((ResponseCode::SessionMessageRejected, _)))));
        let (envelope, m) = signed_request(id, 2, &[7; 32]);
        let forged = Request::decode(envelope, &m).unwrap();
        assert!(matches!(sessions.check(&forged, now), Some(Err((ResponseCode::AuthenticationFailed, _)))));
        let (envelope, m) = signed_request(id.wrapping_add(1), 3, &key);
        let unknown = Request::decode(envelope, &m).unwrap();
        assert!(matches!(sessions.check(&unknown, now), Some(Err((ResponseCode::SessionTimeout, _)))));
        let later = now + IDLE_TIME + Duration::from_secs(1);
        let (envelope, m) = signed_request(id, 4, &key);
        let idle = Request::decode(envelope, &m).unwrap();
        assert!(matches!(sessions.check(&idle, later), Some(Err((ResponseCode::SessionTimeout, _)))));
    }

    /// CNRI's client encrypts a message holding a value that is not publicly readable (an
    /// AddValueRequest in a session at 2.8 or later): the node must read it (the CNRI client
    /// check found such requests refused with PROTOCOL_ERROR).
    #[test]
    fn a_message_encrypted_with_the_session_key_decrypts_and_its_mac_checks() {
        use aes::cipher::{BlockEncryptMut as _, KeyIvInit as _, block_padding::Pkcs7};
        let sessions = Sessions::default();
        let (id, key) = agree(&sessions);
        let (envelope, m) = signed_request(id, 1, &key);
        let iv = [0x5a; AES_BLOCK];
        let encryptor = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key[..16], &iv).unwrap();
        let sealed = [&iv[..], &encryptor.encrypt_padded_vec_mut::<Pkcs7>(&m)].concat();
        let now = Instant::now();
        let plain = sessions.decrypt(id, &sealed, now).unwrap();
        assert_eq!(plain, m);
        let request = Request::decode(envelope, &plain).unwrap();
        assert!(matches!(sessions.check(&request, now), Some(Ok(_))), "the HS_MAC inside checks");
        // A flipped bit in the block before the last flips the padding byte: never valid.
        let mut tampered = sealed.clone();
        let at = tampered.len() - AES_BLOCK - 1;
        tampered[at] ^= 1;
        assert!(matches!(sessions.decrypt(id, &tampered, now), Err((ResponseCode::SessionFailed, _))));
        assert!(matches!(sessions.decrypt(id, &sealed[..10], now), Err((ResponseCode::SessionFailed, _))));
        let unknown = sessions.decrypt(id.wrapping_add(1), &sealed, now);
        assert!(matches!(unknown, Err((ResponseCode::SessionTimeout, _))));
    }

    #[test]
    fn a_session_is_only_its_identity_s() {
        let sessions = Sessions::default();
        let (id, _) = agree(&sessions);
        let other = Admin::for_tests(300, "0.NA/88.200");
        assert!(sessions.authenticate(id, &other).is_err());
        assert!(sessions.authenticate(id, &Admin::for_tests(300, "0.na/88.100")).is_ok());
        sessions.end(id);
        assert!(sessions.key(id).is_none());
    }

    #[test]
    fn weak_or_malformed_groups_are_refused() {
        let sessions = Sessions::default();
        let small = BigUint::from(0xffff_fffbu32);
        let refused = sessions.setup(&setup_body(&BigUint::from(5u32), &small, ""), None, Instant::now());
        assert!(matches!(refused, Err((ResponseCode::InvalidSessionSetup, _))));
        let p = BigUint::parse_bytes(P.as_bytes(), 16).unwrap();
        let refused = sessions.setup(&setup_body(&BigUint::from(1u32), &p, ""), None, Instant::now());
        assert!(refused.is_err(), "y = 1");
        let mut body = setup_body(&BigUint::from(5u32), &p, "");
        body[1] = 1;
        assert!(matches!(sessions.setup(&body, None, Instant::now()), Err((ResponseCode::SessionFailed, _))));
        assert!(sessions.setup(&[0, 4], None, Instant::now()).is_err());
    }

    #[test]
    fn a_client_setting_up_sessions_pushes_out_only_its_own() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let session = |from: &str, at: u64| Session {
            key: [0; 32],
            identity: None,
            admin: None,
            created: t0,
            used: t0 + Duration::from_millis(at),
            counters: BTreeSet::new(),
            client: Some(crate::auth::client_of(from.parse().unwrap())),
        };
        let honest = sessions.insert(session("192.0.2.1", 0), t0);
        let first = sessions.insert(session("192.0.2.9", 1), t0);
        for n in 0..MAX_SESSIONS_PER_CLIENT as u64 + 50 {
            sessions.insert(session("192.0.2.9", 2 + n), t0);
        }
        assert!(sessions.key(honest).is_some(), "the other client's session stayed");
        assert!(sessions.key(first).is_none(), "the flooding client's least recently used went");
        assert_eq!(sessions.inner.lock().unwrap().len(), 1 + MAX_SESSIONS_PER_CLIENT);
    }
}
