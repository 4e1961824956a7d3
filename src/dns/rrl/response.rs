//! Reading and rewriting the responses RRL sees: which bucket a response counts against
//! (its kind, and the name and type that key it), and the truncated form a slipped response
//! takes. Bounds-checked byte reads only: the bytes are our own answers, but a bug upstream must
//! not turn into a panic on the send path.

use super::Kind;
use crate::dns::wire::{FLAG_AA, FLAG_TC, HEADER, MAX_NAME, TYPE_OPT, rcode};

pub(super) const TYPE_NS: u16 = 2;

/// The response's kind, and the name (lower-cased wire form, written to `name`, its length
/// returned) and type that key its bucket. None: send without counting (too short to be a
/// response, or already truncated, the cheap form that RRL itself would send).
pub(super) fn classify(response: &[u8], name: &mut [u8; MAX_NAME]) -> Option<(Kind, usize, Option<u16>)> {
    let flags = be16(response, 2)?;
    if flags & FLAG_TC != 0 {
        return None;
    }
    let (qd, an, ns) = (be16(response, 4)?, be16(response, 6)?, be16(response, 8)?);
    let no_name = |kind| Some((kind, 0, None));
    match (flags & 0xf) as u8 {
        // A random-subdomain flood must not get a bucket per name.
        rcode::NXDOMAIN => return no_name(Kind::Nxdomain),
        rcode::NOERROR => {}
        _ => return no_name(Kind::Error),
    }
    // A NOERROR response whose question cannot be read is no real answer.
    let question = if qd == 1 { fold_name(response, HEADER, false, name) } else { None };
    let Some((len, end)) = question else { return no_name(Kind::Error) };
    let Some(qtype) = be16(response, end) else { return no_name(Kind::Error) };
    if an > 0 {
        return Some((Kind::Positive, len, Some(qtype)));
    }
    if flags & FLAG_AA == 0 && ns > 0 {
        // A referral counts against its delegation point, as in BIND, so that names made up
        // under one delegation share a bucket.
        let authority = end + 4;
        let is_ns = skip_name(response, authority).and_then(|owner_end| be16(response, owner_end)) == Some(TYPE_NS);
        if is_ns {
            if let Some((len, _)) = fold_name(response, authority, true, name) {
                return Some((Kind::Referral, len, None));
            }
        }
    }
    Some((Kind::Nodata, len, None))
}

/// Reads the name at `at` lower-cased in wire form into `out`; returns its length and where the
/// name ends at `at`. Compression pointers are followed when `pointers`, only backwards from
/// where they may point, so that a loop cannot be built.
fn fold_name(buf: &[u8], at: usize, pointers: bool, out: &mut [u8; MAX_NAME]) -> Option<(usize, usize)> {
    let (mut pos, mut len, mut end, mut floor) = (at, 0, None, at);
    loop {
        let label = *buf.get(pos)?;
        match label & 0xc0 {
            0 if label == 0 => {
                *out.get_mut(len)? = 0;
                return Some((len + 1, end.unwrap_or(pos + 1)));
            }
            0 => {
                let l = usize::from(label);
                let src = buf.get(pos + 1..pos + 1 + l)?;
                let (first, dst) = out.get_mut(len..len + 1 + l)?.split_first_mut()?;
                *first = label;
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s.to_ascii_lowercase();
                }
                len += 1 + l;
                pos += 1 + l;
            }
            0xc0 if pointers => {
                let target = usize::from(be16(buf, pos)? & 0x3fff);
                if target >= floor {
                    return None;
                }
                end.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Where the name at `at` ends, without following pointers.
fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let label = *buf.get(at)?;
        match label & 0xc0 {
            0 if label == 0 => return Some(at + 1),
            0 => at += 1 + usize::from(label),
            0xc0 => return Some(at + 2).filter(|end| *end <= buf.len()),
            _ => return None,
        }
    }
}

/// Rewrites a response in place into its truncated form: header and question only, TC set,
/// AN/NS counts zero, and the OPT record kept (ARCOUNT 1) when it can be found, since a client
/// that sent EDNS expects it back (RFC 6891 7) and it carries the upper bits of an extended
/// RCODE. Never panics: when the question cannot be found only the 12-byte header is left
/// (padded with zeros if the input was shorter), with all counts zero and TC set.
pub fn truncate(response: &mut Vec<u8>) {
    if response.len() < HEADER {
        response.resize(HEADER, 0);
    }
    let count = |at| be16(response, at).map_or(0, usize::from);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let mut end = Some(HEADER);
    for _ in 0..qd {
        // A question may not point anywhere (wire::read_name refuses it too), and must survive
        // the records it could point into being cut off.
        end = end.and_then(|at| fold_name(response, at, false, &mut [0; MAX_NAME])).map(|(_, e)| e + 4);
    }
    let (keep, qd) = match end.filter(|e| *e <= response.len()) {
        Some(e) => (e, qd),
        None => (HEADER, 0),
    };
    let mut opt = None;
    if qd > 0 {
        let mut at = keep;
        for i in 0..an + ns + ar {
            let Some(owner_end) = skip_name(response, at) else { break };
            let rdlen = be16(response, owner_end + 8).map_or(usize::MAX, usize::from);
            let Some(record_end) = (owner_end + 10).checked_add(rdlen).filter(|e| *e <= response.len()) else { break };
            if i >= an + ns && owner_end == at + 1 && be16(response, owner_end) == Some(TYPE_OPT) {
                opt = Some((at, record_end));
                break;
            }
            at = record_end;
        }
    }
    let mut len = keep;
    if let Some((start, stop)) = opt {
        response.copy_within(start..stop, keep);
        len += stop - start;
    }
    response.truncate(len);
    let flags = be16(response, 2).unwrap_or(0) | FLAG_TC;
    let counts = [flags, qd as u16, 0, 0, u16::from(opt.is_some())];
    for (i, v) in counts.into_iter().enumerate() {
        if let Some(field) = response.get_mut(2 + 2 * i..4 + 2 * i) {
            field.copy_from_slice(&v.to_be_bytes());
        }
    }
}

pub(super) fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at.checked_add(1)?)?]))
}
