//! Homing prefixes over the Handle protocol (HOME_NA, UNHOME_NA, LIST_HOMED_NAS), over real
//! sockets: a server administrator homes a prefix and every protocol serves it at once, the
//! prefix stays homed across a restart, and unhoming stops it again. Who may, and what cannot
//! be unhomed, answered with the codes CNRI's tools show.

use hickory_proto::op::{Message, ResponseCode as Rcode};
use hickory_proto::rr::RecordType;
use idnode::auth::{Admin, prefix_admin_values};
use idnode::identifier::Identifier;
use idnode::node::PutOptions;
use idnode::record::Value;

use crate::TestNode;
use crate::dns::{query, udp};
use crate::handle_admin::{
    Out, answer, as_operator, handle_only, once, operator_on, secret_proof, site_query, typed_values,
};

const HOME_NA: u32 = 300;
const UNHOME_NA: u32 = 301;
const LIST_HOMED_NAS: u32 = 302;

/// The DNS name of `88.200/X`, and how the node answers a TXT query for it.
async fn dns_rcode(node: &TestNode) -> Rcode {
    let request = query("x._id.200.88.id.example.", RecordType::TXT, None);
    Message::from_vec(&udp(node.addr, &request).await.expect("a DNS answer")).unwrap().metadata.response_code
}

/// LIST_HOMED_NAS, as the operator: the prefix records listed.
async fn homed(node: &TestNode) -> Vec<u8> {
    let listed = as_operator(node.handle, &Out::new(LIST_HOMED_NAS, 60, handle_only("/")), b"s3cret").await;
    assert_eq!((listed.opcode, listed.code), (LIST_HOMED_NAS, 1), "{listed:?}");
    listed.body
}

fn listing(prefixes: &[&str]) -> Vec<u8> {
    let mut b = (prefixes.len() as u32).to_be_bytes().to_vec();
    for p in prefixes {
        b.extend_from_slice(&handle_only(p));
    }
    b
}

fn serving_88_100(c: &mut idnode::config::Config) {
    c.dns.zones = vec!["88.100".into()];
    c.handle.server_admins = vec!["300:0.NA/88.100".into()];
}

#[tokio::test]
async fn a_server_administrator_homes_a_prefix_which_stays_across_a_restart_until_unhomed() {
    let node = operator_on(crate::start_server_with(serving_88_100).await);
    let id = Identifier::parse("88.200/X").unwrap();
    node.node
        .put(&Admin::node(), &id, vec![Value::new(1, "URL", "https://x.example/", 0)], &PutOptions::default())
        .unwrap();
    assert_eq!(dns_rcode(&node).await, Rcode::Refused, "88.200 is not served yet");
    assert_eq!(homed(&node).await, listing(&["0.NA/88.100"]));

    let home = as_operator(node.handle, &Out::new(HOME_NA, 61, handle_only("0.NA/88.200")), b"s3cret").await;
    assert_eq!((home.opcode, home.code, home.request), (HOME_NA, 1, 1061), "{home:?}");
    assert_eq!(dns_rcode(&node).await, Rcode::NoError, "served at once, the REFUSED no longer cached");
    assert_eq!(homed(&node).await, listing(&["0.NA/88.100", "0.NA/88.200"]));
    // The homed prefix's record answers with the node's own site, as configured zones do.
    let site = once(node.handle, &site_query("0.NA/88.200", 62)).await;
    assert_eq!(site.code, 1, "{site:?}");
    assert!(typed_values(&site.body).iter().any(|(kind, _)| kind == "HS_SITE"), "{site:?}");
    // Homing it again changes nothing and is no error; the bare prefix is accepted too.
    let again = as_operator(node.handle, &Out::new(HOME_NA, 63, handle_only("88.200")), b"s3cret").await;
    assert_eq!(again.code, 1, "{again:?}");

    let node = node.restart(serving_88_100).await;
    assert_eq!(dns_rcode(&node).await, Rcode::NoError, "homed prefixes are stored");
    assert_eq!(homed(&node).await, listing(&["0.NA/88.100", "0.NA/88.200"]));

    let unhome = as_operator(node.handle, &Out::new(UNHOME_NA, 64, handle_only("0.NA/88.200")), b"s3cret").await;
    assert_eq!((unhome.opcode, unhome.code), (UNHOME_NA, 1), "{unhome:?}");
    assert_eq!(dns_rcode(&node).await, Rcode::Refused);
    assert_eq!(homed(&node).await, listing(&["0.NA/88.100"]));
    let node = node.restart(serving_88_100).await;
    assert_eq!(dns_rcode(&node).await, Rcode::Refused, "the unhoming is stored too");
    node.stop().await;
}

#[tokio::test]
async fn only_homed_prefixes_can_be_unhomed_and_only_by_a_server_administrator() {
    let node = operator_on(crate::start_server_with(serving_88_100).await);
    let configured = as_operator(node.handle, &Out::new(UNHOME_NA, 70, handle_only("0.NA/88.100")), b"s3cret").await;
    assert_eq!(configured.code, 2, "{configured:?}");
    assert!(String::from_utf8_lossy(&configured.body).contains("[dns] zones"), "{configured:?}");
    let absent = as_operator(node.handle, &Out::new(UNHOME_NA, 71, handle_only("0.NA/88.999")), b"s3cret").await;
    assert_eq!(absent.code, 301, "SERVER_NOT_RESP: {absent:?}");
    let bad = as_operator(node.handle, &Out::new(HOME_NA, 72, handle_only("0.NA/88..1")), b"s3cret").await;
    assert_eq!(bad.code, 102, "INVALID_HANDLE: {bad:?}");

    // The operator of another prefix proves who it is, and may still not home.
    let other = Identifier::parse("0.NA/88.900").unwrap();
    let values = prefix_admin_values((300, other.as_str()), Some("other"), 0);
    node.node.put(&Admin::node(), &other, values, &PutOptions::default()).unwrap();
    let request = Out::new(HOME_NA, 73, handle_only("0.NA/88.900"));
    let challenge = once(node.handle, &request).await;
    let proof = secret_proof(b"other", &challenge);
    let refused = once(node.handle, &answer("HS_SECKEY", "0.NA/88.900", 300, &proof, &challenge, 1073)).await;
    assert_eq!(refused.code, 401, "INSUFFICIENT_PERMISSIONS: {refused:?}");
    assert!(String::from_utf8_lossy(&refused.body).contains("server_admins"), "{refused:?}");
    assert_eq!(homed(&node).await, listing(&["0.NA/88.100"]), "nothing homed");
    node.stop().await;
}
