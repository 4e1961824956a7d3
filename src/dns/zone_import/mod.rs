//! Zone-file import (`idnode import --zone-file`): moves a zone that BIND, Knot or NSD serves
//! into the registry, reading each identifier back from its DNS name ([`mapping`]) and each
//! value from its TXT record, the inverse of [`super::zonefile::write`].
//!
//! The file streams through the lexer (`lexer.rs`) one entry at a time, so memory does not grow with
//! the zone, except for one 64-bit digest per identifier (about 20 bytes with the set around it)
//! to refuse a name whose records are not consecutive: those three servers write a name's records
//! together, and merging a name met again would need a read of what this same import wrote.
//! An identifier is handed to the registry's bulk load ([`crate::import::load`]) when the owner
//! name changes; its URI records are checked then against its URL values (URI is derived data).
//!
//! The zone's own settings are accepted and not stored: the apex SOA, the apex NS records and the
//! addresses (glue) of those name servers; the node makes its own from `[dns]`. Everything else
//! stops the import with `line N: <what>: <why>`: the identifiers whose records all come before
//! that line are stored and durable, nothing of that line's identifier or after it is.

mod fields;
mod lexer;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::BufRead;

use fields::Labels;
use lexer::{Entry, LexError, Lexer, Token};

use crate::dns::mapping::{self, NameKind};
use crate::identifier::Identifier;
use crate::import::{self, Feed, ImportError, ImportReport};
use crate::record::{Record, RecordError, Ttl, Value};
use crate::registry::Registry;

/// Why a zone file was not imported, or not all of it.
#[derive(Debug, thiserror::Error)]
pub enum ZoneImportError {
    #[error("dns.apex {apex:?} is not a domain name: {reason}")]
    BadApex { apex: String, reason: String },
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// What an import read and stored, and the zone settings it passed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneReport {
    /// Identifiers stored and lines read.
    pub import: ImportReport,
    /// The zone's apex as the file names it (`.` when the file held no record).
    pub apex: String,
    /// The prefix the zone serves; empty for the national apex.
    pub prefix: String,
    /// Apex SOA, apex NS and glue address records, accepted and not stored.
    pub soa: u64,
    pub nameservers: u64,
    pub glue: u64,
}

/// Imports the zone file `input` whose apex is `national_apex` (`[dns] apex`) or a prefix zone
/// below it, in batches of `batch_size` records; `progress` is told how many bytes were read.
pub fn import(
    registry: &Registry,
    national_apex: &str,
    input: impl BufRead + Send,
    batch_size: usize,
    progress: impl FnMut(u64),
) -> Result<ZoneReport, ZoneImportError> {
    let apex_text = if national_apex.ends_with('.') { national_apex.to_owned() } else { format!("{national_apex}.") };
    let national = fields::name(apex_text.as_bytes(), None)
        .map_err(|reason| ZoneImportError::BadApex { apex: national_apex.to_owned(), reason })?;
    let mut importer = Importer::new(fields::lower(&national), crate::record::unix_now());
    let report = import::load(registry, batch_size, progress, |feed| importer.run(input, feed))?;
    let mut summary = importer.summary;
    summary.import = report;
    Ok(summary)
}

//------------ Refusals -----------------------------------------------------------------------

/// Why a line was refused; shown as `line N: <this>`.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Lex(#[from] LexError),
    #[error("$INCLUDE: a zone file that names other files is not imported (merge them into one file first)")]
    Include,
    #[error("{directive}: not supported (expand it into records first)")]
    Directive { directive: String },
    #[error("{what}: {reason}")]
    Field { what: String, reason: String },
    #[error("no owner name: the first record starts with a blank")]
    NoOwner,
    #[error("{what}: no TTL and no $TTL before it")]
    NoTtl { what: String },
    #[error("{what}: class {class}; only IN records are imported")]
    Class { what: String, class: String },
    #[error("the zone starts with neither $ORIGIN nor an SOA record: its apex is unknown")]
    NoApex,
    #[error(
        "zone {zone}: not the node's apex {national} ([dns] apex) nor a prefix zone below it \
         (like 105.88.{national})"
    )]
    Apex { zone: String, national: String },
    #[error("{what}: outside the zone {zone}")]
    Outside { what: String, zone: String },
    #[error("SOA at {name}: only the zone's apex {zone} has one")]
    SoaNotAtApex { name: String, zone: String },
    #[error(
        "NS at {name}: a delegation of prefix {prefix} is not imported from DNS records (idnode names the \
         child's servers itself); register it as HS_SITE data on 0.NA/{prefix} instead, e.g. \
         `idnode id put 0.NA/{prefix} --merge --values-file site.json` (README, \"Delegations are data\")"
    )]
    Delegation { name: String, prefix: String },
    #[error("NS at {name}: only the apex's name servers are accepted (as zone settings, not stored)")]
    NsElsewhere { name: String },
    #[error(
        "{kind} at {name}: not the address of a name server of the apex (NS before it), and not an identifier value"
    )]
    NotGlue { kind: String, name: String },
    #[error("{kind} at {name}: no identifier has this name (identifiers are SUFFIX._id.PREFIX-LABELS.<apex>)")]
    NotIdentifier { kind: String, name: String },
    #[error(
        "TXT at {name}: not an identifier value (expected the strings INDEX TYPE DATA..., \
         as `idnode export --zone-file` writes them)"
    )]
    NotValue { name: String },
    #[error(
        "URI at {name}: URI record without the TXT value it derives from \
         (a URL value at index {priority} with this target)"
    )]
    UriWithoutTxt { name: String, priority: u16 },
    #[error("{kind} at {name}: {kind} records are not identifier values{hint}")]
    Type { kind: String, name: String, hint: &'static str },
    #[error(
        "TXT at {name}: value {index} is an HS_SECKEY, and a secret served in DNS is no secret; set it over the API"
    )]
    Secret { name: String, index: u32 },
    #[error("{name}: {source}")]
    Record { name: String, source: RecordError },
    #[error(
        "{name}: the records of this name were interrupted by another name; keep each name's records \
         together, as BIND, Knot and NSD write them"
    )]
    Interrupted { name: String },
}

/// A refusal and the line it names.
type Refused = (u64, Refusal);

//------------ Importer -----------------------------------------------------------------------

/// An identifier whose records are being read: the owner's records are consecutive.
struct Group {
    owner: Labels,
    identifier: Identifier,
    /// Where its first record is: a case conflict is reported there.
    line: u64,
    values: Vec<Value>,
    size: usize,
    /// URI records (line, priority, target), checked against the URL values at the end.
    uris: Vec<(u64, u16, Vec<u8>)>,
}

struct Importer {
    national: Labels,
    now: i64,
    origin: Option<Labels>,
    /// The first `$ORIGIN`: the apex when the first record is not an SOA.
    first_origin: Option<Labels>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    /// The previous record's owner, as written.
    owner: Option<Labels>,
    /// The zone's apex (lower-cased), once the first record fixed it.
    zone: Option<Labels>,
    /// Lower-cased targets of the apex NS records.
    nameservers: Vec<Labels>,
    group: Option<Group>,
    /// Digests of the identifiers done: a name whose records come back later is refused.
    done: HashSet<u64>,
    summary: ZoneReport,
}

impl Importer {
    fn new(national: Labels, now: i64) -> Self {
        Self {
            national,
            now,
            origin: None,
            first_origin: None,
            default_ttl: None,
            last_ttl: None,
            owner: None,
            zone: None,
            nameservers: Vec::new(),
            group: None,
            done: HashSet::new(),
            summary: ZoneReport { apex: ".".into(), ..ZoneReport::default() },
        }
    }

    /// Reads every entry into `feed`, stopping at the first refused line.
    fn run(&mut self, input: impl BufRead, feed: &mut Feed) {
        let mut lexer = Lexer::new(input);
        let mut entry = Entry::default();
        loop {
            let next = lexer.next(&mut entry);
            let (lines, bytes) = lexer.position();
            feed.read_to(lines, bytes);
            let result = match next {
                Ok(true) => self.entry(&entry, feed),
                Ok(false) => match self.flush(feed) {
                    Ok(_) => return,
                    Err(refused) => Err(refused),
                },
                Err(LexError::Read { line, source }) => {
                    feed.read_failed(line, source);
                    return;
                }
                // The identifier read so far lies before the bad line: it is stored.
                Err(e) => self.flush(feed).and(Err((e.line(), e.into()))),
            };
            match result {
                Ok(true) => {}
                // The writer stopped: it reports why.
                Ok(false) => return,
                Err((line, refusal)) => {
                    feed.refuse(line, refusal.to_string());
                    return;
                }
            }
        }
    }

    /// One directive or record; `Ok(false)` when the writer has stopped.
    fn entry(&mut self, entry: &Entry, feed: &mut Feed) -> Result<bool, Refused> {
        let line = entry.line;
        let at = |refusal: Refusal| (line, refusal);
        let first = &entry.tokens[0];
        if !entry.blank_owner && !first.quoted && first.raw.starts_with(b"$") {
            return match self.directive(entry) {
                Ok(()) => Ok(true),
                Err(refusal) => self.flush(feed).and(Err(at(refusal))),
            };
        }
        let (owner, rest) = match entry.blank_owner {
            true => (self.owner.clone().ok_or(at(Refusal::NoOwner))?, &entry.tokens[..]),
            false => {
                let owner = fields::name(&first.raw, self.origin.as_ref()).map_err(|reason| {
                    at(Refusal::Field { what: format!("owner {}", String::from_utf8_lossy(&first.raw)), reason })
                })?;
                (owner, &entry.tokens[1..])
            }
        };
        self.owner = Some(owner.clone());
        let lower = fields::lower(&owner);
        // A record of another name ends the identifier being read.
        if self.group.as_ref().is_some_and(|g| g.owner != lower) && !self.flush(feed)? {
            return Ok(false);
        }
        let name = fields::show(&owner);
        let (ttl, kind, rdata) = self.fields(&name, rest).map_err(at)?;
        let zone = self.zone(&lower, &kind).map_err(at)?;
        let what = format!("{kind} at {name}");
        if !lower.ends_with(zone) {
            return Err(at(Refusal::Outside { what, zone: fields::show(zone) }));
        }
        let is_apex = lower.len() == zone.len();
        match kind.as_str() {
            "SOA" if is_apex => self.summary.soa += 1,
            "SOA" => return Err(at(Refusal::SoaNotAtApex { name, zone: self.summary.apex.clone() })),
            "NS" if is_apex => {
                let [target] = rdata else {
                    let reason = format!("{} fields; an NS record has one", rdata.len());
                    return Err(at(Refusal::Field { what, reason }));
                };
                let target = fields::name(&target.raw, self.origin.as_ref())
                    .map_err(|reason| at(Refusal::Field { what: what.clone(), reason }))?;
                self.nameservers.push(fields::lower(&target));
                self.summary.nameservers += 1;
            }
            "NS" => {
                let below = lower.len() - self.national.len();
                let labels: Vec<&[u8]> = lower[..below].iter().map(Vec::as_slice).collect();
                return Err(at(match mapping::classify(&labels) {
                    NameKind::Prefix(prefix) => Refusal::Delegation { name, prefix },
                    _ => Refusal::NsElsewhere { name },
                }));
            }
            "A" | "AAAA" if self.nameservers.contains(&lower) => {
                fields::address(rdata, kind == "AAAA").map_err(|reason| at(Refusal::Field { what, reason }))?;
                self.summary.glue += 1;
            }
            "A" | "AAAA" => return Err(at(Refusal::NotGlue { kind, name })),
            "TXT" | "URI" => self.value(line, &owner, lower, &kind, ttl, rdata)?,
            _ => {
                let hint = match kind.as_str() {
                    "RRSIG" | "NSEC" | "NSEC3" | "NSEC3PARAM" | "DNSKEY" | "CDS" | "CDNSKEY" | "ZONEMD" => {
                        "; import the unsigned zone (the node does not sign)"
                    }
                    _ => "; under an identifier's name the node serves TXT and URI records only",
                };
                return Err(at(Refusal::Type { kind, name, hint }));
            }
        }
        Ok(true)
    }

    fn directive(&mut self, entry: &Entry) -> Result<(), Refusal> {
        let directive = String::from_utf8_lossy(&entry.tokens[0].raw).to_ascii_uppercase();
        let argument = entry.tokens.get(1).map(|t| t.raw.as_slice());
        let missing = || Refusal::Field { what: directive.clone(), reason: "no value after it".into() };
        match directive.as_str() {
            "$ORIGIN" => {
                let origin = fields::name(argument.ok_or_else(missing)?, self.origin.as_ref())
                    .map_err(|reason| Refusal::Field { what: directive.clone(), reason })?;
                self.first_origin.get_or_insert_with(|| origin.clone());
                self.origin = Some(origin);
            }
            "$TTL" => {
                let ttl = fields::ttl(argument.ok_or_else(missing)?)
                    .ok_or_else(|| Refusal::Field { what: directive.clone(), reason: "not a TTL".into() })?;
                self.default_ttl = Some(ttl);
            }
            "$INCLUDE" => return Err(Refusal::Include),
            _ => return Err(Refusal::Directive { directive }),
        }
        Ok(())
    }

    /// TTL, class and type (in either order before the type), then the RDATA tokens.
    fn fields<'t>(&mut self, name: &str, tokens: &'t [Token]) -> Result<(u32, String, &'t [Token]), Refusal> {
        let (mut ttl, mut class) = (None, None);
        for (i, token) in tokens.iter().enumerate() {
            let text = String::from_utf8_lossy(&token.raw).to_ascii_uppercase();
            if ttl.is_none() && token.raw.first().is_some_and(u8::is_ascii_digit) {
                let bad = || Refusal::Field { what: name.to_owned(), reason: format!("{text:?} is not a TTL") };
                ttl = Some(fields::ttl(&token.raw).ok_or_else(bad)?);
            } else if class.is_none() && matches!(text.as_str(), "IN" | "CH" | "CS" | "HS" | "NONE" | "ANY") {
                class = Some(text);
            } else if class.is_none() && text.starts_with("CLASS") && text[5..].parse::<u16>().is_ok() {
                class = Some(if text == "CLASS1" { "IN".into() } else { text });
            } else {
                let kind = match text.as_str() {
                    "TYPE1" => "A".to_owned(),
                    "TYPE2" => "NS".into(),
                    "TYPE6" => "SOA".into(),
                    "TYPE16" => "TXT".into(),
                    "TYPE28" => "AAAA".into(),
                    "TYPE256" => "URI".into(),
                    _ => text,
                };
                let what = format!("{kind} at {name}");
                if let Some(class) = class.filter(|c| c != "IN") {
                    return Err(Refusal::Class { what, class });
                }
                let ttl = match ttl {
                    Some(ttl) => {
                        self.last_ttl = Some(ttl);
                        ttl
                    }
                    None => self.default_ttl.or(self.last_ttl).ok_or(Refusal::NoTtl { what })?,
                };
                return Ok((ttl, kind, &tokens[i + 1..]));
            }
        }
        Err(Refusal::Field { what: name.to_owned(), reason: "no record type".into() })
    }

    /// The zone, fixed by the first record: its SOA's owner, or else the first `$ORIGIN`.
    fn zone(&mut self, owner: &Labels, kind: &str) -> Result<&Labels, Refusal> {
        if self.zone.is_none() {
            let labels = match (kind, &self.first_origin) {
                ("SOA", _) => owner.clone(),
                (_, Some(origin)) => fields::lower(origin),
                _ => return Err(Refusal::NoApex),
            };
            let bad = || Refusal::Apex { zone: fields::show(&labels), national: fields::show(&self.national) };
            if !labels.ends_with(&self.national) {
                return Err(bad());
            }
            let below: Vec<&[u8]> = labels[..labels.len() - self.national.len()].iter().map(Vec::as_slice).collect();
            let prefix = match mapping::classify(&below) {
                NameKind::Apex => String::new(),
                NameKind::Prefix(prefix) => prefix,
                _ => return Err(bad()),
            };
            self.summary.apex = fields::show(&labels);
            self.summary.prefix = prefix;
            self.zone = Some(labels);
        }
        // Set just above when it was not.
        self.zone.as_ref().ok_or(Refusal::NoApex)
    }

    /// A TXT or URI record: a value of the identifier the owner names.
    fn value(
        &mut self,
        line: u64,
        owner: &Labels,
        lower: Labels,
        kind: &str,
        ttl: u32,
        rdata: &[Token],
    ) -> Result<(), Refused> {
        let name = fields::show(owner);
        // Labels below the national apex, as written: what an identifier is read from.
        let relative = &owner[..owner.len() - self.national.len()];
        let at = |refusal: Refusal| (line, refusal);
        if self.group.is_none() {
            let identifier = identifier_of(relative)
                .ok_or_else(|| at(Refusal::NotIdentifier { kind: kind.to_owned(), name: name.clone() }))?;
            if self.done.contains(&digest(&identifier)) {
                return Err(at(Refusal::Interrupted { name }));
            }
            let group = Group { owner: lower, identifier, line, values: Vec::new(), size: 0, uris: Vec::new() };
            self.group = Some(group);
        }
        let Some(group) = self.group.as_mut() else { return Ok(()) };
        let field = |reason: String| at(Refusal::Field { what: format!("{kind} at {name}"), reason });
        if kind == "URI" {
            let (priority, _weight, target) = fields::uri(rdata).map_err(field)?;
            group.uris.push((line, priority, target));
            return Ok(());
        }
        let strings = fields::txt(rdata).map_err(field)?;
        let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
        let (index, kind, data) =
            mapping::parse_txt(&refs).ok_or_else(|| at(Refusal::NotValue { name: name.clone() }))?;
        if kind.eq_ignore_ascii_case(crate::record::types::SECRET_KEY) {
            return Err(at(Refusal::Secret { name, index }));
        }
        let record_error = |source| at(Refusal::Record { name: name.clone(), source });
        if group.values.iter().any(|v| v.index == index) {
            return Err(record_error(RecordError::DuplicateIndex { index }));
        }
        let value = Value { ttl: Ttl::Relative(ttl), ..Value::new(index, &kind, data, self.now) };
        group.size += value.size();
        group.values.push(value);
        // Checked at the line that goes over, not when the identifier ends.
        if group.values.len() > crate::record::MAX_VALUES {
            let (count, max) = (group.values.len(), crate::record::MAX_VALUES);
            return Err(record_error(RecordError::TooManyValues { count, max }));
        }
        if group.size > crate::record::MAX_RECORD_SIZE {
            let (size, max) = (group.size, crate::record::MAX_RECORD_SIZE);
            return Err(record_error(RecordError::TooLarge { size, max }));
        }
        Ok(())
    }

    /// Hands the identifier being read to the writer; `Ok(false)` when the writer has stopped.
    fn flush(&mut self, feed: &mut Feed) -> Result<bool, Refused> {
        let Some(group) = self.group.take() else { return Ok(true) };
        let name = fields::show(&group.owner);
        for (line, priority, target) in &group.uris {
            let derives = |v: &Value| {
                mapping::is_url(v) && v.index.min(u32::from(u16::MAX)) == u32::from(*priority) && v.data == *target
            };
            if !group.values.iter().any(derives) {
                return Err((*line, Refusal::UriWithoutTxt { name, priority: *priority }));
            }
        }
        let record = Record::new(&group.identifier, group.values)
            .map_err(|source| (group.line, Refusal::Record { name, source }))?;
        self.done.insert(digest(&group.identifier));
        Ok(feed.push(record, group.line))
    }
}

/// The identifier a name below the national apex stands for, in the case the name is written:
/// the labels [`mapping::classify`] accepts, read back as they are in the file.
fn identifier_of(relative: &[Vec<u8>]) -> Option<Identifier> {
    let lower = fields::lower(relative);
    let refs: Vec<&[u8]> = lower.iter().map(Vec::as_slice).collect();
    let NameKind::Identifier { key, .. } = mapping::classify(&refs) else { return None };
    let id_at = lower.iter().rposition(|l| l == mapping::ID_LABEL)?;
    let prefix: Vec<&str> =
        relative[id_at + 1..].iter().rev().map(|l| std::str::from_utf8(l).ok()).collect::<Option<_>>()?;
    let suffix: Vec<u8> = relative[..id_at].iter().rev().flatten().copied().collect();
    let id = Identifier::from_parts(&prefix.join("."), &String::from_utf8(suffix).ok()?).ok()?;
    (id.key() == key).then_some(id)
}

fn digest(id: &Identifier) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    id.key().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
