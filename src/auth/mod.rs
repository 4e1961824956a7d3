//! Authentication and authorization, as Handle.Net does them, independent of any protocol.
//!
//! An administrator is a value reference `index:identifier` (`300:0.NA/88.100`). Its secret is
//! checked against the `HS_SECKEY` value at that index, which the node stores only as a salted
//! Argon2id hash (see [`crate::secret`]). What an administrator may do comes
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

mod authenticator;

use crate::code::ResponseCode;
use crate::identifier::{Identifier, parent_prefix, prefix_record_key};
use crate::record::admin::{decode_admin, decode_vlist};
use crate::record::{Record, Value, types};
use crate::registry::{Reader, RegistryError};

pub use self::authenticator::{Authenticator, client_of};

/// 5: how deep `HS_VLIST` groups may nest before a check gives up (cycles end there too).
const MAX_GROUP_DEPTH: usize = 5;

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

impl AuthError {
    /// The Handle response code of this refusal.
    pub fn code(&self) -> ResponseCode {
        match self {
            Self::BadUser => ResponseCode::InvalidAdmin,
            Self::Failed { .. } | Self::Throttled { .. } => ResponseCode::AuthenticationFailed,
            Self::Busy => ResponseCode::ServerTooBusy,
            Self::Registry(_) => ResponseCode::Error,
        }
    }
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

impl Admin {
    /// The administrator `index:identifier`, once its secret passed.
    fn checked(index: u32, identifier: &Identifier) -> Self {
        Self { key: identifier.key(), index, identifier: identifier.to_string(), trusted: false }
    }

    /// The administrator `index:identifier` as if its secret had passed, for tests of what
    /// follows authentication.
    #[cfg(test)]
    pub(crate) fn for_tests(index: u32, identifier: &str) -> Self {
        Self::checked(index, &Identifier::parse(identifier).expect("a valid identifier"))
    }

    /// The node itself: what `idnode admin init`, the demo loader and tests write as. It holds
    /// every right and exists only in process; no request can become it.
    pub fn node() -> Self {
        Self { key: String::new(), index: 0, identifier: "the node".into(), trusted: true }
    }

    /// Whether this is the node's own principal ([`Admin::node`]).
    pub fn is_node(&self) -> bool {
        self.trusted
    }

    /// The administrator's identifier in registry key form (ASCII lower case), whatever its index.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How logs and messages name this administrator: `index:identifier`, or "the node".
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

    /// Whether this administrator is one of `admins` (`(index, identifier)`, as a node's
    /// configuration names its server administrators) or a member of one of those groups.
    pub fn is_among<R: Reader + ?Sized>(&self, snapshot: &R, admins: &[(u32, String)]) -> Result<bool, RegistryError> {
        if self.trusted {
            return Ok(true);
        }
        for (index, handle) in admins {
            if self.is_or_belongs_to(snapshot, handle, *index, MAX_GROUP_DEPTH)? {
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
            match parent_prefix(prefix) {
                Some(parent) => prefix = parent,
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
        for (member, member_index) in decode_vlist(&group.data).unwrap_or_default() {
            if self.is_or_belongs_to(snapshot, &member, member_index, depth - 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The values of a prefix record `0.NA/<prefix>` that give `admin` (`index:identifier`) every
/// right under the prefix: `HS_ADMIN` at index 100 naming it and, for an administrator that is
/// the record itself (`300:0.NA/<prefix>`), its secret at 300, readable by no one. The secret
/// is plain: the node seals it when the values are written.
pub fn prefix_admin_values(admin: (u32, &str), secret: Option<&str>, now: i64) -> Vec<Value> {
    use crate::record::Permissions;
    let (index, identifier) = admin;
    let mut values = vec![Value::new(
        100,
        types::ADMIN,
        crate::record::admin::encode_admin(ALL_PERMISSIONS, identifier, index),
        now,
    )];
    if let Some(secret) = secret {
        let mut key = Value::new(index, types::SECRET_KEY, secret, now);
        key.permissions = Permissions::new(true, true, false, false);
        values.push(key);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::admin::{encode_admin, encode_vlist};
    use crate::registry::Registry;

    use crate::secret::testing::sealed_record as record;

    fn admin_value(bits: u16, handle: &str, index: u32) -> Value {
        Value::new(100, types::ADMIN, encode_admin(bits, handle, index), 0)
    }

    #[test]
    fn rights_come_from_hs_admin_directly_via_groups_and_prefix_parents() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        let add = Permission::AddHandle as u16;
        reg.transact(|txn| {
            [
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
            ]
            .iter()
            .try_for_each(|r| txn.put(r, false).map(drop))
        })
        .unwrap_or_else(|e: RegistryError| panic!("{e}"));
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
