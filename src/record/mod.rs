//! Records: an identifier and its values, in the Handle value model (docs/handle-model.md, "Values").
//!
//! This is what the registry stores and what every protocol front end reads. Stored bytes are
//! one format-version byte followed by postcard, so a later layout can be read beside this one.

use serde::{Deserialize, Serialize};

use crate::identifier::Identifier;

pub mod admin;
pub mod json;
pub mod site;

/// 2048: the most values per identifier that Handle.Net 9 accepts.
pub const MAX_VALUES: usize = 2048;
/// 255: a value type travels as one DNS character-string in the TXT layout (docs/dns-mapping.md).
pub const MAX_TYPE_LEN: usize = 255;
/// 86400: the Handle value model's default TTL (one day).
pub const DEFAULT_TTL: u32 = 86_400;
/// The first byte of every stored record; bump it when the layout changes. Version 2 leaves out
/// the identifier, which the registry key already holds but for the case of its letters: it
/// keeps a bitmap of its capitals instead (3 bytes where a generated identifier took 22, 12% of
/// its record). Version 1 (the record with its identifier) is still read.
const FORMAT_VERSION: u8 = 2;
/// The first layout: the whole [`Record`] in postcard.
const FORMAT_V1: u8 = 1;
/// 30,000: the most an identifier's values may weigh together, each counted as its data, its
/// type and [`VALUE_OVERHEAD`]. Every value becomes a TXT record in DNS and a URL also a URI
/// record, so the largest DNS answer stays near 61,000 bytes: within one DNS message (65,535)
/// with any question and OPT record, so no answer is ever cut or malformed.
pub const MAX_RECORD_SIZE: usize = 30_000;
/// 64: what a value costs beyond its data and type in the DNS answer (two owner names, two fixed
/// record headers, the index and length bytes), rounded up.
pub const VALUE_OVERHEAD: usize = 64;

/// The value types the node itself interprets. They are matched ignoring ASCII case, as CNRI's
/// server matches them, so `hs_seckey` is a secret key too.
pub mod types {
    pub const ADMIN: &str = "HS_ADMIN";
    pub const SECRET_KEY: &str = "HS_SECKEY";
    /// An administrator's public key, in Handle's key encoding.
    pub const PUBKEY: &str = "HS_PUBKEY";
    pub const VLIST: &str = "HS_VLIST";
    pub const SITE: &str = "HS_SITE";
    /// A service handle: the identifier whose `HS_SITE` values serve a prefix (Handle referrals).
    pub const SERV: &str = "HS_SERV";
}

/// An identifier and its values, in the case the identifier was registered.
///
/// The identifier is stored as its text (see [`Identifier`]'s serde form), as when this field
/// was a `String`: records written then read back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub identifier: Identifier,
    pub values: Vec<Value>,
}

/// One typed value of an identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    pub index: u32,
    /// The value type (`URL`, `HS_ADMIN`, or any application type).
    pub kind: String,
    pub data: Vec<u8>,
    pub ttl: Ttl,
    /// Last change, seconds since the Unix epoch.
    pub timestamp: i64,
    pub permissions: Permissions,
    pub references: Vec<Reference>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ttl {
    /// Seconds a client may cache the value.
    Relative(u32),
    /// The value may be cached until this Unix time.
    Absolute(i64),
}

impl Ttl {
    /// Seconds left at `now` (Unix seconds); an absolute TTL in the past gives 0.
    pub fn seconds_at(self, now: i64) -> u32 {
        match self {
            Ttl::Relative(s) => s,
            Ttl::Absolute(t) => u32::try_from((t - now).max(0)).unwrap_or(u32::MAX),
        }
    }
}

/// Permission bits of a value: admin-read, admin-write, public-read, public-write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions(u8);

impl Permissions {
    pub const ADMIN_READ: u8 = 0b0001;
    pub const ADMIN_WRITE: u8 = 0b0010;
    pub const PUBLIC_READ: u8 = 0b0100;
    pub const PUBLIC_WRITE: u8 = 0b1000;

    pub fn new(admin_read: bool, admin_write: bool, public_read: bool, public_write: bool) -> Self {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        Self(
            bit(admin_read, Self::ADMIN_READ)
                | bit(admin_write, Self::ADMIN_WRITE)
                | bit(public_read, Self::PUBLIC_READ)
                | bit(public_write, Self::PUBLIC_WRITE),
        )
    }

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

impl Default for Permissions {
    /// All but public-write (docs/handle-model.md, "Permissions").
    fn default() -> Self {
        Self(Self::ADMIN_READ | Self::ADMIN_WRITE | Self::PUBLIC_READ)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub identifier: String,
    pub index: u32,
}

impl Value {
    /// A value with the model's defaults: TTL one day, default permissions, no references.
    pub fn new(index: u32, kind: &str, data: impl Into<Vec<u8>>, timestamp: i64) -> Self {
        Self {
            index,
            kind: kind.to_owned(),
            data: data.into(),
            ttl: Ttl::Relative(DEFAULT_TTL),
            timestamp,
            permissions: Permissions::default(),
            references: Vec::new(),
        }
    }

    /// Whether the value has type `kind` (one of [`types`]), ignoring ASCII case.
    pub fn is_type(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }

    /// Whether an anonymous client may see this value. Secret keys never leave the node.
    pub fn is_public(&self) -> bool {
        self.permissions.has(Permissions::PUBLIC_READ) && !self.is_type(types::SECRET_KEY)
    }

    /// What the value counts against [`MAX_RECORD_SIZE`].
    pub fn size(&self) -> usize {
        self.data.len() + self.kind.len() + VALUE_OVERHEAD
    }
}

/// Why a record was refused or could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("index {index} appears twice")]
    DuplicateIndex { index: u32 },
    #[error("{count} values; at most {max} are allowed per identifier")]
    TooManyValues { count: usize, max: usize },
    #[error("the type of value {index} is {len} bytes long; at most {max} are allowed")]
    TypeTooLong { index: u32, len: usize, max: usize },
    #[error(
        "the values weigh {size} bytes (data and type, plus {VALUE_OVERHEAD} a value); \
         at most {max} are allowed per identifier"
    )]
    TooLarge { size: usize, max: usize },
    #[error("stored record has format version {found}; this build reads version {FORMAT_VERSION}")]
    UnknownFormat { found: u8 },
    #[error("stored record is corrupt: {reason}")]
    Corrupt { reason: String },
}

impl Record {
    /// Checks the value rules and builds the record for a validated identifier.
    pub fn new(identifier: &Identifier, values: Vec<Value>) -> Result<Self, RecordError> {
        if values.len() > MAX_VALUES {
            return Err(RecordError::TooManyValues { count: values.len(), max: MAX_VALUES });
        }
        let mut seen = std::collections::HashSet::with_capacity(values.len());
        for v in &values {
            if !seen.insert(v.index) {
                return Err(RecordError::DuplicateIndex { index: v.index });
            }
            if v.kind.len() > MAX_TYPE_LEN {
                return Err(RecordError::TypeTooLong { index: v.index, len: v.kind.len(), max: MAX_TYPE_LEN });
            }
        }
        let size: usize = values.iter().map(Value::size).sum();
        if size > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge { size, max: MAX_RECORD_SIZE });
        }
        Ok(Self { identifier: identifier.clone(), values })
    }

    /// The stored form, under the registry key [`Identifier::key`]: `FORMAT_VERSION`, then in
    /// postcard which letters of the identifier are capitals (bit `i % 8` of byte `i / 8` for
    /// byte `i`, no trailing zero bytes) and the values.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// [`Record::encode`], appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut capitals: Vec<u8> = Vec::new();
        for (i, byte) in self.identifier.as_str().bytes().enumerate() {
            if byte.is_ascii_uppercase() {
                capitals.resize(capitals.len().max(i / 8 + 1), 0);
                capitals[i / 8] |= 1 << (i % 8);
            }
        }
        out.push(FORMAT_VERSION);
        // Serialising byte strings and integers into a Vec cannot fail.
        postcard::to_io(&(capitals.as_slice(), &self.values), out).expect("postcard writes into a Vec");
    }

    /// Reads the stored form under registry key `key` back; an unknown version, bytes that are
    /// no record, or a record that is not the key's are errors.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, RecordError> {
        let corrupt = |reason: &str| RecordError::Corrupt { reason: reason.to_owned() };
        let record = match bytes.split_first() {
            Some((&FORMAT_VERSION, body)) => {
                let (capitals, values): (Vec<u8>, Vec<Value>) =
                    postcard::from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
                if capitals.len() > key.len().div_ceil(8) || capitals.last() == Some(&0) {
                    return Err(corrupt("its capitals do not fit its key"));
                }
                let mut text = key.to_vec();
                for (i, byte) in text.iter_mut().enumerate() {
                    if capitals.get(i / 8).is_some_and(|bits| bits & (1 << (i % 8)) != 0) {
                        if !byte.is_ascii_lowercase() {
                            return Err(corrupt("a capital marked on what is no lower-case letter"));
                        }
                        byte.make_ascii_uppercase();
                    }
                }
                let text = String::from_utf8(text).map_err(|_| corrupt("its key is not UTF-8"))?;
                let identifier = Identifier::parse(&text).map_err(|e| corrupt(&e.to_string()))?;
                Record { identifier, values }
            }
            Some((&FORMAT_V1, body)) => postcard::from_bytes::<Record>(body).map_err(|e| corrupt(&e.to_string()))?,
            Some((&found, _)) => return Err(RecordError::UnknownFormat { found }),
            None => return Err(corrupt("empty")),
        };
        if record.identifier.key().as_bytes() != key {
            return Err(corrupt("its identifier is not the one of its key"));
        }
        Ok(record)
    }
}

/// Seconds since the Unix epoch, for value timestamps.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let id = Identifier::parse("88.100.1/ABC-123").unwrap();
        let mut admin = Value::new(100, "HS_ADMIN", vec![0x0f, 0xf2, 0, 0], 1_700_000_000);
        admin.permissions = Permissions::new(true, true, false, false);
        let mut url = Value::new(1, "URL", "https://example.com/p/ABC-123", 1_700_000_000);
        url.ttl = Ttl::Absolute(1_900_000_000);
        url.references.push(Reference { identifier: "88.100.1/XYZ".into(), index: 2 });
        Record::new(&id, vec![url, admin, Value::new(2, "EMAIL", "", 0)]).unwrap()
    }

    const KEY: &[u8] = b"88.100.1/abc-123";

    #[test]
    fn round_trips_under_its_key_with_the_case_of_its_identifier() {
        let r = sample();
        let bytes = r.encode();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(Record::decode(KEY, &bytes).unwrap(), r);
        // Capitals at bytes 9, 10 and 11 (`ABC`): one bitmap byte, then a second one.
        assert_eq!(bytes[1..4], [2, 0, 0b1110]);
        assert!(!bytes.windows(16).any(|w| w == b"88.100.1/ABC-123"), "the identifier is not stored");
        let lower = Record::new(&Identifier::parse("88/x").unwrap(), vec![]).unwrap();
        assert_eq!(lower.encode(), [FORMAT_VERSION, 0, 0], "no capitals, no values");
        assert_eq!(Record::decode(b"88/x", &lower.encode()), Ok(lower));
    }

    #[test]
    fn a_record_read_under_another_key_or_with_bad_capitals_is_corrupt() {
        let bytes = sample().encode();
        // The key is the identifier: under another key of the same shape it reads as that one.
        assert_eq!(Record::decode(b"88.100.1/xyz-9", &bytes).unwrap().identifier.as_str(), "88.100.1/XYZ-9");
        // Capitals on bytes that are no letters, past the key's end, or a key that is no identifier.
        for key in [&b"88.100.1/123-abc"[..], b"xxxxxxxxxabc-123", b"", b"\xff\xfe"] {
            assert!(matches!(Record::decode(key, &bytes), Err(RecordError::Corrupt { .. })), "{key:?}");
        }
        let capitals = |mask: &[u8]| {
            let mut bytes = vec![FORMAT_VERSION];
            bytes.extend(postcard::to_allocvec(&(mask, Vec::<Value>::new())).unwrap());
            Record::decode(KEY, &bytes)
        };
        assert!(capitals(&[0, 0b1110]).is_ok());
        assert!(matches!(capitals(&[1]), Err(RecordError::Corrupt { .. })), "`8` has no capital");
        assert!(matches!(capitals(&[0, 0b1110, 0]), Err(RecordError::Corrupt { .. })), "a trailing zero byte");
        assert!(matches!(capitals(&[0, 0, 0x80]), Err(RecordError::Corrupt { .. })), "past the key's end");
    }

    #[test]
    fn records_of_the_first_layout_read_back() {
        // Bytes of the version 1 layout as the first releases wrote them (`identifier: String`):
        // `88/A` with one value, index 1, URL "x", TTL 600 s, timestamp 0, default permissions.
        let old = [1, 4, b'8', b'8', b'/', b'A', 1, 1, 3, b'U', b'R', b'L', 1, b'x', 0, 0xd8, 0x04, 0, 7, 0];
        let mut url = Value::new(1, "URL", "x", 0);
        url.ttl = Ttl::Relative(600);
        let expected = Record::new(&Identifier::parse("88/A").unwrap(), vec![url]).unwrap();
        assert_eq!(Record::decode(b"88/a", &old), Ok(expected.clone()));
        assert!(matches!(Record::decode(b"88/b", &old), Err(RecordError::Corrupt { .. })), "under another key");
        assert_eq!(Record::decode(b"88/a", &expected.encode()), Ok(expected), "and as written now");
        // The same with the old type itself, for a record with every field set.
        #[derive(Serialize)]
        struct OldRecord {
            identifier: String,
            values: Vec<Value>,
        }
        let r = sample();
        let mut bytes = vec![FORMAT_V1];
        bytes.extend(
            postcard::to_allocvec(&OldRecord { identifier: r.identifier.to_string(), values: r.values.clone() })
                .unwrap(),
        );
        assert_eq!(Record::decode(KEY, &bytes), Ok(r));
        // A stored identifier that is no identifier is a corrupt record, not a panic.
        let bad = [1, 2, b'8', b'8', 0];
        assert!(matches!(Record::decode(b"88", &bad), Err(RecordError::Corrupt { .. })));
    }

    #[test]
    fn unknown_version_and_garbage_are_errors_not_panics() {
        let mut bytes = sample().encode();
        bytes[0] = 9;
        assert_eq!(Record::decode(KEY, &bytes), Err(RecordError::UnknownFormat { found: 9 }));
        assert!(matches!(Record::decode(KEY, &[FORMAT_VERSION, 0xff]), Err(RecordError::Corrupt { .. })));
        assert!(matches!(Record::decode(KEY, &[]), Err(RecordError::Corrupt { .. })));
    }

    #[test]
    fn rejects_duplicate_index_and_long_type() {
        let id = Identifier::parse("88/x").unwrap();
        let dup = vec![Value::new(1, "URL", "a", 0), Value::new(1, "URL", "b", 0)];
        assert_eq!(Record::new(&id, dup), Err(RecordError::DuplicateIndex { index: 1 }));
        let long = vec![Value::new(1, &"T".repeat(256), "a", 0)];
        assert!(matches!(Record::new(&id, long), Err(RecordError::TypeTooLong { .. })));
        let fits = MAX_RECORD_SIZE - VALUE_OVERHEAD - 3;
        assert!(Record::new(&id, vec![Value::new(1, "URL", vec![b'x'; fits], 0)]).is_ok());
        let over = vec![Value::new(1, "URL", vec![b'x'; fits + 1], 0)];
        assert!(matches!(Record::new(&id, over), Err(RecordError::TooLarge { .. })));
        let many: Vec<_> = (0..=MAX_RECORD_SIZE / VALUE_OVERHEAD).map(|i| Value::new(i as u32, "", "", 0)).collect();
        assert!(matches!(Record::new(&id, many), Err(RecordError::TooLarge { .. })), "each value counts");
    }

    #[test]
    fn secret_keys_and_private_values_are_not_public() {
        let mut v = Value::new(300, "HS_SECKEY", "s", 0);
        assert!(!v.is_public());
        v.kind = "hs_seckey".into();
        assert!(!v.is_public(), "type names the node interprets ignore case");
        v.kind = "URL".into();
        assert!(v.is_public());
        v.permissions = Permissions::new(true, true, false, false);
        assert!(!v.is_public());
    }

    #[test]
    fn absolute_ttl_counts_down_to_zero() {
        assert_eq!(Ttl::Absolute(100).seconds_at(40), 60);
        assert_eq!(Ttl::Absolute(100).seconds_at(400), 0);
        assert_eq!(Ttl::Relative(5).seconds_at(400), 5);
    }
}
