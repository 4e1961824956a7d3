//! The Handle protocol's message layer (RFC 3652 as CNRI's Handle.Net 9.x speaks it): the
//! 20-byte envelope, the 24-byte header, the body's primitives, and the frame of a response
//! (header, optional request digest, body, empty credential).
//!
//! Every byte comes from the network, so every read is checked against the bytes present: a
//! length or count is compared with what is left before anything is allocated from it, and no
//! read panics. All integers are big-endian.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Bytes of the envelope before every message (and every UDP datagram).
pub const ENVELOPE_LEN: usize = 20;
/// Bytes of the header at the start of every message.
pub const HEADER_LEN: usize = 24;
/// 262,144: the longest message CNRI's decoder accepts (`Encoder.MAX_MESSAGE_LENGTH`).
pub const MAX_MESSAGE_LEN: usize = 262_144;
/// 1,048,576: the largest array count CNRI accepts (`Encoder.MAX_ARRAY_SIZE`). A count is also
/// checked against the bytes left, which binds it far lower in practice.
pub const MAX_ARRAY: usize = 1_048_576;
/// 492: the message bytes in one UDP datagram (CNRI `MAX_UDP_DATA_SIZE`): with the envelope a
/// datagram is at most 512 bytes (`MAX_UDP_PACKET_SIZE`), the size of CNRI's receive buffer.
pub const UDP_CHUNK: usize = 492;
/// 43,200: seconds a response is valid (CNRI writes now + 12 h). CNRI's client rejects an
/// expired response, so the field is never 0.
pub const EXPIRATION_SECS: u32 = 43_200;

/// The highest protocol version spoken, written as the suggested version of every response
/// (CNRI 9.x `Common.MAJOR_VERSION`/`MINOR_VERSION`).
pub const MAX_VERSION: Version = Version { major: 2, minor: 11 };

/// Envelope flags (third byte; its low two bits carry the suggested major version).
pub const ENV_COMPRESSED: u8 = 0x80;
pub const ENV_ENCRYPTED: u8 = 0x40;
pub const ENV_TRUNCATED: u8 = 0x20;

/// Header opFlags (CNRI `Encoder.MSG_FLAG_*`).
pub mod op_flags {
    pub const AUTHORITATIVE: u32 = 0x8000_0000;
    pub const CERTIFY: u32 = 0x4000_0000;
    pub const ENCRYPT: u32 = 0x2000_0000;
    pub const RECURSIVE: u32 = 0x1000_0000;
    pub const CACHE_CERTIFY: u32 = 0x0800_0000;
    pub const CONTINUOUS: u32 = 0x0400_0000;
    pub const KEEP_ALIVE: u32 = 0x0200_0000;
    pub const PUBLIC_ONLY: u32 = 0x0100_0000;
    pub const RETURN_DIGEST: u32 = 0x0080_0000;
    pub const OVERWRITE: u32 = 0x0040_0000;
    pub const MINT: u32 = 0x0020_0000;
    pub const DO_NOT_REFER: u32 = 0x0010_0000;
}

/// Opcodes this front end answers; every other one gets OPERATION_NOT_SUPPORTED.
pub mod opcode {
    pub const RESOLUTION: u32 = 1;
    pub const GET_SITE_INFO: u32 = 2;
    pub const CREATE_HANDLE: u32 = 100;
    pub const DELETE_HANDLE: u32 = 101;
    pub const ADD_VALUE: u32 = 102;
    pub const REMOVE_VALUE: u32 = 103;
    pub const MODIFY_VALUE: u32 = 104;
    pub const LIST_HANDLES: u32 = 105;
    /// RFC 3652's LIST_NA (the DO-IRP's LIST_DERIVED_PREFIXES); CNRI's 9.x client does not send it.
    pub const LIST_DERIVED_PREFIXES: u32 = 106;
    pub const RESPONSE_TO_CHALLENGE: u32 = 200;
    pub const HOME_NA: u32 = 300;
    pub const UNHOME_NA: u32 = 301;
    pub const LIST_HOMED_NAS: u32 = 302;
    pub const SESSION_SETUP: u32 = 400;
    pub const SESSION_TERMINATE: u32 = 401;
    /// The national identifier system's login (its SDKs send it on a new connection, answer
    /// the challenge, and send every later request on that connection unchallenged).
    pub const LOGIN_ID_SYSTEM: u32 = 2001;
}

/// A protocol version, `major.minor`; compared as a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

impl Version {
    pub const fn new(major: u8, minor: u8) -> Self {
        Self { major, minor }
    }
}

/// Why bytes are no message. Every variant is answered with PROTOCOL_ERROR where the request
/// id is known, else the connection is closed or the datagram dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{needed} bytes needed, {left} left")]
    Truncated { needed: usize, left: usize },
    #[error("message length {len}; at most {max} is accepted")]
    TooLong { len: usize, max: usize },
    #[error("an array of {count} elements; at most {max} fit")]
    ArrayTooLong { count: usize, max: usize },
    #[error("compressed or encrypted messages are not supported")]
    Unsupported,
    #[error("{0} bytes follow the message's last field")]
    Trailing(usize),
}

//------------ Envelope ------------------------------------------------------------------------

/// The envelope in front of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    pub version: Version,
    /// The version the sender would like to be answered in; its own version when the sender
    /// wrote zeros (an RFC 3652 peer).
    pub suggested: Version,
    /// CP, EC, TC ([`ENV_COMPRESSED`] and the like).
    pub flags: u8,
    pub session_id: u32,
    pub request_id: u32,
    /// The datagram's sequence number over UDP; 0 over TCP.
    pub message_id: u32,
    /// Bytes of the whole message that follows (over UDP, of all datagrams together).
    pub message_length: u32,
}

impl Envelope {
    /// Reads an envelope; the message length is checked against [`MAX_MESSAGE_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let (major, minor, third, sug_minor) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        let version = Version::new(major, minor);
        // CNRI keeps the suggested major in the low bits of the flag byte; 0 there means the
        // message's own version.
        let suggested = match third & 0x03 {
            0 => version,
            m => Version::new(m, sug_minor),
        };
        let envelope = Self {
            version,
            suggested,
            flags: third & (ENV_COMPRESSED | ENV_ENCRYPTED | ENV_TRUNCATED),
            session_id: r.u32()?,
            request_id: r.u32()?,
            message_id: r.u32()?,
            message_length: r.u32()?,
        };
        let len = envelope.message_length as usize;
        if len > MAX_MESSAGE_LEN {
            return Err(WireError::TooLong { len, max: MAX_MESSAGE_LEN });
        }
        Ok(envelope)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.version.major,
            self.version.minor,
            self.flags | (self.suggested.major & 0x03),
            self.suggested.minor,
        ]);
        for n in [self.session_id, self.request_id, self.message_id, self.message_length] {
            out.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// The envelope of the response to this request, for a message of `length` bytes: the
    /// version is the lower of the request's suggested one and [`MAX_VERSION`], the suggested
    /// version is [`MAX_VERSION`], the session and request ids are echoed.
    pub fn response(&self, length: usize) -> Self {
        Self {
            version: self.suggested.min(MAX_VERSION),
            suggested: MAX_VERSION,
            flags: 0,
            session_id: self.session_id,
            request_id: self.request_id,
            message_id: 0,
            message_length: u32::try_from(length).unwrap_or(u32::MAX),
        }
    }
}

//------------ Header and request --------------------------------------------------------------

/// The header at the start of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub opcode: u32,
    pub response_code: u32,
    pub op_flags: u32,
    pub site_serial: u16,
    pub recursion_count: u8,
    pub expiration: u32,
    pub body_length: u32,
}

impl Header {
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let header = Self {
            opcode: r.u32()?,
            response_code: r.u32()?,
            op_flags: r.u32()?,
            site_serial: r.u16()?,
            recursion_count: r.u8()?,
            expiration: {
                r.u8()?; // reserved
                r.u32()?
            },
            body_length: r.u32()?,
        };
        Ok(header)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        for n in [self.opcode, self.response_code, self.op_flags] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&self.site_serial.to_be_bytes());
        out.extend_from_slice(&[self.recursion_count, 0]);
        out.extend_from_slice(&self.expiration.to_be_bytes());
        out.extend_from_slice(&self.body_length.to_be_bytes());
    }
}

/// A decoded request: its envelope, header and body, and the raw header+body bytes its digest
/// is computed over.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub envelope: Envelope,
    pub header: Header,
    pub body: &'a [u8],
    /// The header and body exactly as received (what a request digest covers).
    pub signed: &'a [u8],
    /// The credential section; may be empty. Not verified in this slice.
    pub credential: &'a [u8],
}

impl<'a> Request<'a> {
    /// Splits `message` (the `message_length` bytes after `envelope`) into header, body and
    /// credential. A missing credential length is accepted (CNRI reads it only when present).
    pub fn decode(envelope: Envelope, message: &'a [u8]) -> Result<Self, WireError> {
        if envelope.flags & (ENV_COMPRESSED | ENV_ENCRYPTED) != 0 {
            return Err(WireError::Unsupported);
        }
        let header = Header::decode(message)?;
        let mut r = Reader::new(message);
        r.take(HEADER_LEN)?;
        let body = r.take(header.body_length as usize)?;
        let signed = &message[..HEADER_LEN + body.len()];
        let credential = if r.left() == 0 { &[][..] } else { r.bytes()? };
        if r.left() != 0 {
            return Err(WireError::Trailing(r.left()));
        }
        Ok(Self { envelope, header, body, signed, credential })
    }

    /// The header of a response with `code`: the request's opcode and flags (plus AT, the node
    /// being primary for what it serves), the response expiring [`EXPIRATION_SECS`] after `now`.
    fn response_header(&self, code: u32, now: u32, digest: bool) -> Header {
        let mut op_flags = self.header.op_flags | op_flags::AUTHORITATIVE;
        if !digest {
            op_flags &= !op_flags::RETURN_DIGEST;
        }
        Header {
            opcode: self.header.opcode,
            response_code: code,
            op_flags,
            site_serial: 0,
            recursion_count: self.header.recursion_count,
            expiration: now.saturating_add(EXPIRATION_SECS),
            body_length: 0,
        }
    }

    /// Writes a response message (header, body, empty credential) into `out`, cleared first:
    /// the body starts with the request digest when the request set RD, then `body` writes the
    /// rest. Returns the envelope to send in front of it.
    pub fn respond(&self, code: u32, now: u32, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> Envelope {
        let digest = self.header.op_flags & op_flags::RETURN_DIGEST != 0;
        let version = self.envelope.suggested.min(MAX_VERSION);
        out.clear();
        self.response_header(code, now, digest).encode(out);
        if digest {
            write_digest(out, version, self.signed);
        }
        body(out);
        let body_length = out.len() - HEADER_LEN;
        out[20..24].copy_from_slice(&(body_length as u32).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // no credential
        self.envelope.response(out.len())
    }
}

/// The request digest of `signed` for a response in `version`: MD5 in the old format (a
/// length-prefixed byte string) below 2.1, SHA-1 up to 2.6, SHA-256 from 2.7, each after its
/// hash code byte.
pub fn write_digest(out: &mut Vec<u8>, version: Version, signed: &[u8]) {
    if version < Version::new(2, 1) {
        write_bytes(out, &Md5::digest(signed));
    } else if version < Version::new(2, 7) {
        out.push(2);
        out.extend_from_slice(&Sha1::digest(signed));
    } else {
        out.push(3);
        out.extend_from_slice(&Sha256::digest(signed));
    }
}

/// The raw request digest of `signed` in `version` (no code byte): what a client signs, with
/// the challenge's nonce, to answer it.
pub fn request_digest(version: Version, signed: &[u8]) -> Vec<u8> {
    if version < Version::new(2, 1) {
        Md5::digest(signed).to_vec()
    } else if version < Version::new(2, 7) {
        Sha1::digest(signed).to_vec()
    } else {
        Sha256::digest(signed).to_vec()
    }
}

/// A response whose request could not be decoded past its envelope: PROTOCOL_ERROR with an
/// error body, opcode 0, no digest.
pub fn protocol_error(envelope: &Envelope, now: u32, message: &str, out: &mut Vec<u8>) -> Envelope {
    unread_error(envelope, crate::code::ResponseCode::ProtocolError, now, message, out)
}

/// An error answering a message whose header was not read (opcode 0, CNRI's `OC_RESERVED`):
/// undecodable, or encrypted in a session that cannot decrypt it.
pub fn unread_error(
    envelope: &Envelope,
    code: crate::code::ResponseCode,
    now: u32,
    message: &str,
    out: &mut Vec<u8>,
) -> Envelope {
    out.clear();
    let header =
        Header { response_code: code.number(), expiration: now.saturating_add(EXPIRATION_SECS), ..Header::default() };
    header.encode(out);
    write_bytes(out, message.as_bytes());
    let body_length = out.len() - HEADER_LEN;
    out[20..24].copy_from_slice(&(body_length as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    envelope.response(out.len())
}

//------------ Body primitives -----------------------------------------------------------------

/// A bounds-checked cursor over message bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.left() {
            return Err(WireError::Truncated { needed: n, left: self.left() });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `u32` length and that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// An array count whose elements take at least `min_size` bytes each: refused when more
    /// could not fit in what is left, or above [`MAX_ARRAY`].
    fn count(&mut self, min_size: usize) -> Result<usize, WireError> {
        let count = self.u32()? as usize;
        let max = (self.left() / min_size).min(MAX_ARRAY);
        if count > max {
            return Err(WireError::ArrayTooLong { count, max });
        }
        Ok(count)
    }

    /// A `u32[]`: count, then the integers.
    pub fn u32_array(&mut self) -> Result<Vec<u32>, WireError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.u32()).collect()
    }

    /// A `bytes[]`: count, then each length-prefixed.
    pub fn bytes_array(&mut self) -> Result<Vec<&'a [u8]>, WireError> {
        let count = self.count(4)?;
        (0..count).map(|_| self.bytes()).collect()
    }
}

/// Writes a `u32` length and the bytes.
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub fn write_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_be_bytes());
}

//------------ UDP -----------------------------------------------------------------------------

/// Calls `send` with each datagram of a response: one when envelope and message fit in 512
/// bytes, else chunks of [`UDP_CHUNK`] bytes, each behind the envelope with the whole message's
/// length, its sequence number and TC set (as CNRI 9.3 sends them). `datagram` is scratch.
pub fn udp_datagrams(envelope: &Envelope, message: &[u8], datagram: &mut Vec<u8>, mut send: impl FnMut(&[u8])) {
    let single = message.len() <= UDP_CHUNK;
    for (i, chunk) in message.chunks(UDP_CHUNK).enumerate() {
        let mut e = *envelope;
        e.message_id = i as u32;
        if !single {
            e.flags |= ENV_TRUNCATED;
        }
        datagram.clear();
        e.encode(datagram);
        datagram.extend_from_slice(chunk);
        send(datagram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(version: Version, suggested: Option<Version>, len: u32) -> Vec<u8> {
        let (sm, sn) = suggested.map_or((0, 0), |v| (v.major, v.minor));
        let mut e = vec![version.major, version.minor, sm, sn];
        for n in [7u32, 0x0102_0304, 0, len] {
            e.extend_from_slice(&n.to_be_bytes());
        }
        e
    }

    #[test]
    fn envelope_reads_the_suggested_version_or_the_own_one() {
        let e = Envelope::decode(&envelope(Version::new(2, 3), Some(Version::new(2, 11)), 52)).unwrap();
        assert_eq!(
            (e.version, e.suggested, e.request_id, e.message_length),
            (Version::new(2, 3), MAX_VERSION, 0x0102_0304, 52)
        );
        assert_eq!(e.response(10).version, MAX_VERSION);
        let e = Envelope::decode(&envelope(Version::new(2, 5), None, 0)).unwrap();
        assert_eq!(e.suggested, Version::new(2, 5));
        let r = e.response(10);
        assert_eq!(
            (r.version, r.suggested, r.session_id, r.request_id),
            (Version::new(2, 5), MAX_VERSION, 7, 0x0102_0304)
        );
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(&out[..4], &[2, 5, 2, 11]);
        assert_eq!(Envelope::decode(&out).unwrap(), Envelope { suggested: MAX_VERSION, ..r });
    }

    #[test]
    fn envelope_bounds() {
        assert!(matches!(Envelope::decode(&[2, 11, 0]), Err(WireError::Truncated { .. })));
        let over = envelope(Version::new(2, 11), None, MAX_MESSAGE_LEN as u32 + 1);
        assert!(matches!(Envelope::decode(&over), Err(WireError::TooLong { .. })));
        let max = envelope(Version::new(2, 11), None, MAX_MESSAGE_LEN as u32);
        assert!(Envelope::decode(&max).is_ok());
    }

    fn message(opcode: u32, flags: u32, body: &[u8], credential: Option<&[u8]>) -> Vec<u8> {
        let header = Header { opcode, op_flags: flags, body_length: body.len() as u32, ..Header::default() };
        let mut m = Vec::new();
        header.encode(&mut m);
        m.extend_from_slice(body);
        if let Some(c) = credential {
            write_bytes(&mut m, c);
        }
        m
    }

    #[test]
    fn request_with_or_without_credential_and_every_bound() {
        let env = Envelope::decode(&envelope(Version::new(2, 11), None, 0)).unwrap();
        for credential in [None, Some(&[][..]), Some(&[0, 0, 0, 0][..])] {
            let m = message(1, 0, b"body", credential);
            let r = Request::decode(env, &m).unwrap();
            assert_eq!((r.header.opcode, r.body, r.signed.len()), (1, &b"body"[..], HEADER_LEN + 4));
        }
        let m = message(1, 0, b"body", None);
        assert!(matches!(Request::decode(env, &m[..HEADER_LEN - 1]), Err(WireError::Truncated { .. })));
        assert!(matches!(Request::decode(env, &m[..HEADER_LEN + 2]), Err(WireError::Truncated { .. })));
        let mut trailing = message(1, 0, b"body", Some(b""));
        trailing.push(0);
        assert_eq!(Request::decode(env, &trailing).unwrap_err(), WireError::Trailing(1));
        let mut bad_credential = message(1, 0, b"body", None);
        bad_credential.extend_from_slice(&[0, 0, 1, 0]);
        assert!(matches!(Request::decode(env, &bad_credential), Err(WireError::Truncated { .. })));
        let encrypted = Envelope { flags: ENV_ENCRYPTED, ..env };
        assert_eq!(Request::decode(encrypted, &m).unwrap_err(), WireError::Unsupported);
    }

    #[test]
    fn arrays_are_bounded_by_the_bytes_present() {
        let mut body = Vec::new();
        write_u32(&mut body, 2);
        write_u32(&mut body, 1);
        write_u32(&mut body, 300);
        assert_eq!(Reader::new(&body).u32_array().unwrap(), [1, 300]);
        let huge = u32::MAX.to_be_bytes();
        assert!(
            matches!(Reader::new(&huge).u32_array(), Err(WireError::ArrayTooLong { count, max: 0 }) if count == u32::MAX as usize)
        );
        assert!(matches!(Reader::new(&huge).bytes_array(), Err(WireError::ArrayTooLong { .. })));
        assert!(matches!(Reader::new(&huge).bytes(), Err(WireError::Truncated { .. })));
        let mut types = Vec::new();
        write_u32(&mut types, 2);
        write_bytes(&mut types, b"URL");
        write_bytes(&mut types, b"");
        assert_eq!(Reader::new(&types).bytes_array().unwrap(), [&b"URL"[..], b""]);
        assert!(Reader::new(&types[..types.len() - 1]).bytes_array().is_err());
    }

    #[test]
    fn response_frame_digest_and_expiration() {
        for (suggested, code, len) in [(Version::new(2, 11), 3u8, 32), (Version::new(2, 5), 2, 20)] {
            let env = Envelope::decode(&envelope(Version::new(2, 3), Some(suggested), 0)).unwrap();
            let m = message(1, op_flags::RETURN_DIGEST, b"xy", None);
            let req = Request::decode(env, &m).unwrap();
            let mut out = Vec::new();
            let renv = req.respond(1, 1000, &mut out, |o| o.extend_from_slice(b"ok"));
            assert_eq!((renv.version, renv.message_length as usize), (suggested, out.len()));
            let h = Header::decode(&out).unwrap();
            assert_eq!((h.opcode, h.response_code, h.expiration), (1, 1, 1000 + EXPIRATION_SECS));
            assert!(h.op_flags & op_flags::RETURN_DIGEST != 0);
            assert_eq!(h.body_length as usize, 1 + len + 2);
            assert_eq!(out[HEADER_LEN], code);
            assert_eq!(&out[HEADER_LEN + 1 + len..HEADER_LEN + 3 + len], b"ok");
            assert_eq!(&out[out.len() - 4..], &[0; 4], "empty credential");
        }
        let env = Envelope::decode(&envelope(Version::new(2, 0), None, 0)).unwrap();
        let m = message(1, op_flags::RETURN_DIGEST, b"", None);
        let mut out = Vec::new();
        Request::decode(env, &m).unwrap().respond(1, 0, &mut out, |_| {});
        assert_eq!(&out[HEADER_LEN..HEADER_LEN + 4], &[0, 0, 0, 16], "old format: MD5 as bytes");
        assert_eq!(&out[HEADER_LEN + 4..HEADER_LEN + 20], &Md5::digest(&m)[..]);
    }

    #[test]
    fn udp_responses_split_into_numbered_chunks() {
        let env = Envelope::decode(&envelope(Version::new(2, 11), None, 0)).unwrap().response(1000);
        let message: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut datagrams = Vec::new();
        udp_datagrams(&env, &message, &mut Vec::new(), |d| datagrams.push(d.to_vec()));
        assert_eq!(datagrams.iter().map(Vec::len).collect::<Vec<_>>(), [512, 512, 36]);
        let mut joined = Vec::new();
        for (i, d) in datagrams.iter().enumerate() {
            let e = Envelope::decode(d).unwrap();
            assert_eq!((e.message_id, e.message_length, e.flags & ENV_TRUNCATED), (i as u32, 1000, ENV_TRUNCATED));
            joined.extend_from_slice(&d[ENVELOPE_LEN..]);
        }
        assert_eq!(joined, message);
        let mut one = Vec::new();
        udp_datagrams(&env, &message[..492], &mut Vec::new(), |d| one.push(d.to_vec()));
        assert_eq!((one.len(), one[0][2] & ENV_TRUNCATED), (1, 0));
    }
}
