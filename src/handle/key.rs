//! The node's Handle server key pair: RSA 2048, published in the node's own `HS_SITE` (see
//! [`super::site_info`]) and used to sign responses to requests that ask for certification
//! (CT). A Handle client verifies such a response with the public key of the site it asked,
//! and a later slice's sessions need the same key.
//!
//! One file in the data directory, [`KEY_FILE`]: the private key as PKCS#8 PEM, mode 0600,
//! created by `idnode admin init` and read by `idnode serve`. The key is generated with
//! RustCrypto's `rsa` (keygen and PKCS#8 encoding only) and used through `ring`, whose RSA
//! signing is constant-time; `rsa` 0.9's is not (RUSTSEC-2023-0071).

use std::path::{Path, PathBuf};

use ring::signature::{self, KeyPair as _, RsaKeyPair};
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding, SecretDocument};

use crate::record::site::encode_rsa_pubkey;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "handle-server.key";
/// 2048: the size of the keys CNRI's `hdl-setup-server` generates, and the smallest ring signs
/// with.
pub const KEY_BITS: usize = 2048;
/// 65,536: the largest key file read. A PKCS#8 PEM RSA 8192 key is about 6.5 KB; anything far
/// larger is not a key, and is not read into memory whole.
const MAX_KEY_FILE: u64 = 65_536;
/// The PEM label of an unencrypted PKCS#8 private key (RFC 7468).
const PEM_LABEL: &str = "PRIVATE KEY";

/// Why the key could not be read, written or made. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the Handle server key {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a Handle server key (an RSA private key as PKCS#8 PEM): {reason}", .path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write the Handle server key {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot generate an RSA key: {0}")]
    Generate(String),
}

/// The key pair, ready to sign.
pub struct ServerKey {
    pair: RsaKeyPair,
    /// The public key in Handle's `HS_PUBKEY` encoding, as published in the site.
    hs_pubkey: Vec<u8>,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey").field("bits", &(self.pair.public().modulus_len() * 8)).finish_non_exhaustive()
    }
}

impl ServerKey {
    /// Where the key of the node whose data directory is `data_dir` lives.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(KEY_FILE)
    }

    /// Reads the key in `data_dir`; `None` when there is no key file. A file that is there but
    /// is not an RSA key is an error, never a node silently without its key.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, KeyError> {
        let path = Self::path(data_dir);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(KeyError::Read { path, source }),
        };
        let mut text = String::new();
        let read = std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_KEY_FILE + 1), &mut text);
        match read {
            Ok(n) if n as u64 > MAX_KEY_FILE => {
                Err(KeyError::Invalid { path, reason: format!("larger than {MAX_KEY_FILE} bytes") })
            }
            Ok(_) => Self::from_pem(&text).map(Some).map_err(|reason| KeyError::Invalid { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Err(KeyError::Invalid { path, reason: "not text".into() })
            }
            Err(source) => Err(KeyError::Read { path, source }),
        }
    }

    /// The key in `data_dir`, generated and written first when there is none. The flag says
    /// whether it was created.
    pub fn load_or_create(data_dir: &Path) -> Result<(Self, bool), KeyError> {
        if let Some(key) = Self::load(data_dir)? {
            return Ok((key, false));
        }
        let pem = generate_pem()?;
        let path = Self::path(data_dir);
        let key = Self::from_pem(&pem).map_err(KeyError::Generate)?;
        crate::secret::write_private(&path, pem.as_bytes()).map_err(|source| KeyError::Write { path, source })?;
        Ok((key, true))
    }

    /// A key from PKCS#8 PEM text.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let (label, document) = SecretDocument::from_pem(text).map_err(|e| format!("not PEM: {e}"))?;
        if label != PEM_LABEL {
            return Err(format!("the PEM block is {label:?}, not {PEM_LABEL:?}"));
        }
        Self::from_pkcs8(document.as_bytes())
    }

    /// A key from PKCS#8 DER bytes.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, String> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| format!("not an RSA key ring accepts: {e}"))?;
        let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let hs_pubkey = encode_rsa_pubkey(&public.e, &public.n);
        Ok(Self { pair, hs_pubkey })
    }

    /// The public key in `HS_PUBKEY` encoding (`RSA_PUB_KEY`, a zero `u16`, exponent,
    /// modulus), as CNRI's `Util.getBytesFromPublicKey` writes it.
    pub fn hs_pubkey(&self) -> &[u8] {
        &self.hs_pubkey
    }

    /// The public key as DER `RSAPublicKey` (PKCS#1), what ring verifies with.
    pub fn public_der(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The modulus and exponent, big-endian without leading zeros (for JSON Web Key output).
    pub fn public_components(&self) -> (Vec<u8>, Vec<u8>) {
        let public: signature::RsaPublicKeyComponents<Vec<u8>> = self.pair.public_key().into();
        (public.n, public.e)
    }

    /// An RSASSA-PKCS1-v1_5 SHA-256 signature of `data` (Java's `SHA256withRSA`).
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        // Signing fails only when the output length is not the modulus length, which it is.
        let rng = ring::rand::SystemRandom::new();
        if self.pair.sign(&signature::RSA_PKCS1_SHA256, &rng, data, &mut signature).is_err() {
            signature.clear();
        }
        signature
    }
}

/// A new RSA key pair as PKCS#8 PEM.
fn generate_pem() -> Result<String, KeyError> {
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| KeyError::Generate(e.to_string()))?;
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(pem.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::site::decode_rsa_pubkey;

    /// One generated key for every test in the crate (keygen costs about a second).
    pub(crate) fn test_key() -> &'static ServerKey {
        static KEY: std::sync::OnceLock<ServerKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| ServerKey::from_pem(&generate_pem().unwrap()).unwrap())
    }

    #[test]
    fn created_once_with_mode_0600_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ServerKey::load(dir.path()).unwrap().is_none(), "no file: no key");
        let (key, created) = ServerKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let path = ServerKey::path(dir.path());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, created) = ServerKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.hs_pubkey(), key.hs_pubkey());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [KEY_FILE], "no temporary file left behind");
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn signatures_verify_with_the_published_key() {
        let key = test_key();
        let sig = key.sign(b"header and body");
        assert_eq!(sig.len(), KEY_BITS / 8);
        let (e, n) = decode_rsa_pubkey(key.hs_pubkey()).unwrap();
        let public = signature::RsaPublicKeyComponents { n: &n, e: &e };
        public.verify(&signature::RSA_PKCS1_2048_8192_SHA256, b"header and body", &sig).unwrap();
        assert!(public.verify(&signature::RSA_PKCS1_2048_8192_SHA256, b"header and bodY", &sig).is_err());
        let der = signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key.public_der());
        der.verify(b"header and body", &sig).unwrap();
    }

    #[test]
    fn files_that_are_not_keys_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = ServerKey::path(dir.path());
        let ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n";
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        for bad in [&b"not a key"[..], &[0xff, 0xfe, 0x00], ec.as_bytes(), garbage.as_bytes(), &vec![b'A'; 100_000]] {
            std::fs::write(&path, bad).unwrap();
            let err = ServerKey::load(dir.path()).unwrap_err();
            assert!(matches!(err, KeyError::Invalid { .. }), "{err}");
            assert!(err.to_string().contains(KEY_FILE), "{err}");
            assert!(ServerKey::load_or_create(dir.path()).is_err(), "a bad key is never replaced");
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_unwritable_data_dir_is_a_clear_error() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        let result = ServerKey::load_or_create(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        // root writes anywhere: then the key is simply created.
        if let Err(e) = result {
            assert!(matches!(e, KeyError::Write { .. }), "{e}");
            assert!(e.to_string().contains(KEY_FILE), "{e}");
        }
        let missing = dir.path().join("no-such-dir");
        let err = ServerKey::load_or_create(&missing).unwrap_err();
        assert!(matches!(err, KeyError::Write { .. }), "{err}");
    }
}
