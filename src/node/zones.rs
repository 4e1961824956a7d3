//! The zones a node serves and the delegations below them: which node holds an identifier.
//!
//! A node serves some prefixes itself (its zones; `""` is the whole namespace). Below a zone,
//! a prefix record with `HS_SITE` values (`0.NA/88.105`) delegates that prefix and everything
//! under it to another node: every protocol refers there instead of answering (DNS with NS and
//! glue at the cut, the HTTP API with a 300 and the sites). DNS zone selection, the HTTP API and
//! export all ask this one value, so they cannot disagree about where a name is served.

use crate::identifier::{Identifier, is_at_or_below, parent_prefix, prefix_record_key};
use crate::record::{Record, types};
use crate::registry::{Reader, RegistryError};

/// The prefixes a node serves itself, `""` standing for the whole namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    prefixes: Vec<String>,
}

impl Zones {
    /// The zones of a node serving `prefixes` (validated by the configuration).
    pub fn new(prefixes: Vec<String>) -> Self {
        Self { prefixes }
    }

    /// The served prefixes, as configured.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
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
