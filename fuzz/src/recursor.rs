//! `recursor_response`: any bytes as an upstream server's response, through the recursive
//! node's reading of it (`Recursor::digest`, the one place where other servers' bytes are
//! interpreted). The question varies too: the input's first byte picks it.
//!
//! What must hold besides "no panic": an answer re-encodes into sections that hickory-proto
//! parses with the counts the body claims, and no TTL in it exceeds the configured caps; a
//! referral names a cut strictly below the zone asked and at or above the name, with at most
//! `MAX_SERVERS` distinct addresses.

use std::sync::OnceLock;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::RecordType;
use idnode::dns::DnsName;
use idnode::dns::recursive::{MAX_SERVERS, Recursor, RecursorConfig, Step};
use tokio::time::Instant;

/// Caps below any TTL a fuzzer is likely to write, so that clamping is exercised.
const MAX_TTL: u32 = 3600;
const MAX_NEGATIVE_TTL: u32 = 300;

/// The questions a resolution may be at: (zone asked, name, type).
const QUESTIONS: &[(&str, &str, u16)] = &[
    (".", "abc-123._id.1.100.88.id.example.", 16),
    ("id.example.", "abc-123._id.1.100.88.id.example.", 16),
    ("100.88.id.example.", "abc-123._id.1.100.88.id.example.", 255),
    ("1.100.88.id.example.", "x._id.1.100.88.id.example.", 256),
    ("88.id.example.", "100.88.id.example.", 2),
];

struct Fixture {
    recursor: Recursor,
    questions: Vec<(DnsName, DnsName, u16)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        recursor: Recursor::new(RecursorConfig {
            roots: vec!["127.0.0.1:53".parse().expect("literal address")],
            port: 53,
            timeout: Duration::from_secs(1),
            max_referrals: 8,
            cache_bytes: 1 << 20,
            max_in_flight: 16,
            budget: Duration::from_secs(3),
            max_ttl: MAX_TTL,
            max_negative_ttl: MAX_NEGATIVE_TTL,
        }),
        questions: QUESTIONS
            .iter()
            .map(|(zone, name, qtype)| {
                let parse = |n: &str| DnsName::from_ascii(n).expect("literal name");
                (parse(zone), parse(name), *qtype)
            })
            .collect(),
    })
}

pub fn recursor_response(data: &[u8]) {
    let Some((&pick, response)) = data.split_first() else { return };
    let fixture = fixture();
    let (zone, qname, qtype) = &fixture.questions[usize::from(pick) % fixture.questions.len()];
    let Ok(step) = fixture.recursor.digest(zone, qname, *qtype, response, Instant::now()) else { return };
    match step {
        Step::Answer { cached, ttl } => {
            assert!(
                ttl <= Duration::from_secs(u64::from(MAX_TTL)),
                "cached for {ttl:?}; response {}",
                crate::hex(data)
            );
            // The sections follow the question as a client sent it (compression pointers may
            // point into it): rebuild that question, then the counts the body claims.
            let body = &cached.body;
            let mut message = question(qname, *qtype);
            message[2] |= 0x80;
            message[6..8].copy_from_slice(&body.answers.to_be_bytes());
            message[8..10].copy_from_slice(&body.authorities.to_be_bytes());
            message[10..12].copy_from_slice(&body.additionals.to_be_bytes());
            message.extend_from_slice(&body.bytes);
            let parsed = Message::from_vec(&message)
                .unwrap_or_else(|e| panic!("re-encoded sections do not parse ({e}); response {}", crate::hex(data)));
            for record in parsed.answers.iter().chain(&parsed.authorities).chain(&parsed.additionals) {
                assert!(record.ttl <= MAX_TTL, "TTL {} passed through; response {}", record.ttl, crate::hex(data));
            }
        }
        Step::Referral(delegation) => {
            let cut = &delegation.cut;
            assert!(
                zone.zone_of(cut) && cut != zone && cut.zone_of(&qname.to_lowercase()),
                "cut {cut} for {qname} from {zone}"
            );
            assert!(!delegation.servers.is_empty() && delegation.servers.len() <= MAX_SERVERS, "{delegation:?}");
            let distinct: std::collections::HashSet<_> = delegation.servers.iter().collect();
            assert_eq!(distinct.len(), delegation.servers.len(), "servers repeat: {delegation:?}");
        }
    }
}

/// A query for `qname`/`qtype` in lower case, ending with its question: what the node's
/// answers are appended to.
fn question(qname: &DnsName, qtype: u16) -> Vec<u8> {
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(qname.to_lowercase(), RecordType::from(qtype)));
    message.to_vec().expect("a literal question encodes")
}
