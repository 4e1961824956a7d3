//! TSIG against another implementation: vectors made with dnspython 2.9 (its clock set to
//! 1764500000, key `idnode-xfr.`, secret `0123456789abcdef0123456789abcdef`).

use super::*;

const NOW: u64 = 1_764_500_000;
const REQUEST: &str = "123401000001000000000001026964076578616d706c650000fc00010a69646e6f64652d7866720000fa00ff0000\
                       0000003d0b686d61632d736861323536000000692c2220012c002012bc98c0420c70bbaad462ceab8ed17bb1b98cbbde\
                       8fa5f5c99bdb50dc47bb85123400000000";
const RESPONSE: &str = "123481000001000000000001026964076578616d706c650000fc00010a69646e6f64652d7866720000fa00ff0000\
                        0000003d0b686d61632d736861323536000000692c2220012c0020a18a4b323d91a218365047a8234e4b0e431484bb\
                        54892f06103026bcb6d879b3123400000000";

fn key() -> TsigKey {
    TsigKey { name: "idnode-xfr.".into(), secret: b"0123456789abcdef0123456789abcdef".to_vec() }
}

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.replace(' ', "")).unwrap()
}

#[test]
fn a_request_signed_by_dnspython_verifies_and_a_changed_one_does_not() {
    let request = bytes(REQUEST);
    let signed = find(&request).unwrap().unwrap();
    assert_eq!(signed.key_name, "idnode-xfr.");
    assert_eq!(signed.time, NOW);
    assert_eq!(signed.check(&request, &key(), NOW + 10), Check::Good);
    assert_eq!(signed.check(&request, &key(), NOW + 301), Check::Bad(BADTIME), "outside the fudge");
    let other = TsigKey { secret: b"another secret, 32 bytes long...".to_vec(), ..key() };
    assert_eq!(signed.check(&request, &other, NOW), Check::Bad(BADSIG));
    let mut changed = request.clone();
    changed[20] ^= 1; // a letter of the zone name
    assert_eq!(find(&changed).unwrap().unwrap().check(&changed, &key(), NOW), Check::Bad(BADSIG));
}

#[test]
fn the_first_answer_is_signed_as_dnspython_signs_it() {
    let request = bytes(REQUEST);
    let signed = find(&request).unwrap().unwrap();
    let response = bytes(RESPONSE);
    let start = find(&response).unwrap().unwrap().start;
    let mut unsigned = response[..start].to_vec();
    unsigned[11] -= 1;
    let mut signer = Signer::new(key(), signed.key_wire.clone(), signed.mac.clone());
    signer.sign(&mut unsigned, NOW);
    assert_eq!(hex::encode(&unsigned), hex::encode(&response));
}

#[test]
fn a_request_we_sign_verifies_and_malformed_ones_are_told_apart() {
    let mut message = bytes(REQUEST);
    let start = find(&message).unwrap().unwrap().start;
    message.truncate(start);
    message[11] -= 1;
    assert_eq!(find(&message).unwrap(), None, "unsigned");
    let mac = sign_request(&mut message, &key(), NOW);
    let signed = find(&message).unwrap().unwrap();
    assert_eq!((signed.mac.clone(), signed.check(&message, &key(), NOW)), (mac, Check::Good));
    let mut cut = message.clone();
    cut.pop();
    assert!(find(&cut).is_err(), "a TSIG cut short");
    let mut longer = message.clone();
    longer.push(0);
    assert!(find(&longer).is_err(), "bytes after the TSIG");
}
