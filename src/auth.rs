//! Authentication and authorization, as Handle.Net does them, independent of any protocol.
//!
//! An administrator is a value reference `index:identifier` (`300:0.NA/88.100`). Its secret is
//! checked against the `HS_SECKEY` value at that index, which the node stores only as a salted
//! Argon2id hash ([`seal_secrets`] runs on every write path). What an administrator may do comes
//! from `HS_ADMIN` values: on the identifier itself for changes to it; on its prefix record
//! (`0.NA/88.100.1`) or a parent's (`0.NA/88.100`, `0.NA/88`) for creating identifiers and
//! sub-prefixes. An `HS_ADMIN` may name the administrator directly or an `HS_VLIST` group that
//! contains it.
//!
//! Checking a secret costs Argon2's deliberate ~25 ms and ~19 MiB, so the [`Authenticator`]
//! bounds what anyone can make the node spend: the hash parameters are the server's own (a
//! stored hash with others is refused, never run), at most a few checks run at once (the rest
//! wait briefly, then get "busy"), failed checks slow down their source and user with a growing
//! backoff, an unknown administrator costs the same as a known one, and a secret that passed
//! recently is remembered as a keyed digest so honest clients pay once.

use std::net::IpAddr;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, Block, Params};

use crate::identifier::Identifier;
use crate::record::json::decode_admin;
use crate::record::{Record, Value, types};
use crate::registry::{Reader, Registry, RegistryError};

/// The prefix under which prefix records live: `0.NA/88.100.1` is the record of `88.100.1`.
pub const PREFIX_AUTHORITY: &str = "0.NA";
/// 5: how deep `HS_VLIST` groups may nest before a check gives up (cycles end there too).
const MAX_GROUP_DEPTH: usize = 5;
/// Stored secrets start with this.
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

/// An administrator whose secret was checked, or the node itself ([`Admin::node`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Registry key of the administrator's identifier.
    key: String,
    pub index: u32,
    pub identifier: String,
    /// The node's own in-process principal: every right, no secret.
    trusted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the user must be INDEX:IDENTIFIER, e.g. 300:0.NA/88.100")]
    BadUser,
    #[error("{user}: no such administrator, or the secret does not match")]
    Failed { user: String },
    #[error("too many failed authentications from this client or for this user; retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error("the server is busy checking other secrets; retry in a second")]
    Busy,
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
}

//------------ Authenticator -----------------------------------------------------------------

/// Checks credentials against the registry within bounds (see the module docs).
pub struct Authenticator {
    verified: VerifiedSecrets,
    throttle: Throttle,
    checks: Permits,
    /// A hash of a random secret, checked when the administrator does not exist, so that an
    /// unknown administrator costs as much as a known one and timing does not tell them apart.
    decoy: OnceLock<String>,
}

/// 1 s: how long a secret check waits for a free Argon2 slot before the client is told the
/// server is busy (HTTP 503): long enough for a burst of honest clients, short enough that a
/// flood does not pile up threads.
const CHECK_WAIT: Duration = Duration::from_secs(1);

impl Authenticator {
    /// At most `concurrent_checks` Argon2 checks run at once.
    pub fn new(concurrent_checks: usize) -> Self {
        Self {
            verified: VerifiedSecrets::default(),
            throttle: Throttle::default(),
            checks: Permits::new(concurrent_checks.max(1)),
            decoy: OnceLock::new(),
        }
    }

    /// Checks `credentials`, sent from `source` if known, against the administrator's
    /// `HS_SECKEY` value.
    pub fn authenticate(
        &self,
        registry: &Registry,
        credentials: &Credentials,
        source: Option<IpAddr>,
    ) -> Result<Admin, AuthError> {
        let user = format!("{}:{}", credentials.index, credentials.admin);
        let failed = || AuthError::Failed { user: user.clone() };
        let record = registry.get(&credentials.admin)?;
        let stored = record.as_ref().and_then(|r| {
            r.values
                .iter()
                .find(|v| v.index == credentials.index && v.is_type(types::SECRET_KEY))
                .and_then(|v| std::str::from_utf8(&v.data).ok())
        });
        let key = (credentials.admin.key(), credentials.index);
        let admin = |record: &Record| Admin {
            key: credentials.admin.key(),
            index: credentials.index,
            identifier: record.identifier.clone(),
            trusted: false,
        };
        if let (Some(record), Some(stored)) = (&record, stored) {
            if self.verified.contains(&key, stored, &credentials.secret) {
                return Ok(admin(record));
            }
        }
        let throttle_keys = [source.map(ThrottleKey::source), Some(ThrottleKey::User(key.clone()))];
        let now = Instant::now();
        if let Some(wait) = self.throttle.blocked(&throttle_keys, now) {
            return Err(AuthError::Throttled { retry_after: wait.as_secs().max(1) });
        }
        let passed = {
            let mut slot = self.checks.acquire(CHECK_WAIT).ok_or(AuthError::Busy)?;
            match stored {
                Some(stored) => verify_secret_in(stored, &credentials.secret, slot.memory()),
                None => {
                    let decoy = self.decoy.get_or_init(|| hash_secret(&generate_secret()));
                    verify_secret_in(decoy, &credentials.secret, slot.memory());
                    false
                }
            }
        };
        match (&record, stored) {
            (Some(record), Some(stored)) if passed => {
                self.verified.insert(key.clone(), stored, &credentials.secret);
                self.throttle.succeeded(&ThrottleKey::User(key));
                Ok(admin(record))
            }
            _ => {
                self.throttle.failed(&throttle_keys, now);
                Err(failed())
            }
        }
    }
}

/// A counting semaphore for blocking threads: the Argon2 slots, each with Argon2's working
/// memory (19 MiB), taken on a slot's first check and then kept for the next. Memory taken
/// afresh for every check was left behind by glibc in the arena of whichever blocking thread
/// ran it: on two cores the node grew by 0.9 GB after a hundred failed checks (benches/soak).
struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
    memory: Mutex<Vec<Vec<Block>>>,
}

struct Permit<'a> {
    permits: &'a Permits,
    memory: Vec<Block>,
}

impl Permit<'_> {
    fn memory(&mut self) -> &mut [Block] {
        if self.memory.is_empty() {
            self.memory = vec![Block::default(); Params::default().block_count()];
        }
        &mut self.memory
    }
}

impl Permits {
    fn new(n: usize) -> Self {
        Self { free: Mutex::new(n), freed: Condvar::new(), memory: Mutex::new(Vec::new()) }
    }

    fn acquire(&self, wait: Duration) -> Option<Permit<'_>> {
        let free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let (mut free, _) =
            self.freed.wait_timeout_while(free, wait, |free| *free == 0).unwrap_or_else(|p| p.into_inner());
        if *free == 0 {
            return None;
        }
        *free -= 1;
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
        Some(Permit { permits: self, memory })
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.memory.is_empty() {
            let memory = std::mem::take(&mut self.memory);
            self.permits.memory.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
        }
        *self.permits.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.permits.freed.notify_one();
    }
}

/// Failed authentications per client address and per administrator: after [`FREE_FAILURES`],
/// each further failure doubles the time before the next check is even tried, up to
/// [`MAX_BACKOFF`]; a quiet [`FORGET_AFTER`] wipes the slate. Bounded to
/// [`THROTTLE_CAPACITY`] entries.
struct Throttle {
    entries: quick_cache::sync::Cache<ThrottleKey, Strikes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ThrottleKey {
    /// An IPv4 address, or an IPv6 /64 (one host's usual allocation).
    Source(IpAddr),
    User((String, u32)),
}

impl ThrottleKey {
    fn source(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Source(ip),
            IpAddr::V6(v6) => Self::Source(IpAddr::V6((u128::from(v6) & !0u128 << 64).into())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    until: Instant,
}

/// 5: failures allowed before any backoff (typos, a client trying a stale secret).
const FREE_FAILURES: u32 = 5;
/// 300 s: the longest backoff; a guesser gets a dozen tries an hour at most.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// 900 s without a failure and the count starts again.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// 100,000 sources and users tracked at most.
const THROTTLE_CAPACITY: usize = 100_000;

impl Default for Throttle {
    fn default() -> Self {
        Self { entries: quick_cache::sync::Cache::new(THROTTLE_CAPACITY) }
    }
}

impl Throttle {
    /// How long the longest backoff among `keys` has yet to run.
    fn blocked(&self, keys: &[Option<ThrottleKey>], now: Instant) -> Option<Duration> {
        keys.iter()
            .flatten()
            .filter_map(|k| self.entries.get(k))
            .map(|s| s.until.saturating_duration_since(now))
            .max()
            .filter(|d| !d.is_zero())
    }

    fn failed(&self, keys: &[Option<ThrottleKey>], now: Instant) {
        for key in keys.iter().flatten() {
            let mut strikes = match self.entries.get(key) {
                Some(s) if now.saturating_duration_since(s.last) < FORGET_AFTER => s,
                _ => Strikes { failures: 0, last: now, until: now },
            };
            strikes.failures = strikes.failures.saturating_add(1);
            strikes.last = now;
            if let Some(over) = strikes.failures.checked_sub(FREE_FAILURES + 1) {
                let backoff = Duration::from_secs(1u64 << over.min(16)).min(MAX_BACKOFF);
                strikes.until = now + backoff;
            }
            self.entries.insert(key.clone(), strikes);
        }
    }

    fn succeeded(&self, key: &ThrottleKey) {
        self.entries.remove(key);
    }
}

impl Admin {
    /// The node itself: what `idnode admin init`, the demo loader and tests write as. It holds
    /// every right and exists only in process; no request can become it.
    pub fn node() -> Self {
        Self { key: String::new(), index: 0, identifier: "the node".into(), trusted: true }
    }

    pub fn is_node(&self) -> bool {
        self.trusted
    }

    pub fn user(&self) -> String {
        if self.trusted { self.identifier.clone() } else { format!("{}:{}", self.index, self.identifier) }
    }

    /// Whether an `HS_ADMIN` value of `record` grants `permission` to this administrator.
    pub fn may<R: Reader + ?Sized>(
        &self,
        snapshot: &R,
        record: &Record,
        permission: Permission,
    ) -> Result<bool, RegistryError> {
        if self.trusted {
            return Ok(true);
        }
        for value in record.values.iter().filter(|v| v.is_type(types::ADMIN)) {
            let Some((bits, handle, index)) = decode_admin(&value.data) else { continue };
            if bits & permission as u16 != 0 && self.is_or_belongs_to(snapshot, &handle, index, MAX_GROUP_DEPTH)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the prefix record of `prefix` or of one of its parents grants `permission`.
    pub fn may_under<R: Reader + ?Sized>(
        &self,
        snapshot: &R,
        prefix: &str,
        permission: Permission,
    ) -> Result<bool, RegistryError> {
        if self.trusted {
            return Ok(true);
        }
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
    fn is_or_belongs_to<R: Reader + ?Sized>(
        &self,
        snapshot: &R,
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
        let Some(group) = record.values.iter().find(|v| v.index == index && v.is_type(types::VLIST)) else {
            return Ok(false);
        };
        for (member, member_index) in crate::record::json::decode_vlist(&group.data).unwrap_or_default() {
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

/// The values of a prefix record `0.NA/<prefix>` that give `admin` (`index:identifier`) every
/// right under the prefix: `HS_ADMIN` at index 100 naming it and, for an administrator that is
/// the record itself (`300:0.NA/<prefix>`), its secret at 300, readable by no one. The secret
/// is plain: the node seals it when the values are written.
pub fn prefix_admin_values(admin: (u32, &str), secret: Option<&str>, now: i64) -> Vec<Value> {
    use crate::record::Permissions;
    let (index, identifier) = admin;
    let mut values =
        vec![Value::new(100, types::ADMIN, crate::record::json::encode_admin(ALL_PERMISSIONS, identifier, index), now)];
    if let Some(secret) = secret {
        let mut key = Value::new(index, types::SECRET_KEY, secret, now);
        key.permissions = Permissions::new(true, true, false, false);
        values.push(key);
    }
    values
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
fn verify_secret_in(stored: &str, secret: &str, memory: &mut [Block]) -> bool {
    let Some(hash) = server_hash(stored) else {
        tracing::warn!("a stored secret is not a hash with this server's parameters; it matches nothing");
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    // server_hash admitted only Argon2id v19 with the default parameters: Argon2::default().
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::default().hash_password_into_with_memory(secret.as_bytes(), salt, &mut out, memory).is_ok()
        // Output's comparison takes constant time.
        && argon2::password_hash::Output::new(&out).is_ok_and(|out| out == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::json::{encode_admin, encode_vlist};

    fn record(id: &str, mut values: Vec<Value>) -> Record {
        seal_new_secrets(&mut values).unwrap();
        Record::new(&Identifier::parse(id).unwrap(), values).unwrap()
    }

    fn admin_value(bits: u16, handle: &str, index: u32) -> Value {
        Value::new(100, "HS_ADMIN", encode_admin(bits, handle, index), 0)
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

    #[test]
    fn a_remembered_secret_stops_counting_when_the_stored_secret_changes() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let auth = Authenticator::new(2);
        reg.put(&record("88/OPS", vec![Value::new(300, "HS_SECKEY", "one", 0)])).unwrap();
        let creds = Credentials::new("300:88/OPS", "one").unwrap();
        auth.authenticate(&reg, &creds, None).unwrap();
        assert!(auth.verified.contains(
            &("88/ops".into(), 300),
            std::str::from_utf8(&reg.get(&creds.admin).unwrap().unwrap().values[0].data).unwrap(),
            "one"
        ));
        let two = Credentials::new("300:88/OPS", "two").unwrap();
        assert!(auth.authenticate(&reg, &two, None).is_err(), "a wrong secret is still checked");
        reg.put(&record("88/OPS", vec![Value::new(300, "HS_SECKEY", "two", 0)])).unwrap();
        assert!(auth.authenticate(&reg, &creds, None).is_err(), "the old secret no longer works once changed");
        reg.delete(&creds.admin).unwrap();
        assert!(auth.authenticate(&reg, &two, None).is_err(), "nor after the administrator is gone");
    }

    #[test]
    fn failures_back_off_per_source_and_user_and_unknown_users_fail_alike() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let auth = Authenticator::new(2);
        reg.put(&record("88/OPS", vec![Value::new(300, "HS_SECKEY", "right", 0)])).unwrap();
        let attacker: IpAddr = "192.0.2.7".parse().unwrap();
        let wrong = Credentials::new("300:88/NOBODY", "guess").unwrap();
        for _ in 0..FREE_FAILURES {
            assert!(matches!(auth.authenticate(&reg, &wrong, Some(attacker)), Err(AuthError::Failed { .. })));
        }
        assert!(matches!(auth.authenticate(&reg, &wrong, Some(attacker)), Err(AuthError::Failed { .. })));
        let right = Credentials::new("300:88/OPS", "right").unwrap();
        assert!(
            matches!(auth.authenticate(&reg, &right, Some(attacker)), Err(AuthError::Throttled { retry_after: 1 })),
            "the source is backed off, whatever it sends"
        );
        let honest: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(auth.authenticate(&reg, &right, Some(honest)).is_ok(), "other sources are served");
        assert!(auth.authenticate(&reg, &right, Some(attacker)).is_ok(), "a remembered secret skips the backoff");
    }

    #[test]
    fn argon2_slots_are_bounded() {
        let permits = Permits::new(1);
        let held = permits.acquire(Duration::ZERO).unwrap();
        assert!(permits.acquire(Duration::from_millis(10)).is_none(), "busy while the only slot is held");
        drop(held);
        assert!(permits.acquire(Duration::ZERO).is_some());
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
                vec![
                    admin_value(add, "0.NA/88.100", 200),
                    Value::new(200, "HS_VLIST", encode_vlist(&[("88.100/OPS".into(), 300)]), 0),
                ],
            ),
            record("88.100/OPS", vec![Value::new(300, "HS_SECKEY", "ops", 0)]),
        ])
        .unwrap();
        let auth = Authenticator::new(2);
        let login = |user: &str, secret: &str| auth.authenticate(&reg, &Credentials::new(user, secret).unwrap(), None);
        let top = login("300:0.NA/88", "top").unwrap();
        let ops = login("300:88.100/ops", "ops").unwrap();
        assert_eq!(ops.user(), "300:88.100/OPS");
        assert!(matches!(login("300:88.100/OPS", "wrong"), Err(AuthError::Failed { .. })));
        assert!(matches!(login("301:88.100/OPS", "ops"), Err(AuthError::Failed { .. })));
        assert!(matches!(Credentials::new("88.100/OPS", "ops"), Err(AuthError::BadUser)));
        let snap = reg.snapshot().unwrap();
        // ops is in the group that 0.NA/88.100 grants AddHandle to.
        assert!(ops.may_under(&snap, "88.100.1", Permission::AddHandle).unwrap());
        assert!(ops.may_under(&snap, "88.100", Permission::AddHandle).unwrap());
        assert!(!ops.may_under(&snap, "88.101", Permission::AddHandle).unwrap());
        assert!(!ops.may_under(&snap, "88.10", Permission::AddHandle).unwrap());
        assert!(!ops.may_under(&snap, "88.1000", Permission::AddHandle).unwrap());
        assert!(!ops.may_under(&snap, "88.100", Permission::AddPrefix).unwrap());
        // The top-level admin holds every right under 88.
        assert!(top.may_under(&snap, "88.101.7", Permission::AddPrefix).unwrap());
        assert!(!top.may_under(&snap, "89", Permission::AddHandle).unwrap());
        assert!(Admin::node().may_under(&snap, "89", Permission::AddHandle).unwrap());
    }
}
