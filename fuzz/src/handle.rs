//! `handle_request`: any bytes as a Handle protocol request, through the front end the sockets
//! call: as one UDP datagram (`handle::Frontend::answer_datagram`) and, when the bytes start
//! with an envelope, as a TCP message (`handle::Frontend::answer`), over the demo namespace, a
//! delegation and a record with ten values.
//!
//! Every answer must be one the node may send: the request id echoed, a version no higher
//! than 2.11 with 2.11 suggested, the announced length the message's, a header whose body length
//! fits, an expiration in the future, an empty credential, and at most 262,144 bytes. A message
//! is dropped only when it is a response or no envelope can be read. The front end has its
//! resolution cache, and a repeated request must get the same bytes (from the cache or not).

use std::sync::{Arc, OnceLock};

use idnode::auth::Admin;
use idnode::config::Config;
use idnode::handle::message::{ENVELOPE_LEN, Envelope, HEADER_LEN, MAX_MESSAGE_LEN, MAX_VERSION};
use idnode::handle::{Frontend, Verdict};
use idnode::identifier::Identifier;
use idnode::record::Value;
use idnode::registry::Registry;

/// A fixed clock: answers expire 43,200 s after it.
const NOW: u32 = 1_800_000_000;

pub fn handle_request(data: &[u8]) {
    let frontend = fixture();
    let mut out = Vec::new();
    match frontend.answer_datagram(data, NOW, &mut out) {
        Verdict::Respond(envelope) => {
            check(data, &envelope, &out);
            // The same request again may be a cache hit: it must be answered byte for byte alike.
            let mut again = Vec::new();
            let second = frontend.answer_datagram(data, NOW, &mut again);
            assert_eq!(second, Verdict::Respond(envelope), "request {}", crate::hex(data));
            assert_eq!(again, out, "a repeat is answered alike; request {}", crate::hex(data));
        }
        Verdict::Drop => assert!(
            Envelope::decode(data).is_err() || responds(data),
            "only a runt, an oversized envelope or a response is dropped; request {}",
            crate::hex(data)
        ),
    }
    if let Ok(envelope) = Envelope::decode(data) {
        let rest = &data[ENVELOPE_LEN..];
        let message = &rest[..rest.len().min(envelope.message_length as usize)];
        match frontend.answer(&envelope, message, NOW, &mut out) {
            Verdict::Respond(response) => check(data, &response, &out),
            Verdict::Drop => assert!(responds(data), "only a response is dropped; request {}", crate::hex(data)),
        }
    }
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
    assert_eq!(HEADER_LEN + be(20) as usize + 4, out.len(), "body length\n{}", shown());
    assert_eq!(be(out.len() - 4), 0, "no credential\n{}", shown());
    assert_ne!(be(4), 0, "a response code\n{}", shown());
}

fn fixture() -> &'static Frontend {
    static FIXTURE: OnceLock<Frontend> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let registry = Arc::new(Registry::open(&config.data_dir).expect("a registry"));
        idnode::demo::load(&registry).expect("the demo namespace");
        // With the resolution cache, as served: repeated inputs are answered from it.
        let assembled = idnode::server::assemble_all(&config, registry).expect("the node");
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
