//! The hot path's bytes: reading a query and writing a response, without allocating.
//!
//! A query is checked cheaply before anything else (length, QR, opcode, section counts), its
//! name is lower-cased once into a [`QueryName`] (the cache key), and an optional OPT record is
//! read. A response is the query's header and question (echoing the client's case) followed by
//! pre-encoded sections from the cache, whose name pointers refer to the question at offset 12.

/// 255: the longest DNS name in wire form (RFC 1035 2.3.4).
pub const MAX_NAME: usize = 255;
pub(super) const HEADER: usize = 12;
pub(super) const TYPE_OPT: u16 = 41;

pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended RCODE 16 (RFC 6891): upper bits go in the OPT record.
    pub const BADVERS: u16 = 16;
}

/// The question name, lower-cased, in wire form, with where each label starts.
#[derive(Clone)]
pub struct QueryName {
    wire: [u8; MAX_NAME],
    len: usize,
    starts: [u8; 128],
    labels: usize,
}

impl Default for QueryName {
    fn default() -> Self {
        Self { wire: [0; MAX_NAME], len: 0, starts: [0; 128], labels: 0 }
    }
}

impl QueryName {
    /// Wire form including the root label: the cache key.
    pub fn wire(&self) -> &[u8] {
        &self.wire[..self.len]
    }

    /// Label count, not counting the root.
    pub fn label_count(&self) -> usize {
        self.labels
    }

    pub fn label(&self, i: usize) -> &[u8] {
        let at = usize::from(self.starts[i]);
        &self.wire[at + 1..at + 1 + usize::from(self.wire[at])]
    }

    /// Reads an uncompressed name in wire form (`wire` exactly), lower-casing it as [`parse`]
    /// does a question's; `false` when `wire` is no such name.
    pub fn read(&mut self, wire: &[u8]) -> bool {
        read_name(wire, 0, self) == Some(wire.len())
    }

    /// Whether the name is `apex` (wire form, lower-case) or below it; then the number of labels
    /// left of the apex.
    pub fn labels_below(&self, apex: &[u8], apex_labels: usize) -> Option<usize> {
        let own = self.labels.checked_sub(apex_labels)?;
        let at = if own == self.labels { self.len - 1 } else { usize::from(self.starts[own]) };
        (self.wire[at..self.len] == *apex).then_some(own)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The opcode, RD and CD: what a response copies from its query (RFC 6895 2).
    pub copied_flags: u16,
    /// End of the question section in the request.
    pub question_end: usize,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

/// Why a query gets no normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not worth an answer: too short for a header, or a response.
    Drop,
    /// Answer with this RCODE and no question section.
    Error { id: u16, copied_flags: u16, rcode: u8 },
}

const FLAG_QR: u16 = 0x8000;
pub(super) const FLAG_AA: u16 = 0x0400;
pub(super) const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_CD: u16 = 0x0010;
const OPCODE_MASK: u16 = 0x7800;

/// Checks a request and reads its question into `name`.
pub fn parse(buf: &[u8], name: &mut QueryName) -> Result<Query, Reject> {
    if buf.len() < HEADER {
        return Err(Reject::Drop);
    }
    let flags = be16(buf, 2);
    if flags & FLAG_QR != 0 {
        return Err(Reject::Drop);
    }
    let id = be16(buf, 0);
    let copied_flags = flags & (OPCODE_MASK | FLAG_RD | FLAG_CD);
    let error = |rcode| Reject::Error { id, copied_flags, rcode };
    if (flags >> 11) & 0xf != 0 {
        return Err(error(rcode::NOTIMP));
    }
    let (qd, an, ns, ar) = (be16(buf, 4), be16(buf, 6), be16(buf, 8), be16(buf, 10));
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return Err(error(rcode::FORMERR));
    }
    let mut at = read_name(buf, HEADER, name).ok_or(error(rcode::FORMERR))?;
    let qtype = be16_at(buf, at).ok_or(error(rcode::FORMERR))?;
    let qclass = be16_at(buf, at + 2).ok_or(error(rcode::FORMERR))?;
    at += 4;
    let question_end = at;
    let edns = if ar == 1 {
        let (edns, end) = read_opt(buf, at).ok_or(error(rcode::FORMERR))?;
        at = end;
        Some(edns)
    } else {
        None
    };
    if at != buf.len() || qtype == TYPE_OPT {
        return Err(error(rcode::FORMERR));
    }
    Ok(Query { id, copied_flags, question_end, qtype, qclass, edns })
}

/// Reads an uncompressed name (a question may not point anywhere) lower-cased into `name`.
fn read_name(buf: &[u8], mut at: usize, name: &mut QueryName) -> Option<usize> {
    name.len = 0;
    name.labels = 0;
    loop {
        let len = usize::from(*buf.get(at)?);
        if len == 0 {
            name.wire[name.len] = 0;
            name.len += 1;
            return Some(at + 1);
        }
        // 0xC0 (pointer) and the reserved 0x40/0x80 label types are malformed here.
        if len > 63 || name.len + 1 + len + 1 > MAX_NAME || name.labels == name.starts.len() {
            return None;
        }
        let label = buf.get(at + 1..at + 1 + len)?;
        name.starts[name.labels] = name.len as u8;
        name.labels += 1;
        name.wire[name.len] = len as u8;
        for (dst, src) in name.wire[name.len + 1..name.len + 1 + len].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        name.len += 1 + len;
        at += 1 + len;
    }
}

/// Reads an OPT record (RFC 6891 6.1.2): root owner, type 41; returns it and where it ends.
fn read_opt(buf: &[u8], at: usize) -> Option<(Edns, usize)> {
    if *buf.get(at)? != 0 || be16_at(buf, at + 1)? != TYPE_OPT {
        return None;
    }
    let udp_size = be16_at(buf, at + 3)?;
    let version = *buf.get(at + 6)?;
    let dnssec_ok = be16_at(buf, at + 7)? & 0x8000 != 0;
    let rdlen = usize::from(be16_at(buf, at + 9)?);
    let end = at + 11 + rdlen;
    (end <= buf.len()).then_some((Edns { udp_size, version, dnssec_ok }, end))
}

//------------ Responses ----------------------------------------------------------------------

/// Pre-encoded sections of one answer, ready to follow a question; its bytes owned, or
/// borrowed as [`Sections`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body<B = Box<[u8]>> {
    pub rcode: u8,
    pub authoritative: bool,
    /// RA: set in a recursive node's answers.
    pub recursion_available: bool,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
    pub bytes: B,
    /// Where the serial of the body's SOA record lies in `bytes`, when it has one: the node
    /// writes its current serial there as it sends the answer, so that a cached answer never
    /// shows an old one.
    pub soa_serial: Option<u16>,
}

impl Body {
    /// A NOERROR body with no records, to fill in with `..Body::empty()`.
    pub fn empty() -> Self {
        Self {
            rcode: rcode::NOERROR,
            authoritative: false,
            recursion_available: false,
            answers: 0,
            authorities: 0,
            additionals: 0,
            bytes: Box::new([]),
            soa_serial: None,
        }
    }
}

/// The sections of one answer as they are sent: a [`Body`] with its bytes borrowed, so that one
/// buffer can hold several answers (a cached name's TXT, URI and ANY answers).
pub type Sections<'a> = Body<&'a [u8]>;

impl<'a> From<&'a Body> for Sections<'a> {
    fn from(body: &'a Body) -> Self {
        Self {
            rcode: body.rcode,
            authoritative: body.authoritative,
            recursion_available: body.recursion_available,
            answers: body.answers,
            authorities: body.authorities,
            additionals: body.additionals,
            bytes: &body.bytes,
            soa_serial: body.soa_serial,
        }
    }
}

/// What the OPT record of a response carries.
#[derive(Debug, Clone, Copy)]
pub struct OptOut {
    pub udp_size: u16,
    pub extended_rcode: u8,
    pub dnssec_ok: bool,
}

impl OptOut {
    pub const LEN: usize = 11;
}

/// Writes the response to `query` (whose bytes are `request`) with `body` into `out`, within
/// `limit` bytes; when the answer does not fit, sets TC and leaves the sections empty.
pub fn write_response<'a>(
    out: &mut Vec<u8>,
    request: &[u8],
    query: &Query,
    body: impl Into<Sections<'a>>,
    opt: Option<OptOut>,
    limit: usize,
) -> bool {
    let body = body.into();
    out.clear();
    out.extend_from_slice(&request[..query.question_end]);
    let opt_len = if opt.is_some() { OptOut::LEN } else { 0 };
    let fits = query.question_end + body.bytes.len() + opt_len <= limit;
    let mut flags = FLAG_QR | query.copied_flags | u16::from(body.rcode & 0xf);
    if body.authoritative {
        flags |= FLAG_AA;
    }
    if body.recursion_available {
        flags |= FLAG_RA;
    }
    let (an, ns, ar) = if fits {
        out.extend_from_slice(body.bytes);
        (body.answers, body.authorities, body.additionals)
    } else {
        flags |= FLAG_TC;
        (0, 0, 0)
    };
    if let Some(opt) = opt {
        write_opt(out, opt);
    }
    let ar = ar + u16::from(opt.is_some());
    write_header(out, query.id, flags, 1, an, ns, ar);
    fits
}

/// Where the TTL field of each of `count` resource records in `sections` starts (for counting
/// cached TTLs down). `None` if the bytes are not `count` well-formed records.
pub fn ttl_offsets(sections: &[u8], count: usize) -> Option<Vec<usize>> {
    Some(records(sections, count)?.into_iter().map(|(_, ttl)| ttl).collect())
}

/// Where the serial of the first SOA record among the `count` records in `sections` starts.
pub fn soa_serial_offset(sections: &[u8], count: usize) -> Option<usize> {
    let (_, ttl) = records(sections, count)?.into_iter().find(|(_, ttl)| be16_at(sections, ttl - 4) == Some(6))?;
    let rname = skip_name(sections, ttl + 6)?;
    let serial = skip_name(sections, rname)?;
    (serial + 4 <= sections.len()).then_some(serial)
}

/// Where the name at `at` ends (it may end in a compression pointer).
fn skip_name(sections: &[u8], mut at: usize) -> Option<usize> {
    loop {
        match *sections.get(at)? {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// Where each of `count` resource records in `sections` starts, and where its TTL field starts.
fn records(sections: &[u8], count: usize) -> Option<Vec<(usize, usize)>> {
    let mut at = 0;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let start = at;
        at = skip_name(sections, at)?;
        out.push((start, at + 4));
        let rdlen = usize::from(be16_at(sections, at + 8)?);
        at += 10 + rdlen;
        if at > sections.len() {
            return None;
        }
    }
    (at == sections.len()).then_some(out)
}

/// A response with no question: for requests whose question could not be read.
pub fn write_error(out: &mut Vec<u8>, id: u16, copied_flags: u16, rcode: u8) {
    out.clear();
    out.resize(HEADER, 0);
    write_header(out, id, FLAG_QR | copied_flags | u16::from(rcode), 0, 0, 0, 0);
}

fn write_opt(out: &mut Vec<u8>, opt: OptOut) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&opt.udp_size.to_be_bytes());
    out.push(opt.extended_rcode);
    out.push(0); // version 0
    out.extend_from_slice(&(if opt.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
}

fn write_header(out: &mut [u8], id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) {
    for (i, v) in [id, flags, qd, an, ns, ar].into_iter().enumerate() {
        out[i * 2..i * 2 + 2].copy_from_slice(&v.to_be_bytes());
    }
}

fn be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn be16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, opt: Option<&[u8]>) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        if let Some(opt) = opt {
            q.extend_from_slice(opt);
        }
        q
    }

    const NAME: &[u8] = b"\x07ABC-123\x03_id\x0288\x02Id\x07example\x00";
    const APEX: &[u8] = b"\x02id\x07example\x00";

    #[test]
    fn reads_and_lowercases_the_question() {
        let mut name = QueryName::default();
        let q = parse(&query(NAME, 16, None), &mut name).unwrap();
        assert_eq!((q.id, q.qtype, q.qclass, q.edns), (0x1234, 16, 1, None));
        assert_eq!(q.copied_flags, FLAG_RD);
        assert_eq!(name.wire(), b"\x07abc-123\x03_id\x0288\x02id\x07example\x00");
        assert_eq!(name.label_count(), 5);
        assert_eq!(name.label(1), b"_id");
        assert_eq!(name.labels_below(APEX, 2), Some(3));
        assert_eq!(name.labels_below(b"\x03com\x00", 1), None);
        assert_eq!(name.labels_below(b"\x00", 0), Some(5));
    }

    #[test]
    fn reads_edns() {
        let mut name = QueryName::default();
        let opt = [0, 0, 41, 0x10, 0x00, 0, 1, 0x80, 0, 0, 0];
        let q = parse(&query(NAME, 16, Some(&opt)), &mut name).unwrap();
        assert_eq!(q.edns, Some(Edns { udp_size: 4096, version: 1, dnssec_ok: true }));
    }

    #[test]
    fn malformed_queries_are_rejected_not_panicked_on() {
        let mut name = QueryName::default();
        let good = query(NAME, 16, None);
        assert_eq!(parse(&good[..11], &mut name), Err(Reject::Drop));
        let mut response = good.clone();
        response[2] |= 0x80;
        assert_eq!(parse(&response, &mut name), Err(Reject::Drop));
        let formerr = Reject::Error { id: 0x1234, copied_flags: FLAG_RD, rcode: rcode::FORMERR };
        for cut in 12..good.len() {
            assert_eq!(parse(&good[..cut], &mut name), Err(formerr), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(parse(&trailing, &mut name), Err(formerr));
        let mut pointer = query(b"\xc0\x0c", 16, None);
        assert_eq!(parse(&pointer, &mut name), Err(formerr));
        pointer[5] = 2; // two questions
        assert_eq!(parse(&pointer, &mut name), Err(formerr));
        let mut notify = good.clone();
        notify[2] = 0x20; // opcode 4
        assert_eq!(
            parse(&notify, &mut name).unwrap_err(),
            Reject::Error {
                id: 0x1234,
                copied_flags: 0x2000, // the opcode is echoed
                rcode: rcode::NOTIMP
            }
        );
        // Every single-byte corruption parses or rejects; none panics.
        for i in 0..good.len() {
            for b in [0u8, 1, 63, 64, 0xc0, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = parse(&bad, &mut name);
            }
        }
    }

    #[test]
    fn ttl_offsets_find_each_record_and_refuse_garbage() {
        // Two records: one with a compressed owner name, one with a full one.
        let mut sections = vec![0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0, 2, 1, b'x'];
        sections.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 127, 0, 0, 1]);
        assert_eq!(ttl_offsets(&sections, 2), Some(vec![6, 21]));
        assert_eq!(ttl_offsets(&sections, 1), None, "bytes left over");
        assert_eq!(ttl_offsets(&sections[..20], 2), None, "cut short");
        assert_eq!(ttl_offsets(&[], 0), Some(vec![]));
    }

    #[test]
    fn long_names_are_bounded() {
        let mut name = QueryName::default();
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert!(matches!(parse(&query(&long, 16, None), &mut name), Err(Reject::Error { rcode: rcode::FORMERR, .. })));
    }

    #[test]
    fn response_truncates_when_over_the_limit() {
        let mut name = QueryName::default();
        let req = query(NAME, 16, None);
        let q = parse(&req, &mut name).unwrap();
        let body = Body {
            rcode: 0,
            authoritative: true,
            recursion_available: false,
            answers: 1,
            authorities: 0,
            additionals: 0,
            bytes: vec![7; 600].into(),
            soa_serial: None,
        };
        let mut out = Vec::new();
        write_response(&mut out, &req, &q, &body, None, 512);
        assert_eq!(out.len(), req.len());
        assert_eq!(be16(&out, 2), FLAG_QR | FLAG_AA | FLAG_TC | FLAG_RD);
        assert_eq!(be16(&out, 6), 0);
        write_response(&mut out, &req, &q, &body, None, 65535);
        assert_eq!(out.len(), req.len() + 600);
        assert_eq!(be16(&out, 6), 1);
    }
}
