//! The Handle.Net JSON shape of values and records (docs/handle-model.md, "Values in JSON").
//!
//! Import and export files use it line by line, and the HTTP API will speak it, so the
//! conversion to and from [`Value`] lives in one place. Besides Handle.Net's fields
//! (`index`, `type`, `data`, `ttl`, `timestamp`) it reads the optional fields that national
//! registration APIs send: `ttlType`, `adminRead`/`adminWrite`/`publicRead`/`publicWrite` and
//! `references`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::identifier::{Identifier, IdentifierError};
use crate::record::admin::{decode_admin, decode_vlist, encode_admin, encode_vlist};
use crate::record::{DEFAULT_TTL, Permissions, Record, RecordError, Reference, Ttl, Value, types};

/// One identifier with its values: a line of an import or export file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRecord {
    pub handle: String,
    pub values: Vec<JsonValue>,
}

/// Unknown fields are ignored, as Handle.Net ignores them: clients send back what they read,
/// sometimes with fields of their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonValue {
    pub index: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: JsonData,
    #[serde(default = "default_ttl")]
    pub ttl: i64,
    /// 0: `ttl` is seconds to cache; 1: `ttl` is a Unix time until which one may cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ttl_type: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_write: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_write: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<JsonReference>,
}

/// `data` is either `{"format": ..., "value": ...}` or, as some clients send it, a bare string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JsonData {
    Typed { format: String, value: serde_json::Value },
    Plain(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonReference {
    pub identifier: String,
    pub index: u32,
}

fn default_ttl() -> i64 {
    i64::from(DEFAULT_TTL)
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// Why a JSON value could not become a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("{0}")]
    Identifier(#[from] IdentifierError),
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("value {index}: unknown data format {format:?} (expected string, base64, hex, admin, vlist or site)")]
    UnknownFormat { index: u32, format: String },
    #[error("value {index}: {format} data {problem}")]
    BadData { index: u32, format: &'static str, problem: String },
    #[error("value {index}: ttl {ttl} is out of range for ttlType {ttl_type}")]
    BadTtl { index: u32, ttl: i64, ttl_type: u8 },
    #[error("value {index}: timestamp {text:?} is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z)")]
    BadTimestamp { index: u32, text: String },
}

impl JsonRecord {
    /// Validates the identifier and every value; `now` stamps values that carry no timestamp.
    pub fn into_record(self, now: i64) -> Result<Record, JsonError> {
        let id = Identifier::parse(&self.handle)?;
        let values = self.values.into_iter().map(|v| v.into_value(now)).collect::<Result<Vec<_>, _>>()?;
        Ok(Record::new(&id, values)?)
    }

    pub fn from_record(record: &Record) -> Self {
        Self {
            handle: record.identifier.to_string(),
            values: record.values.iter().map(JsonValue::from_value).collect(),
        }
    }
}

impl JsonValue {
    pub fn into_value(self, now: i64) -> Result<Value, JsonError> {
        let index = self.index;
        let data = decode_data(index, &self.data)?;
        let bad_ttl = || JsonError::BadTtl { index, ttl: self.ttl, ttl_type: self.ttl_type };
        let ttl = match self.ttl_type {
            0 => Ttl::Relative(u32::try_from(self.ttl).map_err(|_| bad_ttl())?),
            1 => Ttl::Absolute(self.ttl),
            _ => return Err(bad_ttl()),
        };
        let timestamp = match &self.timestamp {
            None => now,
            Some(text) => parse_timestamp(text).ok_or_else(|| JsonError::BadTimestamp { index, text: text.clone() })?,
        };
        let d = Permissions::default();
        let permissions = Permissions::new(
            self.admin_read.unwrap_or(d.has(Permissions::ADMIN_READ)),
            self.admin_write.unwrap_or(d.has(Permissions::ADMIN_WRITE)),
            self.public_read.unwrap_or(d.has(Permissions::PUBLIC_READ)),
            self.public_write.unwrap_or(d.has(Permissions::PUBLIC_WRITE)),
        );
        let references =
            self.references.into_iter().map(|r| Reference { identifier: r.identifier, index: r.index }).collect();
        Ok(Value { index, kind: self.kind, data, ttl, timestamp, permissions, references })
    }

    pub fn from_value(v: &Value) -> Self {
        let (ttl, ttl_type) = match v.ttl {
            Ttl::Relative(s) => (i64::from(s), 0),
            Ttl::Absolute(t) => (t, 1),
        };
        // Only permissions that differ from the default are written, so that files stay in
        // the plain Handle.Net shape for the common case.
        let d = Permissions::default();
        let bit = |b: u8| (v.permissions.has(b) != d.has(b)).then_some(v.permissions.has(b));
        Self {
            index: v.index,
            kind: v.kind.clone(),
            data: encode_data(v),
            ttl,
            ttl_type,
            timestamp: Some(format_timestamp(v.timestamp)),
            admin_read: bit(Permissions::ADMIN_READ),
            admin_write: bit(Permissions::ADMIN_WRITE),
            public_read: bit(Permissions::PUBLIC_READ),
            public_write: bit(Permissions::PUBLIC_WRITE),
            references: v
                .references
                .iter()
                .map(|r| JsonReference { identifier: r.identifier.clone(), index: r.index })
                .collect(),
        }
    }
}

/// 9999-12-31T23:59:59Z: the last second RFC 3339 can write (its years have four digits).
const LAST_TIMESTAMP: i64 = 253_402_300_799;

pub fn format_timestamp(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.clamp(0, LAST_TIMESTAMP) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn parse_timestamp(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

//------------ Data formats ---------------------------------------------------

fn decode_data(index: u32, data: &JsonData) -> Result<Vec<u8>, JsonError> {
    let (format, value) = match data {
        JsonData::Plain(s) => return Ok(s.as_bytes().to_vec()),
        JsonData::Typed { format, value } => (format.as_str(), value),
    };
    let bad = |format: &'static str, problem: String| JsonError::BadData { index, format, problem };
    let text = |format: &'static str| value.as_str().ok_or_else(|| bad(format, "must be a JSON string".into()));
    match format {
        "string" => Ok(text("string")?.as_bytes().to_vec()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(text("base64")?)
            .map_err(|e| bad("base64", format!("is not base64: {e}"))),
        "hex" => hex::decode(text("hex")?).map_err(|e| bad("hex", format!("is not hex: {e}"))),
        "admin" => {
            let admin: JsonAdmin = serde_json::from_value(value.clone())
                .map_err(|e| bad("admin", format!("is not {{handle, index, permissions}}: {e}")))?;
            let perms = u16::from_str_radix(&admin.permissions, 2)
                .ok()
                .filter(|_| admin.permissions.len() == 12)
                .ok_or_else(|| bad("admin", "permissions must be 12 binary digits".into()))?;
            Ok(encode_admin(perms, &admin.handle, admin.index))
        }
        "vlist" => {
            let list: Vec<JsonVlistEntry> = serde_json::from_value(value.clone())
                .map_err(|e| bad("vlist", format!("is not a list of {{handle, index}}: {e}")))?;
            let pairs: Vec<(String, u32)> = list.into_iter().map(|e| (e.handle, e.index)).collect();
            Ok(encode_vlist(&pairs))
        }
        "site" => {
            let site: crate::record::site::Site = serde_json::from_value(value.clone())
                .map_err(|e| bad("site", format!("is not a Handle.Net site: {e}")))?;
            site.validate().map_err(|e| bad("site", e))?;
            Ok(site.encode())
        }
        other => Err(JsonError::UnknownFormat { index, format: other.to_owned() }),
    }
}

/// The structured format of an HS_ADMIN, HS_SITE or HS_VLIST value only when reading it back
/// gives the same bytes (permissions beyond 12 bits, a site without servers or with fields the
/// JSON form drops do not): otherwise the bytes as a string or base64, so that what is exported
/// or resolved imports unchanged.
fn encode_data(v: &Value) -> JsonData {
    let typed = |format: &str, value: serde_json::Value| JsonData::Typed { format: format.into(), value };
    let structured = structured_data(v).filter(|data| decode_data(v.index, data).is_ok_and(|d| d == v.data));
    structured.unwrap_or_else(|| match std::str::from_utf8(&v.data) {
        Ok(s) => typed("string", s.into()),
        Err(_) => typed("base64", base64::engine::general_purpose::STANDARD.encode(&v.data).into()),
    })
}

fn structured_data(v: &Value) -> Option<JsonData> {
    let typed = |format: &str, value| Some(JsonData::Typed { format: format.into(), value });
    if v.is_type(types::ADMIN) {
        let (perms, handle, index) = decode_admin(&v.data)?;
        let admin = JsonAdmin { handle, index, permissions: format!("{perms:012b}") };
        return typed("admin", serde_json::to_value(admin).expect("plain struct"));
    }
    if v.is_type(types::SITE) {
        let site = crate::record::site::Site::decode(&v.data)?;
        return typed("site", serde_json::to_value(site).expect("plain struct"));
    }
    if v.is_type(types::VLIST) {
        let list: Vec<JsonVlistEntry> =
            decode_vlist(&v.data)?.into_iter().map(|(handle, index)| JsonVlistEntry { handle, index }).collect();
        return typed("vlist", serde_json::to_value(list).expect("plain struct"));
    }
    None
}

#[derive(Serialize, Deserialize)]
struct JsonAdmin {
    handle: String,
    /// pyhandle sends the index as a string ("200"), Handle.Net as a number.
    #[serde(deserialize_with = "number_or_string")]
    index: u32,
    permissions: String,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u32),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(t) => t.trim().parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Serialize, Deserialize)]
struct JsonVlistEntry {
    handle: String,
    #[serde(deserialize_with = "number_or_string")]
    index: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Record, JsonError> {
        serde_json::from_str::<JsonRecord>(line).unwrap().into_record(1_000)
    }

    #[test]
    fn reads_the_handle_net_shape() {
        let r = parse(
            r#"{"handle":"88.100.1/A","values":[
                {"index":1,"type":"URL","data":{"format":"string","value":"https://x"},"ttl":600,
                 "timestamp":"2026-01-01T00:00:00Z"},
                {"index":100,"type":"HS_ADMIN","data":{"format":"admin",
                 "value":{"handle":"0.NA/88.100.1","index":"200","permissions":"011111110011"}}},
                {"index":2,"type":"BLOB","data":{"format":"base64","value":"AAEC"},"publicRead":false},
                {"index":3,"type":"HEX","data":{"format":"hex","value":"ff00"},"ttlType":1,"ttl":1900000000},
                {"index":4,"type":"NOTE","data":"plain"}]}"#,
        )
        .unwrap();
        assert_eq!(r.values[0].data, b"https://x");
        assert_eq!(r.values[0].ttl, Ttl::Relative(600));
        assert_eq!(r.values[0].timestamp, 1_767_225_600);
        assert_eq!(decode_admin(&r.values[1].data), Some((0b011111110011, "0.NA/88.100.1".into(), 200)));
        assert_eq!(r.values[1].timestamp, 1_000, "missing timestamp means now");
        assert_eq!(r.values[2].data, [0, 1, 2]);
        assert!(!r.values[2].is_public());
        assert_eq!(r.values[3].ttl, Ttl::Absolute(1_900_000_000));
        assert_eq!(r.values[4].data, b"plain");
    }

    #[test]
    fn export_then_import_is_lossless() {
        let r = parse(
            r#"{"handle":"88.100.1/A","values":[
                {"index":100,"type":"HS_ADMIN","data":{"format":"admin",
                 "value":{"handle":"0.NA/88","index":300,"permissions":"111111111111"}}},
                {"index":200,"type":"HS_VLIST","data":{"format":"vlist","value":[{"handle":"0.NA/88","index":300}]}},
                {"index":2,"type":"BIN","data":{"format":"hex","value":"fffe"},"publicRead":false,"publicWrite":true,
                 "references":[{"identifier":"88/b","index":1}]}]}"#,
        )
        .unwrap();
        let line = serde_json::to_string(&JsonRecord::from_record(&r)).unwrap();
        assert!(line.contains(r#""format":"admin""#) && line.contains(r#""format":"vlist""#));
        let back = serde_json::from_str::<JsonRecord>(&line).unwrap().into_record(5).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn data_that_a_typed_format_cannot_carry_exports_raw_and_imports_unchanged() {
        // Found by fuzz/ (json_value): HS_ADMIN permissions beyond 12 bits and an HS_SITE without
        // servers were exported in formats that import refuses; a site with fields the JSON
        // form drops would import as other bytes.
        let id = Identifier::parse("88/a").unwrap();
        let site = |servers| crate::record::site::Site {
            version: 1,
            protocol_version: "2.10".into(),
            serial_number: 1,
            primary_site: true,
            multi_primary: false,
            hash_option: 2,
            attributes: vec![],
            servers,
        };
        let address = [192, 0, 2, 1].into();
        let server = crate::record::site::Server { server_id: 1, address, public_key: vec![], interfaces: vec![] };
        let mut foreign = site(vec![server]).encode();
        foreign.splice(8..12, [0, 0, 0, 1, b'x']); // a hash filter, which the JSON form does not hold
        let record = Record::new(
            &id,
            vec![
                Value::new(1, "HS_ADMIN", encode_admin(0xffff, "0.NA/88", 300), 0),
                Value::new(2, "HS_SITE", site(vec![]).encode(), 0),
                Value::new(3, "HS_SITE", foreign, 0),
            ],
        )
        .unwrap();
        let line = serde_json::to_string(&JsonRecord::from_record(&record)).unwrap();
        let back = serde_json::from_str::<JsonRecord>(&line).unwrap().into_record(0);
        assert_eq!(back, Ok(record), "{line}");
    }

    #[test]
    fn timestamps_past_year_9999_are_written_as_its_last_second() {
        // Found by fuzz/ (record_decode): a stored timestamp that RFC 3339 cannot write panicked.
        assert_eq!(format_timestamp(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(format_timestamp(-5), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn errors_say_which_value_and_why() {
        let err = |v: &str| parse(&format!(r#"{{"handle":"88/a","values":[{v}]}}"#)).unwrap_err().to_string();
        assert!(
            err(r#"{"index":7,"type":"X","data":{"format":"nope","value":"a"}}"#)
                .starts_with("value 7: unknown data format")
        );
        assert!(err(r#"{"index":7,"type":"X","data":{"format":"base64","value":"!!"}}"#).contains("is not base64"));
        assert!(err(r#"{"index":7,"type":"X","data":"a","ttl":-1}"#).contains("ttl -1 is out of range"));
        assert!(err(r#"{"index":7,"type":"X","data":"a","timestamp":"yesterday"}"#).contains("not an RFC 3339"));
        assert!(
            err(r#"{"index":1,"type":"X","data":"a"},{"index":1,"type":"Y","data":"b"}"#)
                .contains("index 1 appears twice")
        );
        let bad_id = parse(r#"{"handle":"88","values":[]}"#).unwrap_err().to_string();
        assert!(bad_id.contains("has no suffix"));
    }
}
