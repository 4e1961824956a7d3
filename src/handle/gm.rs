//! SM2 administrator keys (GB/T 32918, the national commercial cryptography the Teleinfo SDK
//! logs in with): reading an `HS_PUBKEY` that holds one, and checking an answer to a challenge
//! signed with it. Verified with RustCrypto's `sm2`.
//!
//! A key is stored in one of the two forms the SDK writes: Handle's encoding with the type
//! `SM2_PUB_KEY` (`bytes type`, `u16 0`, then `bytes key`, the key a PEM text or its DER), or
//! the PEM text alone as the whole value. Either way the key is an X.509 SubjectPublicKeyInfo
//! on the curve sm2p256v1.
//!
//! The SDK answers in one of two ways, named by the answer's hash field (its loading of the
//! private key decides which):
//! - `SM3`: the message is `SM3(nonce ‖ digest)`, signed as SM2 signs (SM3 over the signer's
//!   `Z` and the message), with the administrator's handle as the signer's identity;
//! - `SHA-256`: the message `nonce ‖ digest` itself, with SHA-256 in place of SM3 for both `Z`
//!   and the message, and the standard's default identity `1234567812345678` (BouncyCastle's
//!   `SHA256withSM2`).
//!
//! The signature is DER `SEQUENCE { r, s }` either way.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use sm2::dsa::signature::{Verifier as _, hazmat::PrehashVerifier as _};
use sm2::elliptic_curve::sec1::ToEncodedPoint as _;
use sm2::pkcs8::DecodePublicKey as _;
use sm3::Sm3;

use super::message::Reader;

/// The type an SM2 key has in Handle's key encoding.
const SM2_PUB_KEY: &[u8] = b"SM2_PUB_KEY";
/// The signer's identity GB/T 32918 uses when none is given (and BouncyCastle with it).
const DEFAULT_ID: &str = "1234567812345678";

/// The public key an `HS_PUBKEY` value holds in one of the SDK's forms; `None` for any other
/// value (CNRI's RSA and DSA are read elsewhere).
pub(super) fn decode(data: &[u8]) -> Option<sm2::PublicKey> {
    if data.starts_with(b"-----BEGIN") {
        return from_pem(data);
    }
    let mut r = Reader::new(data);
    if r.bytes().ok()? != SM2_PUB_KEY {
        return None;
    }
    r.u16().ok()?;
    let key = r.bytes().ok()?;
    if r.left() != 0 {
        return None;
    }
    match key.starts_with(b"-----BEGIN") {
        true => from_pem(key),
        false => sm2::PublicKey::from_public_key_der(key).ok(),
    }
}

/// A `PUBLIC KEY` PEM text, with lines of any width ending in LF or CRLF (Java's MIME encoder
/// writes 76 characters and CRLF).
fn from_pem(text: &[u8]) -> Option<sm2::PublicKey> {
    let text = std::str::from_utf8(text).ok()?;
    let body = text.trim().strip_prefix("-----BEGIN PUBLIC KEY-----")?.strip_suffix("-----END PUBLIC KEY-----")?;
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(base64).ok()?;
    sm2::PublicKey::from_public_key_der(&der).ok()
}

/// Whether `signature` (DER), with the answer's hash field `algorithm`, is `admin`'s signature
/// with `key` over `message` (`nonce ‖ digest`), in either of the SDK's ways.
pub(super) fn answer_matches(
    key: &sm2::PublicKey,
    admin: &str,
    algorithm: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    let Some(signature) = from_der(signature) else { return false };
    match algorithm {
        b"SM3" => {
            sm2::dsa::VerifyingKey::new(admin, *key).is_ok_and(|v| v.verify(&Sm3::digest(message), &signature).is_ok())
        }
        b"SHA-256" | b"SHA256" => {
            let Ok(verifier) = sm2::dsa::VerifyingKey::new(DEFAULT_ID, *key) else { return false };
            let e = Sha256::new().chain_update(z_sha256(key)).chain_update(message).finalize();
            verifier.verify_prehash(&e, &signature).is_ok()
        }
        _ => false,
    }
}

/// A DER `SEQUENCE { INTEGER r, INTEGER s }` as SM2's 64-byte `r ‖ s`.
fn from_der(der: &[u8]) -> Option<sm2::dsa::Signature> {
    let parsed = dsa::Signature::try_from(der).ok()?;
    let mut bytes = [0u8; 64];
    for (half, n) in bytes.chunks_exact_mut(32).zip([parsed.r(), parsed.s()]) {
        let n = n.to_bytes_be();
        half.get_mut(32usize.checked_sub(n.len())?..)?.copy_from_slice(&n);
    }
    sm2::dsa::Signature::from_slice(&bytes).ok()
}

/// The signer's `Z` (GB/T 32918.2 section 5.5) for the default identity, with SHA-256 in place
/// of SM3: over the identity's bit length and bytes, the curve's `a`, `b` and generator, and the
/// key's point.
fn z_sha256(key: &sm2::PublicKey) -> [u8; 32] {
    const A: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC";
    const B: &str = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93";
    const GX: &str = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7";
    const GY: &str = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";
    let point = key.to_encoded_point(false);
    let mut z = Sha256::new();
    z.update(((DEFAULT_ID.len() * 8) as u16).to_be_bytes());
    z.update(DEFAULT_ID);
    for constant in [A, B, GX, GY] {
        z.update(hex::decode(constant).unwrap_or_default());
    }
    // An uncompressed point: 0x04, then x and y.
    z.update(&point.as_bytes()[1..]);
    z.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::message::write_bytes;

    /// The Teleinfo SDK's answers, made by its two code paths with BouncyCastle (research notes,
    /// national-sdk-research.md 1.4): one key, one challenge.
    const POINT: &str = concat!(
        "04020ec9ee958254f00e90dd22880b2bf784be06930383ff7c3bc34ebe2f3099900143298ca29616e09c78a385",
        "967fb218f691d5f08f848a32bd8de39e675a78b9"
    );
    const ADMIN: &str = "88.888.1/sm2user";
    const NONCE: &str = "000102030405060708090a0b0c0d0e0f";
    const DIGEST: &str = "d5a9fa64f46d896377c71ae13f663318b224e436a36dcc202260630b3c714d07";
    const SM3_ANSWER: &str = concat!(
        "3045022058de20422e96a4021cec823e68088e5fe8d1841d05cd0041f0a9597bba0b47c7022100ab29",
        "34795a63d45449087c9347bbf998bf263e78088d47ee0d14914f47d1a951"
    );
    const SHA256_ANSWER: &str = concat!(
        "304502210095765fc104cad77f464eedfe6c907ae77710ea571bd6c2cbf797d953d9c1b05e02201ff2",
        "51a3ec59a21b0f3a771b8f0ffdb5426421b9b0cd684c15ac0ac0493f383e"
    );

    fn key() -> sm2::PublicKey {
        sm2::PublicKey::from_sec1_bytes(&hex::decode(POINT).unwrap()).unwrap()
    }

    fn message() -> Vec<u8> {
        [hex::decode(NONCE).unwrap(), hex::decode(DIGEST).unwrap()].concat()
    }

    #[test]
    fn both_of_the_sdk_s_answers_verify_and_nothing_else_does() {
        let (key, message) = (key(), message());
        let (sm3, sha256) = (hex::decode(SM3_ANSWER).unwrap(), hex::decode(SHA256_ANSWER).unwrap());
        assert!(answer_matches(&key, ADMIN, b"SM3", &message, &sm3));
        assert!(answer_matches(&key, ADMIN, b"SHA-256", &message, &sha256));
        assert!(!answer_matches(&key, "88.888.1/other", b"SM3", &message, &sm3), "Z is the administrator's");
        assert!(!answer_matches(&key, ADMIN, b"SHA-256", &message, &sm3), "each answer in its own way");
        assert!(!answer_matches(&key, ADMIN, b"SM3", &message, &sha256));
        assert!(!answer_matches(&key, ADMIN, b"SM3", b"another challenge", &sm3));
        assert!(!answer_matches(&key, ADMIN, b"SHA1", &message, &sha256), "no other hash");
        assert!(!answer_matches(&key, ADMIN, b"SM3", &message, &sm3[..sm3.len() - 1]), "cut short");
    }

    #[test]
    fn keys_are_read_in_each_form_the_sdk_writes() {
        let der = hex::decode(concat!(
            "3059301306072a8648ce3d020106082a811ccf5501822d03420004020ec9ee958254f00e90dd22880b2bf7",
            "84be06930383ff7c3bc34ebe2f3099900143298ca29616e09c78a385967fb218f691d5f08f848a32bd8de3",
            "9e675a78b9"
        ))
        .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        // Java's MIME lines (76 characters, CRLF).
        let (first, rest) = b64.split_at(76);
        let pem = format!("-----BEGIN PUBLIC KEY-----\r\n{first}\r\n{rest}\r\n-----END PUBLIC KEY-----\r\n");
        let handle_form = |inner: &[u8]| {
            let mut data = Vec::new();
            write_bytes(&mut data, SM2_PUB_KEY);
            data.extend_from_slice(&[0, 0]);
            write_bytes(&mut data, inner);
            data
        };
        for data in [handle_form(pem.as_bytes()), handle_form(&der), pem.clone().into_bytes()] {
            assert_eq!(decode(&data), Some(key()), "{}", String::from_utf8_lossy(&data));
        }
        let mut trailing = handle_form(&der);
        trailing.push(0);
        assert_eq!(decode(&trailing), None);
        assert_eq!(decode(&handle_form(&der[..der.len() - 1])), None);
        assert_eq!(decode(pem.replace("PUBLIC KEY", "PRIVATE KEY").as_bytes()), None);
        let mut rsa = Vec::new();
        write_bytes(&mut rsa, b"RSA_PUB_KEY");
        assert_eq!(decode(&rsa), None);
    }
}
