//! The node's write path, shared by every protocol that writes (the HTTP API now, the Handle
//! protocol later).
//!
//! A write is authorized (see [`crate::auth`]), committed to the registry (durable when the
//! call returns), and only then are the cached DNS answers it affects dropped, so a query sent
//! after the acknowledgement sees the new data. Every write, allowed or refused, is logged on
//! the `audit` tracing target.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::auth::{self, Admin, Permission};
use crate::dns::Frontend;
use crate::identifier::Identifier;
use crate::record::{Record, RecordError, Value, unix_now};
use crate::registry::{Applied, Change, Registry, RegistryError, Snapshot, Update};

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
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// How a PUT treats an existing record.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Refuse to replace an existing identifier.
    pub no_overwrite: bool,
    /// Change only the values at these indexes, keeping the others.
    pub only_indexes: Option<Vec<u32>>,
}

/// One operation of a batch.
#[derive(Debug, Clone)]
pub enum BatchOp {
    Put { id: Identifier, values: Vec<Value>, overwrite: bool },
    Delete { id: Identifier },
}

#[derive(Debug, thiserror::Error)]
#[error("operation {position}: {error}")]
pub struct BatchError {
    pub position: usize,
    pub error: WriteError,
}

pub struct Node {
    registry: Arc<Registry>,
    dns: Arc<Frontend>,
    verified: auth::VerifiedSecrets,
}

impl Node {
    pub fn new(registry: Arc<Registry>, dns: Arc<Frontend>) -> Self {
        Self { registry, dns, verified: auth::VerifiedSecrets::default() }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn dns(&self) -> &Arc<Frontend> {
        &self.dns
    }

    /// For an identifier this node does not serve itself, the record of the prefix delegated to
    /// the node that does (its `HS_SITE` values say where), if any.
    pub fn delegation_of(&self, id: &Identifier) -> Result<Option<Record>, RegistryError> {
        let prefix = auth::prefix_of_record(id).map_or(id.prefix(), |p| p);
        let zone = self
            .dns
            .zone_prefixes()
            .into_iter()
            .filter(|z| z.is_empty() || prefix == *z || prefix.starts_with(&format!("{z}.")))
            .max_by_key(|z| z.len());
        match zone {
            Some(zone) => crate::site::delegation(&self.registry.snapshot()?, zone, prefix),
            None => Ok(None),
        }
    }

    /// Checks credentials against the registry (see [`auth::Credentials::authenticate`]).
    pub fn authenticate(&self, credentials: &auth::Credentials) -> Result<Admin, auth::AuthError> {
        credentials.authenticate(&self.registry, &self.verified)
    }

    /// Creates or replaces `id`; returns whether it was created.
    pub fn put(
        &self,
        admin: &Admin,
        id: &Identifier,
        values: Vec<Value>,
        options: &PutOptions,
    ) -> Result<Applied, WriteError> {
        let now = unix_now();
        let result = self.registry.update(&id.key(), |current| {
            let snapshot = self.registry.snapshot()?;
            let Some(old) = current else {
                self.check_create(admin, &snapshot, id)?;
                let mut record = Record::new(id, stamp(values, now))?;
                auth::seal_secrets(&mut record);
                return Ok((Update::Put(record), Applied::Created));
            };
            if options.no_overwrite {
                return Err(WriteError::AlreadyExists { identifier: old.identifier });
            }
            let new_values = merge(&old, values, options.only_indexes.as_deref(), now);
            for needed in required_permissions(&old, &new_values) {
                self.check(admin, &snapshot, &old, needed.0, needed.1)?;
            }
            // Matching ignores case: the record keeps the case it was registered with.
            let mut record =
                Record::new(&Identifier::parse(&old.identifier).expect("stored identifiers are valid"), new_values)?;
            auth::seal_secrets(&mut record);
            Ok((Update::Put(record), Applied::Replaced))
        });
        self.finish(admin, "put", id, result)
    }

    /// Deletes `id`, or with `indexes` only those values.
    pub fn delete(&self, admin: &Admin, id: &Identifier, indexes: Option<&[u32]>) -> Result<Applied, WriteError> {
        let result = self.registry.update(&id.key(), |current| {
            let old = current.ok_or_else(|| WriteError::NotFound { identifier: id.to_string() })?;
            let snapshot = self.registry.snapshot()?;
            let Some(indexes) = indexes else {
                self.check_delete(admin, &snapshot, &old)?;
                return Ok((Update::Delete, Applied::Deleted));
            };
            let missing: Vec<u32> =
                indexes.iter().copied().filter(|i| !old.values.iter().any(|v| v.index == *i)).collect();
            if !missing.is_empty() {
                return Err(WriteError::ValuesNotFound { identifier: old.identifier, indexes: missing });
            }
            let kept: Vec<Value> = old.values.iter().filter(|v| !indexes.contains(&v.index)).cloned().collect();
            for needed in required_permissions(&old, &kept) {
                self.check(admin, &snapshot, &old, needed.0, needed.1)?;
            }
            let record = Record { identifier: old.identifier.clone(), values: kept };
            Ok((Update::Put(record), Applied::Replaced))
        });
        self.finish(admin, "delete", id, result)
    }

    /// Applies up to 2000 operations in one transaction: all of them, or none.
    pub fn batch(&self, admin: &Admin, ops: Vec<BatchOp>) -> Result<Vec<Applied>, BatchError> {
        let now = unix_now();
        let snapshot = self.registry.snapshot().map_err(|e| BatchError { position: 0, error: e.into() })?;
        let mut changes = Vec::with_capacity(ops.len());
        let mut touched = Vec::with_capacity(ops.len());
        for (position, op) in ops.into_iter().enumerate() {
            let at = |error: WriteError| BatchError { position, error };
            match op {
                BatchOp::Put { id, values, overwrite } => {
                    let existing = snapshot.get(id.key().as_bytes()).map_err(|e| at(e.into()))?;
                    match &existing {
                        None => self.check_create(admin, &snapshot, &id).map_err(at)?,
                        Some(old) if overwrite => {
                            for needed in required_permissions(old, &values) {
                                self.check(admin, &snapshot, old, needed.0, needed.1).map_err(at)?;
                            }
                        }
                        Some(old) => return Err(at(WriteError::AlreadyExists { identifier: old.identifier.clone() })),
                    }
                    let record_id = existing.map_or_else(
                        || id.clone(),
                        |old| Identifier::parse(&old.identifier).expect("stored identifiers are valid"),
                    );
                    let mut record = Record::new(&record_id, stamp(values, now)).map_err(|e| at(e.into()))?;
                    auth::seal_secrets(&mut record);
                    changes.push(Change::Put { record, if_absent: !overwrite });
                    touched.push(id);
                }
                BatchOp::Delete { id } => {
                    let old = snapshot.get(id.key().as_bytes()).map_err(|e| at(e.into()))?;
                    let old = old.ok_or_else(|| at(WriteError::NotFound { identifier: id.to_string() }))?;
                    self.check_delete(admin, &snapshot, &old).map_err(at)?;
                    changes.push(Change::Delete { key: id.key() });
                    touched.push(id);
                }
            }
        }
        let count = changes.len();
        let applied = self.registry.apply(&changes).map_err(|e| match e {
            RegistryError::AlreadyExists { position, identifier } => {
                BatchError { position, error: WriteError::AlreadyExists { identifier } }
            }
            e => BatchError { position: 0, error: e.into() },
        });
        match &applied {
            Ok(_) => {
                for id in &touched {
                    self.dns.invalidate(id);
                }
                tracing::info!(target: "audit", user = %admin.user(), op = "batch", count, "applied");
            }
            Err(e) => tracing::warn!(target: "audit", user = %admin.user(), op = "batch", count, error = %e, "refused"),
        }
        applied
    }

    /// Logs the outcome and, after a durable write, drops the cached answers it changed.
    fn finish(
        &self,
        admin: &Admin,
        op: &'static str,
        id: &Identifier,
        result: Result<Applied, WriteError>,
    ) -> Result<Applied, WriteError> {
        match &result {
            Ok(applied) => {
                self.dns.invalidate(id);
                tracing::info!(target: "audit", user = %admin.user(), op, handle = %id, outcome = ?applied, "applied");
            }
            Err(e) => tracing::warn!(target: "audit", user = %admin.user(), op, handle = %id, error = %e, "refused"),
        }
        result
    }

    /// Creating an identifier needs AddHandle on its prefix or a parent; creating a prefix
    /// record (`0.NA/88.100.1`) needs AddPrefix on the parent prefix (`88.100`) or above.
    fn check_create(&self, admin: &Admin, snapshot: &Snapshot, id: &Identifier) -> Result<(), WriteError> {
        let (scope, permission, action) = match auth::prefix_of_record(id) {
            Some(prefix) => {
                (prefix.rsplit_once('.').map(|(parent, _)| parent), Permission::AddPrefix, "create the prefix")
            }
            None => (Some(id.prefix()), Permission::AddHandle, "create"),
        };
        match scope {
            Some(scope) if admin.may_under(snapshot, scope, permission)? => Ok(()),
            _ => Err(forbidden(admin, action, id.as_str())),
        }
    }

    fn check_delete(&self, admin: &Admin, snapshot: &Snapshot, old: &Record) -> Result<(), WriteError> {
        let id = Identifier::parse(&old.identifier).expect("stored identifiers are valid");
        let parent = auth::prefix_of_record(&id).and_then(|p| p.rsplit_once('.').map(|(parent, _)| parent));
        let under = match parent {
            Some(parent) => admin.may_under(snapshot, parent, Permission::DeletePrefix)?,
            None => false,
        };
        if under || self.allowed(admin, snapshot, old, Permission::DeleteHandle)? {
            Ok(())
        } else {
            Err(forbidden(admin, "delete", &old.identifier))
        }
    }

    fn check(
        &self,
        admin: &Admin,
        snapshot: &Snapshot,
        old: &Record,
        permission: Permission,
        action: &'static str,
    ) -> Result<(), WriteError> {
        if self.allowed(admin, snapshot, old, permission)? {
            Ok(())
        } else {
            Err(forbidden(admin, action, &old.identifier))
        }
    }

    /// Whether `admin` holds `permission` on `record` (see [`Node::allowed`]).
    pub fn may(&self, admin: &Admin, record: &Record, permission: Permission) -> Result<bool, RegistryError> {
        self.allowed(admin, &self.registry.snapshot()?, record, permission)
    }

    /// A right on an existing record comes from its own HS_ADMIN values, or from the prefix
    /// records above it: an operator who administers `88.100` administers what lies under it.
    fn allowed(
        &self,
        admin: &Admin,
        snapshot: &Snapshot,
        old: &Record,
        permission: Permission,
    ) -> Result<bool, RegistryError> {
        if admin.may(snapshot, old, permission)? {
            return Ok(true);
        }
        let id = Identifier::parse(&old.identifier).expect("stored identifiers are valid");
        let scope =
            auth::prefix_of_record(&id).map_or(Some(id.prefix()), |p| p.rsplit_once('.').map(|(parent, _)| parent));
        match scope {
            Some(scope) => admin.may_under(snapshot, scope, permission),
            None => Ok(false),
        }
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
    let admin = |v: &Value| v.kind == "HS_ADMIN";
    for v in new {
        match old.values.iter().find(|o| o.index == v.index) {
            None if admin(v) => add(Permission::AddAdmin, "add an HS_ADMIN value to"),
            None => add(Permission::AddValue, "add values to"),
            Some(o) if admin(o) || admin(v) => {
                if o.kind != v.kind || o.data != v.data || o.permissions != v.permissions {
                    add(Permission::ModifyAdmin, "modify the HS_ADMIN values of");
                }
            }
            Some(o)
                if o.kind != v.kind
                    || o.data != v.data
                    || o.ttl != v.ttl
                    || o.permissions != v.permissions
                    || o.references != v.references =>
            {
                add(Permission::ModifyValue, "modify values of");
            }
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
    needed
}
