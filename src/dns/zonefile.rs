//! The registry as a standard DNS zone file (RFC 1035 5), with the same names and records the
//! node serves: so that any DNS server (Knot, NSD, BIND) can load the same data, for a
//! side-by-side comparison or as a plain secondary.

use std::io::Write;

use hickory_proto::rr::{RData, Record};

use super::authoritative::zone::{AnswerError, Zone, ZoneConfig};
use super::mapping::{self, presentation};
use super::xfr::walk;
use crate::record::unix_now;
use crate::registry::{Registry, RegistryError};

/// Why a zone file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ZoneFileError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error("writing the zone file: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the zone for `zone`, as a zone transfer sends it and from one snapshot of the
/// registry: SOA (the serial of that snapshot), NS and glue, the NS and glue of each delegation
/// cut, then every identifier's public values as TXT and URI records. Returns how many
/// identifiers it holds. Identifiers whose names exceed 255 bytes have no DNS name and are
/// skipped, as the node skips them.
pub fn write(registry: &Registry, zone: &ZoneConfig, mut out: impl Write) -> Result<u64, ZoneFileError> {
    let view = registry.log_view()?;
    let apex = presentation(&zone.apex);
    writeln!(out, "$ORIGIN {apex}")?;
    writeln!(out, "$TTL {}", zone.ttl)?;
    let mname = zone.nameservers.first().map_or_else(|| apex.clone(), |(n, _)| presentation(n));
    writeln!(
        out,
        "@ {} IN SOA {mname} {} {} {} {} {} {}",
        zone.ttl,
        presentation(&zone.hostmaster),
        view.serial(),
        zone.refresh,
        zone.retry,
        zone.expire,
        zone.negative_ttl
    )?;
    // The zone decides which names it holds, as it does for queries and transfers.
    let zones = [Zone::new(zone.clone())];
    let zone = &zones[0];
    let cuts = walk::Cuts::of(zone, &zones, &view.records)?;
    for record in zone.apex_records().iter().chain(cuts.records.iter().flatten()) {
        write_record(&mut out, record)?;
    }
    let mut count = 0;
    walk::identifiers(zone, &zones, &cuts, &view.records, unix_now(), |records| -> Result<(), ZoneFileError> {
        for record in &records {
            write_record(&mut out, record)?;
        }
        count += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(count)
}

/// One record in presentation form: the types a zone of the node holds.
fn write_record(out: &mut impl Write, record: &Record) -> Result<(), ZoneFileError> {
    let owner = presentation(&record.name);
    let ttl = record.ttl;
    match &record.data {
        RData::TXT(txt) => {
            let strings: Vec<String> = txt.txt_data.iter().map(|s| quoted(s)).collect();
            writeln!(out, "{owner} {ttl} IN TXT {}", strings.join(" "))?;
        }
        RData::NS(ns) => writeln!(out, "{owner} {ttl} IN NS {}", presentation(&ns.0))?,
        RData::A(a) => writeln!(out, "{owner} {ttl} IN A {}", a.0)?,
        RData::AAAA(a) => writeln!(out, "{owner} {ttl} IN AAAA {}", a.0)?,
        RData::Unknown { code, rdata } if u16::from(*code) == mapping::URI_TYPE => {
            // Priority, weight, then the target (RFC 7553 4.5).
            let bytes = &rdata.anything;
            if let (Some(p), Some(w), Some(target)) = (bytes.get(..2), bytes.get(2..4), bytes.get(4..)) {
                let (p, w) = (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([w[0], w[1]]));
                writeln!(out, "{owner} {ttl} IN URI {p} {w} {}", quoted(target))?;
            }
        }
        other => tracing::warn!(%owner, "a record of type {} has no zone-file form here", other.record_type()),
    }
    Ok(())
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
