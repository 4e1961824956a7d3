//! `HS_ADMIN` and `HS_VLIST` data: the binary layouts the Handle protocol gives them (RFC 3651
//! 3.2.5 and 3.2.6), which the registry stores and [`crate::auth`] reads to decide rights.
//!
//! The JSON forms of the same values live in [`crate::record::json`]; like [`crate::record::site`]
//! for `HS_SITE`, this module only knows bytes, so both the authorization rules and the JSON
//! codec depend on it and not on each other.

/// HS_ADMIN data as the Handle protocol lays it out: u16 permissions, identifier, u32 index.
pub fn encode_admin(permissions: u16, handle: &str, index: u32) -> Vec<u8> {
    let mut out = permissions.to_be_bytes().to_vec();
    put_string(&mut out, handle);
    out.extend_from_slice(&index.to_be_bytes());
    out
}

pub fn decode_admin(data: &[u8]) -> Option<(u16, String, u32)> {
    let perms = u16::from_be_bytes(data.get(..2)?.try_into().ok()?);
    let (handle, rest) = take_string(&data[2..])?;
    let index = u32::from_be_bytes(rest.try_into().ok()?);
    Some((perms, handle, index))
}

/// HS_VLIST data: u32 count, then each member as identifier and u32 index.
pub fn encode_vlist(members: &[(String, u32)]) -> Vec<u8> {
    let mut out = (members.len() as u32).to_be_bytes().to_vec();
    for (handle, index) in members {
        put_string(&mut out, handle);
        out.extend_from_slice(&index.to_be_bytes());
    }
    out
}

pub fn decode_vlist(data: &[u8]) -> Option<Vec<(String, u32)>> {
    let count = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    let mut rest = &data[4..];
    let mut list = Vec::new();
    for _ in 0..count {
        let (handle, after) = take_string(rest)?;
        let index = u32::from_be_bytes(after.get(..4)?.try_into().ok()?);
        list.push((handle, index));
        rest = &after[4..];
    }
    rest.is_empty().then_some(list)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn take_string(data: &[u8]) -> Option<(String, &[u8])> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let bytes = data.get(4..4usize.checked_add(len)?)?;
    Some((String::from_utf8(bytes.to_vec()).ok()?, &data[4 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_and_vlist_round_trip_and_refuse_garbage() {
        let admin = encode_admin(0x0ff3, "0.NA/88.100", 300);
        assert_eq!(decode_admin(&admin), Some((0x0ff3, "0.NA/88.100".into(), 300)));
        assert_eq!(decode_admin(&admin[..admin.len() - 1]), None);
        let members = vec![("88.100/OPS".to_owned(), 300), ("0.NA/88".to_owned(), 200)];
        let vlist = encode_vlist(&members);
        assert_eq!(decode_vlist(&vlist), Some(members));
        for cut in 0..vlist.len() {
            assert_eq!(decode_vlist(&vlist[..cut]), None, "cut at {cut}");
        }
    }
}
