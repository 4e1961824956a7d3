//! TSIG (RFC 8945) with HMAC-SHA256: verifying a signed request, signing each message of the
//! answer (a zone transfer is many messages, each MAC chained to the one before, 5.3.1), and
//! signing a NOTIFY.
//!
//! Written on `hmac` and `sha2` rather than hickory-proto's TSIG, which needs its DNSSEC
//! feature and signs only the first message of a multi-message answer.
//!
//! What each MAC covers (RFC 8945 4.3): the message without its TSIG record (ARCOUNT one less,
//! the ID the original one), then for a request the TSIG variables; for a first answer the
//! request's MAC before the message; for a later message the previous MAC before it and only
//! the timers after it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::TsigKey;

pub const TYPE_TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;
/// 300 s: the fudge RFC 8945 10 recommends.
const FUDGE: u16 = 300;
const ALGORITHM: &[u8] = b"\x0bhmac-sha256\x00";
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;

/// The TSIG record that ends a request, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The key name, lower-case wire form.
    pub key_wire: Vec<u8>,
    /// The key name as text, lower case, with the trailing dot.
    pub key_name: String,
    algorithm_ok: bool,
    pub time: u64,
    fudge: u16,
    pub mac: Vec<u8>,
    original_id: u16,
    error: u16,
    other: Vec<u8>,
    /// Where the TSIG record starts in the message.
    start: usize,
}

/// How a signed request fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Signed with `key`: answers are signed with it, chained to the request's MAC.
    Good,
    /// NOTAUTH with this TSIG error (BADKEY, BADSIG, BADTIME).
    Bad(u16),
}

/// A message whose records cannot be read, or whose TSIG record is malformed (FORMERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the message or its TSIG record is malformed")]
pub struct Malformed;

/// Reads the TSIG record at the end of `message`: `None` when it has none (or one that is not
/// last, which makes it no signed message), `Err` when its records cannot be read.
pub fn find(message: &[u8]) -> Result<Option<Signed>, Malformed> {
    let count = |at: usize| message.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (qd, an, ns, ar) = match (count(4), count(6), count(8), count(10)) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => return Err(Malformed),
    };
    if ar == 0 {
        return Ok(None);
    }
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(message, at).ok_or(Malformed)? + 4;
    }
    let mut last = None;
    for _ in 0..u32::from(an) + u32::from(ns) + u32::from(ar) {
        let start = at;
        let name_end = skip_name(message, at).ok_or(Malformed)?;
        let fixed = message.get(name_end..name_end + 10).ok_or(Malformed)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        at = name_end + 10 + rdlen;
        if at > message.len() {
            return Err(Malformed);
        }
        last = Some((start, name_end, rtype));
    }
    let Some((start, name_end, TYPE_TSIG)) = last else {
        // A TSIG anywhere but last is malformed (RFC 8945 5.1); none at all is unsigned.
        return Ok(None);
    };
    if at != message.len() {
        return Err(Malformed);
    }
    let key_wire = plain_name(&message[start..name_end]).ok_or(Malformed)?;
    let mut rdata = Reader { bytes: &message[name_end + 10..at] };
    let algorithm = rdata.name().ok_or(Malformed)?;
    let time = rdata.u48().ok_or(Malformed)?;
    let fudge = rdata.u16().ok_or(Malformed)?;
    let mac_len = usize::from(rdata.u16().ok_or(Malformed)?);
    let mac = rdata.take(mac_len).ok_or(Malformed)?.to_vec();
    let original_id = rdata.u16().ok_or(Malformed)?;
    let error = rdata.u16().ok_or(Malformed)?;
    let other_len = usize::from(rdata.u16().ok_or(Malformed)?);
    let other = rdata.take(other_len).ok_or(Malformed)?.to_vec();
    let key_name = name_text(&key_wire);
    Ok(Some(Signed {
        key_wire,
        key_name,
        algorithm_ok: algorithm.eq_ignore_ascii_case(ALGORITHM),
        time,
        fudge,
        mac,
        original_id,
        error,
        other,
        start,
    }))
}

impl Signed {
    /// Checks the request `message` (which this was read from) against `key` at `now`.
    pub fn check(&self, message: &[u8], key: &TsigKey, now: u64) -> Check {
        if !self.algorithm_ok {
            return Check::Bad(BADKEY);
        }
        let mut mac = hmac(key);
        mac.update(&unsigned(message, self.start, self.original_id));
        mac.update(&variables(&self.key_wire, self.time, self.fudge, self.error, &self.other));
        // Constant time (RFC 8945 5.2.2); a truncated MAC is not accepted.
        if mac.verify_slice(&self.mac).is_err() {
            return Check::Bad(BADSIG);
        }
        if now.abs_diff(self.time) > u64::from(self.fudge) {
            return Check::Bad(BADTIME);
        }
        Check::Good
    }
}

/// `message` (signed as `signed` says) without its TSIG record, as its sender signed it.
pub fn strip(message: &[u8], signed: &Signed) -> Vec<u8> {
    unsigned(message, signed.start, signed.original_id)
}

/// Signs the messages of one answer in turn (RFC 8945 5.3): the first chained to the request's
/// MAC, each later one to the MAC before it.
pub struct Signer {
    key: TsigKey,
    key_wire: Vec<u8>,
    prior: Vec<u8>,
    first: bool,
}

impl Signer {
    pub fn new(key: TsigKey, key_wire: Vec<u8>, request_mac: Vec<u8>) -> Self {
        Self { key, key_wire, prior: request_mac, first: true }
    }

    /// Appends the TSIG record to `message` (a complete message, TSIG not yet counted) at `now`.
    pub fn sign(&mut self, message: &mut Vec<u8>, now: u64) {
        let mut mac = hmac(&self.key);
        mac.update(&(self.prior.len() as u16).to_be_bytes());
        mac.update(&self.prior);
        mac.update(message);
        if self.first {
            mac.update(&variables(&self.key_wire, now, FUDGE, 0, &[]));
        } else {
            mac.update(&timers(now, FUDGE));
        }
        self.first = false;
        self.prior = mac.finalize().into_bytes().to_vec();
        let id = u16::from_be_bytes([message[0], message[1]]);
        append(message, &self.key_wire, now, &self.prior, id, 0, &[]);
    }
}

/// Signs a request (a NOTIFY) with `key`; returns the MAC, which its answer is chained to.
pub fn sign_request(message: &mut Vec<u8>, key: &TsigKey, now: u64) -> Vec<u8> {
    let key_wire = name_wire(&key.name);
    let mut mac = hmac(key);
    mac.update(message);
    mac.update(&variables(&key_wire, now, FUDGE, 0, &[]));
    let mac = mac.finalize().into_bytes().to_vec();
    let id = u16::from_be_bytes([message[0], message[1]]);
    append(message, &key_wire, now, &mac, id, 0, &[]);
    mac
}

/// Appends the TSIG record of an error answer: unsigned for BADKEY and BADSIG (RFC 8945
/// 5.3.2), signed with the server's time as other data for BADTIME.
pub fn append_error(message: &mut Vec<u8>, signed: &Signed, error: u16, key: Option<&TsigKey>, now: u64) {
    let id = u16::from_be_bytes([message[0], message[1]]);
    match (error, key) {
        (BADTIME, Some(key)) => {
            let other = now.to_be_bytes()[2..].to_vec();
            let mut mac = hmac(key);
            mac.update(&(signed.mac.len() as u16).to_be_bytes());
            mac.update(&signed.mac);
            mac.update(message);
            mac.update(&variables(&signed.key_wire, signed.time, FUDGE, error, &other));
            let mac = mac.finalize().into_bytes();
            append(message, &signed.key_wire, signed.time, &mac, id, error, &other);
        }
        _ => append(message, &signed.key_wire, signed.time, &[], id, error, &[]),
    }
}

/// The bytes a TSIG record with this key name and an HMAC-SHA256 MAC adds to a message.
pub fn record_len(key_wire: &[u8]) -> usize {
    key_wire.len() + 10 + ALGORITHM.len() + 6 + 2 + 2 + 32 + 2 + 2 + 2
}

fn append(message: &mut Vec<u8>, key_wire: &[u8], time: u64, mac: &[u8], id: u16, error: u16, other: &[u8]) {
    message.extend_from_slice(key_wire);
    message.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    let rdlen = ALGORITHM.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + other.len();
    message.extend_from_slice(&(rdlen as u16).to_be_bytes());
    message.extend_from_slice(ALGORITHM);
    message.extend_from_slice(&time.to_be_bytes()[2..]);
    message.extend_from_slice(&FUDGE.to_be_bytes());
    message.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    message.extend_from_slice(mac);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&error.to_be_bytes());
    message.extend_from_slice(&(other.len() as u16).to_be_bytes());
    message.extend_from_slice(other);
    let ar = u16::from_be_bytes([message[10], message[11]]).wrapping_add(1);
    message[10..12].copy_from_slice(&ar.to_be_bytes());
}

fn hmac(key: &TsigKey) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(&key.secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// The message before its TSIG record, with ARCOUNT one less and the original ID.
fn unsigned(message: &[u8], tsig_start: usize, original_id: u16) -> Vec<u8> {
    let mut out = message[..tsig_start].to_vec();
    out[0..2].copy_from_slice(&original_id.to_be_bytes());
    let ar = u16::from_be_bytes([out[10], out[11]]).wrapping_sub(1);
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    out
}

/// The TSIG variables (RFC 8945 4.3.3).
fn variables(key_wire: &[u8], time: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut out = key_wire.to_vec();
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(ALGORITHM);
    out.extend_from_slice(&timers(time, fudge));
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(other.len() as u16).to_be_bytes());
    out.extend_from_slice(other);
    out
}

fn timers(time: u64, fudge: u16) -> [u8; 8] {
    let mut out = [0; 8];
    out[..6].copy_from_slice(&time.to_be_bytes()[2..]);
    out[6..].copy_from_slice(&fudge.to_be_bytes());
    out
}

/// Where the name at `at` ends (names may end in a compression pointer).
pub(super) fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2).filter(|end| *end <= message.len()),
            l if l & 0xc0 != 0 => return None,
            l => at += 1 + usize::from(l),
        }
    }
}

/// An uncompressed name of at most 255 bytes, lower-cased (TSIG names are never compressed,
/// RFC 8945 4.2).
fn plain_name(wire: &[u8]) -> Option<Vec<u8>> {
    if wire.len() > 255 {
        return None;
    }
    let mut at = 0;
    while *wire.get(at)? != 0 {
        let len = usize::from(wire[at]);
        if len > 63 {
            return None;
        }
        at += 1 + len;
    }
    (at + 1 == wire.len()).then(|| wire.to_ascii_lowercase())
}

/// A key name's wire form.
pub fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.to_ascii_lowercase().as_bytes());
    }
    out.push(0);
    out
}

fn name_text(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at).filter(|l| **l != 0) {
        let label = wire.get(at + 1..at + 1 + usize::from(len)).unwrap_or_default();
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        at += 1 + usize::from(len);
    }
    if out.is_empty() { ".".into() } else { out }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.bytes.get(..n)?, self.bytes.get(n..)?);
        self.bytes = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u48(&mut self) -> Option<u64> {
        self.take(6).map(|b| b.iter().fold(0, |acc, x| acc << 8 | u64::from(*x)))
    }

    fn name(&mut self) -> Option<&'a [u8]> {
        let end = skip_name(self.bytes, 0)?;
        self.take(end)
    }
}

#[cfg(test)]
mod tests;
