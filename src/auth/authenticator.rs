//! The authenticator: checks an administrator's secret within bounds (see [`crate::auth`]'s
//! module docs): the server's own hash parameters only, a few Argon2 checks at once, a growing
//! backoff per source and user after failures, a decoy check for unknown administrators, and a
//! short memory of secrets that passed.

use std::net::IpAddr;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::{Block, Params};

use super::{Admin, AuthError, Credentials};
use crate::identifier::Identifier;
use crate::record::{Record, Value, types};
use crate::registry::Registry;
use crate::secret::{generate_secret, hash_secret, verify_secret_in};

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
        let admin = |record: &Record| Admin::checked(credentials.index, &record.identifier);
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

impl Authenticator {
    /// Checks a proof of the administrator `index:admin` that another protocol computed from its
    /// key (the Handle protocol's answer to a challenge), within the same bounds as a secret:
    /// the backoff per source and user, and a slot among the concurrent checks. `proves` is
    /// asked about each value of type `kind` at `index`, or with `index` 0 about every value of
    /// that type (Handle.Net's "any index"); the first that it accepts names the administrator.
    pub fn prove(
        &self,
        registry: &Registry,
        admin: &Identifier,
        index: u32,
        kind: &str,
        source: Option<IpAddr>,
        proves: impl Fn(&Record, &Value) -> bool,
    ) -> Result<Admin, AuthError> {
        let user = format!("{index}:{admin}");
        let throttle_keys = [source.map(ThrottleKey::source), Some(ThrottleKey::User((admin.key(), index)))];
        let now = Instant::now();
        if let Some(wait) = self.throttle.blocked(&throttle_keys, now) {
            return Err(AuthError::Throttled { retry_after: wait.as_secs().max(1) });
        }
        let record = registry.get(admin)?;
        let proven = {
            let _slot = self.checks.acquire(CHECK_WAIT).ok_or(AuthError::Busy)?;
            record.as_ref().and_then(|record| {
                record
                    .values
                    .iter()
                    .filter(|v| v.is_type(kind) && (index == 0 || v.index == index))
                    .find(|v| proves(record, v))
                    .map(|v| Admin::checked(v.index, &record.identifier))
            })
        };
        match proven {
            Some(proven) => {
                self.throttle.succeeded(&ThrottleKey::User((admin.key(), index)));
                Ok(proven)
            }
            None => {
                self.throttle.failed(&throttle_keys, now);
                Err(AuthError::Failed { user })
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
        Self::Source(client_of(ip))
    }
}

/// The client an address stands for: an IPv4 address itself, an IPv6 address its /64 (one
/// host's usual allocation). What per-client bounds count by.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !0u128 << 64).into()),
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

/// Secrets that passed the Argon2 check recently: for each administrator, the stored hash it was
/// checked against and a keyed BLAKE2b digest of the secret (the key is random per process, so
/// the digests are worthless outside it). An entry counts only while the stored hash is the same
/// (a changed secret invalidates it) and for [`VERIFIED_FOR`].
struct VerifiedSecrets {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use crate::registry::RegistryError;

    use crate::secret::testing::sealed_record as record;

    /// Stores `records` as they are, through the registry's one write primitive.
    fn store(reg: &Registry, records: &[Record]) {
        reg.transact(|txn| records.iter().try_for_each(|r| txn.put(r, false).map(drop)))
            .unwrap_or_else(|e: RegistryError| panic!("{e}"));
    }

    #[test]
    fn a_remembered_secret_stops_counting_when_the_stored_secret_changes() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let auth = Authenticator::new(2);
        store(&reg, &[record("88/OPS", vec![Value::new(300, "HS_SECKEY", "one", 0)])]);
        let creds = Credentials::new("300:88/OPS", "one").unwrap();
        auth.authenticate(&reg, &creds, None).unwrap();
        assert!(auth.verified.contains(
            &("88/ops".into(), 300),
            std::str::from_utf8(&reg.get(&creds.admin).unwrap().unwrap().values[0].data).unwrap(),
            "one"
        ));
        let two = Credentials::new("300:88/OPS", "two").unwrap();
        assert!(auth.authenticate(&reg, &two, None).is_err(), "a wrong secret is still checked");
        store(&reg, &[record("88/OPS", vec![Value::new(300, "HS_SECKEY", "two", 0)])]);
        assert!(auth.authenticate(&reg, &creds, None).is_err(), "the old secret no longer works once changed");
        reg.transact(|txn| txn.delete(creds.admin.key().as_bytes())).unwrap();
        assert!(auth.authenticate(&reg, &two, None).is_err(), "nor after the administrator is gone");
    }

    #[test]
    fn failures_back_off_per_source_and_user_and_unknown_users_fail_alike() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let auth = Authenticator::new(2);
        store(&reg, &[record("88/OPS", vec![Value::new(300, "HS_SECKEY", "right", 0)])]);
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
}
