//! SM2 administrators over the Handle protocol, as the Teleinfo SDK logs in: the key stored as
//! the SDK stores it (PEM text), the challenge of a LOGIN_ID_SYSTEM answered with an SM2
//! signature over `SM3(nonce ‖ digest)` with the administrator's handle as the signer's
//! identity, DER-encoded. Signed here with RustCrypto's `sm2` signer; the node verifies.

use base64::Engine as _;
use idnode::auth::{Admin, prefix_admin_values};
use idnode::identifier::Identifier;
use idnode::node::PutOptions;
use idnode::record::Value;
use sm2::dsa::signature::Signer as _;
use sm2::pkcs8::EncodePublicKey as _;
use sm3::Digest as _;
use tokio::net::TcpStream;

use crate::handle_admin::{Out, answer, challenge_message, exchange, handle_only, once, string, value, with_values};

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a 64-byte `r ‖ s`, as Java writes SM2 signatures.
fn der(signature: &sm2::dsa::Signature) -> Vec<u8> {
    let mut body = Vec::new();
    for half in signature.to_bytes().chunks(32) {
        let start = half.iter().take_while(|b| **b == 0).count();
        let mut int = half[start..].to_vec();
        if int[0] & 0x80 != 0 {
            int.insert(0, 0);
        }
        body.extend_from_slice(&[0x02, int.len() as u8]);
        body.extend_from_slice(&int);
    }
    [vec![0x30, body.len() as u8], body].concat()
}

/// The answer the SDK sends with an SM2 key it loaded as an "EC" key: `SM3`, then the signature.
fn sm2_proof(key: &sm2::SecretKey, signer: &str, challenge: &crate::handle_admin::In) -> Vec<u8> {
    let digest = sm3::Sm3::digest(challenge_message(challenge));
    let signature: sm2::dsa::Signature = sm2::dsa::SigningKey::new(signer, key).unwrap().sign(&digest);
    let mut proof = Vec::new();
    string(&mut proof, b"SM3");
    string(&mut proof, &der(&signature));
    proof
}

#[tokio::test]
async fn an_sm2_key_logs_in_as_the_teleinfo_sdk_does() {
    let node = crate::start_server().await;
    let key = sm2::SecretKey::random(&mut rsa::rand_core::OsRng);
    let der_key = key.public_key().to_public_key_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der_key.as_bytes());
    let pem: String = b64.as_bytes().chunks(76).map(|l| String::from_utf8_lossy(l) + "\r\n").collect();
    let pem = format!("-----BEGIN PUBLIC KEY-----\r\n{pem}-----END PUBLIC KEY-----\r\n");
    let id = Identifier::parse("0.NA/88.100").unwrap();
    let mut values = prefix_admin_values((300, id.as_str()), None, 0);
    values.push(Value::new(300, "HS_PUBKEY", pem.into_bytes(), 0));
    node.node.put(&Admin::node(), &id, values, &PutOptions::default()).unwrap();

    let mut stream = TcpStream::connect(node.handle).await.unwrap();
    let mut login = handle_only("0.NA/88.100");
    login.extend_from_slice(&300u32.to_be_bytes());
    let challenge = exchange(&mut stream, &Out { session: 10_001, ..Out::new(2001, 1, login) }).await;
    assert_eq!((challenge.opcode, challenge.code), (2001, 402));
    let proof = sm2_proof(&key, "0.NA/88.100", &challenge);
    let logged_in = exchange(&mut stream, &answer("HS_PUBKEY", "0.NA/88.100", 300, &proof, &challenge, 2)).await;
    assert_eq!((logged_in.opcode, logged_in.code), (2001, 1), "{logged_in:?}");
    let create = Out { session: 10_001, ..Out::new(100, 3, with_values("88.100/SM2", &[value(1, "URL", "s", 0x0e)])) };
    assert_eq!(exchange(&mut stream, &create).await.code, 1);

    // Signed by another key, or over another identity than the administrator's: refused.
    let stranger = sm2::SecretKey::random(&mut rsa::rand_core::OsRng);
    for (key, signer) in [(&stranger, "0.NA/88.100"), (&key, "88.100/SOMEONE")] {
        let delete = Out::new(101, 4, handle_only("88.100/SM2"));
        let challenge = once(node.handle, &delete).await;
        let proof = sm2_proof(key, signer, &challenge);
        let refused = once(node.handle, &answer("HS_PUBKEY", "0.NA/88.100", 300, &proof, &challenge, 5)).await;
        assert_eq!((refused.opcode, refused.code), (101, 403), "{signer}: {refused:?}");
    }
    assert!(node.registry.get(&Identifier::parse("88.100/SM2").unwrap()).unwrap().is_some());
    node.stop().await;
}
