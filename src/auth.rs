//! Authentication and authorization, as Handle.Net does them, independent of any protocol.
//!
//! An administrator is a value reference `index:identifier` (`300:0.NA/88.100`). Its secret is
//! checked against the `HS_SECKEY` value at that index, which the node stores only as a salted
//! Argon2id hash ([`seal_secrets`] runs on every write path). What an administrator may do comes
//! from `HS_ADMIN` values: on the identifier itself for changes to it; on its prefix record
//! (`0.NA/88.100.1`) or a parent's (`0.NA/88.100`, `0.NA/88`) for creating identifiers and
//! sub-prefixes. An `HS_ADMIN` may name the administrator directly or an `HS_VLIST` group that
//! contains it.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::identifier::Identifier;
use crate::json::decode_admin;
use crate::record::Record;
use crate::registry::{Registry, RegistryError, Snapshot};

/// The prefix under which prefix records live: `0.NA/88.100.1` is the record of `88.100.1`.
pub const PREFIX_AUTHORITY: &str = "0.NA";
/// 5: how deep `HS_VLIST` groups may nest before a check gives up (cycles end there too).
const MAX_GROUP_DEPTH: usize = 5;
const SECRET_TYPE: &str = "HS_SECKEY";
/// Stored secrets start with this; data that already does is not hashed again.
const HASH_MARK: &str = "$argon2";

/// The twelve `HS_ADMIN` permission bits (Handle.Net's AdminRecord), lowest bit first. In JSON
/// they are written as a 12-digit binary number, highest bit first (`011111110011`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Permission {
    AddHandle = 1 << 0,
    DeleteHandle = 1 << 1,
    /// Create a derived prefix (a sub-prefix).
    AddPrefix = 1 << 2,
    DeletePrefix = 1 << 3,
    ModifyValue = 1 << 4,
    RemoveValue = 1 << 5,
    AddValue = 1 << 6,
    ReadValue = 1 << 7,
    ModifyAdmin = 1 << 8,
    RemoveAdmin = 1 << 9,
    AddAdmin = 1 << 10,
    ListHandles = 1 << 11,
}

/// All twelve bits: what `idnode admin init` grants the node's first administrator.
pub const ALL_PERMISSIONS: u16 = 0x0fff;

/// Who is asking, as the client claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub index: u32,
    pub admin: Identifier,
    pub secret: String,
}

/// An administrator whose secret was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Registry key of the administrator's identifier.
    key: String,
    pub index: u32,
    pub identifier: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the user must be INDEX:IDENTIFIER, e.g. 300:0.NA/88.100")]
    BadUser,
    #[error("{user}: no such administrator, or the secret does not match")]
    Failed { user: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Credentials {
    /// Parses the user part `index:identifier` (already percent-decoded) and the secret.
    pub fn new(user: &str, secret: &str) -> Result<Self, AuthError> {
        let (index, admin) = user.split_once(':').ok_or(AuthError::BadUser)?;
        let index = index.parse().map_err(|_| AuthError::BadUser)?;
        let admin = Identifier::parse(admin).map_err(|_| AuthError::BadUser)?;
        Ok(Self { index, admin, secret: secret.to_owned() })
    }

    /// Checks the secret against the administrator's `HS_SECKEY` value. A check that
    /// succeeded recently is remembered in `verified`, so that a client sending many requests
    /// pays for Argon2 once, not per request.
    pub fn authenticate(&self, registry: &Registry, verified: &VerifiedSecrets) -> Result<Admin, AuthError> {
        let user = format!("{}:{}", self.index, self.admin);
        let failed = || AuthError::Failed { user: user.clone() };
        let record = registry.get(&self.admin)?.ok_or_else(failed)?;
        let value = record.values.iter().find(|v| v.index == self.index && v.kind == SECRET_TYPE).ok_or_else(failed)?;
        let stored = std::str::from_utf8(&value.data).map_err(|_| failed())?;
        let key = (self.admin.key(), self.index);
        if !verified.contains(&key, stored, &self.secret) {
            if !verify_secret(stored, &self.secret) {
                return Err(failed());
            }
            verified.insert(key, stored, &self.secret);
        }
        Ok(Admin { key: self.admin.key(), index: self.index, identifier: record.identifier })
    }
}

impl Admin {
    pub fn user(&self) -> String {
        format!("{}:{}", self.index, self.identifier)
    }

    /// Whether an `HS_ADMIN` value of `record` grants `permission` to this administrator.
    pub fn may(&self, snapshot: &Snapshot, record: &Record, permission: Permission) -> Result<bool, RegistryError> {
        for value in record.values.iter().filter(|v| v.kind == "HS_ADMIN") {
            let Some((bits, handle, index)) = decode_admin(&value.data) else { continue };
            if bits & permission as u16 != 0 && self.is_or_belongs_to(snapshot, &handle, index, MAX_GROUP_DEPTH)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the prefix record of `prefix` or of one of its parents grants `permission`.
    pub fn may_under(&self, snapshot: &Snapshot, prefix: &str, permission: Permission) -> Result<bool, RegistryError> {
        let mut prefix = prefix;
        loop {
            if let Some(record) = snapshot.get(prefix_record_key(prefix).as_bytes())? {
                if self.may(snapshot, &record, permission)? {
                    return Ok(true);
                }
            }
            match prefix.rsplit_once('.') {
                Some((parent, _)) => prefix = parent,
                None => return Ok(false),
            }
        }
    }

    /// Whether the reference `index:handle` is this administrator, or an `HS_VLIST` group (at
    /// most `depth` levels deep) that lists it.
    fn is_or_belongs_to(
        &self,
        snapshot: &Snapshot,
        handle: &str,
        index: u32,
        depth: usize,
    ) -> Result<bool, RegistryError> {
        let key = handle.to_ascii_lowercase();
        if key == self.key && index == self.index {
            return Ok(true);
        }
        if depth == 0 {
            return Ok(false);
        }
        let Some(record) = snapshot.get(key.as_bytes())? else { return Ok(false) };
        let Some(group) = record.values.iter().find(|v| v.index == index && v.kind == "HS_VLIST") else {
            return Ok(false);
        };
        for (member, member_index) in crate::json::decode_vlist(&group.data).unwrap_or_default() {
            if self.is_or_belongs_to(snapshot, &member, member_index, depth - 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Secrets that passed the Argon2 check recently: for each administrator, the stored hash it was
/// checked against and a keyed BLAKE2b digest of the secret (the key is random per process, so
/// the digests are worthless outside it). An entry counts only while the stored hash is the same
/// (a changed secret invalidates it) and for [`VERIFIED_FOR`].
pub struct VerifiedSecrets {
    key: [u8; 32],
    entries: quick_cache::sync::Cache<(String, u32), std::sync::Arc<Verified>>,
}

struct Verified {
    stored: String,
    digest: [u8; 64],
    at: std::time::Instant,
}

/// 300 s: how long a verified secret is trusted without Argon2; a revoked administrator
/// (record deleted or secret changed) is refused at once regardless.
const VERIFIED_FOR: std::time::Duration = std::time::Duration::from_secs(300);
/// 10,000 administrators remembered at most.
const VERIFIED_CAPACITY: usize = 10_000;

impl Default for VerifiedSecrets {
    fn default() -> Self {
        use argon2::password_hash::rand_core::RngCore as _;
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self { key, entries: quick_cache::sync::Cache::new(VERIFIED_CAPACITY) }
    }
}

impl VerifiedSecrets {
    fn digest(&self, secret: &str) -> [u8; 64] {
        use blake2::Digest as _;
        blake2::Blake2b512::new().chain_update(self.key).chain_update(secret.as_bytes()).finalize().into()
    }

    fn contains(&self, key: &(String, u32), stored: &str, secret: &str) -> bool {
        let Some(entry) = self.entries.get(key) else { return false };
        let digest = self.digest(secret);
        // Constant time: the comparison does not tell how many bytes matched.
        let same = entry.digest.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same && entry.stored == stored && entry.at.elapsed() < VERIFIED_FOR
    }

    fn insert(&self, key: (String, u32), stored: &str, secret: &str) {
        let entry = Verified { stored: stored.to_owned(), digest: self.digest(secret), at: std::time::Instant::now() };
        self.entries.insert(key, std::sync::Arc::new(entry));
    }
}

/// The registry key of a prefix's record: `88.100.1` -> `0.na/88.100.1`.
pub fn prefix_record_key(prefix: &str) -> String {
    format!("{PREFIX_AUTHORITY}/{prefix}").to_ascii_lowercase()
}

/// For a prefix record (`0.NA/88.100.1`), the prefix it stands for (`88.100.1`).
pub fn prefix_of_record(id: &Identifier) -> Option<&str> {
    id.prefix().eq_ignore_ascii_case(PREFIX_AUTHORITY).then(|| id.suffix())
}

/// Replaces every plain `HS_SECKEY` secret in `record` by its salted hash, so that secrets are
/// never stored.
pub fn seal_secrets(record: &mut Record) {
    for value in record.values.iter_mut().filter(|v| v.kind == SECRET_TYPE) {
        let plain = String::from_utf8_lossy(&value.data);
        if !plain.starts_with(HASH_MARK) {
            value.data = hash_secret(&plain).into_bytes();
        }
    }
}

/// A new random secret: 24 bytes from the operating system, base64url (32 characters).
pub fn generate_secret() -> String {
    use argon2::password_hash::rand_core::RngCore as _;
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The record that makes `300:0.NA/<prefix>` the administrator of `prefix` with every right:
/// `HS_ADMIN` at index 100 naming itself, the secret's hash at 300 (readable by no one).
pub fn root_admin_record(prefix: &str, secret: &str, now: i64) -> Result<Record, crate::identifier::IdentifierError> {
    use crate::record::{Permissions, Value};
    let id = Identifier::from_parts(PREFIX_AUTHORITY, prefix)?;
    let admin = Value::new(100, "HS_ADMIN", crate::json::encode_admin(ALL_PERMISSIONS, id.as_str(), 300), now);
    let mut key = Value::new(300, SECRET_TYPE, secret, now);
    key.permissions = Permissions::new(true, true, false, false);
    let mut record = Record::new(&id, vec![admin, key]).expect("two distinct indexes");
    seal_secrets(&mut record);
    Ok(record)
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

pub fn verify_secret(stored: &str, secret: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(secret.as_bytes(), &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{encode_admin, encode_vlist};
    use crate::record::Value;

    fn record(id: &str, values: Vec<Value>) -> Record {
        let mut r = Record::new(&Identifier::parse(id).unwrap(), values).unwrap();
        seal_secrets(&mut r);
        r
    }

    fn admin_value(bits: u16, handle: &str, index: u32) -> Value {
        Value::new(100, "HS_ADMIN", encode_admin(bits, handle, index), 0)
    }

    #[test]
    fn secrets_are_stored_hashed_and_verified() {
        let r = record("0.NA/88", vec![Value::new(300, "HS_SECKEY", "s3cret", 0)]);
        let stored = std::str::from_utf8(&r.values[0].data).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains("s3cret"));
        assert!(verify_secret(stored, "s3cret"));
        assert!(!verify_secret(stored, "s3cret "));
        assert_ne!(hash_secret("x"), hash_secret("x"), "salted");
        let mut again = r.clone();
        seal_secrets(&mut again);
        assert_eq!(again, r, "a stored hash is not hashed twice");
    }

    #[test]
    fn a_remembered_secret_stops_counting_when_the_stored_secret_changes() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let v = VerifiedSecrets::default();
        reg.put(&record("88/OPS", vec![Value::new(300, "HS_SECKEY", "one", 0)])).unwrap();
        let creds = Credentials::new("300:88/OPS", "one").unwrap();
        creds.authenticate(&reg, &v).unwrap();
        assert!(v.contains(
            &("88/ops".into(), 300),
            std::str::from_utf8(&reg.get(&creds.admin).unwrap().unwrap().values[0].data).unwrap(),
            "one"
        ));
        assert!(
            Credentials::new("300:88/OPS", "two").unwrap().authenticate(&reg, &v).is_err(),
            "a wrong secret is still checked"
        );
        reg.put(&record("88/OPS", vec![Value::new(300, "HS_SECKEY", "two", 0)])).unwrap();
        assert!(creds.authenticate(&reg, &v).is_err(), "the old secret no longer works once changed");
        reg.delete(&creds.admin).unwrap();
        assert!(
            Credentials::new("300:88/OPS", "two").unwrap().authenticate(&reg, &v).is_err(),
            "nor after the administrator is gone"
        );
    }

    #[test]
    fn rights_come_from_hs_admin_directly_via_groups_and_prefix_parents() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let add = Permission::AddHandle as u16;
        reg.put_batch(&[
            record(
                "0.NA/88",
                vec![admin_value(ALL_PERMISSIONS, "0.NA/88", 300), Value::new(300, "HS_SECKEY", "top", 0)],
            ),
            record(
                "0.NA/88.100",
                vec![admin_value(add, "0.NA/88.100", 200), {
                    let mut g = Value::new(200, "HS_VLIST", encode_vlist(&[("88.100/OPS".into(), 300)]), 0);
                    g.index = 200;
                    g
                }],
            ),
            record("88.100/OPS", vec![Value::new(300, "HS_SECKEY", "ops", 0)]),
        ])
        .unwrap();
        let v = VerifiedSecrets::default();
        let top = Credentials::new("300:0.NA/88", "top").unwrap().authenticate(&reg, &v).unwrap();
        let ops = Credentials::new("300:88.100/ops", "ops").unwrap().authenticate(&reg, &v).unwrap();
        assert_eq!(ops.user(), "300:88.100/OPS");
        assert!(matches!(
            Credentials::new("300:88.100/OPS", "wrong").unwrap().authenticate(&reg, &v),
            Err(AuthError::Failed { .. })
        ));
        assert!(matches!(
            Credentials::new("301:88.100/OPS", "ops").unwrap().authenticate(&reg, &v),
            Err(AuthError::Failed { .. })
        ));
        assert!(matches!(Credentials::new("88.100/OPS", "ops"), Err(AuthError::BadUser)));
        let snap = reg.snapshot().unwrap();
        // ops is in the group that 0.NA/88.100 grants AddHandle to.
        assert!(ops.may_under(&snap, "88.100.1", Permission::AddHandle).unwrap());
        assert!(ops.may_under(&snap, "88.100", Permission::AddHandle).unwrap());
        assert!(!ops.may_under(&snap, "88.101", Permission::AddHandle).unwrap());
        assert!(!ops.may_under(&snap, "88.100", Permission::AddPrefix).unwrap());
        // The top-level admin holds every right under 88.
        assert!(top.may_under(&snap, "88.101.7", Permission::AddPrefix).unwrap());
        assert!(!top.may_under(&snap, "89", Permission::AddHandle).unwrap());
    }
}
