//! `record_decode`: any bytes as a record read from the registry under any key (a damaged file,
//! or one written by another build).
//!
//! Decoding returns a record or an error, never panics; a decoded record encodes and decodes to
//! itself. What the front ends do with a stored record (export it, show it over HTTP, read its
//! sites for a referral, lay it out as DNS records) must not panic on one either.

use idnode::dns::mapping;
use idnode::record::Record;
use idnode::record::json::JsonRecord;

pub fn record_decode(data: &[u8]) {
    // The first byte says how long the registry key is that the rest is read under.
    let Some((&len, rest)) = data.split_first() else { return };
    let (key, bytes) = rest.split_at((len as usize).min(rest.len()));
    let Ok(record) = Record::decode(key, bytes) else { return };
    let again = Record::decode(record.identifier.key().as_bytes(), &record.encode());
    assert_eq!(again.as_ref(), Ok(&record), "a decoded record re-encodes to itself\ninput {}", crate::hex(data));
    serde_json::to_string(&JsonRecord::from_record(&record)).expect("a record serialises");
    idnode::record::site::sites_in(&record);
    for value in &record.values {
        mapping::txt_strings(value);
        if mapping::is_url(value) {
            mapping::uri_rdata(value);
        }
    }
}
