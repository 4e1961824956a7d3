//! The zones a node serves and the delegations below them: which node holds an identifier.
//!
//! A node serves some prefixes itself (its zones; `""` is the whole namespace). Below a zone,
//! a prefix record with `HS_SITE` values (`0.NA/88.105`) delegates that prefix and everything
//! under it to another node: every protocol refers there instead of answering (DNS with NS and
//! glue at the cut, the HTTP API with a 300 and the sites). DNS zone selection, the HTTP API and
//! export all ask this one value, so they cannot disagree about where a name is served.
//!
//! The zones are the configuration's (`[dns] zones`) and the prefixes homed at run time with the
//! Handle protocol's HOME_NA by a server administrator (`[handle] server_admins`). Homed
//! prefixes are stored in the registry, so they survive a restart; homing or unhoming one swaps
//! the node's zones at once and tells every front end ([`super::Subscriber::zones_changed`]),
//! which drop their cached answers.

use super::Node;
use crate::auth::Admin;
use crate::code::ResponseCode;
use crate::identifier::{Identifier, check_prefix, is_at_or_below, parent_prefix, prefix_record_key};
use crate::record::{Record, types};
use crate::registry::{Reader, RegistryError};

/// The prefixes a node serves itself, `""` standing for the whole namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    /// Every served prefix: the configured ones, then the homed ones.
    prefixes: Vec<String>,
    /// How many of `prefixes` come from the configuration.
    configured: usize,
}

impl Zones {
    /// The zones of a node serving `prefixes` (validated by the configuration).
    pub fn new(prefixes: Vec<String>) -> Self {
        Self { configured: prefixes.len(), prefixes }
    }

    /// These zones' configured prefixes with `homed` beside them (those already served left out).
    pub fn with_homed(&self, homed: impl IntoIterator<Item = String>) -> Self {
        let mut prefixes = self.configured().to_vec();
        for prefix in homed {
            if !prefixes.iter().any(|p| p.eq_ignore_ascii_case(&prefix)) {
                prefixes.push(prefix);
            }
        }
        Self { prefixes, configured: self.configured }
    }

    /// Every served prefix, configured and homed.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// The prefixes the configuration serves.
    pub fn configured(&self) -> &[String] {
        &self.prefixes[..self.configured]
    }

    /// The prefixes homed at run time.
    pub fn homed(&self) -> &[String] {
        &self.prefixes[self.configured..]
    }

    /// The zone that holds `prefix`: the longest served prefix at or above it (`88.100` holds
    /// `88.100.5`, not `88.1000`), or `None` when the node does not serve it.
    pub fn holding(&self, prefix: &str) -> Option<&str> {
        self.prefixes.iter().filter(|z| is_at_or_below(prefix, z)).max_by_key(|z| z.len()).map(String::as_str)
    }

    /// The delegation record that `prefix` lies at or below, inside the zone holding it (see
    /// [`delegation`]); `None` when this node serves `prefix` itself or serves no zone holding it.
    pub fn delegation<R: Reader + ?Sized>(&self, reader: &R, prefix: &str) -> Result<Option<Record>, RegistryError> {
        match self.holding(prefix) {
            Some(zone) => delegation(reader, zone, prefix),
            None => Ok(None),
        }
    }

    /// The delegation record whose node holds `id`, if that is not this node. An identifier is
    /// held where its prefix is served, as DNS refers for it; a prefix record (`0.NA/88.105.7`)
    /// is held where its parent prefix (`88.105`) is served, since the parent's operator creates
    /// it there, so a delegation record (`0.NA/88.105`) stays readable at the delegating node.
    pub fn delegation_of<R: Reader + ?Sized>(
        &self,
        reader: &R,
        id: &Identifier,
    ) -> Result<Option<Record>, RegistryError> {
        let prefix = match id.record_prefix() {
            Some(prefix) => match parent_prefix(prefix) {
                Some(parent) => parent,
                // A top-level prefix record (`0.NA/88`) is the node's own.
                None => return Ok(None),
            },
            None => id.prefix(),
        };
        self.delegation(reader, prefix)
    }
}

/// The record of the highest delegation between `zone` (a prefix the node serves, `""` for all)
/// and `prefix`: the first prefix level below `zone`, down to `prefix` itself, whose record
/// carries `HS_SITE` values. `None` when the node serves `prefix` itself.
pub fn delegation<R: Reader + ?Sized>(reader: &R, zone: &str, prefix: &str) -> Result<Option<Record>, RegistryError> {
    let below = match zone {
        "" => prefix,
        zone => match prefix.strip_prefix(zone).and_then(|rest| rest.strip_prefix('.')) {
            Some(rest) => rest,
            None => return Ok(None),
        },
    };
    let mut level = zone.to_owned();
    for segment in below.split('.') {
        if !level.is_empty() {
            level.push('.');
        }
        level.push_str(segment);
        if let Some(record) = reader.get(prefix_record_key(&level).as_bytes())? {
            if record.values.iter().any(|v| v.is_type(types::SITE)) {
                return Ok(Some(record));
            }
        }
    }
    Ok(None)
}

const SERVER_ADMINS: &str = "[handle] server_admins";

/// Why a prefix was not homed or unhomed.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("{user} may not home or unhome prefixes here: only the node's server administrators may ({SERVER_ADMINS})")]
    Forbidden { user: String },
    #[error("{prefix:?} is not a prefix: {reason}")]
    InvalidPrefix { prefix: String, reason: String },
    #[error("{prefix} is served by this node's configuration ([dns] zones): edit the configuration to stop serving it")]
    Configured { prefix: String },
    #[error("{prefix} is not homed at this node")]
    NotHomed { prefix: String },
    #[error("this node cannot serve {prefix}: {reason}")]
    Unservable { prefix: String, reason: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl HomeError {
    /// The Handle response code of this refusal.
    pub fn code(&self) -> ResponseCode {
        match self {
            Self::Forbidden { .. } => ResponseCode::InsufficientPermissions,
            Self::InvalidPrefix { .. } | Self::Unservable { .. } => ResponseCode::InvalidHandle,
            Self::NotHomed { .. } => ResponseCode::ServerNotResponsible,
            Self::Configured { .. } | Self::Registry(_) => ResponseCode::Error,
        }
    }
}

impl Node {
    /// Serves `configured` (a reloaded `[dns] zones`) beside the homed prefixes from now on;
    /// returns whether the zones changed. Refused, with nothing changed, when a front end
    /// cannot serve them.
    pub fn set_configured_zones(&self, configured: Vec<String>) -> Result<bool, HomeError> {
        let _one = self.homing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.zones.load_full();
        if current.configured() == configured.as_slice() {
            return Ok(false);
        }
        let zones = Zones::new(configured).with_homed(current.homed().iter().cloned());
        for subscriber in &self.subscribers {
            let prefix = zones.prefixes().join(", ");
            subscriber.check_zones(&zones).map_err(|reason| HomeError::Unservable { prefix, reason })?;
        }
        let zones = std::sync::Arc::new(zones);
        self.zones.store(zones.clone());
        for subscriber in &self.subscribers {
            subscriber.zones_changed(&zones);
        }
        Ok(true)
    }

    /// Homes `prefix` here (`home`), or unhomes it, as `admin`, who must be one of the node's
    /// server administrators. Durable before the zones change and before it returns. Returns
    /// whether the zones changed: homing a prefix already served is a success that changes
    /// nothing. Only homed prefixes can be unhomed; configured ones stay until the
    /// configuration changes.
    pub fn home(&self, admin: &Admin, prefix: &str, home: bool) -> Result<bool, HomeError> {
        if !admin.is_among(&self.registry.snapshot()?, &self.server_admins.load())? {
            return Err(HomeError::Forbidden { user: admin.user() });
        }
        check_prefix(prefix)
            .map_err(|e| HomeError::InvalidPrefix { prefix: prefix.to_owned(), reason: e.to_string() })?;
        // One change at a time: each reads the zones, stores, then swaps them.
        let _one = self.homing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.zones.load_full();
        let same = |p: &String| p.eq_ignore_ascii_case(prefix);
        let (stored, zones) = match home {
            true if current.prefixes().iter().any(same) => return Ok(false),
            true => {
                let zones = current.with_homed(current.homed().iter().cloned().chain([prefix.to_owned()]));
                for subscriber in &self.subscribers {
                    subscriber
                        .check_zones(&zones)
                        .map_err(|reason| HomeError::Unservable { prefix: prefix.to_owned(), reason })?;
                }
                (prefix.to_owned(), zones)
            }
            false if current.configured().iter().any(same) => {
                return Err(HomeError::Configured { prefix: prefix.to_owned() });
            }
            false => {
                let Some(stored) = current.homed().iter().find(|p| same(p)).cloned() else {
                    return Err(HomeError::NotHomed { prefix: prefix.to_owned() });
                };
                (stored.clone(), current.with_homed(current.homed().iter().filter(|p| **p != stored).cloned()))
            }
        };
        self.registry.set_homed(&stored, home)?;
        let zones = std::sync::Arc::new(zones);
        self.zones.store(zones.clone());
        tracing::info!(target: "audit", user = %admin.user(), prefix = %stored, home, "zones changed");
        for subscriber in &self.subscribers {
            subscriber.zones_changed(&zones);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::record::Value;

    /// A registry in memory: records by key.
    struct Map(HashMap<String, Record>);

    impl Reader for Map {
        fn get(&self, key: &[u8]) -> Result<Option<Record>, RegistryError> {
            Ok(self.0.get(std::str::from_utf8(key).unwrap_or_default()).cloned())
        }
    }

    fn with_records(ids: &[(&str, &str)]) -> Map {
        Map(ids
            .iter()
            .map(|(id, kind)| {
                let id = Identifier::parse(id).unwrap();
                (id.key(), Record::new(&id, vec![Value::new(1, kind, "x", 0)]).unwrap())
            })
            .collect())
    }

    #[test]
    fn homed_prefixes_follow_the_configured_ones_once_each() {
        let configured = Zones::new(vec!["88.100".into()]);
        let zones = configured.with_homed(["88.200".into(), "88.100".into(), "88.300".into(), "88.200".into()]);
        assert_eq!(zones.prefixes(), ["88.100", "88.200", "88.300"]);
        assert_eq!(zones.configured(), ["88.100"]);
        assert_eq!(zones.homed(), ["88.200", "88.300"]);
        assert_eq!(zones.holding("88.200.7"), Some("88.200"));
        assert_eq!(zones.with_homed(Vec::new()), configured, "unhoming all leaves the configured zones");
    }

    #[test]
    fn the_longest_zone_at_or_above_holds_a_prefix() {
        let zones = Zones::new(vec![String::new(), "88.100".into()]);
        assert_eq!(zones.holding("88.100.5"), Some("88.100"));
        assert_eq!(zones.holding("88.100"), Some("88.100"));
        assert_eq!(zones.holding("88.1000"), Some(""), "shares digits, not a level");
        let child = Zones::new(vec!["88.105".into()]);
        assert_eq!(child.holding("88.1"), None);
        assert_eq!(child.holding("0.NA"), None);
    }

    #[test]
    fn a_delegation_covers_its_prefix_and_everything_below_it() {
        let reg = with_records(&[("0.NA/88.105", types::SITE), ("0.NA/88.100", types::ADMIN)]);
        let zones = Zones::new(vec![String::new()]);
        let of = |id: &str| {
            let record = zones.delegation_of(&reg, &Identifier::parse(id).unwrap()).unwrap();
            record.map(|r| r.identifier.to_string())
        };
        assert_eq!(of("88.105/X").as_deref(), Some("0.NA/88.105"));
        assert_eq!(of("88.105.7/X").as_deref(), Some("0.NA/88.105"));
        assert_eq!(of("0.NA/88.105.7").as_deref(), Some("0.NA/88.105"), "held by the child");
        assert_eq!(of("88.1050/X"), None);
        assert_eq!(of("88.100/X"), None, "a prefix record without HS_SITE delegates nothing");
        assert_eq!(of("0.NA/88.105"), None, "the delegation record stays at the parent");
        assert_eq!(of("0.NA/88"), None);
        // The child serves 88.105 itself: no delegation inside its own zone's apex.
        let child = Zones::new(vec!["88.105".into()]);
        assert_eq!(child.delegation_of(&reg, &Identifier::parse("88.105/X").unwrap()).unwrap(), None);
    }
}
