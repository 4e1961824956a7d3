//! The node core: every protocol's writes (the HTTP API now, the Handle protocol later) and
//! the rules that decide them.
//!
//! A write is a list of [`Op`]s applied in one registry transaction: each is authorized (see
//! [`crate::auth`]) against what the transaction sees, including the batch's own earlier
//! changes, so nothing can change between the check and the write. The transaction commits
//! durably, and only then are the subscribers told what changed ([`Subscriber`]): the front
//! ends' caches drop what the write made stale before the write is acknowledged. Every write,
//! allowed or refused, is logged on the `audit` tracing target.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::auth::{self, Admin, Permission};
use crate::identifier::Identifier;
use crate::record::{Record, RecordError, Value, types, unix_now};
use crate::registry::{Applied, MAX_BATCH, Reader, Registry, RegistryError, WriteTxn};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{identifier} does not exist")]
    NotFound { identifier: String },
    #[error("{identifier} already exists")]
    AlreadyExists { identifier: String },
    #[error("{identifier} has no values at indexes {indexes:?}")]
    ValuesNotFound { identifier: String, indexes: Vec<u32> },
    #[error("{user} may not {action} {identifier}")]
    Forbidden { user: String, action: &'static str, identifier: String },
    #[error("{0}")]
    InvalidValue(#[from] RecordError),
    #[error("{0}")]
    InvalidSecret(#[from] auth::SecretError),
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
    #[error(transparent)]
    Registry(RegistryError),
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
    fn changed(&self, change: &Changed);

    /// Refuses a delegation of `prefix` to the sites `record` names that this front end could
    /// not refer clients to (a DNS cut too long to name its servers under, say), with the reason.
    fn check_delegation(&self, _prefix: &str, _record: &Record) -> Result<(), String> {
        Ok(())
    }
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

pub struct Node {
    registry: Arc<Registry>,
    /// The prefixes this node serves itself (`""`: the whole namespace).
    zones: Vec<String>,
    auth: auth::Authenticator,
    subscribers: Vec<Arc<dyn Subscriber>>,
}

impl Node {
    /// A node serving `zones` (prefixes, `""` for the whole namespace) from `registry`.
    pub fn new(registry: Arc<Registry>, zones: Vec<String>) -> Self {
        // Half the cores for Argon2 at most: the DNS workers keep the other half under a flood
        // of authenticated requests.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { registry, zones, auth: auth::Authenticator::new(cores.div_ceil(2)), subscribers: Vec::new() }
    }

    /// Adds a subscriber to every later write.
    pub fn subscribe(&mut self, subscriber: Arc<dyn Subscriber>) {
        self.subscribers.push(subscriber);
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// For an identifier this node does not serve itself, the record of the prefix delegated to
    /// the node that does (its `HS_SITE` values say where), if any.
    pub fn delegation_of(&self, id: &Identifier) -> Result<Option<Record>, RegistryError> {
        let prefix = auth::prefix_of_record(id).map_or(id.prefix(), |p| p);
        let zone = self
            .zones
            .iter()
            .filter(|z| z.is_empty() || prefix == z.as_str() || prefix.starts_with(&format!("{z}.")))
            .max_by_key(|z| z.len());
        match zone {
            Some(zone) => crate::record::site::delegation(&self.registry.snapshot()?, zone, prefix),
            None => Ok(None),
        }
    }

    /// Checks credentials sent from `source` (see [`auth::Authenticator::authenticate`]).
    pub fn authenticate(
        &self,
        credentials: &auth::Credentials,
        source: Option<std::net::IpAddr>,
    ) -> Result<Admin, auth::AuthError> {
        self.auth.authenticate(&self.registry, credentials, source)
    }

    /// Creates or replaces `id` with `values`.
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

    /// Deletes `id`, or with `indexes` only those values.
    pub fn delete(&self, admin: &Admin, id: &Identifier, indexes: Option<&[u32]>) -> Result<Applied, WriteError> {
        let op = Op::Delete { id: id.clone(), indexes: indexes.map(<[u32]>::to_vec) };
        self.write(admin, vec![op]).map(|applied| applied[0]).map_err(|e| e.error)
    }

    /// Applies up to [`MAX_BATCH`] operations in one transaction, in order: all of them, or
    /// none. Each is decided on what the ones before it did.
    pub fn batch(&self, admin: &Admin, ops: Vec<Op>) -> Result<Vec<Applied>, BatchError> {
        self.write(admin, ops)
    }

    /// The one write path: seal secrets (Argon2, outside the transaction), then decide and apply
    /// every operation inside one transaction, commit durably, tell the subscribers, log.
    fn write(&self, admin: &Admin, mut ops: Vec<Op>) -> Result<Vec<Applied>, BatchError> {
        let summary = match ops.as_slice() {
            [op] => format!("{} {}", op.name(), op.id()),
            ops => format!("batch of {}", ops.len()),
        };
        let result = self.seal_and_apply(admin, &mut ops);
        match &result {
            Ok((_, changed)) => {
                for subscriber in &self.subscribers {
                    subscriber.changed(changed);
                }
                tracing::info!(target: "audit", user = %admin.user(), op = %summary, "applied");
            }
            Err(e) => tracing::warn!(target: "audit", user = %admin.user(), op = %summary, error = %e, "refused"),
        }
        result.map(|(applied, _)| applied)
    }

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
            if let Op::Put { values, .. } = op {
                auth::seal_new_secrets(values).map_err(|e| BatchError { position, error: e.into() })?;
            }
        }
        let now = unix_now();
        self.registry.transact(|txn| {
            let mut applied = Vec::with_capacity(ops.len());
            let mut changed = Changed::default();
            for (position, op) in ops.iter().enumerate() {
                let at = |error: WriteError| BatchError { position, error };
                let (outcome, delegation) = apply(txn, admin, op, now).map_err(at)?;
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

    /// Whether `admin` holds `permission` on `record` (its own `HS_ADMIN` values or the prefix
    /// records above it), as committed now.
    pub fn may(&self, admin: &Admin, record: &Record, permission: Permission) -> Result<bool, WriteError> {
        allowed(&self.registry.snapshot()?, admin, record, permission)
    }
}

impl From<RegistryError> for BatchError {
    fn from(e: RegistryError) -> Self {
        BatchError { position: 0, error: e.into() }
    }
}

/// Decides and applies one operation inside `txn`; returns what it did and, when it changed a
/// prefix's delegation, that change.
fn apply(
    txn: &mut WriteTxn<'_>,
    admin: &Admin,
    op: &Op,
    now: i64,
) -> Result<(Applied, Option<Delegation>), WriteError> {
    match op {
        Op::Put { id, values, options } => {
            let Some(old) = txn.get(id.key().as_bytes())? else {
                check_create(txn, admin, id)?;
                let record = Record::new(id, stamp(values.clone(), now))?;
                let applied = txn.put(&record, true)?;
                return Ok((applied, delegation_change(None, Some(&record))));
            };
            if options.no_overwrite {
                return Err(WriteError::AlreadyExists { identifier: old.identifier });
            }
            let new_values = merge(&old, values.clone(), options.only_indexes.as_deref(), now);
            for (permission, action) in required_permissions(&old, &new_values) {
                check(txn, admin, &old, permission, action)?;
            }
            // Matching ignores case: the record keeps the case it was registered with.
            let record = Record::new(&stored_id(&old)?, new_values)?;
            let applied = txn.put(&record, false)?;
            Ok((applied, delegation_change(Some(&old), Some(&record))))
        }
        Op::Delete { id, indexes } => {
            let old =
                txn.get(id.key().as_bytes())?.ok_or_else(|| WriteError::NotFound { identifier: id.to_string() })?;
            let Some(indexes) = indexes else {
                check_delete(txn, admin, &old)?;
                txn.delete(id.key().as_bytes())?;
                return Ok((Applied::Deleted, delegation_change(Some(&old), None)));
            };
            let missing: Vec<u32> =
                indexes.iter().copied().filter(|i| !old.values.iter().any(|v| v.index == *i)).collect();
            if !missing.is_empty() {
                return Err(WriteError::ValuesNotFound { identifier: old.identifier, indexes: missing });
            }
            let kept: Vec<Value> = old.values.iter().filter(|v| !indexes.contains(&v.index)).cloned().collect();
            for (permission, action) in required_permissions(&old, &kept) {
                check(txn, admin, &old, permission, action)?;
            }
            let record = Record { identifier: old.identifier.clone(), values: kept };
            let applied = txn.put(&record, false)?;
            Ok((applied, delegation_change(Some(&old), Some(&record))))
        }
    }
}

/// The identifier of a stored record (validated when it was written).
fn stored_id(record: &Record) -> Result<Identifier, WriteError> {
    Identifier::parse(&record.identifier).map_err(|e| {
        WriteError::Registry(RegistryError::Corrupt {
            key: record.identifier.clone(),
            source: RecordError::Corrupt { reason: e.to_string() },
        })
    })
}

/// The delegation a write from `old` to `new` changes: a prefix record whose `HS_SITE` values
/// differ.
fn delegation_change(old: Option<&Record>, new: Option<&Record>) -> Option<Delegation> {
    let record = new.or(old)?;
    let id = Identifier::parse(&record.identifier).ok()?;
    let prefix = auth::prefix_of_record(&id)?;
    let sites = |r: Option<&Record>| -> Vec<Vec<u8>> {
        r.map_or_else(Vec::new, |r| {
            r.values.iter().filter(|v| v.is_type(types::SITE)).map(|v| v.data.clone()).collect()
        })
    };
    let after = sites(new);
    (sites(old) != after)
        .then(|| Delegation { prefix: prefix.to_owned(), record: new.filter(|_| !after.is_empty()).cloned() })
}

/// Creating an identifier needs AddHandle on its prefix or a parent; creating a prefix
/// record (`0.NA/88.100.1`) needs AddPrefix on the parent prefix (`88.100`) or above.
fn check_create(reader: &impl Reader, admin: &Admin, id: &Identifier) -> Result<(), WriteError> {
    if let Some(prefix) = auth::prefix_of_record(id) {
        crate::identifier::check_prefix(prefix)
            .map_err(|source| WriteError::InvalidPrefix { record: id.to_string(), source })?;
    }
    let (scope, permission, action) = match auth::prefix_of_record(id) {
        Some(prefix) => (prefix.rsplit_once('.').map(|(parent, _)| parent), Permission::AddPrefix, "create the prefix"),
        None => (Some(id.prefix()), Permission::AddHandle, "create"),
    };
    let allowed = match scope {
        Some(scope) => admin.may_under(reader, scope, permission)?,
        // A top-level prefix (`0.NA/88`) has no parent to grant it: only the node creates one.
        None => admin.is_node(),
    };
    if allowed { Ok(()) } else { Err(forbidden(admin, action, id.as_str())) }
}

fn check_delete(reader: &impl Reader, admin: &Admin, old: &Record) -> Result<(), WriteError> {
    let id = stored_id(old)?;
    let parent = auth::prefix_of_record(&id).and_then(|p| p.rsplit_once('.').map(|(parent, _)| parent));
    let under = match parent {
        Some(parent) => admin.may_under(reader, parent, Permission::DeletePrefix)?,
        None => false,
    };
    if under || allowed(reader, admin, old, Permission::DeleteHandle)? {
        Ok(())
    } else {
        Err(forbidden(admin, "delete", &old.identifier))
    }
}

fn check(
    reader: &impl Reader,
    admin: &Admin,
    old: &Record,
    permission: Permission,
    action: &'static str,
) -> Result<(), WriteError> {
    if allowed(reader, admin, old, permission)? { Ok(()) } else { Err(forbidden(admin, action, &old.identifier)) }
}

/// A right on an existing record comes from its own HS_ADMIN values, or from the prefix
/// records above it: an operator who administers `88.100` administers what lies under it.
fn allowed(reader: &impl Reader, admin: &Admin, old: &Record, permission: Permission) -> Result<bool, WriteError> {
    if admin.may(reader, old, permission)? {
        return Ok(true);
    }
    let id = stored_id(old)?;
    let scope = auth::prefix_of_record(&id).map_or(Some(id.prefix()), |p| p.rsplit_once('.').map(|(parent, _)| parent));
    match scope {
        Some(scope) => Ok(admin.may_under(reader, scope, permission)?),
        None => Ok(false),
    }
}

fn forbidden(admin: &Admin, action: &'static str, identifier: &str) -> WriteError {
    WriteError::Forbidden { user: admin.user(), action, identifier: identifier.to_owned() }
}

/// Values written now carry the time of the write, as a Handle server stamps them.
fn stamp(mut values: Vec<Value>, now: i64) -> Vec<Value> {
    for v in &mut values {
        v.timestamp = now;
    }
    values
}

/// The values after a PUT: all of `new` (a replacement), or with `only` the old values with
/// those indexes replaced by or added from `new`.
fn merge(old: &Record, new: Vec<Value>, only: Option<&[u32]>, now: i64) -> Vec<Value> {
    let Some(only) = only else { return stamp(new, now) };
    let only: HashSet<u32> = only.iter().copied().collect();
    let mut by_index: BTreeMap<u32, Value> = old.values.iter().map(|v| (v.index, v.clone())).collect();
    for v in stamp(new, now).into_iter().filter(|v| only.contains(&v.index)) {
        by_index.insert(v.index, v);
    }
    by_index.into_values().collect()
}

/// The permissions a change from `old` to `new` values needs, with what to call the action.
fn required_permissions(old: &Record, new: &[Value]) -> Vec<(Permission, &'static str)> {
    let mut needed = Vec::new();
    let mut add = |p: Permission, action: &'static str| {
        if !needed.iter().any(|(q, _)| *q == p) {
            needed.push((p, action));
        }
    };
    let admin = |v: &Value| v.is_type(types::ADMIN);
    for v in new {
        match old.values.iter().find(|o| o.index == v.index) {
            None if admin(v) => add(Permission::AddAdmin, "add an HS_ADMIN value to"),
            None => add(Permission::AddValue, "add values to"),
            Some(o) if (admin(o) || admin(v)) && changed(o, v) => {
                add(Permission::ModifyAdmin, "modify the HS_ADMIN values of")
            }
            Some(o) if changed(o, v) => add(Permission::ModifyValue, "modify values of"),
            Some(_) => {}
        }
    }
    for o in &old.values {
        if !new.iter().any(|v| v.index == o.index) {
            if admin(o) {
                add(Permission::RemoveAdmin, "remove an HS_ADMIN value from");
            } else {
                add(Permission::RemoveValue, "remove values from");
            }
        }
    }
    // A write that changes nothing still stamps the values: it is a modification too, and no
    // one without rights on a record may touch it.
    if needed.is_empty() {
        needed.push((Permission::ModifyValue, "modify values of"));
    }
    needed
}

/// Whether a write turns `old` into something else (the timestamp aside: every write sets it).
fn changed(old: &Value, new: &Value) -> bool {
    old.kind != new.kind
        || old.data != new.data
        || old.ttl != new.ttl
        || old.permissions != new.permissions
        || old.references != new.references
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ALL_PERMISSIONS, Credentials, prefix_admin_values};
    use crate::record::json::encode_admin;

    /// A node whose registry holds the operators of 88.100 and 88.200 (secret "s") and an
    /// identifier 88.100/X administered by 88.100's operator.
    fn node() -> (tempfile::TempDir, Node) {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::new(Arc::new(Registry::open(dir.path()).unwrap()), vec![String::new()]);
        for prefix in ["88.100", "88.200"] {
            let id = Identifier::parse(&format!("0.NA/{prefix}")).unwrap();
            let values = prefix_admin_values((300, id.as_str()), Some("s"), 0);
            node.put(&Admin::node(), &id, values, &PutOptions::default()).unwrap();
        }
        let admin = Value::new(100, types::ADMIN, encode_admin(ALL_PERMISSIONS, "0.NA/88.100", 300), 0);
        let url = Value::new(1, "URL", b"https://example.com/x".to_vec(), 0);
        let id = Identifier::parse("88.100/X").unwrap();
        node.put(&Admin::node(), &id, vec![admin, url], &PutOptions::default()).unwrap();
        (dir, node)
    }

    fn login(node: &Node, prefix: &str) -> Admin {
        let admin = Identifier::parse(&format!("0.NA/{prefix}")).unwrap();
        node.authenticate(&Credentials { index: 300, admin, secret: "s".into() }, None).unwrap()
    }

    fn current(node: &Node) -> Vec<Value> {
        node.registry.get(&Identifier::parse("88.100/X").unwrap()).unwrap().unwrap().values
    }

    #[test]
    fn a_write_that_changes_nothing_still_needs_rights_on_the_record() {
        let (_dir, node) = node();
        let (stranger, owner) = (login(&node, "88.200"), login(&node, "88.100"));
        let id = Identifier::parse("88.100/X").unwrap();
        let err = node.put(&stranger, &id, current(&node), &PutOptions::default()).unwrap_err();
        assert!(matches!(err, WriteError::Forbidden { .. }), "{err}");
        node.put(&owner, &id, current(&node), &PutOptions::default()).unwrap();
    }

    #[test]
    fn every_change_to_an_hs_admin_value_needs_modify_admin() {
        let (_dir, node) = node();
        let id = Identifier::parse("88.100/X").unwrap();
        // An administrator that may modify values but not HS_ADMIN values: 88.200's operator,
        // given ModifyValue on the record by its owner.
        let grant = Value::new(101, types::ADMIN, encode_admin(Permission::ModifyValue as u16, "0.NA/88.200", 300), 0);
        let mut values = current(&node);
        values.push(grant);
        node.put(&Admin::node(), &id, values, &PutOptions::default()).unwrap();
        let editor = login(&node, "88.200");
        let mut values = current(&node);
        values[0].ttl = crate::record::Ttl::Relative(1);
        let err = node.put(&editor, &id, values, &PutOptions::default()).unwrap_err();
        assert!(err.to_string().contains("HS_ADMIN"), "a TTL change of HS_ADMIN is refused: {err}");
        let mut values = current(&node);
        values[1].data = b"https://example.com/y".to_vec();
        node.put(&editor, &id, values, &PutOptions::default()).unwrap();
    }

    #[test]
    fn prefixes_that_share_digits_are_not_parents() {
        let (_dir, node) = node();
        // 88.10 and 88.1000 are beside 88.100, not above or below it.
        let stranger = login(&node, "88.100");
        for handle in ["88.10/Y", "88.1000/Y", "88.1/Y"] {
            let id = Identifier::parse(handle).unwrap();
            let err = node.put(&stranger, &id, vec![], &PutOptions::default()).unwrap_err();
            assert!(matches!(err, WriteError::Forbidden { .. }), "{handle}: {err}");
        }
        node.put(&stranger, &Identifier::parse("88.100/Y").unwrap(), vec![], &PutOptions::default()).unwrap();
        node.put(&stranger, &Identifier::parse("88.100.5/Y").unwrap(), vec![], &PutOptions::default()).unwrap();
    }

    #[test]
    fn a_batch_decides_each_operation_as_a_put_would_and_in_order() {
        let (_dir, node) = node();
        let stranger = login(&node, "88.200");
        let id = Identifier::parse("88.100/X").unwrap();
        let put = |values| Op::Put { id: id.clone(), values, options: PutOptions::default() };
        // The same refused change, alone and inside a batch after an allowed write.
        let alone = node.put(&stranger, &id, current(&node), &PutOptions::default()).unwrap_err().to_string();
        let own =
            Op::Put { id: Identifier::parse("88.200/OK").unwrap(), values: vec![], options: PutOptions::default() };
        let err = node.batch(&stranger, vec![own, put(current(&node))]).unwrap_err();
        assert_eq!((err.position, err.error.to_string()), (1, alone));
        assert!(node.registry.get(&Identifier::parse("88.200/OK").unwrap()).unwrap().is_none(), "all or nothing");
        // A stranger cannot grant itself a right and use it in the same batch; once the owner
        // grants it, the same write passes.
        let mut granted = current(&node);
        granted.push(Value::new(
            102,
            types::ADMIN,
            encode_admin(Permission::ModifyValue as u16, "0.NA/88.200", 300),
            0,
        ));
        let mut edited = granted.clone();
        edited[1].data = b"https://example.com/z".to_vec();
        let err = node.batch(&stranger, vec![put(granted.clone()), put(edited.clone())]).unwrap_err();
        assert_eq!(err.position, 0, "the stranger cannot grant itself rights: {}", err.error);
        node.batch(&Admin::node(), vec![put(granted)]).unwrap();
        node.batch(&stranger, vec![put(edited)]).unwrap();
    }

    #[test]
    fn a_prefix_record_must_name_a_prefix() {
        let (_dir, node) = node();
        for handle in ["0.NA/88.100.x_y", "0.NA/88.100..5", "0.NA/"] {
            let Ok(id) = Identifier::parse(handle) else { continue };
            let err = node.put(&Admin::node(), &id, vec![], &PutOptions::default()).unwrap_err();
            assert!(matches!(err, WriteError::InvalidPrefix { .. }), "{handle}: {err}");
        }
        node.put(&Admin::node(), &Identifier::parse("0.NA/88.100.5").unwrap(), vec![], &PutOptions::default()).unwrap();
    }
}
