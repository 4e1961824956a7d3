//! Administrator key pairs in the files CNRI's tools read (`hdl-admintool`, `hdl-genericbatch`,
//! `PublicKeyAuthenticationInfo` with `Util.getPrivateKeyFromBytes(Util.decrypt(file,
//! passphrase))`), made by `idnode admin keygen`:
//!
//! ```text
//! private file = u32 1 (not encrypted) · key
//!              | u32 4 · bytes salt(16) · u32 10000 · u32 128 · bytes iv(16) · bytes AES-128-CBC(key)
//!                (PKCS #5 padding, the AES key PBKDF2-HMAC-SHA1 of the passphrase, as CNRI's client)
//! key          = bytes "RSA_PRIVCRT_KEY" · bytes n · e · d · p · q · d mod (p-1) · d mod (q-1) · q⁻¹ mod p
//! public file  = the HS_PUBKEY value: bytes "RSA_PUB_KEY" · u16 0 · bytes e · bytes n · 4 zero bytes
//! ```
//!
//! Integers are Java `BigInteger` bytes (a leading zero when the top bit is set). RSA 2048,
//! generated with RustCrypto's `rsa`; the node never signs with these keys, the client does.

use aes::cipher::{BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _, block_padding::Pkcs7};
use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use rsa::BigUint;
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};

use super::message::{Reader, write_bytes, write_u32};
use crate::record::site::encode_rsa_pubkey;

/// 2048 bits, CNRI `hdl-keygen`'s default for RSA.
pub const KEY_BITS: usize = 2048;
const ENCRYPT_NONE: u32 = 1;
const ENCRYPT_PBKDF2_AES_CBC_PKCS5: u32 = 4;
/// 10,000: CNRI's PBKDF2 iterations for key files.
const ITERATIONS: u32 = 10_000;
/// 100,000: the most iterations a key file read here may ask for.
const MAX_ITERATIONS: u32 = 100_000;
const RSA_PRIVCRT_KEY: &[u8] = b"RSA_PRIVCRT_KEY";

/// An administrator's RSA key pair.
pub struct AdminKey {
    key: rsa::RsaPrivateKey,
}

impl AdminKey {
    /// A new RSA 2048 key pair.
    pub fn generate() -> Result<Self, String> {
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS).map(|key| Self { key }).map_err(|e| e.to_string())
    }

    /// The public key as an `HS_PUBKEY` value's data (what the public file holds).
    pub fn public_value(&self) -> Vec<u8> {
        encode_rsa_pubkey(&self.key.e().to_bytes_be(), &self.key.n().to_bytes_be())
    }

    /// The private file, encrypted under `passphrase` when given.
    pub fn private_file(&self, passphrase: Option<&[u8]>) -> Vec<u8> {
        let clear = self.encode();
        let mut out = Vec::new();
        let Some(passphrase) = passphrase else {
            write_u32(&mut out, ENCRYPT_NONE);
            out.extend_from_slice(&clear);
            return out;
        };
        let (mut salt, mut iv) = ([0u8; 16], [0u8; 16]);
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut iv);
        let aes_key = derive(passphrase, &salt, ITERATIONS);
        let sealed =
            cbc::Encryptor::<aes::Aes128>::new(&aes_key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(&clear);
        write_u32(&mut out, ENCRYPT_PBKDF2_AES_CBC_PKCS5);
        write_bytes(&mut out, &salt);
        write_u32(&mut out, ITERATIONS);
        write_u32(&mut out, 128);
        write_bytes(&mut out, &iv);
        write_bytes(&mut out, &sealed);
        out
    }

    /// Reads a private file written by [`Self::private_file`] or CNRI's tools (RSA with CRT
    /// parameters; not encrypted, or PBKDF2 with AES).
    pub fn read_private_file(file: &[u8], passphrase: Option<&[u8]>) -> Result<Self, String> {
        let mut r = Reader::new(file);
        let clear = match r.u32().map_err(|e| e.to_string())? {
            ENCRYPT_NONE => file[4..].to_vec(),
            ENCRYPT_PBKDF2_AES_CBC_PKCS5 => {
                let passphrase = passphrase.ok_or("the key file is encrypted: give its passphrase")?;
                let wire = |e: super::message::WireError| e.to_string();
                let (salt, iterations, bits) =
                    (r.bytes().map_err(wire)?, r.u32().map_err(wire)?, r.u32().map_err(wire)?);
                let (iv, sealed) = (r.bytes().map_err(wire)?, r.bytes().map_err(wire)?);
                if bits != 128 || iv.len() != 16 || !(1..=MAX_ITERATIONS).contains(&iterations) {
                    return Err("the key file's encryption parameters are not CNRI's AES-128".into());
                }
                let aes_key = derive(passphrase, salt, iterations);
                let iv: [u8; 16] = iv.try_into().map_err(|_| "bad IV")?;
                cbc::Decryptor::<aes::Aes128>::new(&aes_key.into(), &iv.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(sealed)
                    .map_err(|_| "wrong passphrase, or not a key file".to_owned())?
            }
            other => return Err(format!("key files encrypted with scheme {other} are not read (only 1 and 4)")),
        };
        Self::decode(&clear)
    }

    /// CNRI's `RSA_PRIVCRT_KEY` encoding.
    fn encode(&self) -> Vec<u8> {
        let k = &self.key;
        let (p, q) = (&k.primes()[0], &k.primes()[1]);
        let one = BigUint::from(1u32);
        let (dp, dq) = (k.d() % (p - &one), k.d() % (q - &one));
        let qinv = k.crt_coefficient().unwrap_or_default();
        let mut out = Vec::new();
        write_bytes(&mut out, RSA_PRIVCRT_KEY);
        for n in [k.n(), k.e(), k.d(), p, q, &dp, &dq, &qinv] {
            write_bytes(&mut out, &java(n));
        }
        out
    }

    fn decode(clear: &[u8]) -> Result<Self, String> {
        let mut r = Reader::new(clear);
        let kind = r.bytes().map_err(|e| e.to_string())?;
        if kind != RSA_PRIVCRT_KEY {
            return Err(format!("a {} key file is not read (only RSA_PRIVCRT_KEY)", String::from_utf8_lossy(kind)));
        }
        let mut int = || r.bytes().map(BigUint::from_bytes_be).map_err(|e| e.to_string());
        let (n, e, d, p, q) = (int()?, int()?, int()?, int()?, int()?);
        let key = rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q]).map_err(|e| e.to_string())?;
        key.validate().map_err(|e| e.to_string())?;
        Ok(Self { key })
    }
}

/// The AES-128 key CNRI derives from a passphrase (PBKDF2-HMAC-SHA1, the passphrase's bytes
/// as Java hands them over).
fn derive(passphrase: &[u8], salt: &[u8], iterations: u32) -> [u8; 16] {
    let mut key = [0u8; 16];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(&super::proof::java_password(passphrase), salt, iterations, &mut key);
    key
}

/// A Java `BigInteger`'s bytes: big-endian, a leading zero when the top bit is set.
fn java(n: &BigUint) -> Vec<u8> {
    let bytes = n.to_bytes_be();
    if bytes.first().is_some_and(|b| b & 0x80 != 0) { [&[0][..], &bytes].concat() } else { bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_reads_back_with_and_without_a_passphrase() {
        let key = AdminKey::generate().unwrap();
        let clear = key.private_file(None);
        assert_eq!(&clear[..4], &[0, 0, 0, 1]);
        assert_eq!(AdminKey::read_private_file(&clear, None).unwrap().key, key.key);
        let sealed = key.private_file(Some(b"open sesame"));
        assert_eq!(&sealed[..4], &[0, 0, 0, 4]);
        assert!(!sealed.windows(16).any(|w| clear.windows(16).any(|c| c == w)), "nothing of the key in the clear");
        assert_eq!(AdminKey::read_private_file(&sealed, Some(b"open sesame")).unwrap().key, key.key);
        assert!(AdminKey::read_private_file(&sealed, Some(b"wrong")).is_err());
        assert!(AdminKey::read_private_file(&sealed, None).is_err());
        assert!(AdminKey::read_private_file(&[0, 0, 0, 9], None).is_err());
        assert!(AdminKey::read_private_file(&[0, 0, 0, 1, 0xff], None).is_err());
    }

    #[test]
    fn the_public_value_checks_the_private_key_s_signatures() {
        use sha2::Digest as _;
        let key = AdminKey::generate().unwrap();
        let public = super::super::proof::PublicKey::decode(&key.public_value()).expect("an HS_PUBKEY");
        let message = b"nonce and digest";
        let signature = key.key.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(message)).unwrap();
        let mut answer = Vec::new();
        write_bytes(&mut answer, b"SHA-256");
        write_bytes(&mut answer, &signature);
        assert!(public.answer_matches("0.NA/88.100", message, &answer));
    }
}
