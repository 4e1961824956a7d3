//! Checking an answer to a challenge: the client proves it holds an administrator's key by
//! answering over `nonce ‖ digest` (the challenge's 16 random bytes and the digest of the
//! request it wants to run), as CNRI's 9.x client computes it and CNRI's server checks it.
//!
//! - **Secret keys** (`HS_SECKEY`): the answer's first byte names the computation, and the
//!   whole answer is recomputed from the secret and compared in constant time: `0x22`
//!   PBKDF2-HMAC-SHA1 (protocol 2.7 and later: salt, iterations and key length chosen by the
//!   client and carried in the answer, then HMAC-SHA1 under the derived key), `0x13`
//!   HMAC-SHA256, `0x12` HMAC-SHA1, `0x03`, `0x02` and `0x01` SHA-256, SHA-1 and MD5 of secret,
//!   message, secret (CNRI's `Util.doMac`; 2.1 to 2.6 answer `0x02`), and before 2.1 a bare
//!   16-byte MD5 of the same. The secret comes from its sealed copy
//!   ([`crate::secret`]).
//! - **Public keys** (`HS_PUBKEY`, in Handle's key encoding): RSA (PKCS #1 v1.5, verified by
//!   `ring`, 2048 to 8192 bits) and DSA (DER `r, s`, by RustCrypto's `dsa`), each with SHA-256
//!   or SHA-1 as the answer names it; and the national system's SM2 ([`super::gm`]).

use dsa::signature::hazmat::PrehashVerifier as _;
use hmac::{Hmac, Mac as _};
use md5::Md5;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::message::{Reader, write_bytes, write_u32};

/// 100,000: the most PBKDF2 iterations an answer may ask the node to run (CNRI's client asks
/// 10,000). The client picks the count; without a bound one answer could cost minutes.
pub(super) const MAX_ITERATIONS: u32 = 100_000;
/// 512 bits: the longest PBKDF2 key an answer may ask for (CNRI's client asks 160).
const MAX_KEY_BITS: u32 = 512;
/// 3072 bits: the largest DSA prime accepted (FIPS 186-4's largest), which bounds what checking
/// a stored key costs.
const MAX_DSA_BITS: usize = 3072;

/// The answer codes (CNRI's `Common.HASH_CODE_*`).
const PBKDF2_HMAC_SHA1: u8 = 0x22;
const HMAC_SHA256: u8 = 0x13;
const HMAC_SHA1: u8 = 0x12;
const SHA1_CODE: u8 = 0x02;
const SHA256_CODE: u8 = 0x03;
const MD5_CODE: u8 = 0x01;

/// Whether `answer` is what a client holding `secret` computes over `message`.
pub(super) fn secret_answer_matches(secret: &[u8], message: &[u8], answer: &[u8]) -> bool {
    let expected = match answer.first() {
        // Before 2.1 the answer is the MD5 alone, with no code in front.
        _ if answer.len() == 16 => {
            Md5::new().chain_update(secret).chain_update(message).chain_update(secret).finalize().to_vec()
        }
        Some(&PBKDF2_HMAC_SHA1) => match pbkdf2_answer(secret, message, &answer[1..]) {
            Some(expected) => expected,
            None => return false,
        },
        Some(&HMAC_SHA256) => coded(HMAC_SHA256, &hmac_sha256(secret, message)),
        Some(&HMAC_SHA1) => coded(HMAC_SHA1, &hmac_sha1(secret, message)),
        Some(&SHA1_CODE) => {
            coded(SHA1_CODE, &Sha1::new().chain_update(secret).chain_update(message).chain_update(secret).finalize())
        }
        Some(&SHA256_CODE) => coded(
            SHA256_CODE,
            &Sha256::new().chain_update(secret).chain_update(message).chain_update(secret).finalize(),
        ),
        Some(&MD5_CODE) => {
            coded(MD5_CODE, &Md5::new().chain_update(secret).chain_update(message).chain_update(secret).finalize())
        }
        _ => return false,
    };
    expected.len() == answer.len() && bool::from(expected.ct_eq(answer))
}

/// What a client computes at 2.7 and later, for the parameters its answer carries (`rest`:
/// salt, iterations, key length in bits, MAC): the code byte and those fields with the MAC
/// recomputed. `None` when the parameters are malformed or out of bounds.
fn pbkdf2_answer(secret: &[u8], message: &[u8], rest: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader::new(rest);
    let (salt, iterations, bits) = (r.bytes().ok()?, r.u32().ok()?, r.u32().ok()?);
    if !(1..=MAX_ITERATIONS).contains(&iterations) || bits == 0 || bits > MAX_KEY_BITS || bits % 8 != 0 {
        return None;
    }
    let mut key = vec![0u8; bits as usize / 8];
    pbkdf2::pbkdf2_hmac::<Sha1>(&java_password(secret), salt, iterations, &mut key);
    let mut out = vec![PBKDF2_HMAC_SHA1];
    write_bytes(&mut out, salt);
    write_u32(&mut out, iterations);
    write_u32(&mut out, bits);
    write_bytes(&mut out, &hmac_sha1(&key, message));
    Some(out)
}

/// The password bytes Java's PBKDF2 sees: CNRI hands the secret over as a `char[]` of its
/// bytes, which the JDK encodes as UTF-8, so a byte from 0x80 up becomes two.
pub(super) fn java_password(secret: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(secret.len() * 2);
    for &b in secret {
        match b {
            0..0x80 => out.push(b),
            _ => out.extend_from_slice(&[0xc0 | (b >> 6), 0x80 | (b & 0x3f)]),
        }
    }
    out
}

fn coded(code: u8, digest: &[u8]) -> Vec<u8> {
    let mut out = vec![code];
    out.extend_from_slice(digest);
    out
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

//------------ Public keys ---------------------------------------------------------------------

/// An administrator's public key, read from an `HS_PUBKEY` value.
pub(super) enum PublicKey {
    /// Modulus and exponent, big-endian without sign bytes.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Dsa(Box<dsa::VerifyingKey>),
    /// The national system's SM2 ([`super::gm`]).
    Sm2(Box<sm2::PublicKey>),
}

/// The hash an answer's signature was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
}

impl PublicKey {
    /// Reads Handle's key encoding (`bytes type`, `u16 0`, then per type: RSA exponent and
    /// modulus; DSA q, p, g, y; each a Java `BigInteger` byte string), or an SM2 key in one of
    /// the Teleinfo SDK's forms ([`super::gm::decode`]). `None` for another type (DH) or a
    /// malformed key.
    pub(super) fn decode(data: &[u8]) -> Option<Self> {
        if let Some(key) = super::gm::decode(data) {
            return Some(PublicKey::Sm2(Box::new(key)));
        }
        let mut r = Reader::new(data);
        let kind = r.bytes().ok()?;
        r.u16().ok()?;
        let key = match kind {
            b"RSA_PUB_KEY" => {
                let e = unsigned(r.bytes().ok()?);
                let n = unsigned(r.bytes().ok()?);
                // CNRI's `Util.getBytesFromPublicKey` sizes an RSA key's buffer for four
                // integers and writes three: every key CNRI's tools store ends with 4 zero
                // bytes (the server key in a site too). Its reader ignores them.
                if r.left() == 4 && data.ends_with(&[0; 4]) {
                    r.take(4).ok()?;
                }
                PublicKey::Rsa { n: n.to_vec(), e: e.to_vec() }
            }
            b"DSA_PUB_KEY" => {
                let mut int = || r.bytes().ok().map(dsa::BigUint::from_bytes_be);
                let (q, p, g, y) = (int()?, int()?, int()?, int()?);
                if p.bits() > MAX_DSA_BITS {
                    return None;
                }
                let components = dsa::Components::from_components(p, q, g).ok()?;
                PublicKey::Dsa(Box::new(dsa::VerifyingKey::from_components(components, y).ok()?))
            }
            _ => return None,
        };
        (r.left() == 0).then_some(key)
    }

    /// Whether `answer` (`bytes hash algorithm`, `bytes signature`) is this key's signature of
    /// `message`, made by the administrator `admin` (an SM2 signature covers its identity).
    pub(super) fn answer_matches(&self, admin: &str, message: &[u8], answer: &[u8]) -> bool {
        let mut r = Reader::new(answer);
        let (Ok(algorithm), Ok(signature)) = (r.bytes(), r.bytes()) else { return false };
        if let PublicKey::Sm2(key) = self {
            return super::gm::answer_matches(key, admin, algorithm, message, signature);
        }
        let Some(hash) = hash_named(algorithm) else { return false };
        match self {
            PublicKey::Rsa { n, e } => {
                use ring::signature::{RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256};
                let parameters = match hash {
                    Hash::Sha256 => &RSA_PKCS1_2048_8192_SHA256,
                    Hash::Sha1 => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                };
                let key = ring::signature::RsaPublicKeyComponents { n, e };
                key.verify(parameters, message, signature).is_ok()
            }
            PublicKey::Dsa(key) => {
                let Ok(signature) = dsa::Signature::try_from(signature) else { return false };
                let digest = match hash {
                    Hash::Sha256 => Sha256::digest(message).to_vec(),
                    Hash::Sha1 => Sha1::digest(message).to_vec(),
                };
                key.verify_prehash(&digest, &signature).is_ok()
            }
            PublicKey::Sm2(_) => false,
        }
    }
}

/// The hash a signature's algorithm field names, as CNRI reads it: a name, or a one-byte code.
/// MD5 is refused.
fn hash_named(algorithm: &[u8]) -> Option<Hash> {
    match algorithm {
        b"SHA-256" | b"SHA256" | [3] => Some(Hash::Sha256),
        b"SHA1" | b"SHA-1" | [2] => Some(Hash::Sha1),
        _ => None,
    }
}

/// A Java `BigInteger`'s bytes without its sign byte.
fn unsigned(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    &bytes[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE_AND_DIGEST: &[u8] = b"0123456789abcdef-and-a-32-byte-request-digest...";

    /// The 2.7+ answer as CNRI's client writes it, computed independently of
    /// `pbkdf2_answer`: PBKDF2 from the `pbkdf2` crate's one-call form, HMAC from `hmac`.
    fn client_answer(secret: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let key = pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(secret, salt, iterations);
        let mut mac = Hmac::<Sha1>::new_from_slice(&key).unwrap();
        mac.update(NONCE_AND_DIGEST);
        let mut answer = vec![0x22, 0, 0, 0, salt.len() as u8];
        answer.extend_from_slice(salt);
        answer.extend_from_slice(&iterations.to_be_bytes());
        answer.extend_from_slice(&160u32.to_be_bytes());
        answer.extend_from_slice(&[0, 0, 0, 20]);
        answer.extend_from_slice(&mac.finalize().into_bytes());
        answer
    }

    #[test]
    fn every_secret_key_answer_form_is_checked_against_the_secret() {
        let answer = client_answer(b"s3cret", b"sixteen byte slt", 10_000);
        assert!(secret_answer_matches(b"s3cret", NONCE_AND_DIGEST, &answer));
        assert!(!secret_answer_matches(b"s3cret!", NONCE_AND_DIGEST, &answer), "another secret");
        assert!(!secret_answer_matches(b"s3cret", b"another challenge", &answer), "another challenge");
        let mut tampered = answer.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!secret_answer_matches(b"s3cret", NONCE_AND_DIGEST, &tampered));
        assert!(!secret_answer_matches(b"s3cret", NONCE_AND_DIGEST, &answer[..answer.len() - 1]), "cut short");

        let sha1 =
            coded(2, &Sha1::new().chain_update(b"k").chain_update(NONCE_AND_DIGEST).chain_update(b"k").finalize());
        assert!(secret_answer_matches(b"k", NONCE_AND_DIGEST, &sha1));
        let sha256 =
            coded(3, &Sha256::new().chain_update(b"k").chain_update(NONCE_AND_DIGEST).chain_update(b"k").finalize());
        assert!(secret_answer_matches(b"k", NONCE_AND_DIGEST, &sha256));
        let md5 = Md5::new().chain_update(b"k").chain_update(NONCE_AND_DIGEST).chain_update(b"k").finalize();
        assert!(secret_answer_matches(b"k", NONCE_AND_DIGEST, &md5));
        assert!(secret_answer_matches(b"k", NONCE_AND_DIGEST, &coded(0x13, &hmac_sha256(b"k", NONCE_AND_DIGEST))));
        assert!(secret_answer_matches(b"k", NONCE_AND_DIGEST, &coded(0x12, &hmac_sha1(b"k", NONCE_AND_DIGEST))));
        assert!(!secret_answer_matches(b"k", NONCE_AND_DIGEST, &[]));
        assert!(!secret_answer_matches(b"k", NONCE_AND_DIGEST, &[0x99; 21]));
    }

    #[test]
    fn an_answer_cannot_ask_for_unbounded_work() {
        let mut answer = client_answer(b"k", b"salt", 1);
        answer[9..13].copy_from_slice(&(MAX_ITERATIONS + 1).to_be_bytes());
        let started = std::time::Instant::now();
        assert!(!secret_answer_matches(b"k", NONCE_AND_DIGEST, &answer));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused before deriving");
        let mut answer = client_answer(b"k", b"salt", 1);
        answer[13..17].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(!secret_answer_matches(b"k", NONCE_AND_DIGEST, &answer), "key length");
    }

    #[test]
    fn bytes_above_ascii_reach_pbkdf2_as_java_encodes_them() {
        assert_eq!(java_password(b"a\xe9"), b"a\xc3\xa9");
        let answer = client_answer(b"a\xc3\xa9", b"salt", 2);
        assert!(secret_answer_matches(b"a\xe9", NONCE_AND_DIGEST, &answer));
    }

    #[test]
    fn public_keys_decode_from_handle_s_encoding_or_not_at_all() {
        let mut rsa = Vec::new();
        write_bytes(&mut rsa, b"RSA_PUB_KEY");
        rsa.extend_from_slice(&[0, 0]);
        write_bytes(&mut rsa, &[1, 0, 1]);
        write_bytes(&mut rsa, &[0, 0xc5, 0x01]);
        match PublicKey::decode(&rsa) {
            Some(PublicKey::Rsa { n, e }) => assert_eq!((n, e), (vec![0xc5, 1], vec![1, 0, 1])),
            _ => panic!("an RSA key"),
        }
        let mut java = rsa.clone();
        java.extend_from_slice(&[0, 0, 0, 0]);
        assert!(matches!(PublicKey::decode(&java), Some(PublicKey::Rsa { .. })), "CNRI's 4 zero bytes after n");
        java[rsa.len() + 3] = 1;
        assert!(PublicKey::decode(&java).is_none(), "4 bytes that are not CNRI's zeros");
        rsa.push(0);
        assert!(PublicKey::decode(&rsa).is_none(), "more trailing bytes");
        assert!(PublicKey::decode(b"\0\0\0\x0aDH_PUB_KEY\0\0").is_none());
        assert!(PublicKey::decode(&[0xff; 7]).is_none());
        assert_eq!(hash_named(b"MD5"), None);
    }

    /// Handle's encoding of an integer: Java's `BigInteger.toByteArray()`, sign byte included.
    fn java_int(n: &dsa::BigUint) -> Vec<u8> {
        let mut bytes = n.to_bytes_be();
        if bytes[0] & 0x80 != 0 {
            bytes.insert(0, 0);
        }
        let mut out = Vec::new();
        write_bytes(&mut out, &bytes);
        out
    }

    #[test]
    fn a_dsa_signature_verifies_with_the_hash_it_names() {
        use dsa::signature::SignatureEncoding as _;
        use dsa::signature::hazmat::PrehashSigner as _;
        let mut rng = argon2::password_hash::rand_core::OsRng;
        let components = dsa::Components::generate(&mut rng, dsa::KeySize::DSA_2048_256);
        let signing = dsa::SigningKey::generate(&mut rng, components);
        let public = signing.verifying_key();
        let mut data = Vec::new();
        write_bytes(&mut data, b"DSA_PUB_KEY");
        data.extend_from_slice(&[0, 0]);
        let c = public.components();
        for n in [c.q(), c.p(), c.g(), public.y()] {
            data.extend_from_slice(&java_int(n));
        }
        let key = PublicKey::decode(&data).expect("a DSA key");
        let signature = signing.sign_prehash(&Sha1::digest(NONCE_AND_DIGEST)).unwrap().to_bytes();
        let mut answer = Vec::new();
        write_bytes(&mut answer, b"SHA1");
        write_bytes(&mut answer, &signature);
        assert!(key.answer_matches("0.NA/88.100", NONCE_AND_DIGEST, &answer));
        assert!(!key.answer_matches("0.NA/88.100", b"another challenge", &answer));
        let mut sha256 = Vec::new();
        write_bytes(&mut sha256, b"SHA-256");
        write_bytes(&mut sha256, &signature);
        assert!(!key.answer_matches("0.NA/88.100", NONCE_AND_DIGEST, &sha256), "signed with SHA-1, named SHA-256");
    }
}
