//! Certified responses: when a request sets CT (certify) and the node has a server key, the
//! response's credential section carries an `HS_SIGNED` signature made with that key, which
//! a client checks against the public key in the node's site (CNRI `AbstractMessage.signMessage`,
//! docs/handle-protocol.md). Without a key the response goes out unsigned, as before.
//!
//! ```text
//! credential = u8 0 (version) · u8 0 · u16 0 (flags) · bytes "" (signer handle) ·
//!              u32 0 (signer index: the session counter, 0 outside sessions) ·
//!              bytes "HS_SIGNED" · u32 length of the rest · bytes "SHA-256" · bytes signature
//! signed     = [from 2.6: version fields of the envelope, below] · header · body
//! ```

use super::key::ServerKey;
use super::message::{Envelope, HEADER_LEN, Request, Version, op_flags, write_bytes, write_u32};

/// The credential type of a public-key signature (CNRI `Common.CREDENTIAL_TYPE_SIGNED`).
pub const HS_SIGNED: &[u8] = b"HS_SIGNED";
/// The digest algorithm written with the signature (CNRI `Common.HASH_ALG_SHA256`). CNRI's
/// server signs SHA-1 for responses below 2.7; ring signs only SHA-2, and CNRI's verifier
/// takes the algorithm from this field whatever the version.
pub const SHA_256: &[u8] = b"SHA-256";

/// Signs the response in `out` (header, body and an empty credential, as
/// [`Request::respond`] writes it) when `request` asked for certification and `key` is there:
/// the empty credential is replaced by a signed one. Returns the envelope to send, whose
/// message length then covers the credential.
pub fn certify(key: Option<&ServerKey>, request: &Request<'_>, envelope: Envelope, out: &mut Vec<u8>) -> Envelope {
    let Some(key) = key else { return envelope };
    // A frame that is not header, body and an empty credential is left alone.
    let framed = out.len() >= HEADER_LEN + 4 && out.ends_with(&[0; 4]);
    if request.header.op_flags & op_flags::CERTIFY == 0 || !framed {
        return envelope;
    }
    out.truncate(out.len() - 4);
    let mut signed = signed_prefix(&envelope, 0);
    signed.extend_from_slice(out);
    let signature = key.sign(&signed);
    let credential = credential(&signature);
    write_bytes(out, &credential);
    Envelope { message_length: u32::try_from(out.len()).unwrap_or(u32::MAX), ..envelope }
}

/// The credential section (without its length) for `signature`.
fn credential(signature: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(signature.len() + 48);
    c.extend_from_slice(&[0, 0, 0, 0]); // version, reserved, flags
    write_bytes(&mut c, b""); // signer handle: none, the key is the site's
    write_u32(&mut c, 0); // session counter
    write_bytes(&mut c, HS_SIGNED);
    write_u32(&mut c, (4 + SHA_256.len() + 4 + signature.len()) as u32);
    write_bytes(&mut c, SHA_256);
    write_bytes(&mut c, signature);
    c
}

/// What the signature covers before the header and body, by the response's version (CNRI
/// `signMessage`): from 2.7 the version, from 2.8 also the suggested version, then session id,
/// request id and session counter; 2.6 the same fields as CNRI's bug writes them (each
/// integer over the last at offset 2, then 4, in a 14-byte buffer); below 2.6 nothing.
pub fn signed_prefix(envelope: &Envelope, counter: u32) -> Vec<u8> {
    let v = envelope.version;
    let mut p = vec![v.major, v.minor];
    if v >= Version::new(2, 8) {
        p.extend_from_slice(&[envelope.suggested.major, envelope.suggested.minor]);
    }
    if v >= Version::new(2, 7) {
        for n in [envelope.session_id, envelope.request_id, counter] {
            write_u32(&mut p, n);
        }
    } else if v == Version::new(2, 6) {
        p.resize(14, 0);
        p[2..6].copy_from_slice(&envelope.session_id.to_be_bytes());
        p[4..8].copy_from_slice(&envelope.request_id.to_be_bytes());
        p[4..8].copy_from_slice(&counter.to_be_bytes());
    } else {
        p.clear();
    }
    p
}

/// The signature of a credential section made by [`certify`]: digest algorithm and
/// signature, or `None` when it is not one (a test and client aid).
pub fn signature_of(credential: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = super::message::Reader::new(credential);
    r.take(4).ok()?;
    r.bytes().ok()?;
    r.u32().ok()?;
    if r.bytes().ok()? != HS_SIGNED {
        return None;
    }
    r.u32().ok()?;
    let (algorithm, signature) = (r.bytes().ok()?, r.bytes().ok()?);
    (r.left() == 0).then_some((algorithm, signature))
}

#[cfg(test)]
mod tests {
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    use super::*;
    use crate::handle::key::tests::test_key;
    use crate::handle::message::{Header, MAX_VERSION};

    fn request_bytes(flags: u32) -> Vec<u8> {
        let header = Header { opcode: 2, op_flags: flags, body_length: 5, ..Header::default() };
        let mut m = Vec::new();
        header.encode(&mut m);
        write_bytes(&mut m, b"/");
        write_u32(&mut m, 0);
        m
    }

    fn envelope(version: Version) -> Envelope {
        Envelope {
            version,
            suggested: version,
            flags: 0,
            session_id: 0x0a0b_0c0d,
            request_id: 0x0102_0304,
            message_id: 0,
            message_length: 0,
        }
    }

    #[test]
    fn a_certified_response_verifies_with_the_server_key() {
        let key = test_key();
        let m = request_bytes(op_flags::CERTIFY);
        let request = Request::decode(envelope(MAX_VERSION), &m).unwrap();
        let mut out = Vec::new();
        let env = request.respond(1, 1000, &mut out, |o| o.extend_from_slice(b"site"));
        let unsigned_len = out.len();
        let env = certify(Some(key), &request, env, &mut out);
        assert_eq!(env.message_length as usize, out.len());
        let body_end = HEADER_LEN + 4;
        assert_eq!(&out[HEADER_LEN..body_end], b"site");
        let credential = &out[body_end + 4..];
        assert_eq!(&out[body_end..body_end + 4], &(credential.len() as u32).to_be_bytes());
        assert!(out.len() > unsigned_len);
        let (algorithm, signature) = signature_of(credential).unwrap();
        assert_eq!(algorithm, b"SHA-256");
        // 2.11: version 2.11, suggested 2.11, session id, request id, counter 0, then header+body.
        let mut signed = vec![2, 11, 2, 11, 0x0a, 0x0b, 0x0c, 0x0d, 1, 2, 3, 4, 0, 0, 0, 0];
        signed.extend_from_slice(&out[..body_end]);
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_der());
        public.verify(&signed, signature).unwrap();
        signed[HEADER_LEN + 16] ^= 1;
        assert!(public.verify(&signed, signature).is_err(), "a changed body fails");
    }

    #[test]
    fn uncertified_requests_and_keyless_nodes_stay_unsigned() {
        let m = request_bytes(0);
        let request = Request::decode(envelope(MAX_VERSION), &m).unwrap();
        let mut out = Vec::new();
        let env = request.respond(1, 1000, &mut out, |_| {});
        let before = out.clone();
        assert_eq!(certify(Some(test_key()), &request, env, &mut out), env);
        assert_eq!(out, before);
        let m = request_bytes(op_flags::CERTIFY);
        let request = Request::decode(envelope(MAX_VERSION), &m).unwrap();
        assert_eq!(certify(None, &request, env, &mut out), env);
        assert_eq!(out, before);
    }

    #[test]
    fn the_signed_prefix_follows_cnri_by_version() {
        let e = |v| Envelope { suggested: MAX_VERSION, ..envelope(v) };
        assert_eq!(signed_prefix(&e(Version::new(2, 11)), 5).len(), 16);
        assert_eq!(signed_prefix(&e(Version::new(2, 7)), 5), [2, 7, 10, 11, 12, 13, 1, 2, 3, 4, 0, 0, 0, 5]);
        // 2.6: CNRI's offset bug leaves major, minor, two bytes of the session id, the counter.
        assert_eq!(signed_prefix(&e(Version::new(2, 6)), 5), [2, 6, 10, 11, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0]);
        assert!(signed_prefix(&e(Version::new(2, 5)), 5).is_empty());
    }
}
