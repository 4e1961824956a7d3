//! The UDP entry points of the Handle front end: a datagram is a whole request or one piece of
//! one ([`super::reassembly`]); administration and encrypted messages are TCP's; slow work (an
//! answer to a challenge, a session setup, a recursive resolution) is answered only on the
//! transport's second thread, never on the one receiving queries.

use super::message::{self, Envelope, op_flags, opcode};
use super::{Connection, Frontend, Verdict, admin, reassembly};

impl Frontend {
    /// Whether `message` (not encrypted) asks for slow work that UDP serves off its receiving
    /// thread: an answer to a challenge or a SESSION_SETUP (checking a proof, running the kept
    /// request, Diffie-Hellman and a signature), which CNRI's client sends over UDP, or, on a
    /// recursive node, a resolution asking for recursion.
    pub(super) fn slow(&self, message: &[u8]) -> bool {
        let word = |at: usize| message.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let op = word(0);
        matches!(op, opcode::RESPONSE_TO_CHALLENGE | opcode::SESSION_SETUP)
            || (op == opcode::RESOLUTION && self.recursor.is_some() && word(8) & op_flags::RECURSIVE != 0)
    }

    /// Whether `datagram` is one the UDP transport answers off its receiving thread, with
    /// [`answer_datagram_blocking`](Self::answer_datagram_blocking) (see `slow`).
    pub fn datagram_may_block(&self, datagram: &[u8]) -> bool {
        let Some(message) = datagram.get(message::ENVELOPE_LEN..) else { return false };
        datagram[2] & message::ENV_ENCRYPTED == 0 && self.slow(message)
    }

    /// Whether this node relays recursive resolutions (`[recursive] handle_roots`).
    pub fn is_recursive(&self) -> bool {
        self.recursor.is_some()
    }

    /// Whether `datagram`, which [may block](Self::datagram_may_block), is a resolution this
    /// recursive node relays: it waits on other nodes, not on this one's CPU.
    pub fn datagram_relays(&self, datagram: &[u8]) -> bool {
        let word = |at: usize| datagram.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let at = message::ENVELOPE_LEN;
        self.recursor.is_some() && word(at) == opcode::RESOLUTION && word(at + 8) & op_flags::RECURSIVE != 0
    }

    /// Answers one UDP datagram: an envelope and the whole message, or one piece of a message
    /// spread over several datagrams, kept in `pieces` until the last arrives (then the whole
    /// is answered; until then nothing is sent). Administration and encrypted messages are
    /// refused with PROTOCOL_ERROR (the site offers UDP for queries, as CNRI's sites do, and
    /// CNRI's client sends them over TCP), and so is, on this thread, a message that [may
    /// block](Self::datagram_may_block); a datagram too short for an envelope, or whose
    /// envelope announces more than [`message::MAX_MESSAGE_LEN`], is dropped.
    pub fn answer_datagram(
        &self,
        datagram: &[u8],
        now: u32,
        conn: &mut Connection,
        pieces: &mut reassembly::Reassembly,
        out: &mut Vec<u8>,
    ) -> Verdict {
        self.datagram(datagram, Some(pieces), now, conn, out)
    }

    /// [`answer_datagram`](Self::answer_datagram) on a thread that may wait, for a datagram that
    /// [may block](Self::datagram_may_block): CNRI's client answers the challenge of a UDP
    /// resolution (public-only clear) over UDP, and tries SESSION_SETUP over UDP first.
    pub fn answer_datagram_blocking(
        &self,
        datagram: &[u8],
        now: u32,
        conn: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Verdict {
        self.datagram(datagram, None, now, conn, out)
    }

    /// A datagram on the receiving thread (with the pieces it keeps) or on the slow one.
    fn datagram(
        &self,
        datagram: &[u8],
        pieces: Option<&mut reassembly::Reassembly>,
        now: u32,
        conn: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Verdict {
        let Ok(envelope) = Envelope::decode(datagram) else { return Verdict::Drop };
        let rest = &datagram[message::ENVELOPE_LEN..];
        let len = envelope.message_length as usize;
        let blocking = pieces.is_none();
        if envelope.flags & message::ENV_TRUNCATED != 0 || envelope.message_id != 0 || rest.len() < len {
            let Some(pieces) = pieces else {
                let text = "a request in pieces is put together on the receiving thread";
                return Verdict::Respond(message::protocol_error(&envelope, now, text, out));
            };
            let source = conn.source.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            return match pieces.add(source, &envelope, rest, std::time::Instant::now()) {
                Some((envelope, whole)) => self.whole_datagram(&envelope, &whole, false, now, conn, out),
                None => Verdict::Drop,
            };
        }
        self.whole_datagram(&envelope, &rest[..len], blocking, now, conn, out)
    }

    fn whole_datagram(
        &self,
        envelope: &Envelope,
        message: &[u8],
        blocking: bool,
        now: u32,
        conn: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Verdict {
        let op = message.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if envelope.flags & message::ENV_ENCRYPTED != 0 || admin::is_administration(op) {
            let text = "administration and encrypted messages are served over TCP only";
            return Verdict::Respond(message::protocol_error(envelope, now, text, out));
        }
        if !blocking && self.slow(message) {
            let text = "the node is too busy for this over UDP; use TCP";
            return Verdict::Respond(message::protocol_error(envelope, now, text, out));
        }
        self.answer(envelope, message, now, conn, out)
    }
}

/// For the statistics: when `response` (a message) answers a RESOLUTION, its response code,
/// and the prefix of the handle `request` (the request's message, `encrypted` or not) asked,
/// when readable (`88.100.1` of `88.100.1/ABC`; `0.NA` of a prefix record or a bare prefix).
pub fn lookup<'r>(request: &'r [u8], encrypted: bool, response: &[u8]) -> Option<(u32, Option<&'r [u8]>)> {
    let word = |b: &[u8], at: usize| b.get(at..at + 4).map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    if word(response, 0)? != opcode::RESOLUTION {
        return None;
    }
    let code = word(response, 4)?;
    let handle = (!encrypted)
        .then(|| request.get(message::HEADER_LEN..))
        .flatten()
        .and_then(|body| body.get(4..4 + word(body, 0)? as usize));
    let prefix = handle.map(|h| match h.iter().position(|b| *b == b'/') {
        Some(slash) => &h[..slash],
        None => crate::identifier::PREFIX_AUTHORITY.as_bytes(),
    });
    Some((code, prefix.filter(|p| !p.is_empty())))
}
