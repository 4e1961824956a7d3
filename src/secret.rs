//! Secrets: an administrator's `HS_SECKEY` value. The node stores a salted Argon2id hash with
//! the server's own parameters and, when it has a seal key, a copy of the secret encrypted with
//! that key.
//!
//! Why two forms: HTTP Basic sends the secret itself, which the hash checks. The Handle
//! protocol's challenge-response sends a PBKDF2/HMAC answer computed from the secret with a
//! salt the client picks for each answer (CNRI's client, protocol 2.7 and later; earlier
//! versions hash the secret directly), and checking that needs the secret. So each secret is
//! also sealed with XChaCha20-Poly1305 under the node's seal key, a file outside the database
//! ([`SealKey`]): the database (its file, an export, a backup) holds no secret in the clear, and
//! whoever has only it learns nothing but Argon2 hashes. The sealed copy is bound to its
//! administrator (`identifier` and index), so it cannot be moved to another one.
//!
//! A stored value is the hash, then, if sealed, a newline and `$idnode-sealed$v=1$k=KEYID$DATA`
//! (the key's id, and base64 of the nonce and the ciphertext). Secrets stored before the seal
//! key existed have the hash alone; the node adds the sealed copy the next time the secret is
//! proven over HTTP, which is the only moment the node holds it ([`crate::node::Node::authenticate`]).
//!
//! Every way into the store seals what it writes before its write transaction opens (hashing
//! costs ~25 ms and must not hold the registry's write lock): the node core seals what clients
//! send ([`seal_new_secrets`]), import keeps hashes exported by a node and seals the rest
//! ([`seal_imported_secrets`]), and the registry refuses any value that is not sealed
//! ([`is_sealed`]), so a caller that forgets cannot store a secret in the clear. Checking a secret
//! against its hash ([`verify_secret`]) is the authenticator's work ([`crate::auth`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, Block, Params};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::identifier::Identifier;
use crate::record::{Record, Value, types};

/// Stored secrets start with this.
const HASH_MARK: &str = "$argon2";
/// The sealed copy after the hash starts with this.
const SEALED_MARK: &str = "$idnode-sealed$v=1$k=";
/// 24: XChaCha20's nonce, random for every seal (large enough that random nonces never repeat).
const NONCE_LEN: usize = 24;
/// 1024 bytes: the longest secret the node seals. CNRI's tools use passwords and 40-character
/// SHA-1 hex strings; a longer one is refused rather than stored.
pub const MAX_SECRET_LEN: usize = 1024;

/// Why a secret value cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("value {index}: send the secret itself; pre-hashed secrets are not accepted")]
    PreHashed { index: u32 },
    #[error("value {index}: a stored secret must be an Argon2id hash with this server's parameters ({SERVER_PARAMS})")]
    ForeignHash { index: u32 },
    #[error("value {index}: a secret may be at most {MAX_SECRET_LEN} bytes")]
    TooLong { index: u32 },
}

/// The hash parameters every stored secret has: the `argon2` crate's defaults (OWASP's
/// recommendation for Argon2id: 19 MiB, 2 passes, 1 lane).
pub const SERVER_PARAMS: &str = "m=19456,t=2,p=1";

/// Why the seal key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SealKeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a seal key (expected 64 hexadecimal digits on one line)")]
    Malformed { path: PathBuf },
}

/// The node's seal key: 32 random bytes that encrypt the copies of secrets the Handle protocol
/// needs. It lives in its own file (`secret-seal.key` in the data directory, mode 0600), never in
/// the database; a mirror or a restored node needs the same file to check Handle secret-key
/// answers (HTTP keeps working from the hashes without it).
pub struct SealKey {
    cipher: XChaCha20Poly1305,
    /// The first 4 bytes of the key's BLAKE2b digest, in hex: names the key in a sealed value,
    /// so a copy sealed by another node's key is told apart from a damaged one.
    id: String,
}

impl SealKey {
    /// The file's name in the data directory.
    pub const FILE: &'static str = "secret-seal.key";

    /// Reads `dir/secret-seal.key`, creating it with a new random key if it does not exist.
    pub fn load_or_create(dir: &Path) -> Result<Self, SealKeyError> {
        let path = dir.join(Self::FILE);
        let io = |source| SealKeyError::Io { path: path.clone(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text.trim_end(), &mut bytes)
                    .map_err(|_| SealKeyError::Malformed { path: path.clone() })?;
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                OsRng.fill_bytes(&mut bytes);
                write_private(&path, format!("{}\n", hex::encode(bytes)).as_bytes()).map_err(io)?;
                tracing::info!(path = %path.display(), "created the seal key for secrets");
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        use blake2::Digest as _;
        let digest = blake2::Blake2b512::digest(bytes);
        Self { cipher: XChaCha20Poly1305::new(bytes.into()), id: hex::encode(&digest[..4]) }
    }

    /// A key for tests.
    #[cfg(test)]
    pub(crate) fn random() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    /// The sealed form of `secret` for the administrator `index:owner`.
    fn seal(&self, owner: &Identifier, index: u32, secret: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = binding(owner, index);
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret, aad: &aad })
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut data = nonce.to_vec();
        data.extend_from_slice(&sealed);
        format!("{SEALED_MARK}{}${}", self.id, URL_SAFE_NO_PAD.encode(data))
    }

    /// The secret sealed in the stored value `stored` of the administrator `index:owner`, if it
    /// has a sealed copy made with this key for that administrator.
    pub fn unseal(&self, owner: &Identifier, index: u32, stored: &[u8]) -> Option<Vec<u8>> {
        let (id, data) = sealed_part(stored)?;
        if id != self.id {
            tracing::warn!(admin = %format!("{index}:{owner}"), key = id, "a secret is sealed with another node's key");
            return None;
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let aad = binding(owner, index);
        self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).ok()
    }
}

/// What a sealed copy is bound to: its administrator, so that it opens only there.
fn binding(owner: &Identifier, index: u32) -> Vec<u8> {
    format!("idnode HS_SECKEY {}:{index}", owner.key()).into_bytes()
}

/// The key id and the nonce and ciphertext of the sealed copy in `stored`, if it has a
/// well-formed one.
fn sealed_part(stored: &[u8]) -> Option<(&str, Vec<u8>)> {
    let text = std::str::from_utf8(stored).ok()?;
    let (_, sealed) = text.split_once('\n')?;
    let (id, data) = sealed.strip_prefix(SEALED_MARK)?.split_once('$')?;
    let data = URL_SAFE_NO_PAD.decode(data).ok()?;
    // A nonce, a tag of 16 bytes, and at most MAX_SECRET_LEN bytes of secret.
    (id.len() == 8 && (NONCE_LEN + 16..=NONCE_LEN + 16 + MAX_SECRET_LEN).contains(&data.len())).then_some((id, data))
}

/// Whether the stored value `stored` carries a sealed copy of its secret.
pub fn has_sealed_copy(stored: &[u8]) -> bool {
    sealed_part(stored).is_some()
}

/// The stored value `stored` (a hash alone) with a sealed copy of `secret` added, for the
/// administrator `index:owner`.
pub fn with_sealed_copy(stored: &str, key: &SealKey, owner: &Identifier, index: u32, secret: &[u8]) -> String {
    format!("{}\n{}", hash_part(stored), key.seal(owner, index, secret))
}

/// The hash part of a stored value.
fn hash_part(stored: &str) -> &str {
    stored.split_once('\n').map_or(stored, |(hash, _)| hash)
}

/// Writes `bytes` to `path` atomically and readable by the owner only (the seal key, the
/// Handle server key, administrator key files): a temporary file beside it (mode 0600 from the
/// start), synced, then renamed over `path`. A crash leaves the old state or the new, never
/// half of a key.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename is durable once the directory is synced; not every platform can.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Replaces each secret among `values`, which a client sent for `owner`, by its salted hash
/// and, with `key`, a sealed copy. Data that is already a hash is refused: its parameters would
/// decide what every later check costs.
pub fn seal_new_secrets(owner: &Identifier, values: &mut [Value], key: Option<&SealKey>) -> Result<(), SecretError> {
    for value in values.iter_mut().filter(|v| v.is_type(types::SECRET_KEY)) {
        if value.data.starts_with(HASH_MARK.as_bytes()) {
            return Err(SecretError::PreHashed { index: value.index });
        }
        if value.data.len() > MAX_SECRET_LEN {
            return Err(SecretError::TooLong { index: value.index });
        }
        let hash = hash_secret(&String::from_utf8_lossy(&value.data));
        let stored = match key {
            Some(key) => with_sealed_copy(&hash, key, owner, value.index, &value.data),
            None => hash,
        };
        value.data = stored.into_bytes();
    }
    Ok(())
}

/// Like [`seal_new_secrets`] without a seal key, for an import file, which may carry secrets
/// exported from a node already hashed (and sealed): those are kept if they have this server's
/// parameters and refused otherwise. Imported secrets get their sealed copy when their
/// administrator next proves them over HTTP.
pub fn seal_imported_secrets(record: &mut Record) -> Result<(), SecretError> {
    for value in record.values.iter_mut().filter(|v| v.is_type(types::SECRET_KEY)) {
        if value.data.starts_with(HASH_MARK.as_bytes()) {
            if !is_sealed(value) {
                return Err(SecretError::ForeignHash { index: value.index });
            }
        } else {
            if value.data.len() > MAX_SECRET_LEN {
                return Err(SecretError::TooLong { index: value.index });
            }
            value.data = hash_secret(&String::from_utf8_lossy(&value.data)).into_bytes();
        }
    }
    Ok(())
}

/// Whether `value` may be stored as it is: not a secret key, or one hashed with the server's
/// own parameters, followed by nothing or by a well-formed sealed copy.
pub fn is_sealed(value: &Value) -> bool {
    if !value.is_type(types::SECRET_KEY) {
        return true;
    }
    let Ok(text) = std::str::from_utf8(&value.data) else { return false };
    let hash = hash_part(text);
    server_hash(hash).is_some() && (hash.len() == text.len() || has_sealed_copy(&value.data))
}

/// The stored hash, if it is Argon2id v19 with exactly the server's parameters and output size.
fn server_hash(stored: &str) -> Option<PasswordHash<'_>> {
    let hash = PasswordHash::new(stored).ok()?;
    let ours = hash.algorithm == argon2::ARGON2ID_IDENT
        && hash.version == Some(argon2::Version::V0x13 as u32)
        && Params::try_from(&hash).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost())
                == (Params::DEFAULT_M_COST, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST)
                && p.keyid().is_empty()
                && p.data().is_empty()
        })
        && hash.hash.is_some_and(|h| h.len() == Params::DEFAULT_OUTPUT_LEN)
        && hash.salt.is_some();
    ours.then_some(hash)
}

/// A new random secret: 24 bytes from the operating system, base64url (32 characters).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A salted Argon2id hash in PHC form (`$argon2id$v=19$m=19456,t=2,p=1$...`), the parameters
/// being the `argon2` crate's defaults (OWASP's recommendation for Argon2id).
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any input")
        .to_string()
}

/// Whether `secret` matches the hash in `stored`. A stored hash with parameters other than the server's is
/// never run (its parameters could ask for terabytes): it matches nothing.
pub fn verify_secret(stored: &str, secret: &str) -> bool {
    verify_secret_in(stored, secret, &mut vec![Block::default(); Params::default().block_count()])
}

/// [`verify_secret`] with Argon2's working memory given (the server's parameters need
/// `Params::default().block_count()` blocks).
pub(crate) fn verify_secret_in(stored: &str, secret: &str, memory: &mut [Block]) -> bool {
    let Some(hash) = server_hash(hash_part(stored)) else {
        tracing::warn!("a stored secret is not a hash with this server's parameters; it matches nothing");
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    // server_hash admitted only Argon2id v19 with the default parameters: Argon2::default().
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let hashed = Argon2::default().hash_password_into_with_memory(secret.as_bytes(), salt, &mut out, memory);
    // Output's comparison takes constant time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|out| out == expected)
}

/// What the tests of the modules that read secrets share.
#[cfg(test)]
pub(crate) mod testing {
    use super::seal_new_secrets;
    use crate::identifier::Identifier;
    use crate::record::{Record, Value};

    /// `id` with `values`, its secrets sealed as the node seals them (hash only, no seal key).
    pub(crate) fn sealed_record(id: &str, mut values: Vec<Value>) -> Record {
        let id = Identifier::parse(id).unwrap();
        seal_new_secrets(&id, &mut values, None).unwrap();
        Record::new(&id, values).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::identifier::Identifier;

    use super::testing::sealed_record as record;

    /// The parameters an attacker would store: 4 TiB of memory for one check.
    const HOSTILE: &str = "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

    #[test]
    fn secrets_are_stored_hashed_and_verified() {
        let r = record("0.NA/88", vec![Value::new(300, "hs_seckey", "s3cret", 0)]);
        let stored = std::str::from_utf8(&r.values[0].data).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && !stored.contains("s3cret"), "{stored}");
        assert!(is_sealed(&r.values[0]), "a lower-case type is a secret key too");
        assert!(verify_secret(stored, "s3cret"));
        assert!(!verify_secret(stored, "s3cret "));
        assert_ne!(hash_secret("x"), hash_secret("x"), "salted");
        let mut again = r.clone();
        seal_imported_secrets(&mut again).unwrap();
        assert_eq!(again, r, "an exported hash imports as it is");
        let mut sent = r.values.clone();
        assert_eq!(seal_new_secrets(&r.identifier, &mut sent, None), Err(SecretError::PreHashed { index: 300 }));
    }

    #[test]
    fn a_hash_with_foreign_parameters_is_never_run() {
        let hostile = Value::new(300, "HS_SECKEY", HOSTILE, 0);
        assert!(!is_sealed(&hostile));
        let started = Instant::now();
        assert!(!verify_secret(HOSTILE, "anything"));
        assert!(started.elapsed() < Duration::from_secs(5), "refused without hashing");
        let mut import = Record::new(&Identifier::parse("0.NA/88").unwrap(), vec![hostile.clone()]).unwrap();
        assert_eq!(seal_imported_secrets(&mut import), Err(SecretError::ForeignHash { index: 300 }));
        let weaker = hash_secret("x").replace("m=19456,t=2,p=1", "m=8,t=1,p=1");
        assert!(!is_sealed(&Value::new(300, "HS_SECKEY", weaker, 0)), "weaker parameters are refused too");
    }

    #[test]
    fn a_sealed_copy_opens_only_with_its_key_and_for_its_administrator() {
        let key = SealKey::random();
        let owner = Identifier::parse("0.NA/88.100").unwrap();
        let mut values = vec![Value::new(300, "HS_SECKEY", "s3cret", 0)];
        seal_new_secrets(&owner, &mut values, Some(&key)).unwrap();
        let stored = values[0].data.clone();
        let text = std::str::from_utf8(&stored).unwrap();
        assert!(!text.contains("s3cret") && is_sealed(&values[0]) && has_sealed_copy(&stored), "{text}");
        assert!(verify_secret(text, "s3cret"), "HTTP checks the hash part");
        assert_eq!(
            key.unseal(&Identifier::parse("0.na/88.100").unwrap(), 300, &stored).as_deref(),
            Some(&b"s3cret"[..])
        );
        assert_eq!(key.unseal(&owner, 301, &stored), None, "another index");
        assert_eq!(key.unseal(&Identifier::parse("0.NA/88.200").unwrap(), 300, &stored), None, "another administrator");
        assert_eq!(SealKey::random().unseal(&owner, 300, &stored), None, "another node's key");
        let mut tampered = stored.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.unseal(&owner, 300, &tampered), None);
        let garbage = format!("{}\nnot a seal", hash_part(text));
        assert!(!is_sealed(&Value::new(300, "HS_SECKEY", garbage, 0)), "anything after the hash must be a seal");
        let bare = hash_part(text).to_owned();
        assert!(!has_sealed_copy(bare.as_bytes()));
        let resealed = with_sealed_copy(&bare, &key, &owner, 300, b"s3cret");
        assert_eq!(key.unseal(&owner, 300, resealed.as_bytes()).as_deref(), Some(&b"s3cret"[..]));
        let mut long = vec![Value::new(300, "HS_SECKEY", "x".repeat(MAX_SECRET_LEN + 1), 0)];
        assert_eq!(seal_new_secrets(&owner, &mut long, Some(&key)), Err(SecretError::TooLong { index: 300 }));
    }

    #[test]
    fn the_seal_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Identifier::parse("0.NA/88").unwrap();
        let first = SealKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(SealKey::FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let sealed = first.seal(&owner, 1, b"k");
        let again = SealKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.unseal(&owner, 1, format!("h\n{sealed}").as_bytes()).as_deref(), Some(&b"k"[..]));
        std::fs::write(&path, "not hex\n").unwrap();
        let err = SealKey::load_or_create(dir.path()).err().unwrap();
        assert!(err.to_string().contains(SealKey::FILE), "{err}");
    }
}
