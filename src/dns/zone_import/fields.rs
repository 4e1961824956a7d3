//! The fields of a record in presentation form: domain names (`@`, relative, absolute, escaped),
//! TTLs with BIND's units, and the RDATA of the types an identifier zone holds, including the
//! generic `\# LENGTH HEX` form of RFC 3597.

use std::net::IpAddr;

use super::lexer::{Token, escaped, unescape};

/// A domain name as labels, left to right, without the root; case as written.
pub(super) type Labels = Vec<Vec<u8>>;

/// 255: the longest domain name in wire form (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;

/// Reads a name: `@` is `origin`, a name without a final dot is relative to `origin`.
pub(super) fn name(raw: &[u8], origin: Option<&Labels>) -> Result<Labels, String> {
    let relative_to = |labels: Labels| -> Result<Labels, String> {
        let origin = origin.ok_or("a relative name with no $ORIGIN before it (write it with a final dot)")?;
        Ok(labels.into_iter().chain(origin.iter().cloned()).collect())
    };
    let labels = match raw {
        b"@" => relative_to(Vec::new())?,
        b"." => Vec::new(),
        _ => {
            let mut labels = Vec::new();
            let mut label = Vec::new();
            let mut i = 0;
            let mut absolute = false;
            while i < raw.len() {
                match raw[i] {
                    b'\\' => {
                        let (byte, used) = escaped(&raw[i + 1..])?;
                        label.push(byte);
                        i += 1 + used;
                        continue;
                    }
                    b'.' if label.is_empty() => return Err("an empty label (two dots in a row)".into()),
                    b'.' => {
                        labels.push(std::mem::take(&mut label));
                        absolute = i + 1 == raw.len();
                    }
                    b => label.push(b),
                }
                i += 1;
            }
            if !label.is_empty() {
                labels.push(label);
            }
            if absolute { labels } else { relative_to(labels)? }
        }
    };
    if let Some(long) = labels.iter().find(|l| l.len() > crate::dns::mapping::MAX_LABEL) {
        return Err(format!("a label of {} bytes; at most 63 are allowed", long.len()));
    }
    let wire: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
    if wire > MAX_NAME {
        return Err(format!("the name is {wire} bytes long; at most {MAX_NAME} are allowed"));
    }
    Ok(labels)
}

pub(super) fn lower(labels: &[Vec<u8>]) -> Labels {
    labels.iter().map(|l| l.to_ascii_lowercase()).collect()
}

/// A name in presentation form, absolute, for messages (as `dig` writes names).
pub(super) fn show(labels: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for label in labels {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('.');
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// A TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`), case-insensitive.
pub(super) fn ttl(raw: &[u8]) -> Option<u32> {
    if !raw.first()?.is_ascii_digit() {
        return None;
    }
    let (mut total, mut number) = (0u64, None::<u64>);
    for &b in raw {
        if b.is_ascii_digit() {
            number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(u64::from(b - b'0'))?);
            continue;
        }
        let unit = match b.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    // A bare number is seconds; after a unit, a number needs its own unit (as BIND reads it).
    match number {
        Some(n) if total == 0 && raw.iter().all(u8::is_ascii_digit) => u32::try_from(n).ok(),
        Some(_) => None,
        None => u32::try_from(total).ok(),
    }
}

/// The RDATA of RFC 3597's generic form (`\# LENGTH HEX...`), or `None` for the usual form.
pub(super) fn generic(tokens: &[Token]) -> Option<Result<Vec<u8>, String>> {
    let first = tokens.first()?;
    if first.quoted || first.raw != b"\\#" {
        return None;
    }
    let parse = || -> Result<Vec<u8>, String> {
        let len = tokens.get(1).and_then(|t| std::str::from_utf8(&t.raw).ok()?.parse::<usize>().ok());
        let len = len.ok_or("\\# needs the RDATA length after it")?;
        let hex: Vec<u8> = tokens[2..].iter().flat_map(|t| t.raw.iter().copied()).collect();
        let data = hex::decode(&hex).map_err(|_| "the RDATA after \\# LENGTH is not hex")?;
        if data.len() != len {
            return Err(format!("\\# says {len} bytes of RDATA, the hex holds {}", data.len()));
        }
        Ok(data)
    };
    Some(parse())
}

/// TXT RDATA: character-strings, each at most 255 bytes.
pub(super) fn txt(tokens: &[Token]) -> Result<Vec<Vec<u8>>, String> {
    if let Some(wire) = generic(tokens) {
        let wire = wire?;
        let mut out = Vec::new();
        let mut rest = wire.as_slice();
        while let Some((&len, tail)) = rest.split_first() {
            let len = usize::from(len);
            let string = tail.get(..len).ok_or("the TXT RDATA ends inside a character-string")?;
            out.push(string.to_vec());
            rest = &tail[len..];
        }
        return Ok(out);
    }
    if tokens.is_empty() {
        return Err("no character-strings".into());
    }
    tokens
        .iter()
        .map(|t| {
            let s = unescape(&t.raw)?;
            if s.len() > 255 {
                return Err(format!("a character-string of {} bytes; at most 255 are allowed", s.len()));
            }
            Ok(s)
        })
        .collect()
}

/// URI RDATA (RFC 7553): priority, weight, target.
pub(super) fn uri(tokens: &[Token]) -> Result<(u16, u16, Vec<u8>), String> {
    if let Some(wire) = generic(tokens) {
        let wire = wire?;
        if wire.len() < 4 {
            return Err("URI RDATA shorter than its priority and weight".into());
        }
        let priority = u16::from_be_bytes([wire[0], wire[1]]);
        return Ok((priority, u16::from_be_bytes([wire[2], wire[3]]), wire[4..].to_vec()));
    }
    let [priority, weight, target] = tokens else {
        return Err(format!("{} fields; a URI record has priority, weight and target", tokens.len()));
    };
    let number = |t: &Token, what: &str| {
        std::str::from_utf8(&t.raw).ok().and_then(|s| s.parse::<u16>().ok()).ok_or(format!("the {what} is not 0-65535"))
    };
    Ok((number(priority, "priority")?, number(weight, "weight")?, unescape(&target.raw)?))
}

/// A or AAAA RDATA: the address.
pub(super) fn address(tokens: &[Token], v6: bool) -> Result<IpAddr, String> {
    if let Some(wire) = generic(tokens) {
        let wire = wire?;
        return match (v6, <[u8; 4]>::try_from(wire.as_slice()), <[u8; 16]>::try_from(wire.as_slice())) {
            (false, Ok(v4), _) => Ok(IpAddr::from(v4)),
            (true, _, Ok(v6)) => Ok(IpAddr::from(v6)),
            _ => Err(format!("{} bytes of address", wire.len())),
        };
    }
    let [one] = tokens else {
        return Err(format!("{} fields; an address record has one", tokens.len()));
    };
    let text = std::str::from_utf8(&one.raw).map_err(|_| "the address is not text")?;
    let addr: IpAddr = text.parse().map_err(|_| format!("{text:?} is not an address"))?;
    if addr.is_ipv6() != v6 {
        return Err(format!("{text} is not an {} address", if v6 { "IPv6" } else { "IPv4" }));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(raw: &str) -> Token {
        Token { raw: raw.as_bytes().to_vec(), quoted: false }
    }

    #[test]
    fn names_relative_absolute_and_escaped() {
        let origin = vec![b"id".to_vec(), b"example".to_vec()];
        assert_eq!(name(b"@", Some(&origin)).unwrap(), origin);
        assert_eq!(name(b"A.b", Some(&origin)).unwrap(), [&b"A"[..], b"b", b"id", b"example"].map(<[u8]>::to_vec));
        assert_eq!(name(b"x\\.y.z.", None).unwrap(), vec![b"x.y".to_vec(), b"z".to_vec()]);
        assert_eq!(name(b"\\195\\132.z.", None).unwrap(), vec![vec![195, 132], b"z".to_vec()]);
        assert_eq!(name(b".", None).unwrap(), Vec::<Vec<u8>>::new());
        assert!(name(b"rel", None).unwrap_err().contains("$ORIGIN"));
        assert!(name(b"a..b.", None).is_err());
        assert!(name(format!("{}.", "x".repeat(64)).as_bytes(), None).is_err());
        assert_eq!(show(&name(b"x\\.y.\\195.", None).unwrap()), "x\\.y.\\195.");
    }

    #[test]
    fn ttls_in_seconds_and_bind_units() {
        assert_eq!(ttl(b"3600"), Some(3600));
        assert_eq!(ttl(b"1h30m"), Some(5400));
        assert_eq!(ttl(b"1W2D"), Some(9 * 86_400));
        assert_eq!(ttl(b"0"), Some(0));
        assert_eq!(ttl(b"1h30"), None);
        assert_eq!(ttl(b"IN"), None);
        assert_eq!(ttl(b"99999999999"), None);
    }

    #[test]
    fn rdata_in_usual_and_generic_form() {
        assert_eq!(
            txt(&[tok("1"), tok("URL"), tok("a\\032b")]).unwrap(),
            [&b"1"[..], b"URL", b"a b"].map(<[u8]>::to_vec)
        );
        assert_eq!(txt(&[tok("\\#"), tok("4"), tok("01310178")]).unwrap(), vec![b"1".to_vec(), b"x".to_vec()]);
        assert!(txt(&[tok("\\#"), tok("3"), tok("01310178")]).is_err());
        assert_eq!(uri(&[tok("1"), tok("1"), tok("https://x")]).unwrap(), (1, 1, b"https://x".to_vec()));
        assert_eq!(uri(&[tok("\\#"), tok("5"), tok("0002000178")]).unwrap(), (2, 1, b"x".to_vec()));
        assert_eq!(address(&[tok("192.0.2.1")], false).unwrap().to_string(), "192.0.2.1");
        assert!(address(&[tok("192.0.2.1")], true).is_err());
        assert_eq!(address(&[tok("\\#"), tok("4"), tok("c0000201")], false).unwrap().to_string(), "192.0.2.1");
    }
}
