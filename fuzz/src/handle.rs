//! `handle_request`: any bytes as a Handle protocol request, through the front end the sockets
//! call: as one UDP datagram (`handle::Frontend::answer_datagram`) and, when the bytes start
//! with an envelope, as a TCP message (`handle::Frontend::answer`), over the demo namespace, a
//! delegation and a record with ten values, with the node's own site and a server key (so
//! GET_SITE_INFO and certified answers are reached). Administration requests are challenged,
//! and answers to challenges checked (none passes: the fuzzer holds no key).
//!
//! Every answer must be one the node may send: the request id echoed, a version no higher
//! than 2.11 with 2.11 suggested, the announced length the message's, a header whose body length
//! fits, an expiration in the future, a credential that is empty or, for a request asking CT, an
//! HS_SIGNED one, and at most 262,144 bytes. A message is dropped only when it is a response or
//! no envelope can be read. The front end has its resolution cache, and a repeated request must
//! get the same bytes (from the cache or not).

use std::sync::{Arc, OnceLock};

use idnode::auth::Admin;
use idnode::config::Config;
use idnode::handle::key::ServerKey;
use idnode::handle::message::{ENVELOPE_LEN, Envelope, HEADER_LEN, MAX_MESSAGE_LEN, MAX_VERSION};
use idnode::handle::reassembly::Reassembly;
use idnode::handle::{Connection, Frontend, Verdict, site_info};
use idnode::identifier::Identifier;
use idnode::record::Value;
use idnode::registry::Registry;

/// A fixed clock: answers expire 43,200 s after it.
const NOW: u32 = 1_800_000_000;

pub fn handle_request(data: &[u8]) {
    let frontend = fixture();
    let mut out = Vec::new();
    let mut conn = Connection::default();
    let mut pieces = Reassembly::default();
    match frontend.answer_datagram(data, NOW, &mut conn, &mut pieces, &mut out) {
        Verdict::Respond(envelope) => {
            check(data, &envelope, &out);
            // The same request again may be a cache hit: it must be answered byte for byte alike,
            // unless it set up a session or was challenged (each gets a fresh id and nonce).
            let mut again = Vec::new();
            let second =
                frontend.answer_datagram(data, NOW, &mut Connection::default(), &mut Reassembly::default(), &mut again);
            if !fresh(&out) {
                assert_eq!(second, Verdict::Respond(envelope), "request {}", crate::hex(data));
                assert_eq!(again, out, "a repeat is answered alike; request {}", crate::hex(data));
            }
        }
        Verdict::Drop => assert!(
            Envelope::decode(data).is_err() || responds(data) || piece(data),
            "only a runt, an oversized envelope, a response or a piece of a longer request is dropped; request {}",
            crate::hex(data)
        ),
    }
    if let Ok(envelope) = Envelope::decode(data) {
        let rest = &data[ENVELOPE_LEN..];
        let message = &rest[..rest.len().min(envelope.message_length as usize)];
        match frontend.answer(&envelope, message, NOW, &mut conn, &mut out) {
            Verdict::Respond(response) => check(data, &response, &out),
            Verdict::Drop => assert!(responds(data), "only a response is dropped; request {}", crate::hex(data)),
        }
    }
}

/// Whether the response `out` is new each time: a challenge (a fresh nonce and id).
fn fresh(out: &[u8]) -> bool {
    out.get(4..8).is_some_and(|code| code == 402u32.to_be_bytes())
}

/// Whether the datagram is a piece of a request spread over several (TC, a sequence number, or
/// fewer bytes than announced), which waits for the others.
fn piece(data: &[u8]) -> bool {
    Envelope::decode(data).is_ok_and(|e| {
        e.flags & idnode::handle::message::ENV_TRUNCATED != 0
            || e.message_id != 0
            || data.len() - ENVELOPE_LEN < e.message_length as usize
    })
}

/// Whether the request's header carries a response code (bytes 4..8 of the message).
fn responds(data: &[u8]) -> bool {
    data.get(ENVELOPE_LEN + 4..ENVELOPE_LEN + 8).is_some_and(|c| c != [0; 4])
}

fn check(request: &[u8], envelope: &Envelope, out: &[u8]) {
    let shown = || format!("request {}\nresponse {}", crate::hex(request), crate::hex(out));
    let be = |at: usize| u32::from_be_bytes(out[at..at + 4].try_into().unwrap());
    assert!(out.len() >= HEADER_LEN + 4 && out.len() <= MAX_MESSAGE_LEN, "{} bytes\n{}", out.len(), shown());
    assert_eq!(envelope.message_length as usize, out.len(), "announced length\n{}", shown());
    assert_eq!(envelope.request_id.to_be_bytes(), request[8..12], "request id echoed\n{}", shown());
    assert!(envelope.version <= MAX_VERSION && envelope.suggested == MAX_VERSION, "versions\n{}", shown());
    assert_eq!(be(16), NOW + 43_200, "expiration\n{}", shown());
    let credential_at = HEADER_LEN + be(20) as usize;
    assert!(credential_at + 4 <= out.len(), "body length\n{}", shown());
    let credential = &out[credential_at + 4..];
    assert_eq!(be(credential_at) as usize, credential.len(), "credential length\n{}", shown());
    if !credential.is_empty() {
        let certify = request.get(ENVELOPE_LEN + 8).is_some_and(|flags| flags & 0x40 != 0);
        assert!(certify, "a credential only when asked\n{}", shown());
        let signature = idnode::handle::credential::signature_of(credential);
        assert!(signature.is_some_and(|(alg, sig)| alg == b"SHA-256" && sig.len() == 256), "HS_SIGNED\n{}", shown());
    }
    assert_ne!(be(4), 0, "a response code\n{}", shown());
}

fn fixture() -> &'static Frontend {
    static FIXTURE: OnceLock<Frontend> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let registry = Arc::new(Registry::open(&config.data_dir).expect("a registry"));
        idnode::demo::load(&registry).expect("the demo namespace");
        // A seal key, so that answers to challenges reach the secret-key check.
        let seal_key = idnode::secret::SealKey::load_or_create(dir.path()).expect("a seal key");
        let (key, _) = ServerKey::load_or_create(dir.path()).expect("a server key");
        let handle = "192.0.2.1:2641".parse().expect("an address");
        let site = site_info::build(&config.handle, handle, None, Some(&key));
        let site = site_info::OwnSite::new(site, Some(Arc::new(key)));
        // With the resolution cache, as served: repeated inputs are answered from it.
        let assembled =
            idnode::server::assemble_all(&config, registry, Some(Arc::new(seal_key)), site).expect("the node");
        let node = assembled.node;
        let put = |id: &str, values: Vec<Value>| {
            let id = Identifier::parse(id).expect("an identifier");
            node.put(&Admin::node(), &id, values, &Default::default()).expect("a seed record");
        };
        let site: idnode::record::site::Site =
            serde_json::from_str(r#"{"servers":[{"serverId":1,"address":"192.0.2.1"}]}"#).expect("a site");
        put("0.NA/88.100.5", vec![Value::new(1, "HS_SITE", site.encode(), 0)]);
        put("88.100.1/BIG", (1..=10).map(|i| Value::new(i, "URL.mirror", "x".repeat(200), 0)).collect());
        // The open database outlives its directory, so no run leaves one behind.
        drop(dir);
        Arc::into_inner(assembled.handle).expect("the only reference")
    })
}
