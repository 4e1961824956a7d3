//! The node core: the protocol-neutral service every front end translates to (the HTTP API
//! now, the Handle protocol next): resolve, list, put, delete, batch, each answered with a value
//! or an error that names its Handle response code ([`crate::code::ResponseCode`]).
//!
//! Reads (`read`) decide what a caller may see (public values, or with ReadValue the private
//! ones too; secret keys never) and refer exactly where DNS refers: below a delegation inside a
//! zone this node serves ([`Zones`]). A write is a list of [`Op`]s applied in one registry
//! transaction: each is decided by `rules::apply` against what the transaction sees, including
//! the batch's own earlier changes, so nothing can change between the check and the write. The
//! transaction commits durably, and only then are the subscribers told what changed
//! ([`Subscriber`]): the front ends' caches drop what the write made stale before the write is
//! acknowledged. Every write, allowed or refused, is logged on the `audit` tracing target.
//! Quotas ([`quota`]) are decided in the same place: the registry ones by `rules::apply` inside
//! the transaction, the daily request count by [`Node::count_request`], which each front end
//! calls once per request it runs as an administrator.
//!
//! ```text
//!  front end (HTTP, Handle) ── Admin from Authenticator ── count_request (603) ──┐
//!        resolve / list ── read: rights, filters, Zones ─────────────────────────┤── Registry snapshot
//!  put / delete / batch ── seal secrets ── transact { rules::apply per op, quotas 604/605 } ── commit ──> Subscribers
//! ```

mod mirror;
pub mod quota;
mod read;
mod rules;
pub mod zones;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::auth::{self, Admin};
use crate::code::ResponseCode;
use crate::identifier::Identifier;
use crate::record::{Record, RecordError, Value, types, unix_now};
use crate::registry::{Applied, MAX_BATCH, Reader as _, Registry, RegistryError};
use crate::secret::{self, SealKey, SecretError};

pub use self::mirror::MirrorStatus;
pub use self::quota::{DailyLimit, Quotas};
pub use self::read::{Found, Listing, Page, ReadError, ReadFilter, Resolution};
pub use self::zones::{HomeError, Zones};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{identifier} does not exist")]
    NotFound { identifier: String },
    #[error("{identifier} already exists")]
    AlreadyExists { identifier: String },
    #[error("{identifier} has no values at indexes {indexes:?}")]
    ValuesNotFound { identifier: String, indexes: Vec<u32> },
    #[error("{identifier} already has values at indexes {indexes:?}")]
    ValuesExist { identifier: String, indexes: Vec<u32> },
    #[error("{user} may not {action} {identifier}")]
    Forbidden { user: String, action: &'static str, identifier: String },
    #[error("{0}")]
    InvalidValue(#[from] RecordError),
    #[error("{0}")]
    InvalidSecret(#[from] SecretError),
    #[error("{identifier} differs only in case from the registered {existing}")]
    CaseConflict { identifier: String, existing: String },
    #[error("the batch holds {count} operations; at most {max} are allowed")]
    BatchTooLarge { count: usize, max: usize },
    #[error("the write sets {count} secret keys; at most {MAX_SECRETS_PER_WRITE} are allowed in one write")]
    TooManySecrets { count: usize },
    #[error("{record}: {source}")]
    InvalidPrefix { record: String, source: crate::identifier::IdentifierError },
    #[error("{prefix} cannot be delegated: {reason}")]
    Undelegable { prefix: String, reason: String },
    #[error(
        "{prefix} holds the {limit} identifiers its quota allows (quota identifiers; national code 604, \
         RC_REGISTER_COUNT_LIMIT)"
    )]
    QuotaIdentifiers { prefix: String, limit: u64 },
    #[error(
        "{prefix} has the {limit} derived prefixes its quota allows (quota prefixes; national code 605, \
         RC_PREFIX_LIMIT)"
    )]
    QuotaPrefixes { prefix: String, limit: u64 },
    #[error("this node is a mirror of {primary}: send writes there")]
    Mirror { primary: String },
    #[error(transparent)]
    Registry(RegistryError),
}

impl WriteError {
    /// The Handle response code of this refusal.
    pub fn code(&self) -> ResponseCode {
        match self {
            Self::NotFound { .. } => ResponseCode::HandleNotFound,
            Self::AlreadyExists { .. } | Self::CaseConflict { .. } => ResponseCode::HandleAlreadyExists,
            Self::ValuesNotFound { .. } => ResponseCode::ValuesNotFound,
            Self::ValuesExist { .. } => ResponseCode::ValueAlreadyExists,
            Self::Forbidden { .. } => ResponseCode::InsufficientPermissions,
            Self::InvalidValue(_) | Self::InvalidSecret(_) | Self::TooManySecrets { .. } | Self::Undelegable { .. } => {
                ResponseCode::InvalidValue
            }
            Self::InvalidPrefix { .. } => ResponseCode::InvalidHandle,
            Self::BatchTooLarge { .. } => ResponseCode::ProtocolError,
            Self::QuotaIdentifiers { .. } => ResponseCode::RegisterCountLimit,
            Self::QuotaPrefixes { .. } => ResponseCode::PrefixLimit,
            Self::Mirror { .. } => ResponseCode::ServerNotResponsible,
            Self::Registry(_) => ResponseCode::Error,
        }
    }
}

impl From<RegistryError> for WriteError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::AlreadyExists { identifier, .. } => Self::AlreadyExists { identifier },
            RegistryError::CaseConflict { identifier, existing, .. } => Self::CaseConflict { identifier, existing },
            e => Self::Registry(e),
        }
    }
}

/// How a PUT treats an existing record.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Refuse to replace an existing identifier.
    pub no_overwrite: bool,
    /// Change only the values at these indexes, keeping the others.
    pub only_indexes: Option<Vec<u32>>,
    /// Change only the values given, of an identifier that must exist: each index must be free
    /// (add) or taken (modify). The Handle protocol's ADD_VALUE and MODIFY_VALUE.
    pub change: Option<ValueChange>,
}

/// What a [`PutOptions::change`] does to the values at the indexes it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueChange {
    /// Add them: no value may be at those indexes yet.
    Add,
    /// Replace them: a value must be at each of those indexes.
    Modify,
}

/// One write.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create or replace `id` (see [`PutOptions`]).
    Put { id: Identifier, values: Vec<Value>, options: PutOptions },
    /// Delete `id`, or with `indexes` only those values.
    Delete { id: Identifier, indexes: Option<Vec<u32>> },
}

impl Op {
    fn id(&self) -> &Identifier {
        match self {
            Op::Put { id, .. } | Op::Delete { id, .. } => id,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Op::Put { .. } => "put",
            Op::Delete { .. } => "delete",
        }
    }
}

/// A refused batch: the operation at `position` failed, and nothing was applied.
#[derive(Debug, thiserror::Error)]
#[error("operation {position}: {error}")]
pub struct BatchError {
    pub position: usize,
    pub error: WriteError,
}

/// What a committed write changed, for caches in front of the registry.
#[derive(Debug, Default)]
pub struct Changed {
    /// Identifiers whose records were created, replaced or deleted.
    pub identifiers: Vec<Identifier>,
    /// Prefixes whose delegation (the `HS_SITE` values of their prefix record) changed: every
    /// name below such a prefix may now be answered differently.
    pub delegations: Vec<String>,
}

/// A front end in front of the registry: told of every committed write before it is
/// acknowledged, and asked about every new delegation before it commits.
pub trait Subscriber: Send + Sync {
    /// Told what a committed write changed, before the write is acknowledged.
    fn changed(&self, change: &Changed);

    /// Refuses a delegation of `prefix` to the sites `record` names that this front end could
    /// not refer clients to (a DNS cut too long to name its servers under, say), with the reason.
    fn check_delegation(&self, _prefix: &str, _record: &Record) -> Result<(), String> {
        Ok(())
    }

    /// Refuses to serve `zones` (a homed prefix this front end could not name, say), with the
    /// reason; asked before a prefix is homed.
    fn check_zones(&self, _zones: &Zones) -> Result<(), String> {
        Ok(())
    }

    /// Told the node now serves `zones` (a prefix was homed or unhomed): answers cached for the
    /// old zones may be wrong now.
    fn zones_changed(&self, _zones: &Zones) {}
}

/// A write that changed a prefix's delegation (the `HS_SITE` values of its prefix record).
struct Delegation {
    prefix: String,
    /// The prefix record after the write, when it still delegates.
    record: Option<Record>,
}

/// 16: secret keys one write may set. Each is hashed with Argon2 (~25 ms of CPU), so this
/// bounds what one request costs; an operator needs a handful per prefix.
pub const MAX_SECRETS_PER_WRITE: usize = 16;

/// The node core (see the module docs); one per running node, shared by every front end.
pub struct Node {
    registry: Arc<Registry>,
    /// The prefixes this node serves itself, and so where it refers instead; swapped whole
    /// when a prefix is homed or unhomed ([`Node::home`]), read without a lock.
    zones: ArcSwap<Zones>,
    /// Serialises [`Node::home`] calls.
    homing: Mutex<()>,
    /// Who may home and unhome prefixes: `(index, identifier)` (`[handle] server_admins`).
    server_admins: ArcSwap<Vec<(u32, String)>>,
    auth: auth::Authenticator,
    subscribers: Vec<Arc<dyn Subscriber>>,
    /// Seals a copy of each new secret for the Handle protocol's challenge-response (see
    /// [`crate::secret`]); without it secrets are stored as hashes only.
    seal_key: Option<Arc<SealKey>>,
    /// What administrators may create and how often they may ask ([`quota`]); none by default.
    quotas: ArcSwap<Quotas>,
    /// The lookups counted by every front end ([`crate::stats`]).
    stats: Arc<crate::stats::Stats>,
    counters: Counters,
    /// Set on a mirror: its primary, and how it stands with it ([`mirror`]).
    mirroring: Option<Arc<mirror::Mirroring>>,
    /// Who may read the change log and records (`[replication] mirrors`).
    mirrors: ArcSwap<Vec<(u32, String)>>,
    /// The sequence number of the last write, for change-log requests that wait for one.
    seq_watch: tokio::sync::watch::Sender<u64>,
}

/// What the node counts besides lookups, since it started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Writes (single or batches) applied.
    pub writes_applied: std::sync::atomic::AtomicU64,
    /// Writes refused (rights, quotas, invalid values, conflicts).
    pub writes_refused: std::sync::atomic::AtomicU64,
    /// Credentials or proofs that failed (HTTP Basic and the Handle protocol's challenges).
    pub auth_failures: std::sync::atomic::AtomicU64,
}

impl Node {
    /// A node serving `zones` (prefixes, `""` for the whole namespace) and the prefixes homed
    /// in `registry`, from `registry`.
    pub fn new(registry: Arc<Registry>, zones: Zones) -> Result<Self, RegistryError> {
        // Half the cores for Argon2 at most: the DNS workers keep the other half under a flood
        // of authenticated requests.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let auth = auth::Authenticator::new(cores.div_ceil(2));
        let zones = ArcSwap::from_pointee(zones.with_homed(registry.homed()?));
        Ok(Self {
            zones,
            homing: Mutex::new(()),
            server_admins: ArcSwap::from_pointee(Vec::new()),
            auth,
            subscribers: Vec::new(),
            seal_key: None,
            quotas: ArcSwap::from_pointee(Quotas::default()),
            stats: Arc::new(crate::stats::Stats::empty()),
            counters: Counters::default(),
            mirroring: None,
            mirrors: ArcSwap::from_pointee(Vec::new()),
            seq_watch: tokio::sync::watch::Sender::new(registry.seq()),
            registry,
        })
    }

    /// Lets `admins` (`(index, identifier)`) home and unhome prefixes.
    pub fn set_server_admins(&self, admins: Vec<(u32, String)>) {
        self.server_admins.store(Arc::new(admins));
    }

    /// Counts lookups into `stats` from now on.
    pub fn set_stats(&mut self, stats: Arc<crate::stats::Stats>) {
        self.stats = stats;
    }

    /// The lookups counted so far.
    pub fn stats(&self) -> &Arc<crate::stats::Stats> {
        &self.stats
    }

    /// Applies `quotas` from now on.
    pub fn set_quotas(&self, quotas: Quotas) {
        let old = self.quotas.load();
        self.quotas.store(Arc::new(quotas.keeping_counts_of(&old)));
    }

    /// Counts a request of `admin` against its daily quota, or refuses it (603): each front end
    /// calls this once per request it runs as an authenticated administrator. Anonymous
    /// requests are not counted.
    pub fn count_request(&self, admin: &Admin) -> Result<(), DailyLimit> {
        self.quotas.load().count_request(admin, unix_now())
    }

    /// Seals a copy of every secret written from now on with `key`.
    pub fn set_seal_key(&mut self, key: Arc<SealKey>) {
        self.seal_key = Some(key);
    }

    /// The seal key, for the front ends that check answers computed from a secret.
    pub fn seal_key(&self) -> Option<&SealKey> {
        self.seal_key.as_deref()
    }

    /// Adds a subscriber to every later write.
    pub fn subscribe(&mut self, subscriber: Arc<dyn Subscriber>) {
        self.subscribers.push(subscriber);
    }

    /// The registry this node serves from (for the front ends' own read paths, such as DNS).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The zones this node serves now, and through them where it refers instead.
    pub fn zones(&self) -> Arc<Zones> {
        self.zones.load_full()
    }

    /// Checks credentials sent from `source` (see [`auth::Authenticator::authenticate`]): the
    /// administrator they prove, or why not.
    pub fn authenticate(
        &self,
        credentials: &auth::Credentials,
        source: Option<std::net::IpAddr>,
    ) -> Result<Admin, auth::AuthError> {
        let admin =
            self.auth.authenticate(&self.registry, credentials, source).inspect_err(|_| self.count_failure())?;
        // A mirror's records are its primary's: it writes none of its own.
        if let Some(key) = self.seal_key.as_ref().filter(|_| self.mirroring.is_none()) {
            self.add_sealed_copy(key, credentials);
        }
        Ok(admin)
    }

    /// Checks a proof that `index:admin` holds a key of type `kind` (see
    /// [`auth::Authenticator::prove`]): the Handle protocol's answer to a challenge.
    pub fn prove(
        &self,
        admin: &Identifier,
        index: u32,
        kind: &str,
        source: Option<std::net::IpAddr>,
        proves: impl Fn(&Record, &Value) -> bool,
    ) -> Result<Admin, auth::AuthError> {
        self.auth.prove(&self.registry, admin, index, kind, source, proves).inspect_err(|_| self.count_failure())
    }

    fn count_failure(&self) {
        self.counters.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes and failed authentications since the node started (for the metrics).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// After `credentials` passed: if their secret is stored as a hash alone (written before the
    /// node had a seal key), adds the sealed copy the Handle protocol needs. This is the only
    /// moment the node holds the secret. A failure is logged and changes nothing.
    fn add_sealed_copy(&self, key: &SealKey, credentials: &auth::Credentials) {
        let id = &credentials.admin;
        let is_bare = |v: &Value| {
            v.index == credentials.index && v.is_type(types::SECRET_KEY) && !secret::has_sealed_copy(&v.data)
        };
        let bare = self.registry.get(id).ok().flatten().is_some_and(|r| r.values.iter().any(is_bare));
        if !bare {
            return;
        }
        let sealed = self.registry.transact(|txn| {
            let Some(mut record) = txn.get(id.key().as_bytes())? else { return Ok::<_, RegistryError>(false) };
            let Some(value) = record.values.iter_mut().find(|v| is_bare(v)) else { return Ok(false) };
            let Ok(stored) = std::str::from_utf8(&value.data) else { return Ok(false) };
            let secret = credentials.secret.as_bytes();
            value.data = secret::with_sealed_copy(stored, key, &record.identifier, value.index, secret).into_bytes();
            txn.put(&record, false)?;
            Ok(true)
        });
        match sealed {
            Ok(true) => {
                let changed = Changed { identifiers: vec![id.clone()], ..Changed::default() };
                self.subscribers.iter().for_each(|s| s.changed(&changed));
                let user = format!("{}:{id}", credentials.index);
                tracing::info!(target: "audit", %user, "secret sealed for the Handle protocol");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not add the sealed copy of a secret"),
        }
    }

    /// Creates or replaces `id` with `values` as `admin`; returns whether it was created or
    /// replaced.
    pub fn put(
        &self,
        admin: &Admin,
        id: &Identifier,
        values: Vec<Value>,
        options: &PutOptions,
    ) -> Result<Applied, WriteError> {
        let op = Op::Put { id: id.clone(), values, options: options.clone() };
        self.write(admin, vec![op]).map(|applied| applied[0]).map_err(|e| e.error)
    }

    /// Deletes `id`, or with `indexes` only those values, as `admin`; returns what it did.
    pub fn delete(&self, admin: &Admin, id: &Identifier, indexes: Option<&[u32]>) -> Result<Applied, WriteError> {
        let op = Op::Delete { id: id.clone(), indexes: indexes.map(<[u32]>::to_vec) };
        self.write(admin, vec![op]).map(|applied| applied[0]).map_err(|e| e.error)
    }

    /// Applies up to [`MAX_BATCH`] operations in one transaction, in order: all of them, or
    /// none. Each is decided on what the ones before it did. Returns what each did, or the
    /// first refusal and its position.
    pub fn batch(&self, admin: &Admin, ops: Vec<Op>) -> Result<Vec<Applied>, BatchError> {
        self.write(admin, ops)
    }

    /// The one write path: seal secrets (Argon2, outside the transaction), then decide and apply
    /// every operation inside one transaction, commit durably, tell the subscribers, log.
    /// Returns what each operation did, or the refusal that left everything as it was.
    fn write(&self, admin: &Admin, mut ops: Vec<Op>) -> Result<Vec<Applied>, BatchError> {
        let summary = match ops.as_slice() {
            [op] => format!("{} {}", op.name(), op.id()),
            ops => format!("batch of {}", ops.len()),
        };
        let result = match self.primary() {
            Some(primary) => Err(BatchError { position: 0, error: WriteError::Mirror { primary: primary.to_owned() } }),
            None => self.seal_and_apply(admin, &mut ops),
        };
        let counter = if result.is_ok() { &self.counters.writes_applied } else { &self.counters.writes_refused };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match &result {
            Ok((_, changed)) => {
                for subscriber in &self.subscribers {
                    subscriber.changed(changed);
                }
                self.seq_moved();
                tracing::info!(target: "audit", user = %admin.user(), op = %summary, "applied");
            }
            Err(e) => tracing::warn!(target: "audit", user = %admin.user(), op = %summary, error = %e, "refused"),
        }
        result.map(|(applied, _)| applied)
    }

    /// Seals the operations' secrets, then runs them in one transaction; returns what each did
    /// and what the subscribers must hear, or the first refusal.
    fn seal_and_apply(&self, admin: &Admin, ops: &mut [Op]) -> Result<(Vec<Applied>, Changed), BatchError> {
        if ops.len() > MAX_BATCH {
            let error = WriteError::BatchTooLarge { count: ops.len(), max: MAX_BATCH };
            return Err(BatchError { position: MAX_BATCH, error });
        }
        let secrets = ops
            .iter()
            .filter_map(|op| match op {
                Op::Put { values, .. } => Some(values.iter().filter(|v| v.is_type(types::SECRET_KEY)).count()),
                Op::Delete { .. } => None,
            })
            .sum::<usize>();
        if secrets > MAX_SECRETS_PER_WRITE {
            return Err(BatchError { position: 0, error: WriteError::TooManySecrets { count: secrets } });
        }
        for (position, op) in ops.iter_mut().enumerate() {
            if let Op::Put { id, values, .. } = op {
                secret::seal_new_secrets(id, values, self.seal_key.as_deref())
                    .map_err(|e| BatchError { position, error: e.into() })?;
            }
        }
        let now = unix_now();
        let quotas = self.quotas.load();
        self.registry.transact(|txn| {
            let mut applied = Vec::with_capacity(ops.len());
            let mut changed = Changed::default();
            for (position, op) in ops.iter().enumerate() {
                let at = |error: WriteError| BatchError { position, error };
                let (outcome, delegation) = rules::apply(txn, admin, op, &quotas, now).map_err(at)?;
                applied.push(outcome);
                changed.identifiers.push(op.id().clone());
                if let Some(Delegation { prefix, record }) = delegation {
                    if let Some(record) = &record {
                        for subscriber in &self.subscribers {
                            subscriber
                                .check_delegation(&prefix, record)
                                .map_err(|reason| at(WriteError::Undelegable { prefix: prefix.clone(), reason }))?;
                        }
                    }
                    changed.delegations.push(prefix);
                }
            }
            Ok((applied, changed))
        })
    }
}

impl From<RegistryError> for BatchError {
    fn from(e: RegistryError) -> Self {
        BatchError { position: 0, error: e.into() }
    }
}

/// What the unit tests of the core's parts share: a node serving everything with two operators.
#[cfg(test)]
mod testing {
    use std::sync::Arc;

    use super::{Node, PutOptions, Zones};
    use crate::auth::{Admin, Credentials, prefix_admin_values};
    use crate::identifier::Identifier;
    use crate::record::Value;
    use crate::registry::Registry;

    /// A node serving everything, whose registry holds the operators `300:0.NA/88.100` and
    /// `300:0.NA/88.200` (secret "s") and `88.100/X` with `values`.
    pub(super) fn node_with(values: Vec<Value>) -> (tempfile::TempDir, Node) {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::new(Arc::new(Registry::open(dir.path()).unwrap()), Zones::new(vec![String::new()])).unwrap();
        let put = |id: &str, values| {
            node.put(&Admin::node(), &Identifier::parse(id).unwrap(), values, &PutOptions::default()).unwrap()
        };
        for prefix in ["88.100", "88.200"] {
            let record = format!("0.NA/{prefix}");
            put(&record, prefix_admin_values((300, &record), Some("s"), 0));
        }
        put("88.100/X", values);
        (dir, node)
    }

    /// The operator of `prefix`, authenticated.
    pub(super) fn login(node: &Node, prefix: &str) -> Admin {
        let admin = Identifier::parse(&format!("0.NA/{prefix}")).unwrap();
        node.authenticate(&Credentials { index: 300, admin, secret: "s".into() }, None).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::testing::{login, node_with};
    use crate::identifier::Identifier;
    use crate::record::types;
    use crate::secret::{SealKey, has_sealed_copy};

    #[test]
    fn a_secret_stored_before_the_seal_key_gets_its_sealed_copy_at_the_next_login() {
        let (_dir, mut node) = node_with(Vec::new());
        let owner = Identifier::parse("0.NA/88.100").unwrap();
        let stored = |node: &super::Node| {
            let record = node.registry().get(&owner).unwrap().unwrap();
            record.values.into_iter().find(|v| v.is_type(types::SECRET_KEY)).unwrap().data
        };
        assert!(!has_sealed_copy(&stored(&node)), "written without a key");
        let key = Arc::new(SealKey::random());
        node.set_seal_key(key.clone());
        login(&node, "88.100");
        let sealed = stored(&node);
        assert_eq!(key.unseal(&owner, 300, &sealed).as_deref(), Some(&b"s"[..]));
        login(&node, "88.100");
        assert_eq!(stored(&node), sealed, "sealed once");
    }
}
