//! Reads: resolving an identifier and listing a prefix, with the rights and filters every
//! protocol applies alike.
//!
//! Anyone may resolve; an administrator with ReadValue on the record (or the prefix records
//! above it) sees its private values too, unless it asks for public ones only. `HS_SECKEY`
//! values never leave the node. An identifier at or below a delegation inside a zone this node
//! serves is answered with the referral, as DNS answers it, even when a stale copy is stored
//! here. Listings need ListHandles on the prefix or above.

use super::{Node, rules};
use crate::auth::{Admin, Permission};
use crate::code::ResponseCode;
use crate::identifier::Identifier;
use crate::record::{Record, types};
use crate::registry::RegistryError;

/// Which values of a record a resolution returns.
#[derive(Debug, Clone, Default)]
pub struct ReadFilter {
    /// Only values of these types (ignoring ASCII case); all when empty.
    pub types: Vec<String>,
    /// Only values at these indexes; all when empty.
    pub indexes: Vec<u32>,
    /// Only public values, even for an administrator who may read the others.
    pub public_only: bool,
}

impl ReadFilter {
    /// Whether the filter asks for some values only (by type or index).
    fn narrows(&self) -> bool {
        !self.types.is_empty() || !self.indexes.is_empty()
    }
}

/// What resolving an identifier gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The identifier is served here.
    Found(Found),
    /// The identifier lies at or below a delegation: this is the delegation record, whose
    /// `HS_SITE` values say which node serves it.
    Referral(Record),
}

/// A record as the caller may see it: only the values its rights and filter let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub record: Record,
    /// The filter asked for some values only.
    narrowed: bool,
    /// Values the filter selects were left out because the caller may not read them (secret
    /// keys, never returned, do not count).
    pub withheld: bool,
}

impl Found {
    /// Success, or ValuesNotFound when a filter by type or index matched no value.
    pub fn code(&self) -> ResponseCode {
        if self.narrowed && self.record.values.is_empty() {
            ResponseCode::ValuesNotFound
        } else {
            ResponseCode::Success
        }
    }
}

/// Where a listing page starts and how long it is.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Pages of `size` to skip (bounded by [`crate::registry::MAX_LIST_OFFSET`]).
    pub number: usize,
    pub size: usize,
    /// Go on after this name instead (identifier listings only): one seek however deep.
    pub after: Option<String>,
}

/// One page of names under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub names: Vec<String>,
    /// How many names the prefix holds in all, where that is known (identifier listings).
    pub total: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{identifier} is not registered")]
    NotFound { identifier: String },
    #[error("{user} may not list {prefix}")]
    MayNotList { user: String, prefix: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl ReadError {
    /// The Handle response code of this answer.
    pub fn code(&self) -> ResponseCode {
        match self {
            Self::NotFound { .. } => ResponseCode::HandleNotFound,
            Self::MayNotList { .. } => ResponseCode::InsufficientPermissions,
            Self::Registry(_) => ResponseCode::Error,
        }
    }
}

impl Node {
    /// Resolves `id` for `principal` (`None`: anonymous): the referral when another node holds
    /// it, else the record with the values the caller may see and `filter` selects.
    pub fn resolve(
        &self,
        principal: Option<&Admin>,
        id: &Identifier,
        filter: &ReadFilter,
    ) -> Result<Resolution, ReadError> {
        let snapshot = self.registry.snapshot()?;
        if let Some(delegation) = self.zones.load().delegation_of(&snapshot, id)? {
            return Ok(Resolution::Referral(delegation));
        }
        let mut record =
            snapshot.get(id.key().as_bytes())?.ok_or_else(|| ReadError::NotFound { identifier: id.to_string() })?;
        let private_too = match principal {
            Some(admin) if !filter.public_only => rules::allowed(&snapshot, admin, &record, Permission::ReadValue)?,
            _ => false,
        };
        let mut withheld = false;
        record.values.retain(|v| {
            let selected = !v.is_type(types::SECRET_KEY)
                && (filter.types.is_empty() || filter.types.iter().any(|t| t.eq_ignore_ascii_case(&v.kind)))
                && (filter.indexes.is_empty() || filter.indexes.contains(&v.index));
            let readable = v.is_public() || private_too;
            withheld |= selected && !readable;
            selected && readable
        });
        Ok(Resolution::Found(Found { record, narrowed: filter.narrows(), withheld }))
    }

    /// A page of the identifiers registered under `prefix` (not its sub-prefixes) with their
    /// total, for an administrator with ListHandles on `prefix` or above.
    pub fn list(&self, admin: &Admin, prefix: &str, page: &Page) -> Result<Listing, ReadError> {
        self.check_list(admin, prefix)?;
        let skip = page.number.saturating_mul(page.size);
        let names = self.registry.list(prefix, page.after.as_deref(), skip, page.size)?;
        Ok(Listing { names, total: Some(self.registry.count_under(prefix)?) })
    }

    /// A page of the prefixes derived from `prefix` that have a prefix record (Handle's
    /// LIST_DERIVED_PREFIXES), for an administrator with ListHandles on `prefix` or above.
    pub fn list_prefixes(&self, admin: &Admin, prefix: &str, page: &Page) -> Result<Listing, ReadError> {
        self.check_list(admin, prefix)?;
        Ok(Listing { names: self.registry.list_derived(prefix, page.number, page.size)?, total: None })
    }

    /// Refuses (and logs on the `audit` target) a listing `admin` may not see.
    fn check_list(&self, admin: &Admin, prefix: &str) -> Result<(), ReadError> {
        if admin.may_under(&self.registry.snapshot()?, prefix, Permission::ListHandles)? {
            return Ok(());
        }
        tracing::warn!(target: "audit", user = %admin.user(), op = "list", prefix, "refused");
        Err(ReadError::MayNotList { user: admin.user(), prefix: prefix.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::super::PutOptions;
    use super::super::testing::login;
    use super::*;
    use crate::auth::ALL_PERMISSIONS;
    use crate::record::admin::encode_admin;
    use crate::record::site::Site;
    use crate::record::{Permissions, Value};

    /// `88.100/X` holds a public URL, a private note, a secret key and its HS_ADMIN.
    fn node() -> (tempfile::TempDir, Node) {
        let mut note = Value::new(2, "NOTE", "private", 0);
        note.permissions = Permissions::new(true, true, false, false);
        let key = Value::new(300, types::SECRET_KEY, "k", 0);
        let admin = Value::new(100, types::ADMIN, encode_admin(ALL_PERMISSIONS, "0.NA/88.100", 300), 0);
        super::super::testing::node_with(vec![Value::new(1, "URL", "https://x", 0), note, key, admin])
    }

    fn indexes(node: &Node, principal: Option<&Admin>, filter: &ReadFilter) -> (Vec<u32>, ResponseCode) {
        let id = Identifier::parse("88.100/x").unwrap();
        match node.resolve(principal, &id, filter).unwrap() {
            Resolution::Found(found) => (found.record.values.iter().map(|v| v.index).collect(), found.code()),
            Resolution::Referral(r) => panic!("referred to {}", r.identifier),
        }
    }

    #[test]
    fn callers_see_what_their_rights_and_filter_allow_and_never_a_secret_key() {
        let (_dir, node) = node();
        let (owner, stranger) = (login(&node, "88.100"), login(&node, "88.200"));
        let all = ReadFilter::default();
        assert_eq!(indexes(&node, None, &all), (vec![1, 100], ResponseCode::Success));
        assert_eq!(indexes(&node, Some(&stranger), &all).0, [1, 100]);
        assert_eq!(indexes(&node, Some(&owner), &all).0, [1, 2, 100], "private values, no secret key");
        let public = ReadFilter { public_only: true, ..ReadFilter::default() };
        assert_eq!(indexes(&node, Some(&owner), &public).0, [1, 100]);
        let by_type = ReadFilter { types: vec!["url".into()], ..ReadFilter::default() };
        assert_eq!(indexes(&node, None, &by_type), (vec![1], ResponseCode::Success));
        let secret = ReadFilter { indexes: vec![300], ..ReadFilter::default() };
        assert_eq!(indexes(&node, Some(&owner), &secret), (vec![], ResponseCode::ValuesNotFound));
        let missing = node.resolve(None, &Identifier::parse("88.100/none").unwrap(), &all).unwrap_err();
        assert_eq!(
            (missing.to_string().as_str(), missing.code()),
            ("88.100/none is not registered", ResponseCode::HandleNotFound)
        );
    }

    #[test]
    fn below_a_delegation_the_answer_is_the_referral_even_with_a_stale_copy() {
        let (_dir, node) = node();
        let stale = Identifier::parse("88.100.5/OLD").unwrap();
        node.put(&Admin::node(), &stale, vec![Value::new(1, "URL", "https://stale", 0)], &PutOptions::default())
            .unwrap();
        let site: Site = serde_json::from_str(r#"{"servers":[{"serverId":1,"address":"192.0.2.1"}]}"#).unwrap();
        let delegation = Identifier::prefix_record("88.100.5").unwrap();
        let sites = vec![Value::new(1, types::SITE, site.encode(), 0)];
        node.put(&Admin::node(), &delegation, sites, &PutOptions::default()).unwrap();
        for id in ["88.100.5/OLD", "88.100.5.1/NEW", "0.NA/88.100.5.1"] {
            let resolution = node.resolve(None, &Identifier::parse(id).unwrap(), &ReadFilter::default()).unwrap();
            let Resolution::Referral(record) = resolution else { panic!("{id}: {resolution:?}") };
            assert_eq!(record.identifier, "0.NA/88.100.5", "{id}");
        }
        // The delegation record itself and names beside it are answered here.
        for id in ["0.NA/88.100.5", "88.100/X"] {
            let resolution = node.resolve(None, &Identifier::parse(id).unwrap(), &ReadFilter::default()).unwrap();
            assert!(matches!(resolution, Resolution::Found(_)), "{id}: {resolution:?}");
        }
    }

    #[test]
    fn listing_needs_list_handles_on_the_prefix() {
        let (_dir, node) = node();
        let (owner, stranger) = (login(&node, "88.100"), login(&node, "88.200"));
        let page = Page { number: 0, size: 10, after: None };
        let listing = node.list(&owner, "88.100", &page).unwrap();
        assert_eq!(listing, Listing { names: vec!["88.100/X".into()], total: Some(1) });
        let err = node.list(&stranger, "88.100", &page).unwrap_err();
        assert_eq!(err.code(), ResponseCode::InsufficientPermissions);
        assert_eq!(err.to_string(), "300:0.NA/88.200 may not list 88.100");
        assert_eq!(node.list_prefixes(&Admin::node(), "88", &page).unwrap().names, ["88.100", "88.200"]);
    }
}
