//! The mapping between identifiers and DNS names, and the layout of values in DNS records.
//!
//! `88.100.1/ABC-123` is served at `abc-123._id.1.100.88.<apex>`: the prefix segments reversed
//! under the apex (so a prefix owns a subtree and delegating it is an ordinary zone cut), then
//! the label `_id` (which no prefix segment can be, so a prefix and an identifier never share a
//! name), then the suffix. A suffix longer than 63 bytes becomes several labels read from the
//! `_id` label outwards: the label next to `_id` holds the suffix's first 63 bytes, and every
//! label but the outermost holds exactly 63. Ordering the chunks this way keeps the DNS tree in
//! the registry's key order, so "is there anything below this name" is one key-range seek.
//! docs/dns-mapping.md is the user-facing description; the tests below pin it.

use hickory_proto::rr::{Label, Name};

use crate::identifier::{self, Identifier};
use crate::record::Value;

pub const ID_LABEL: &[u8] = b"_id";
pub const MAX_LABEL: usize = 63;
/// The URI resource record type (RFC 7553); hickory-proto has no type of its own for it.
pub const URI_TYPE: u16 = 256;

/// What a name below the apex stands for. Labels are lower-cased, relative to the apex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKind {
    /// The apex itself.
    Apex,
    /// A prefix such as `88.100.1` (name `1.100.88.<apex>`).
    Prefix(String),
    /// The `_id` label of a prefix: the parent of all its identifiers.
    IdRoot(String),
    /// An identifier's registry key (`88.100.1/abc-123`). `may_have_children` is set when every
    /// suffix label is a full 63 bytes, the only case in which longer suffixes lie below it.
    Identifier { key: String, may_have_children: bool },
    /// No identifier or prefix can have this name.
    Nothing,
}

/// Classifies a name given its labels left to right, without the apex.
pub fn classify(labels: &[&[u8]]) -> NameKind {
    let Some(id_at) = labels.iter().rposition(|l| *l == ID_LABEL) else {
        return match prefix_of(labels) {
            Some(p) if p.is_empty() => NameKind::Apex,
            Some(p) => NameKind::Prefix(p),
            None => NameKind::Nothing,
        };
    };
    let prefix = match prefix_of(&labels[id_at + 1..]) {
        Some(p) if !p.is_empty() => p,
        _ => return NameKind::Nothing,
    };
    let chunks = &labels[..id_at];
    if chunks.is_empty() {
        return NameKind::IdRoot(prefix);
    }
    // Right to left: the chunk next to `_id` comes first in the suffix; all but the outermost
    // must be full, so that each suffix has exactly one name.
    if chunks[1..].iter().any(|c| c.len() != MAX_LABEL) {
        return NameKind::Nothing;
    }
    let suffix: Vec<u8> = chunks.iter().rev().flat_map(|c| c.iter().copied()).collect();
    let Ok(suffix) = String::from_utf8(suffix) else {
        return NameKind::Nothing;
    };
    match Identifier::from_parts(&prefix, &suffix) {
        Ok(id) => NameKind::Identifier { key: id.key(), may_have_children: chunks[0].len() == MAX_LABEL },
        Err(_) => NameKind::Nothing,
    }
}

/// Joins reversed prefix labels (`1.100.88`) into a prefix (`88.100.1`); `None` when a label
/// cannot be a prefix segment. No labels give the empty prefix (the apex).
fn prefix_of(labels: &[&[u8]]) -> Option<String> {
    let mut out = String::new();
    for (i, label) in labels.iter().rev().enumerate() {
        let segment = std::str::from_utf8(label).ok()?;
        identifier::check_segment(i + 1, segment).ok()?;
        if i > 0 {
            out.push('.');
        }
        out.push_str(segment);
    }
    Some(out)
}

/// The labels of an identifier's name, left to right, without the apex, lower-cased.
pub fn identifier_labels(id: &Identifier) -> Vec<Vec<u8>> {
    let suffix = id.suffix().to_ascii_lowercase();
    let mut labels: Vec<Vec<u8>> = suffix.as_bytes().chunks(MAX_LABEL).rev().map(<[u8]>::to_vec).collect();
    labels.push(ID_LABEL.to_vec());
    labels.extend(prefix_labels(id.prefix()));
    labels
}

/// The labels of a prefix's name, left to right, without the apex, lower-cased.
pub fn prefix_labels(prefix: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    prefix.rsplit('.').map(|s| s.to_ascii_lowercase().into_bytes())
}

/// The DNS name of an identifier under `apex`, or `None` when it is longer than DNS allows
/// (255 bytes); such identifiers are served by the other interfaces only.
pub fn identifier_name(id: &Identifier, apex: &Name) -> Option<Name> {
    let labels = identifier_labels(id).iter().map(|l| Label::from_raw_bytes(l)).collect::<Result<Vec<_>, _>>().ok()?;
    Name::from_labels(labels).ok()?.append_domain(apex).ok()
}

/// The DNS name of a prefix's zone under `apex` (`88.105` is `105.88.<apex>`), or `None` when it
/// is longer than DNS allows.
pub fn prefix_zone_name(prefix: &str, apex: &Name) -> Option<Name> {
    let labels = prefix_labels(prefix).map(|l| Label::from_raw_bytes(&l)).collect::<Result<Vec<_>, _>>().ok()?;
    Name::from_labels(labels).ok()?.append_domain(apex).ok()
}

/// A name in presentation form (RFC 1035 5.1), as dig reads it: special characters behind a
/// backslash, other punctuation and bytes outside printable ASCII as `\DDD` in decimal. (Knot
/// refuses a zone file with a bare `:` in a name; hickory-proto 0.26 writes `\DDD` in octal,
/// which dig reads as another byte, so names shown to users are written here.)
pub fn presentation(name: &Name) -> String {
    let mut out = String::new();
    for label in name.iter() {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    out.push('\\');
                    out.push(b as char);
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'/' | b'*' => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Every name whose cached answer a write to `id` can change: the identifier's own name and
/// each ancestor up to and including the apex (an ancestor may stop or start being empty).
/// Wire form, lower-cased: the front cache's keys.
pub fn affected_names(id: &Identifier, apex_wire: &[u8]) -> Vec<Vec<u8>> {
    let labels = identifier_labels(id);
    (0..=labels.len())
        .map(|skip| {
            let mut wire = Vec::new();
            for l in &labels[skip..] {
                wire.push(l.len() as u8);
                wire.extend_from_slice(l);
            }
            wire.extend_from_slice(apex_wire);
            wire
        })
        .filter(|w| w.len() <= 255)
        .collect()
}

/// The DNS name (wire form, lower case) of a prefix: its segments reversed under `apex_wire`.
/// Names too long for DNS come out longer than 255 bytes and match nothing.
pub fn prefix_name(prefix: &str, apex_wire: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let labels: Vec<Vec<u8>> = prefix_labels(prefix).filter(|l| !l.is_empty()).collect();
    for label in &labels {
        wire.push(label.len().min(255) as u8);
        wire.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    wire.extend_from_slice(apex_wire);
    wire
}

/// Whether the wire name `name` is `ancestor` or lies below it, label by label.
pub fn is_at_or_below(name: &[u8], ancestor: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        if name[at..] == *ancestor {
            return true;
        }
        at += 1 + usize::from(name[at]);
    }
    ancestor == [0]
}

//------------ Record layout ------------------------------------------------------------------

/// A value as TXT character-strings: its index, its type, then its data in 255-byte pieces.
/// Concatenating the strings after the second gives the data back byte for byte.
pub fn txt_strings(value: &Value) -> Vec<Vec<u8>> {
    let mut out = vec![value.index.to_string().into_bytes(), value.kind.as_bytes().to_vec()];
    out.extend(value.data.chunks(255).map(<[u8]>::to_vec));
    out
}

/// Reads a TXT record written by [`txt_strings`] back into (index, type, data).
pub fn parse_txt(strings: &[&[u8]]) -> Option<(u32, String, Vec<u8>)> {
    let index = std::str::from_utf8(strings.first()?).ok()?.parse().ok()?;
    let kind = String::from_utf8(strings.get(1)?.to_vec()).ok()?;
    Some((index, kind, strings[2..].concat()))
}

/// URI RDATA (RFC 7553) for a URL value: priority, weight, then the target. The value's index
/// is the priority (clamped to 65535), so clients that order by priority keep index order.
pub fn uri_rdata(value: &Value) -> Vec<u8> {
    let mut out = (value.index.min(u32::from(u16::MAX)) as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&value.data);
    out
}

pub fn is_url(value: &Value) -> bool {
    value.kind.eq_ignore_ascii_case("URL") && !value.data.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(text: &str) -> String {
        let apex = Name::from_ascii("id.example.").unwrap();
        presentation(&identifier_name(&Identifier::parse(text).unwrap(), &apex).unwrap())
    }

    fn classify_str(name: &str) -> NameKind {
        let n = Name::from_ascii(name).unwrap().to_lowercase();
        let labels: Vec<&[u8]> = n.iter().collect();
        classify(&labels[..labels.len() - 2]) // drop id.example
    }

    #[test]
    fn readable_names_for_ordinary_identifiers() {
        assert_eq!(name_of("88.100.1/ABC-123"), "abc-123._id.1.100.88.id.example.");
        assert_eq!(name_of("0.NA/88.100.1"), "88\\.100\\.1._id.na.0.id.example.");
        // Knot's zone-file parser refuses a bare `:`.
        assert_eq!(name_of("88.100.1/a/b:c"), "a/b\\058c._id.1.100.88.id.example.");
        // Decimal escapes, as dig reads them: Ä is C3 84 (195 132), the space 32.
        assert_eq!(name_of("88/Ä b"), "\\195\\132\\032b._id.88.id.example.");
    }

    #[test]
    fn names_map_back_to_the_same_identifier() {
        let suffixes = ["ABC-123", "a/b.c:d", "Ä ö", &"x".repeat(63), &"y".repeat(64), &"z".repeat(200)];
        for suffix in suffixes {
            let id = Identifier::parse(&format!("88.100.1/{suffix}")).unwrap();
            let labels = identifier_labels(&id);
            let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
            match classify(&refs) {
                NameKind::Identifier { key, may_have_children } => {
                    assert_eq!(key, id.key());
                    assert_eq!(may_have_children, suffix.len() % 63 == 0);
                }
                other => panic!("{suffix}: {other:?}"),
            }
        }
    }

    #[test]
    fn long_suffix_chunks_start_next_to_id_label() {
        let id = Identifier::parse(&format!("88/{}{}", "a".repeat(63), "b".repeat(10))).unwrap();
        let labels = identifier_labels(&id);
        assert_eq!(labels[0], b"b".repeat(10));
        assert_eq!(labels[1], b"a".repeat(63));
        // A non-canonical split of the same bytes is no identifier's name.
        let split: Vec<&[u8]> = vec![b"bbbbbbbbbb", b"aaaa", b"_id", b"88"];
        assert_eq!(classify(&split), NameKind::Nothing);
    }

    #[test]
    fn classifies_prefixes_and_empty_names() {
        assert_eq!(classify_str("1.100.88.id.example."), NameKind::Prefix("88.100.1".into()));
        assert_eq!(classify_str("_id.1.100.88.id.example."), NameKind::IdRoot("88.100.1".into()));
        assert_eq!(classify_str("id.example."), NameKind::Apex);
        assert_eq!(classify_str("_id.id.example."), NameKind::Nothing);
        assert_eq!(classify_str("a_b.88.id.example."), NameKind::Nothing);
        assert_eq!(classify_str("x.a_b._id.88.id.example."), NameKind::Nothing);
    }

    #[test]
    fn too_long_for_dns_gives_none() {
        let id = Identifier::parse(&format!("88/{}", "q".repeat(300))).unwrap();
        assert!(identifier_name(&id, &Name::from_ascii("id.example.").unwrap()).is_none());
    }

    #[test]
    fn affected_names_run_from_the_identifier_to_the_apex() {
        let id = Identifier::parse("88.100/A").unwrap();
        let apex = b"\x02id\x07example\x00";
        let names = affected_names(&id, apex);
        assert_eq!(names.first().unwrap().as_slice(), b"\x01a\x03_id\x03100\x0288\x02id\x07example\x00");
        assert_eq!(names.last().unwrap().as_slice(), apex);
        assert_eq!(names.len(), 5);
    }

    #[test]
    fn names_below_a_delegated_prefix_are_found_by_label() {
        let apex = b"\x02id\x07example\x00";
        let cut = prefix_name("88.100", apex);
        assert_eq!(cut, b"\x03100\x0288\x02id\x07example\x00");
        let below = affected_names(&Identifier::parse("88.100.7/X").unwrap(), apex);
        assert!(below.iter().filter(|n| is_at_or_below(n, &cut)).count() == 4, "x, _id, 7 and the cut itself");
        let beside = affected_names(&Identifier::parse("88.1000/X").unwrap(), apex);
        assert!(!beside.iter().any(|n| n.len() > cut.len() && is_at_or_below(n, &cut)), "88.1000 is not under 88.100");
        // A label whose bytes end like the cut does not match: matching goes label by label.
        assert!(!is_at_or_below(b"\x04x100\x0288\x02id\x07example\x00", &cut));
    }

    #[test]
    fn txt_layout_round_trips_long_binary_data() {
        let data: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let v = Value::new(7, "BLOB", data.clone(), 0);
        let strings = txt_strings(&v);
        assert_eq!(strings.len(), 2 + 3);
        let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
        assert_eq!(parse_txt(&refs), Some((7, "BLOB".into(), data)));
        let empty = Value::new(8, "EMPTY", "", 0);
        let strings = txt_strings(&empty);
        let refs: Vec<&[u8]> = strings.iter().map(Vec::as_slice).collect();
        assert_eq!(parse_txt(&refs), Some((8, "EMPTY".into(), vec![])));
    }
}
