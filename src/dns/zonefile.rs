//! The registry as a standard DNS zone file (RFC 1035 5), with the same names and records the
//! node serves: so that any DNS server (Knot, NSD, BIND) can load the same data, for a
//! side-by-side comparison or as a plain secondary.

use std::io::Write;

use super::authoritative::zone::{self, Zone, ZoneConfig};
use super::mapping::{self, presentation};
use super::wire::QueryName;
use crate::record::unix_now;
use crate::registry::{Registry, RegistryError};

/// Why a zone file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ZoneFileError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("writing the zone file: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the zone for `zone` (SOA, NS, glue, then every identifier's public values as TXT and
/// URI records); returns how many identifiers it holds. Identifiers whose names exceed 255
/// bytes have no DNS name and are skipped, as the node skips them.
pub fn write(registry: &Registry, zone: &ZoneConfig, serial: u32, mut out: impl Write) -> Result<u64, ZoneFileError> {
    let apex = presentation(&zone.apex);
    writeln!(out, "$ORIGIN {apex}")?;
    writeln!(out, "$TTL {}", zone.ttl)?;
    let mname = zone.nameservers.first().map_or_else(|| apex.clone(), |(n, _)| presentation(n));
    writeln!(
        out,
        "@ {} IN SOA {mname} {} {serial} {} {} {} {}",
        zone.ttl,
        presentation(&zone.hostmaster),
        zone.refresh,
        zone.retry,
        zone.expire,
        zone.negative_ttl
    )?;
    for (name, addresses) in &zone.nameservers {
        writeln!(out, "@ {} IN NS {}", zone.ttl, presentation(name))?;
        if zone.apex.zone_of(name) {
            for a in addresses {
                let kind = if a.is_ipv4() { "A" } else { "AAAA" };
                writeln!(out, "{} {} IN {kind} {a}", presentation(name), zone.ttl)?;
            }
        }
    }
    let now = unix_now();
    // The zone decides which names it holds, as it does for queries.
    let zones = [Zone::new(zone.clone())];
    // Owner names keep the apex as configured (the zone lower-cases its own copy).
    let national_apex = zone.apex.trim_to(zone.apex.num_labels() as usize - prefix_labels(&zone.prefix));
    let mut wire_name = QueryName::default();
    let mut count = 0;
    registry.for_each(|record| -> Result<(), ZoneFileError> {
        let id = &record.identifier;
        let Some(name) = mapping::identifier_name(id, &national_apex) else {
            return Ok(());
        };
        if !wire_name.read(&zone::wire_of(&name)) || zone::holding(&zones, &wire_name).is_none() {
            return Ok(());
        }
        let owner = presentation(&name);
        for v in record.values.iter().filter(|v| v.is_public()) {
            let strings: Vec<String> = mapping::txt_strings(v).iter().map(|s| quoted(s)).collect();
            writeln!(out, "{owner} {} IN TXT {}", v.ttl.seconds_at(now), strings.join(" "))?;
            if mapping::is_url(v) {
                let priority = v.index.min(u32::from(u16::MAX));
                writeln!(out, "{owner} {} IN URI {priority} 1 {}", v.ttl.seconds_at(now), quoted(&v.data))?;
            }
        }
        count += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(count)
}

fn prefix_labels(prefix: &str) -> usize {
    if prefix.is_empty() { 0 } else { prefix.split('.').count() }
}

/// A character-string in presentation form: quoted, `"` and `\` escaped, and bytes outside
/// printable ASCII as decimal `\DDD`.
fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_zone_files_need() {
        assert_eq!(quoted(b"a \"b\" \\c"), r#""a \"b\" \\c""#);
        assert_eq!(quoted("泵".as_bytes()), r#""\230\179\181""#);
        assert_eq!(quoted(b""), r#""""#);
    }
}
