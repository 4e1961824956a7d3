//! Secrets: an administrator's `HS_SECKEY` value, which the node stores only as a salted
//! Argon2id hash with the server's own parameters.
//!
//! Every way into the store seals what it writes before its write transaction opens (hashing
//! costs ~25 ms and must not hold the registry's write lock): the node core seals what clients
//! send ([`seal_new_secrets`]), import keeps hashes exported by a node and seals the rest
//! ([`seal_imported_secrets`]), and the registry refuses any value that is not sealed
//! ([`is_sealed`]), so a caller that forgets cannot store a secret in the clear. Checking a secret
//! against its hash ([`verify_secret`]) is the authenticator's work ([`crate::auth`]).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, Block, Params};

use crate::record::{Record, Value, types};

/// Stored secrets start with this.
const HASH_MARK: &str = "$argon2";

/// Why a secret value cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("value {index}: send the secret itself; pre-hashed secrets are not accepted")]
    PreHashed { index: u32 },
    #[error("value {index}: a stored secret must be an Argon2id hash with this server's parameters ({SERVER_PARAMS})")]
    ForeignHash { index: u32 },
}

/// The hash parameters every stored secret has: the `argon2` crate's defaults (OWASP's
/// recommendation for Argon2id: 19 MiB, 2 passes, 1 lane).
pub const SERVER_PARAMS: &str = "m=19456,t=2,p=1";

/// Replaces each secret among `values` that a client sent by its salted hash. Data that is
/// already a hash is refused: its parameters would decide what every later check costs.
pub fn seal_new_secrets(values: &mut [Value]) -> Result<(), SecretError> {
    for value in values.iter_mut().filter(|v| v.is_type(types::SECRET_KEY)) {
        if value.data.starts_with(HASH_MARK.as_bytes()) {
            return Err(SecretError::PreHashed { index: value.index });
        }
        value.data = hash_secret(&String::from_utf8_lossy(&value.data)).into_bytes();
    }
    Ok(())
}

/// Like [`seal_new_secrets`], for an import file, which may carry secrets exported from a node
/// already hashed: those are kept if they have this server's parameters and refused otherwise.
pub fn seal_imported_secrets(record: &mut Record) -> Result<(), SecretError> {
    for value in record.values.iter_mut().filter(|v| v.is_type(types::SECRET_KEY)) {
        if value.data.starts_with(HASH_MARK.as_bytes()) {
            if !is_sealed(value) {
                return Err(SecretError::ForeignHash { index: value.index });
            }
        } else {
            value.data = hash_secret(&String::from_utf8_lossy(&value.data)).into_bytes();
        }
    }
    Ok(())
}

/// Whether `value` may be stored as it is: not a secret key, or one hashed with the server's
/// own parameters.
pub fn is_sealed(value: &Value) -> bool {
    !value.is_type(types::SECRET_KEY) || std::str::from_utf8(&value.data).is_ok_and(|s| server_hash(s).is_some())
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
    use argon2::password_hash::rand_core::RngCore as _;
    use base64::Engine as _;

    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
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

/// Whether `secret` matches `stored`. A stored hash with parameters other than the server's is
/// never run (its parameters could ask for terabytes): it matches nothing.
pub fn verify_secret(stored: &str, secret: &str) -> bool {
    verify_secret_in(stored, secret, &mut vec![Block::default(); Params::default().block_count()])
}

/// [`verify_secret`] with Argon2's working memory given (the server's parameters need
/// `Params::default().block_count()` blocks).
pub(crate) fn verify_secret_in(stored: &str, secret: &str, memory: &mut [Block]) -> bool {
    let Some(hash) = server_hash(stored) else {
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::identifier::Identifier;

    fn record(id: &str, mut values: Vec<Value>) -> Record {
        seal_new_secrets(&mut values).unwrap();
        Record::new(&Identifier::parse(id).unwrap(), values).unwrap()
    }

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
        assert_eq!(seal_new_secrets(&mut sent), Err(SecretError::PreHashed { index: 300 }));
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
}
