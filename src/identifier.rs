//! Identifiers: `PREFIX/SUFFIX` text, validated once at the edge.
//!
//! Every interface (DNS names, JSON, import files, the CLI) turns what it receives into an
//! [`Identifier`] before anything touches storage, so the rules live here only. Matching is
//! ASCII case-insensitive (Handle.Net's default, `case_sensitive = false`): the registry keys
//! records by [`Identifier::key`], while the record keeps the case that was registered.

use std::fmt;

/// 2048: the longest identifier Handle.Net 9 accepts (docs/handle-model.md, "Limits").
pub const MAX_IDENTIFIER_LEN: usize = 2048;
/// 63: a prefix segment becomes one DNS label, and a label holds at most 63 bytes (RFC 1035).
pub const MAX_SEGMENT_LEN: usize = 63;
/// The prefix under which prefix records live: `0.NA/88.100.1` is the record of `88.100.1`
/// (Handle.Net's naming of prefix records, kept so that its clients find them).
pub const PREFIX_AUTHORITY: &str = "0.NA";

/// Why a text is not an identifier or a prefix. Each variant names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("the identifier is empty")]
    Empty,
    #[error("{prefix} has no suffix (expected PREFIX/SUFFIX, e.g. {prefix}/ABC-123)")]
    NoSuffix { prefix: String },
    #[error("the suffix after {prefix}/ is empty")]
    EmptySuffix { prefix: String },
    #[error("the prefix is empty (expected PREFIX/SUFFIX, e.g. 88.100.1/ABC-123)")]
    EmptyPrefix,
    #[error("prefix segment {segment} is empty")]
    EmptySegment { segment: usize },
    #[error("prefix segment {segment} is {len} bytes long; at most {max} are allowed")]
    SegmentTooLong { segment: usize, len: usize, max: usize },
    #[error("prefix segment {segment} contains {found:?}; only ASCII letters, digits and '-' are allowed")]
    BadSegmentChar { segment: usize, found: char },
    #[error("the suffix contains the control character U+{code:04X} at byte {offset}")]
    ControlChar { code: u32, offset: usize },
    #[error("the identifier is {len} bytes long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
}

/// A validated identifier, in the case it was written.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identifier {
    text: String,
    /// Byte offset of the `/` that ends the prefix.
    slash: usize,
}

impl Identifier {
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        if text.is_empty() {
            return Err(IdentifierError::Empty);
        }
        if text.len() > MAX_IDENTIFIER_LEN {
            return Err(IdentifierError::TooLong { len: text.len(), max: MAX_IDENTIFIER_LEN });
        }
        let Some(slash) = text.find('/') else {
            check_prefix(text)?;
            return Err(IdentifierError::NoSuffix { prefix: text.to_owned() });
        };
        let (prefix, suffix) = (&text[..slash], &text[slash + 1..]);
        if prefix.is_empty() {
            return Err(IdentifierError::EmptyPrefix);
        }
        check_prefix(prefix)?;
        if suffix.is_empty() {
            return Err(IdentifierError::EmptySuffix { prefix: prefix.to_owned() });
        }
        if let Some((offset, c)) = suffix.char_indices().find(|(_, c)| c.is_control()) {
            return Err(IdentifierError::ControlChar { code: c as u32, offset: slash + 1 + offset });
        }
        Ok(Self { text: text.to_owned(), slash })
    }

    /// Builds `prefix/suffix` from parts (the DNS name mapping works in parts).
    pub fn from_parts(prefix: &str, suffix: &str) -> Result<Self, IdentifierError> {
        Self::parse(&format!("{prefix}/{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn prefix(&self) -> &str {
        &self.text[..self.slash]
    }

    pub fn suffix(&self) -> &str {
        &self.text[self.slash + 1..]
    }

    /// The registry key: ASCII letters folded to lower case, every other byte kept.
    pub fn key(&self) -> String {
        self.text.to_ascii_lowercase()
    }

    /// The record of `prefix`: `88.100.1` -> `0.NA/88.100.1`. Fails when `prefix` is no prefix.
    pub fn prefix_record(prefix: &str) -> Result<Self, IdentifierError> {
        check_prefix(prefix)?;
        Self::from_parts(PREFIX_AUTHORITY, prefix)
    }

    /// For a prefix record (`0.NA/88.100.1`), the prefix it stands for (`88.100.1`); `None` for
    /// any other identifier. The suffix is returned as written: it may be no valid prefix.
    pub fn record_prefix(&self) -> Option<&str> {
        self.prefix().eq_ignore_ascii_case(PREFIX_AUTHORITY).then(|| self.suffix())
    }
}

/// The registry key of a prefix's record: `88.100.1` -> `0.na/88.100.1`. Cheaper than
/// [`Identifier::prefix_record`] for a prefix already known to be valid (a lookup, not a write).
pub fn prefix_record_key(prefix: &str) -> String {
    format!("{PREFIX_AUTHORITY}/{prefix}").to_ascii_lowercase()
}

/// The parent of a prefix (`88.100.1` -> `88.100`); `None` for a top-level prefix (`88`).
pub fn parent_prefix(prefix: &str) -> Option<&str> {
    prefix.rsplit_once('.').map(|(parent, _)| parent)
}

/// Whether `prefix` is `ancestor` or lies below it (`88.100.1` below `88.100`, not `88.1000`);
/// every prefix lies below `""`, the whole namespace.
pub fn is_at_or_below(prefix: &str, ancestor: &str) -> bool {
    ancestor.is_empty() || prefix.strip_prefix(ancestor).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

impl PartialEq<str> for Identifier {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Identifier {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl std::str::FromStr for Identifier {
    type Err = IdentifierError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Serialised as its text: the stored form of a record holds the identifier as a string, so a
/// record written when the field was a `String` reads back unchanged.
impl serde::Serialize for Identifier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Identifier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({:?})", self.text)
    }
}

/// Checks a prefix (`88.100.1`): dot-separated segments of ASCII letters, digits and `-`.
pub fn check_prefix(prefix: &str) -> Result<(), IdentifierError> {
    if prefix.is_empty() {
        return Err(IdentifierError::EmptyPrefix);
    }
    for (i, segment) in prefix.split('.').enumerate() {
        check_segment(i + 1, segment)?;
    }
    Ok(())
}

/// Checks one prefix segment; `segment` is its 1-based position, for the message.
pub fn check_segment(segment: usize, text: &str) -> Result<(), IdentifierError> {
    if text.is_empty() {
        return Err(IdentifierError::EmptySegment { segment });
    }
    if text.len() > MAX_SEGMENT_LEN {
        return Err(IdentifierError::SegmentTooLong { segment, len: text.len(), max: MAX_SEGMENT_LEN });
    }
    match text.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        Some(found) => Err(IdentifierError::BadSegmentChar { segment, found }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_and_suffix() {
        let id = Identifier::parse("88.100.1/ABC-123").unwrap();
        assert_eq!(id.prefix(), "88.100.1");
        assert_eq!(id.suffix(), "ABC-123");
        assert_eq!(id.key(), "88.100.1/abc-123");
        assert_eq!(id.to_string(), "88.100.1/ABC-123");
    }

    #[test]
    fn suffix_may_hold_slashes_dots_and_unicode() {
        let id = Identifier::parse("88.100.1/a/b.c:d/Ä").unwrap();
        assert_eq!(id.suffix(), "a/b.c:d/Ä");
        // Only ASCII folds: Ä stays as registered.
        assert_eq!(id.key(), "88.100.1/a/b.c:d/Ä");
    }

    #[test]
    fn errors_name_the_problem() {
        let msg = |t: &str| Identifier::parse(t).unwrap_err().to_string();
        assert_eq!(msg("88.100.1"), "88.100.1 has no suffix (expected PREFIX/SUFFIX, e.g. 88.100.1/ABC-123)");
        assert_eq!(msg("88..1/x"), "prefix segment 2 is empty");
        assert_eq!(msg("88.1_0/x"), "prefix segment 2 contains '_'; only ASCII letters, digits and '-' are allowed");
        assert_eq!(msg("88.100/"), "the suffix after 88.100/ is empty");
        assert_eq!(msg("/x"), "the prefix is empty (expected PREFIX/SUFFIX, e.g. 88.100.1/ABC-123)");
        assert_eq!(msg(""), "the identifier is empty");
        assert_eq!(msg("88/a\u{7}b"), "the suffix contains the control character U+0007 at byte 4");
        assert!(msg(&format!("88/{}", "x".repeat(2046))).contains("2049 bytes long"));
        assert!(msg(&format!("{}/x", "1".repeat(64))).contains("segment 1 is 64 bytes"));
    }

    #[test]
    fn prefix_records_name_their_prefix() {
        let record = Identifier::prefix_record("88.100.1").unwrap();
        assert_eq!(record.as_str(), "0.NA/88.100.1");
        assert_eq!(record.record_prefix(), Some("88.100.1"));
        assert_eq!(Identifier::parse("0.na/88").unwrap().record_prefix(), Some("88"), "matched ignoring case");
        assert_eq!(Identifier::parse("88.100/X").unwrap().record_prefix(), None);
        assert!(Identifier::prefix_record("88..1").is_err());
        assert_eq!(prefix_record_key("88.100.A"), "0.na/88.100.a");
        assert_eq!(parent_prefix("88.100.1"), Some("88.100"));
        assert_eq!(parent_prefix("88"), None);
    }

    #[test]
    fn prefixes_that_share_digits_are_not_below_each_other() {
        assert!(is_at_or_below("88.100", "88.100"));
        assert!(is_at_or_below("88.100.5", "88.100"));
        assert!(is_at_or_below("88.100", ""));
        assert!(!is_at_or_below("88.1000", "88.100"));
        assert!(!is_at_or_below("88.10", "88.100"));
        assert!(!is_at_or_below("88", "88.100"));
    }

    #[test]
    fn serialises_as_its_text() {
        let id = Identifier::parse("88.100/Ab").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""88.100/Ab""#);
        assert_eq!(serde_json::from_str::<Identifier>(r#""88.100/Ab""#).unwrap(), id);
        assert!(serde_json::from_str::<Identifier>(r#""88.100""#).is_err());
    }

    #[test]
    fn longest_identifier_is_accepted() {
        let text = format!("88/{}", "x".repeat(MAX_IDENTIFIER_LEN - 3));
        assert_eq!(Identifier::parse(&text).unwrap().as_str().len(), MAX_IDENTIFIER_LEN);
    }
}
