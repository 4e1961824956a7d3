//! DNS over TCP framing (RFC 1035 4.2.2, RFC 7766 8): every message is preceded by its length
//! as two bytes, big-endian. Written once here for every TCP user: the server's connections
//! ([`crate::server`]), the recursor asking upstream servers and the `idnode resolve` client
//! (both through [`super::exchange`]).
//!
//! A peer controls the length prefix, so a reader states the largest message it takes, and a
//! peer that stalls can be cut off: with `idle` set, each of the two reads (the prefix, then the
//! message) must complete within it, so a client that sends a length and then stalls is cut off
//! like one that sends nothing.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// 65535: the largest DNS message (a TCP length prefix is 16 bits).
pub const MAX_MESSAGE: usize = 65_535;

/// Why a framed read or write did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a message of {len} bytes, where at most {max} are taken")]
    TooLong { len: usize, max: usize },
    #[error("nothing moved for {0:?}")]
    Idle(Duration),
    #[error("the stream ended inside a message")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// For callers that speak `io::Error`: their own I/O errors come back as they were.
impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => e,
            FrameError::Idle(_) => io::Error::new(io::ErrorKind::TimedOut, e),
            FrameError::Truncated => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            FrameError::TooLong { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// Reads one length-prefixed message into `buf` (resized to exactly the message; a buffer with
/// the capacity already allocates nothing). `Ok(false)`: the stream ended before another length
/// prefix, which is how a peer closes between messages. A zero length is an empty message.
pub async fn read<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    idle: Option<Duration>,
) -> Result<bool, FrameError> {
    let mut len = [0u8; 2];
    match within(idle, stream.read_exact(&mut len)).await? {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    buf.resize(len, 0);
    match within(idle, stream.read_exact(buf)).await? {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// Writes `message` with its length prefix in one write, assembled in `framed` (reused by a
/// caller that writes many, so that writing allocates nothing).
pub async fn write<W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &[u8],
    framed: &mut Vec<u8>,
    idle: Option<Duration>,
) -> Result<(), FrameError> {
    framed.clear();
    append(framed, message)?;
    write_framed(stream, framed, idle).await
}

/// Appends `message` with its length prefix to `out`, to be written with others.
pub fn append(out: &mut Vec<u8>, message: &[u8]) -> Result<(), FrameError> {
    let len = u16::try_from(message.len()).map_err(|_| FrameError::TooLong { len: message.len(), max: MAX_MESSAGE })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(())
}

/// Writes messages already framed ([`append`]), within `idle`.
pub async fn write_framed<W: AsyncWrite + Unpin>(
    stream: &mut W,
    framed: &[u8],
    idle: Option<Duration>,
) -> Result<(), FrameError> {
    within(idle, stream.write_all(framed)).await??;
    Ok(())
}

/// Whether `buffered` starts with a whole message and its length prefix.
pub fn holds_message(buffered: &[u8]) -> bool {
    match buffered {
        [hi, lo, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => false,
    }
}

/// Runs `step`, within `idle` when set.
async fn within<T>(idle: Option<Duration>, step: impl Future<Output = T>) -> Result<T, FrameError> {
    match idle {
        Some(limit) => tokio::time::timeout(limit, step).await.map_err(|_| FrameError::Idle(limit)),
        None => Ok(step.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8], max: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut stream = bytes;
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            match read(&mut stream, &mut buf, max, None).await {
                Ok(true) => out.push(Ok(buf)),
                Ok(false) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn two_messages_back_to_back_are_read_one_at_a_time() {
        let mut framed = Vec::new();
        let mut stream = Vec::new();
        write(&mut stream, b"first", &mut framed, None).await.unwrap();
        write(&mut stream, b"second!", &mut framed, None).await.unwrap();
        assert_eq!(stream, b"\x00\x05first\x00\x07second!");
        assert_eq!(read_all(&stream, MAX_MESSAGE).await, [Ok(b"first".to_vec()), Ok(b"second!".to_vec())]);
    }

    #[test]
    fn a_buffer_holds_a_message_once_its_prefix_and_all_its_bytes_are_in() {
        let mut batch = Vec::new();
        append(&mut batch, b"abc").unwrap();
        append(&mut batch, b"").unwrap();
        assert_eq!(batch, b"\x00\x03abc\x00\x00");
        assert!(holds_message(&batch) && holds_message(&batch[5..]), "a message, then an empty one");
        assert!(!holds_message(&batch[..4]) && !holds_message(&batch[..1]) && !holds_message(&[]));
        assert!(append(&mut batch, &vec![0; MAX_MESSAGE + 1]).is_err(), "no length prefix holds it");
    }

    #[tokio::test]
    async fn a_zero_length_is_an_empty_message() {
        assert_eq!(read_all(b"\x00\x00\x00\x01x", MAX_MESSAGE).await, [Ok(vec![]), Ok(b"x".to_vec())]);
    }

    #[tokio::test]
    async fn a_short_read_is_an_error_but_an_end_between_messages_is_not() {
        let short = read_all(b"\x00\x05abc", MAX_MESSAGE).await;
        assert!(matches!(&short[..], [Err(e)] if e.contains("inside a message")), "{short:?}");
        assert_eq!(read_all(b"", MAX_MESSAGE).await, []);
        assert_eq!(read_all(b"\x00", MAX_MESSAGE).await, [], "half a length prefix: the peer closed");
    }

    #[tokio::test]
    async fn a_length_over_the_cap_is_refused_before_reading_the_message() {
        let mut stream: &[u8] = b"\x01\x00rest";
        let mut buf = Vec::new();
        let err = read(&mut stream, &mut buf, 255, None).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLong { len: 256, max: 255 }), "{err}");
        assert!(buf.is_empty() && stream == b"rest", "nothing past the prefix was read");
    }

    #[tokio::test]
    async fn a_message_too_long_for_the_prefix_is_not_written() {
        let mut stream = Vec::new();
        let err = write(&mut stream, &vec![0; MAX_MESSAGE + 1], &mut Vec::new(), None).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLong { len: 65_536, .. }));
        assert!(stream.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stalls_after_the_length_is_cut_off() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"\x00\x05ab").await.unwrap();
        let mut buf = Vec::new();
        let err = read(&mut server, &mut buf, MAX_MESSAGE, Some(Duration::from_secs(3))).await.unwrap_err();
        assert!(matches!(err, FrameError::Idle(d) if d == Duration::from_secs(3)));
        drop(client);
    }
}
