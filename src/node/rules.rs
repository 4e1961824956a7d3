//! The permission rules: what a write needs, decided inside its write transaction.
//!
//! [`apply`] is the one function that decides and performs an operation; the node core calls
//! it for every operation of every write, single or batched, against what the transaction sees
//! (the batch's own earlier changes included), so a put and the same put inside a batch are
//! decided alike. Rights come from `HS_ADMIN` values (see [`crate::auth`]): on the record itself
//! for changes to it, on the prefix records above it for creating and deleting.

use std::collections::{BTreeMap, HashSet};

use super::{Delegation, Op, Quotas, ValueChange, WriteError};
use crate::auth::{Admin, Permission};
use crate::identifier::{Identifier, check_prefix, parent_prefix};
use crate::record::{Record, Value, types};
use crate::registry::{Applied, Reader, RegistryError, WriteTxn};

/// Decides and applies one operation inside `txn`; returns what it did and, when it changed a
/// prefix's delegation, that change.
pub(super) fn apply(
    txn: &mut WriteTxn<'_>,
    admin: &Admin,
    op: &Op,
    quotas: &Quotas,
    now: i64,
) -> Result<(Applied, Option<Delegation>), WriteError> {
    match op {
        Op::Put { id, values, options } => {
            let Some(old) = txn.get(id.key().as_bytes())? else {
                if options.change.is_some() {
                    return Err(WriteError::NotFound { identifier: id.to_string() });
                }
                check_create(txn, admin, id)?;
                check_quota(txn, admin, id, quotas)?;
                let record = Record::new(id, stamp(values.clone(), now))?;
                let applied = txn.put(&record, true)?;
                return Ok((applied, delegation_change(None, Some(&record))));
            };
            if options.no_overwrite {
                return Err(WriteError::AlreadyExists { identifier: old.identifier.to_string() });
            }
            let given: Vec<u32> = values.iter().map(|v| v.index).collect();
            let only = match options.change {
                Some(change) => {
                    check_indexes(&old, &given, change)?;
                    Some(given.as_slice())
                }
                None => options.only_indexes.as_deref(),
            };
            let new_values = merge(&old, values.clone(), only, now);
            for (permission, action) in required_permissions(&old, &new_values) {
                check(txn, admin, &old, permission, action)?;
            }
            // Matching ignores case: the record keeps the case it was registered with.
            let record = Record::new(&old.identifier, new_values)?;
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
                return Err(WriteError::ValuesNotFound { identifier: old.identifier.to_string(), indexes: missing });
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

/// Refuses to add at an index that is taken, or to modify at one that is free.
fn check_indexes(old: &Record, indexes: &[u32], change: ValueChange) -> Result<(), WriteError> {
    let taken = |i: &u32| old.values.iter().any(|v| v.index == *i);
    let identifier = || old.identifier.to_string();
    match change {
        ValueChange::Add => {
            let clash: Vec<u32> = indexes.iter().copied().filter(taken).collect();
            if clash.is_empty() {
                Ok(())
            } else {
                Err(WriteError::ValuesExist { identifier: identifier(), indexes: clash })
            }
        }
        ValueChange::Modify => {
            let missing: Vec<u32> = indexes.iter().copied().filter(|i| !taken(i)).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(WriteError::ValuesNotFound { identifier: identifier(), indexes: missing })
            }
        }
    }
}

/// The delegation a write from `old` to `new` changes: a prefix record whose `HS_SITE` values
/// differ.
fn delegation_change(old: Option<&Record>, new: Option<&Record>) -> Option<Delegation> {
    let record = new.or(old)?;
    let prefix = record.identifier.record_prefix()?;
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
    if let Some(prefix) = id.record_prefix() {
        check_prefix(prefix).map_err(|source| WriteError::InvalidPrefix { record: id.to_string(), source })?;
    }
    let (scope, permission, action) = match id.record_prefix() {
        Some(prefix) => (parent_prefix(prefix), Permission::AddPrefix, "create the prefix"),
        None => (Some(id.prefix()), Permission::AddHandle, "create"),
    };
    let allowed = match scope {
        Some(scope) => admin.may_under(reader, scope, permission)?,
        // A top-level prefix (`0.NA/88`) has no parent to grant it: only the node creates one.
        None => admin.is_node(),
    };
    if allowed { Ok(()) } else { Err(forbidden(admin, action, id.as_str())) }
}

/// Creating an identifier needs room under its prefix's identifier quota; creating a prefix
/// record, room under its parent's prefix quota (both counted as this transaction sees them, so
/// a batch's earlier creates count). Replacing and deleting never meet a quota, nor does the
/// node's own principal.
fn check_quota(txn: &WriteTxn<'_>, admin: &Admin, id: &Identifier, quotas: &Quotas) -> Result<(), WriteError> {
    if admin.is_node() {
        return Ok(());
    }
    match id.record_prefix() {
        Some(prefix) => {
            let Some(parent) = parent_prefix(prefix) else { return Ok(()) };
            let limit = quotas.prefixes(parent);
            if limit > 0 && txn.count_derived(parent, limit)? >= limit {
                return Err(WriteError::QuotaPrefixes { prefix: parent.to_owned(), limit });
            }
        }
        None => {
            let limit = quotas.identifiers(id.prefix());
            if limit > 0 && txn.count_under(id.prefix())? >= limit {
                return Err(WriteError::QuotaIdentifiers { prefix: id.prefix().to_owned(), limit });
            }
        }
    }
    Ok(())
}

/// Deleting a record needs DeleteHandle on it (or the prefix records above it); deleting a
/// prefix record also passes with DeletePrefix on the parent prefix or above.
fn check_delete(reader: &impl Reader, admin: &Admin, old: &Record) -> Result<(), WriteError> {
    let parent = old.identifier.record_prefix().and_then(parent_prefix);
    let under = match parent {
        Some(parent) => admin.may_under(reader, parent, Permission::DeletePrefix)?,
        None => false,
    };
    if under || allowed(reader, admin, old, Permission::DeleteHandle)? {
        Ok(())
    } else {
        Err(forbidden(admin, "delete", old.identifier.as_str()))
    }
}

/// Refuses `action` unless `admin` holds `permission` on `old` (see [`allowed`]).
fn check(
    reader: &impl Reader,
    admin: &Admin,
    old: &Record,
    permission: Permission,
    action: &'static str,
) -> Result<(), WriteError> {
    if allowed(reader, admin, old, permission)? {
        Ok(())
    } else {
        Err(forbidden(admin, action, old.identifier.as_str()))
    }
}

/// A right on an existing record comes from its own HS_ADMIN values, or from the prefix
/// records above it: an operator who administers `88.100` administers what lies under it.
pub(super) fn allowed(
    reader: &impl Reader,
    admin: &Admin,
    old: &Record,
    permission: Permission,
) -> Result<bool, RegistryError> {
    if admin.may(reader, old, permission)? {
        return Ok(true);
    }
    let id = &old.identifier;
    let scope = id.record_prefix().map_or(Some(id.prefix()), parent_prefix);
    match scope {
        Some(scope) => admin.may_under(reader, scope, permission),
        None => Ok(false),
    }
}

/// The refusal of `action` on `identifier` to `admin`.
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
    use super::super::testing::login;
    use super::super::{Node, PutOptions, Quotas};
    use super::*;
    use crate::auth::ALL_PERMISSIONS;
    use crate::record::admin::encode_admin;

    /// `88.100/X` is administered by 88.100's operator.
    fn node() -> (tempfile::TempDir, Node) {
        let admin = Value::new(100, types::ADMIN, encode_admin(ALL_PERMISSIONS, "0.NA/88.100", 300), 0);
        let url = Value::new(1, "URL", b"https://example.com/x".to_vec(), 0);
        super::super::testing::node_with(vec![admin, url])
    }

    fn current(node: &Node) -> Vec<Value> {
        node.registry().get(&Identifier::parse("88.100/X").unwrap()).unwrap().unwrap().values
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
        assert!(node.registry().get(&Identifier::parse("88.200/OK").unwrap()).unwrap().is_none(), "all or nothing");
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

    //------------ Quotas ---------------------------------------------------------------------

    use super::super::quota::{Limits, Override};

    fn with_quotas(global: Limits, overrides: Vec<(&str, Override)>) -> (tempfile::TempDir, Node) {
        let (dir, node) = node();
        node.set_quotas(Quotas::new(global, overrides.into_iter().map(|(p, o)| (p.to_owned(), o))));
        (dir, node)
    }

    fn create(node: &Node, admin: &Admin, handle: &str) -> Result<Applied, WriteError> {
        node.put(admin, &Identifier::parse(handle).unwrap(), vec![], &PutOptions::default())
    }

    #[test]
    fn the_identifier_quota_refuses_the_next_create_but_never_a_replace_or_a_delete() {
        // 88.100 holds 88.100/X already: room for one more.
        let (_dir, node) = with_quotas(Limits { identifiers: 2, ..Limits::default() }, vec![]);
        let owner = login(&node, "88.100");
        create(&node, &owner, "88.100/Y").unwrap();
        let err = create(&node, &owner, "88.100/Z").unwrap_err();
        assert!(matches!(&err, WriteError::QuotaIdentifiers { prefix, limit: 2 } if prefix == "88.100"), "{err}");
        assert_eq!(err.code().number(), 604);
        assert!(err.to_string().contains("604"), "the message names the national code: {err}");
        assert_eq!(create(&node, &owner, "88.100/Y").unwrap(), Applied::Replaced, "a replace is never refused");
        assert_eq!(create(&node, &owner, "88.100/y").unwrap(), Applied::Replaced, "matched ignoring case");
        node.delete(&owner, &Identifier::parse("88.100/Y").unwrap(), None).unwrap();
        create(&node, &owner, "88.100/Z").unwrap();
        create(&node, &owner, "88.100.5/A").unwrap();
        create(&node, &Admin::node(), "88.100/W").unwrap();
        assert_eq!(node.registry().count_under("88.100").unwrap(), 3, "the node's own principal has no quota");
        // A batch is decided op by op on what the ones before it did.
        let op =
            |h: &str| Op::Put { id: Identifier::parse(h).unwrap(), values: vec![], options: PutOptions::default() };
        let delete = |h: &str| Op::Delete { id: Identifier::parse(h).unwrap(), indexes: None };
        // X, Z and W: over the limit, so room for one only after two deletes.
        let batch = vec![delete("88.100/W"), delete("88.100/Z"), op("88.100/V"), op("88.100/U")];
        let err = node.batch(&owner, batch).unwrap_err();
        assert_eq!((err.position, err.error.code().number()), (3, 604));
        assert!(node.registry().get(&Identifier::parse("88.100/W").unwrap()).unwrap().is_some(), "nothing applied");
        node.batch(&owner, vec![delete("88.100/W"), delete("88.100/Z"), op("88.100/V")]).unwrap();
        assert_eq!(node.registry().count_under("88.100").unwrap(), 2);
    }

    #[test]
    fn concurrent_creates_cannot_both_take_the_last_place() {
        let (_dir, node) = with_quotas(Limits { identifiers: 2, ..Limits::default() }, vec![]);
        let owner = login(&node, "88.100");
        let (node, owner) = (&node, &owner);
        let created: usize = std::thread::scope(|scope| {
            let tries: Vec<_> =
                (0..4).map(|i| scope.spawn(move || create(node, owner, &format!("88.100/T{i}")).is_ok())).collect();
            tries.into_iter().map(|t| usize::from(t.join().unwrap())).sum()
        });
        assert_eq!((created, node.registry().count_under("88.100").unwrap()), (1, 2));
    }

    #[test]
    fn the_prefix_quota_counts_derived_prefixes_one_level_down() {
        let lifted = Override { prefixes: Some(0), ..Override::default() };
        let (_dir, node) = with_quotas(Limits { prefixes: 1, ..Limits::default() }, vec![("88.200", lifted)]);
        let owner = login(&node, "88.100");
        create(&node, &owner, "0.NA/88.100.1").unwrap();
        let err = create(&node, &owner, "0.NA/88.100.2").unwrap_err();
        assert!(matches!(&err, WriteError::QuotaPrefixes { prefix, limit: 1 } if prefix == "88.100"), "{err}");
        assert_eq!(err.code().number(), 605);
        create(&node, &owner, "0.NA/88.100.1.1").unwrap();
        assert_eq!(create(&node, &owner, "0.NA/88.100.1").unwrap(), Applied::Replaced);
        create(&node, &owner, "88.100/more").unwrap();
        let other = login(&node, "88.200");
        create(&node, &other, "0.NA/88.200.1").unwrap();
        create(&node, &other, "0.NA/88.200.2").unwrap();
        node.delete(&owner, &Identifier::parse("0.NA/88.100.1").unwrap(), None).unwrap();
        create(&node, &owner, "0.NA/88.100.2").unwrap();
    }

    #[test]
    fn the_deepest_override_decides_a_create() {
        let deeper = Override { identifiers: Some(1), ..Override::default() };
        let (_dir, node) = with_quotas(Limits { identifiers: 100, ..Limits::default() }, vec![("88.100.7", deeper)]);
        let owner = login(&node, "88.100");
        create(&node, &owner, "88.100.7/A").unwrap();
        assert_eq!(create(&node, &owner, "88.100.7/B").unwrap_err().code().number(), 604);
        create(&node, &owner, "88.100.7.1/A").unwrap();
        let err = create(&node, &owner, "88.100.7.1/B").unwrap_err();
        assert!(matches!(&err, WriteError::QuotaIdentifiers { prefix, limit: 1 } if prefix == "88.100.7.1"), "{err}");
        create(&node, &owner, "88.100/B").unwrap();
    }
}
