//! The messages of one zone transfer, made from one registry snapshot ([`LogView`]) on a
//! blocking thread and handed one at a time to the connection that sends them.
//!
//! AXFR (RFC 5936 2.2): the SOA, the apex NS and glue, the cuts' NS and glue, every identifier's
//! records, the SOA again. IXFR (RFC 1995 4): the changes since the client's serial condensed
//! into one difference, `SOA(new) SOA(client) deleted... SOA(new) added... SOA(new)`; a single
//! SOA when the client is up to date; the AXFR form when the log cannot bring it up to date
//! (its serial is older than the log's floor or than the node's last change of zones, or a
//! delegation changed in between, or the difference is larger than a full transfer is worth).
//!
//! Messages are packed up to about 60 KB, names compressed within each, the question echoed in
//! the first only, every message signed when the request was (RFC 8945 5.3.1).

use std::collections::BTreeMap;

use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::tsig::Signer;
use super::walk::{self, Cuts};
use crate::dns::authoritative::zone::{AnswerError, Zone};
use crate::record::types;
use crate::registry::{LogView, RegistryError, seq_of_serial};

/// 60,000: the bytes of records packed into one message before the next one starts. Room is
/// left for the question, OPT and TSIG within the 65,535 a TCP message may take.
const PACK: usize = 60_000;
/// The most distinct records one IXFR answer condenses, and the most record bytes it reads;
/// past either, a full transfer is sent instead (it streams; the difference is held whole).
const MAX_IXFR_KEYS: usize = 100_000;
const MAX_IXFR_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error("encoding a transfer message: {0}")]
    Encode(String),
    #[error("the identifier {name} has more records than one DNS message holds")]
    TooLarge { name: String },
    /// The connection went away: nothing to report.
    #[error("the client went away")]
    Closed,
}

impl From<RegistryError> for StreamError {
    fn from(e: RegistryError) -> Self {
        Self::Answer(e.into())
    }
}

/// What a transfer was asked for, and how its messages start.
pub struct Request {
    pub id: u16,
    /// The flags copied from the query (opcode, RD, CD).
    pub copied_flags: u16,
    /// The question as asked, to echo in the first message.
    pub question: Vec<u8>,
    /// Whether to add an OPT record (the query had one).
    pub opt: Option<u16>,
    /// IXFR: the client's serial. `None`: AXFR.
    pub client_serial: Option<u32>,
}

/// Packs records into messages and hands each, signed, to `send`.
pub struct Packer<'s> {
    request: &'s Request,
    signer: Option<Signer>,
    send: &'s mut dyn FnMut(Vec<u8>) -> bool,
    pending: Vec<Record>,
    estimate: usize,
    first: bool,
    pub messages: u64,
    pub bytes: u64,
}

impl<'s> Packer<'s> {
    pub fn new(request: &'s Request, signer: Option<Signer>, send: &'s mut dyn FnMut(Vec<u8>) -> bool) -> Self {
        Self { request, signer, send, pending: Vec::new(), estimate: 0, first: true, messages: 0, bytes: 0 }
    }

    /// Adds records that must go in one message (one identifier's, one cut's).
    pub fn push(&mut self, records: Vec<Record>) -> Result<(), StreamError> {
        let size: usize = records.iter().map(estimate).sum();
        if !self.pending.is_empty() && self.estimate + size > PACK {
            self.flush()?;
        }
        self.estimate += size;
        self.pending.extend(records);
        Ok(())
    }

    /// Sends what is pending (the last message).
    pub fn finish(mut self) -> Result<(u64, u64), StreamError> {
        self.flush()?;
        Ok((self.messages, self.bytes))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        let mut message = Vec::with_capacity(self.estimate + 512);
        let r = self.request;
        {
            let mut e = BinEncoder::new(&mut message);
            let flags = 0x8000 | 0x0400 | r.copied_flags;
            let question = u16::from(self.first);
            let bad = |e: hickory_proto::ProtoError| StreamError::Encode(e.to_string());
            for word in [r.id, flags, question, self.pending.len() as u16, 0, u16::from(r.opt.is_some())] {
                e.emit_u16(word).map_err(bad)?;
            }
            if self.first {
                e.emit_vec(&r.question).map_err(bad)?;
            }
            for record in &self.pending {
                record.emit(&mut e).map_err(bad)?;
            }
            if let Some(size) = r.opt {
                // OPT: root, type 41, the payload size as class, no flags, no options.
                e.emit_vec(&[0, 0, 41]).map_err(bad)?;
                e.emit_u16(size).map_err(bad)?;
                e.emit_vec(&[0; 6]).map_err(bad)?;
            }
        }
        // Room for the TSIG record (about 100 bytes with a long key name).
        if message.len() > usize::from(u16::MAX) - 400 {
            let name = self.pending.first().map(|r| r.name.to_string()).unwrap_or_default();
            return Err(StreamError::TooLarge { name });
        }
        if let Some(signer) = &mut self.signer {
            signer.sign(&mut message, crate::record::unix_now().max(0) as u64);
        }
        self.first = false;
        self.pending.clear();
        self.estimate = 0;
        self.messages += 1;
        self.bytes += message.len() as u64;
        if !(self.send)(message) {
            return Err(StreamError::Closed);
        }
        Ok(())
    }
}

/// A record's size on the wire, uncompressed (at least what it takes compressed).
fn estimate(record: &Record) -> usize {
    let mut buf = Vec::new();
    let rdata = match record.data.emit(&mut BinEncoder::new(&mut buf)) {
        Ok(()) => buf.len(),
        Err(_) => 512,
    };
    record.name.len() + 2 + 10 + rdata
}

/// Sends the transfer `request` asks for `zone` (one of `zones`), from `view`. `zones_since` is
/// the sequence number at which the node's zones last changed: an IXFR from before it gets the
/// whole zone.
pub fn transfer(
    request: &Request,
    zone: &Zone,
    zones: &[Zone],
    view: &LogView,
    zones_since: u64,
    packer: &mut Packer<'_>,
) -> Result<(), StreamError> {
    let now = crate::record::unix_now();
    let ttl = zone.ttl();
    let soa = zone.soa(view.serial(), ttl);
    let cuts = Cuts::of(zone, zones, &view.records)?;
    if let Some(client) = request.client_serial {
        match seq_of_serial(client, view.seq) {
            Some(seq) if seq == view.seq => return packer.push(vec![soa]),
            Some(seq) if seq >= view.floor && seq >= zones_since => {
                if let Some((deleted, added)) = difference(zone, zones, &cuts, view, seq, now)? {
                    packer.push(vec![soa.clone(), zone.soa(client, ttl)])?;
                    for record in deleted {
                        packer.push(vec![record])?;
                    }
                    packer.push(vec![soa.clone()])?;
                    for record in added {
                        packer.push(vec![record])?;
                    }
                    return packer.push(vec![soa]);
                }
            }
            _ => {}
        }
    }
    let mut head = vec![soa.clone()];
    head.extend(zone.apex_records());
    packer.push(head)?;
    for records in &cuts.records {
        packer.push(records.clone())?;
    }
    walk::identifiers(zone, zones, &cuts, &view.records, now, |records| packer.push(records))?;
    packer.push(vec![soa])
}

/// The records of `zone` deleted and added after sequence number `from`, condensed: `None` when a
/// full transfer should be sent instead (a delegation changed, or the difference is too large).
#[allow(clippy::type_complexity)]
fn difference(
    zone: &Zone,
    zones: &[Zone],
    cuts: &Cuts,
    view: &LogView,
    from: u64,
    now: i64,
) -> Result<Option<(Vec<Record>, Vec<Record>)>, StreamError> {
    // Each key's first old value and last new one: the change across the whole window.
    let mut changed: BTreeMap<Vec<u8>, (Option<Vec<u8>>, Option<Vec<u8>>)> = BTreeMap::new();
    let mut bytes = 0;
    for set in view.changes_after(from)? {
        for change in set?.1.changes {
            bytes +=
                change.key.len() + change.old.as_ref().map_or(0, Vec::len) + change.new.as_ref().map_or(0, Vec::len);
            let delegation = change.key.starts_with(b"0.na/") && moves_a_cut(&change.key, &change.old, &change.new);
            if changed.len() >= MAX_IXFR_KEYS || bytes > MAX_IXFR_BYTES || delegation {
                return Ok(None);
            }
            changed.entry(change.key).or_insert((change.old, None)).1 = change.new;
        }
    }
    let records = |key: &[u8], bytes: &Option<Vec<u8>>| -> Vec<Record> {
        let Some(record) = bytes.as_deref().and_then(|b| crate::record::Record::decode(key, b).ok()) else {
            return Vec::new();
        };
        match walk::name_in_zone(zone, zones, cuts, &record.identifier) {
            Some(name) => crate::dns::authoritative::zone::identifier_records(&name, &record, now),
            None => Vec::new(),
        }
    };
    let (mut deleted, mut added) = (Vec::new(), Vec::new());
    for (key, (old, new)) in &changed {
        let (old, new) = (records(key, old), records(key, new));
        let same = |a: &Record, b: &Record| a.record_type() == b.record_type() && a.data == b.data;
        deleted.extend(old.iter().filter(|o| !new.iter().any(|n| same(o, n))).cloned());
        added.extend(new.iter().filter(|n| !old.iter().any(|o| same(o, n))).cloned());
    }
    Ok(Some((deleted, added)))
}

/// Whether a change to a prefix record changed its `HS_SITE` values, and so maybe a cut.
fn moves_a_cut(key: &[u8], old: &Option<Vec<u8>>, new: &Option<Vec<u8>>) -> bool {
    let sites = |bytes: &Option<Vec<u8>>| -> Vec<(u32, Vec<u8>)> {
        let Some(record) = bytes.as_deref().and_then(|b| crate::record::Record::decode(key, b).ok()) else {
            return Vec::new();
        };
        record.values.iter().filter(|v| v.is_type(types::SITE)).map(|v| (v.index, v.data.clone())).collect()
    };
    sites(old) != sites(new)
}
