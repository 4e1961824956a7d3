//! The delegations below the zones a node serves: the prefix records with `HS_SITE` values at
//! which [`crate::node::Zones::delegation`] refers elsewhere, found by paging through the
//! prefix records under each zone. Bounded in what it lists and in what it reads, since a
//! top-level node may hold many prefix records that delegate nothing.

use std::collections::HashSet;

use crate::node::Node;
use crate::record::site::{Site, sites_in};
use crate::registry::RegistryError;

/// 10,000: prefix records read at most to find the delegations (a top-level node's secondary
/// nodes number in the tens to hundreds; this leaves room for prefixes it serves itself).
pub const MAX_SCANNED: usize = 10_000;
/// 512: prefix records read per registry snapshot.
const PAGE: usize = 512;

/// A delegation as the node's registry holds it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The delegated prefix (`88.105`).
    pub prefix: String,
    /// The zone of this node it lies in (`""` for the whole namespace).
    pub zone: String,
    pub sites: Vec<Site>,
}

/// At most `max` delegations below `node`'s zones, in key order, and whether there were more
/// (or more prefix records than [`MAX_SCANNED`] to look through).
pub fn find(node: &Node, max: usize) -> Result<(Vec<Found>, bool), RegistryError> {
    let zones = node.zones();
    let registry = node.registry();
    let snapshot = registry.snapshot()?;
    let (mut found, mut seen, mut scanned) = (Vec::new(), HashSet::new(), 0usize);
    for zone in zones.prefixes() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = registry.prefix_records(zone, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.identifier.key().into_bytes());
            for record in page {
                scanned += 1;
                if scanned > MAX_SCANNED {
                    return Ok((found, true));
                }
                let Some(prefix) = record.identifier.record_prefix() else { continue };
                let sites = sites_in(&record);
                if sites.is_empty() || seen.contains(&prefix.to_ascii_lowercase()) {
                    continue;
                }
                // Only the highest delegation refers; a site record below it is the child's
                // business, and a record under a nested zone belongs to that zone.
                let delegating = zones.delegation(&snapshot, prefix)?;
                if delegating.is_none_or(|d| d.identifier != record.identifier) {
                    continue;
                }
                if found.len() == max {
                    return Ok((found, true));
                }
                seen.insert(prefix.to_ascii_lowercase());
                let zone = zones.holding(prefix).unwrap_or(zone).to_owned();
                found.push(Found { prefix: prefix.to_owned(), zone, sites });
            }
        }
    }
    Ok((found, false))
}
