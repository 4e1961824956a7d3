//! `json_value`: any bytes as the JSON of a write's values (the HTTP API's body) and as a line of
//! an import file.
//!
//! Whatever is accepted must survive the way back: the values written out as the API and the
//! export write them, then read again, are the same values. A client that resolves an
//! identifier and puts its values back, or an export imported again, changes nothing.

use idnode::http::parse;
use idnode::record::json::{JsonRecord, JsonValue};

/// Stamps values that carry no timestamp; any fixed time would do.
const NOW: i64 = 1_767_225_600;

pub fn json_value(data: &[u8]) {
    if let Some(values) = parse::values(data) {
        let written: Vec<JsonValue> = values.iter().map(JsonValue::from_value).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "values": written })).expect("values serialise");
        let read = parse::values(&body).unwrap_or_else(|| {
            panic!("written values are refused\ninput {}\nwritten {}", crate::hex(data), String::from_utf8_lossy(&body))
        });
        assert_eq!(read, values, "values change on the way back\ninput {}", crate::hex(data));
    }
    // An import line as `import` reads it (less the sealing of secrets, which only hashes).
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Ok(Ok(record)) = serde_json::from_str::<JsonRecord>(line).map(|r| r.into_record(NOW)) else { return };
    let exported = serde_json::to_string(&JsonRecord::from_record(&record)).expect("a record serialises");
    assert!(!exported.contains('\n'), "an export line is one line: {exported}");
    let imported = serde_json::from_str::<JsonRecord>(&exported)
        .map_err(|e| e.to_string())
        .and_then(|r| r.into_record(NOW + 1).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("an exported line is refused: {e}\ninput {line}\nexported {exported}"));
    assert_eq!(imported, record, "a record changes on export and import\ninput {line}\nexported {exported}");
}
