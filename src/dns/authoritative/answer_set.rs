//! What the front cache keeps for a name: every answer the name can get, cut from one buffer.
//!
//! A miss builds the set once ([`super::zone::Zone::answer`]); each hit selects the answer for
//! its query type and copies it behind the question. An identifier's TXT and URI answers are the
//! two halves of its ANY answer, so its records are kept once; NODATA and NXDOMAIN are the
//! zone's (they depend only on the length of the name), so a set that answers with them keeps
//! no bytes for them.

use crate::dns::mapping;
use crate::dns::wire::{self, Body, Sections, rcode};
use crate::record::Value;

use super::zone::{TYPE_ANY, Zone};

const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;
/// A pointer to the question's name, which starts right after the header.
const QUESTION_NAME: [u8; 2] = [0xc0, 12];

/// The most query types a name has answers of its own for (an identifier: TXT, URI and ANY; the
/// apex: SOA, NS and ANY).
const MAX_TYPED: usize = 3;

/// Everything a name can be answered with: what the front cache keeps for a name. Its answers
/// are cut from one buffer (an identifier's TXT and URI answers are the two halves of its ANY
/// answer), and NODATA and NXDOMAIN are the zone's, which depend only on the name's length.
#[derive(Debug)]
pub struct AnswerSet {
    bytes: Box<[u8]>,
    /// Answers for particular query types, inline: a cache hit follows one pointer fewer.
    typed: [Option<(u16, Part)>; MAX_TYPED],
    /// The answer for every other type.
    other: Other,
}

/// One answer of a set: its header fields and where its sections lie in the set's bytes.
#[derive(Debug, Clone, Copy)]
struct Part {
    rcode: u8,
    authoritative: bool,
    answers: u16,
    authorities: u16,
    additionals: u16,
    start: u32,
    end: u32,
    soa_serial: Option<u16>,
}

#[derive(Debug, Clone, Copy)]
enum Other {
    Part(Part),
    Negative(Negative),
}

/// What a set answers for the types it has no records of, when not an encoded answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negative {
    /// NOERROR with no records: the name exists.
    NoData,
    NxDomain,
}

/// The answer for the types a set has no records of: one encoded with it, or the zone's.
pub(super) enum Rest {
    Answer(Body),
    Negative(Negative),
}

impl AnswerSet {
    /// A set of `typed` answers and `other`, which may take one more encoded answer.
    pub(super) fn new(typed: Vec<(u16, Body)>, other: Rest) -> Self {
        let mut bytes = Vec::with_capacity(typed.iter().map(|(_, b)| b.bytes.len()).sum());
        let mut part = |body: &Body| {
            let start = bytes.len() as u32;
            bytes.extend_from_slice(&body.bytes);
            Part::of(body, start, bytes.len() as u32)
        };
        let parts: Vec<(u16, Part)> = typed.iter().map(|(t, body)| (*t, part(body))).collect();
        let other = match other {
            Rest::Answer(body) => Other::Part(part(&body)),
            Rest::Negative(negative) => Other::Negative(negative),
        };
        Self::of(bytes, parts, other)
    }

    fn of(bytes: Vec<u8>, typed: Vec<(u16, Part)>, other: Other) -> Self {
        debug_assert!(typed.len() <= MAX_TYPED, "more than {MAX_TYPED} answer types");
        let mut typed = typed.into_iter();
        Self { bytes: bytes.into(), typed: std::array::from_fn(|_| typed.next()), other }
    }

    /// An identifier's answers, written from its public `values` (docs/dns-mapping.md): a TXT
    /// record each, then a URI record for each URL, each owned by the question's name. The TXT
    /// and URI answers are the two halves of the ANY answer. Each RRset has the shortest TTL of
    /// its values (RFC 2181 5.2); so has the set, which is returned with it. `Ok(None)`: no
    /// public values. An answer that would not fit one DNS message is an error, never a cut one.
    pub(super) fn identifier(values: &[Value], now: i64) -> Result<Option<(Self, u32)>, String> {
        let public = || values.iter().filter(|v| v.is_public());
        let urls = || public().filter(|v| mapping::is_url(v));
        let Some(txt_ttl) = public().map(|v| v.ttl.seconds_at(now)).min() else { return Ok(None) };
        let uri_ttl = urls().map(|v| v.ttl.seconds_at(now)).min().unwrap_or(0);
        // Sized exactly: the buffer is kept as it is, and an allocator may keep a shrunk one whole.
        let txt_len = |v: &Value| {
            12 + 2
                + v.index.checked_ilog10().map_or(1, |l| l as usize + 1)
                + v.kind.len()
                + v.data.len().div_ceil(255)
                + v.data.len()
        };
        let size = public().map(txt_len).sum::<usize>() + urls().map(|v| 12 + 4 + v.data.len()).sum::<usize>();
        let mut bytes = Vec::with_capacity(size);
        for value in public() {
            if value.kind.len() > 255 {
                return Err(format!("the type of value {} takes more than 255 bytes", value.index));
            }
            let rdata = record_head(&mut bytes, TYPE_TXT, txt_ttl);
            let index = value.index.to_string();
            for string in [index.as_bytes(), value.kind.as_bytes()].into_iter().chain(value.data.chunks(255)) {
                bytes.push(string.len() as u8);
                bytes.extend_from_slice(string);
            }
            record_end(&mut bytes, rdata)?;
        }
        let (txt_end, txt_count) = (bytes.len(), public().count());
        for value in urls() {
            let rdata = record_head(&mut bytes, mapping::URI_TYPE, uri_ttl);
            bytes.extend_from_slice(&(value.index.min(u32::from(u16::MAX)) as u16).to_be_bytes());
            bytes.extend_from_slice(&1u16.to_be_bytes());
            bytes.extend_from_slice(&value.data);
            record_end(&mut bytes, rdata)?;
        }
        if bytes.len() > usize::from(u16::MAX) - wire::MAX_NAME - 4 - 12 - wire::OptOut::LEN {
            return Err(format!("{} bytes of records do not fit one DNS message", bytes.len()));
        }
        let all = txt_count + urls().count();
        let part = |answers: usize, start: usize, end: usize| Part {
            rcode: rcode::NOERROR,
            authoritative: true,
            answers: answers as u16,
            authorities: 0,
            additionals: 0,
            start: start as u32,
            end: end as u32,
            soa_serial: None,
        };
        let len = bytes.len();
        debug_assert_eq!(len, size, "the size computed ahead");
        let typed = [(TYPE_TXT, part(txt_count, 0, txt_end)), (mapping::URI_TYPE, part(all - txt_count, txt_end, len))];
        let typed = typed.into_iter().filter(|(_, p)| p.answers > 0).chain([(TYPE_ANY, part(all, 0, len))]).collect();
        Ok(Some((Self::of(bytes, typed, Other::Negative(Negative::NoData)), txt_ttl)))
    }

    /// The answer for `qtype` to a query for a name of `name_len` bytes held by `zone`.
    pub fn select<'a>(&'a self, qtype: u16, zone: &'a Zone, name_len: usize) -> Sections<'a> {
        let part = self.typed.iter().flatten().find(|(t, _)| *t == qtype).map(|(_, p)| Other::Part(*p));
        match part.unwrap_or(self.other) {
            Other::Part(p) => Sections {
                rcode: p.rcode,
                authoritative: p.authoritative,
                recursion_available: false,
                answers: p.answers,
                authorities: p.authorities,
                additionals: p.additionals,
                bytes: &self.bytes[p.start as usize..p.end as usize],
                soa_serial: p.soa_serial,
            },
            Other::Negative(negative) => zone.negative(name_len, negative).into(),
        }
    }
}

impl Part {
    fn of(body: &Body, start: u32, end: u32) -> Self {
        Self {
            rcode: body.rcode,
            authoritative: body.authoritative,
            answers: body.answers,
            authorities: body.authorities,
            additionals: body.additionals,
            start,
            end,
            soa_serial: body.soa_serial,
        }
    }
}

impl crate::cache::Weigh for AnswerSet {
    fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes a record's owner (the question's name), type, class and TTL, and room for its RDATA
/// length; returns where its RDATA starts.
fn record_head(out: &mut Vec<u8>, rtype: u16, ttl: u32) -> usize {
    out.extend_from_slice(&QUESTION_NAME);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.len()
}

/// Fills in the RDATA length of the record whose RDATA started at `rdata`.
fn record_end(out: &mut [u8], rdata: usize) -> Result<(), String> {
    let len = u16::try_from(out.len() - rdata).map_err(|_| format!("{} bytes of RDATA", out.len() - rdata))?;
    out[rdata - 2..rdata].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::identifier::Identifier;
    use crate::record::{Permissions, Record, Ttl};

    /// The answers written here must be the bytes hickory-proto encodes for the same records
    /// (`identifier_records`, which zone transfers still use), cut into TXT and URI.
    #[test]
    fn identifier_answers_are_hickorys_encoding_cut_by_type() {
        let dns = crate::config::DnsConfig::default();
        let config = super::super::zone::zone_config(&dns, &dns.zones()).unwrap().remove(0);
        let zone = Zone::new(config);
        let mut values = vec![
            Value::new(1, "URL", "https://example.com/p/1", 0),
            Value::new(2, "EMAIL", "ops@example.com", 0),
            Value::new(3, "PRODUCT", vec![b'x'; 600], 0),
            Value::new(4, "URL", "https://example.com/p/2", 0),
            Value::new(5, "NOTE", "", 0),
            Value::new(6, "HIDDEN", "private", 0),
        ];
        values[3].ttl = Ttl::Absolute(1_000_120);
        values[5].permissions = Permissions::new(true, true, false, false);
        let record = Record::new(&Identifier::parse("88.100.1/ABC").unwrap(), values.clone()).unwrap();
        let name = Name::from_ascii("abc._id.1.100.88.id.example.").unwrap();
        let now = 1_000_000;
        let (set, ttl) = AnswerSet::identifier(&values, now).unwrap().unwrap();
        assert_eq!(ttl, 120, "the shortest TTL of the public values");
        let records = super::super::zone::identifier_records(&name, &record, now);
        let hickory = zone.encode(&name, rcode::NOERROR, &records, &[], &[]).unwrap();
        let len = zone.apex_wire().len() + 16;
        let any = set.select(TYPE_ANY, &zone, len);
        assert_eq!((any.answers, any.bytes), (hickory.answers, &hickory.bytes[..]), "the bytes hickory encodes");
        assert_eq!(any.answers, 7, "5 TXT records and 2 URI");
        let (txt, uri) = (set.select(TYPE_TXT, &zone, len), set.select(mapping::URI_TYPE, &zone, len));
        assert_eq!((txt.answers, uri.answers), (5, 2));
        assert_eq!([txt.bytes, uri.bytes].concat(), any.bytes, "TXT, then URI");
        let nodata = set.select(u16::from(RecordType::MX), &zone, len);
        assert_eq!((nodata.rcode, nodata.answers, nodata.authorities), (rcode::NOERROR, 0, 1));

        let hidden = [values[5].clone()];
        assert!(AnswerSet::identifier(&hidden, now).unwrap().is_none(), "no public value: NODATA");
        let long_type = [Value::new(1, &"T".repeat(256), "x", 0)];
        assert!(AnswerSet::identifier(&long_type, now).is_err(), "a type is one TXT string: 255 bytes");
        let huge = [Value::new(1, "DATA", vec![b'x'; 70_000], 0)];
        assert!(AnswerSet::identifier(&huge, now).is_err(), "more than one DNS message holds");
    }
}
