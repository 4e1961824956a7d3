//! The content of one zone as DNS records, read from one registry snapshot: what a full zone
//! transfer sends, and what decides whether a change in the log belongs to a zone.
//!
//! A zone holds the identifiers whose names it holds (the deepest served zone holding a name
//! answers for it, [`zone::holding`]), minus those below a delegation cut: a prefix below the
//! zone's whose record carries `HS_SITE` values, served elsewhere. At each cut the zone holds
//! the NS records and glue of the referral that queries below it get.

use std::collections::HashSet;

use hickory_proto::rr::{Name, Record};

use crate::dns::authoritative::zone::{self, AnswerError, Zone};
use crate::dns::mapping;
use crate::dns::wire::QueryName;
use crate::identifier::{Identifier, PREFIX_AUTHORITY};
use crate::record::types;
use crate::registry::Snapshot;

/// The delegation cuts of a zone: the highest delegated prefixes below it.
pub struct Cuts {
    /// Lower case.
    prefixes: HashSet<String>,
    /// The NS records and glue of each cut, in key order.
    pub records: Vec<Vec<Record>>,
}

impl Cuts {
    /// Reads the cuts of `zone` (one of `zones`) from `snapshot`.
    pub fn of(zone: &Zone, zones: &[Zone], snapshot: &Snapshot) -> Result<Self, AnswerError> {
        let authority = PREFIX_AUTHORITY.to_ascii_lowercase();
        let (start, end) = key_range(&format!("{authority}/{}", zone.prefix().to_ascii_lowercase()));
        let (start, end) = match zone.prefix() {
            "" => (format!("{authority}/").into_bytes(), format!("{authority}0").into_bytes()),
            _ => (start, end),
        };
        let apex = zone.national_apex();
        let mut cuts = Self { prefixes: HashSet::new(), records: Vec::new() };
        for record in snapshot.range(&start, Some(&end))? {
            let record = record?;
            let Some(prefix) = record.identifier.record_prefix() else { continue };
            if !record.values.iter().any(|v| v.is_type(types::SITE)) || cuts.covers(prefix) {
                continue;
            }
            // A prefix served here as a zone of its own is no cut.
            let Some(name) = mapping::prefix_zone_name(prefix, &apex) else { continue };
            if !holds(zone, zones, &name) {
                continue;
            }
            let sites = crate::record::site::sites_in(&record);
            let (mut ns, glue) = zone.cut_records(&name, &sites)?;
            ns.extend(glue);
            cuts.prefixes.insert(prefix.to_ascii_lowercase());
            cuts.records.push(ns);
        }
        Ok(cuts)
    }

    /// Whether `prefix` is at or below one of the cuts.
    pub fn covers(&self, prefix: &str) -> bool {
        let prefix = prefix.to_ascii_lowercase();
        let mut at = prefix.as_str();
        loop {
            if self.prefixes.contains(at) {
                return true;
            }
            match at.rsplit_once('.') {
                Some((parent, _)) => at = parent,
                None => return false,
            }
        }
    }
}

/// The name of `id` when `zone` holds it and no cut lies above it: whether its records are the
/// zone's.
pub fn name_in_zone(zone: &Zone, zones: &[Zone], cuts: &Cuts, id: &Identifier) -> Option<Name> {
    if cuts.covers(id.prefix()) {
        return None;
    }
    let name = mapping::identifier_name(id, &zone.national_apex())?;
    holds(zone, zones, &name).then_some(name)
}

/// Calls `f` with the records of each identifier of `zone` (one of `zones`), in key order: one
/// call per identifier, records that are not the zone's left out.
pub fn identifiers<E: From<AnswerError>>(
    zone: &Zone,
    zones: &[Zone],
    cuts: &Cuts,
    snapshot: &Snapshot,
    now: i64,
    mut f: impl FnMut(Vec<Record>) -> Result<(), E>,
) -> Result<(), E> {
    let (start, end) = key_range(&zone.prefix().to_ascii_lowercase());
    let end = (!zone.prefix().is_empty()).then_some(end);
    let range = snapshot.range(&start, end.as_deref()).map_err(AnswerError::from)?;
    for record in range {
        let record = record.map_err(AnswerError::from)?;
        let Some(name) = name_in_zone(zone, zones, cuts, &record.identifier) else { continue };
        let records = zone::identifier_records(&name, &record, now);
        if !records.is_empty() {
            f(records)?;
        }
    }
    Ok(())
}

/// The keys of a prefix's identifiers and of every prefix below it: `88.100/...` and
/// `88.100.1/...` both lie from `88.100.` up to `88.1000` (`.` and `/` are the two bytes before
/// `0`). The empty prefix starts at the first key.
fn key_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    match prefix {
        "" => (Vec::new(), Vec::new()),
        p => (format!("{p}.").into_bytes(), format!("{p}0").into_bytes()),
    }
}

fn holds(zone: &Zone, zones: &[Zone], name: &Name) -> bool {
    let mut wire = QueryName::default();
    wire.read(&zone::wire_of(name))
        && zone::holding(zones, &wire).is_some_and(|(z, own)| own > 0 && z.apex_wire() == zone.apex_wire())
}
