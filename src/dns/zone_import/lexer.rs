//! The master-file lexer (RFC 1035 5.1): physical lines in, one entry (a directive or a
//! record, its tokens raw) out at a time, each with the line it started on.
//!
//! Hand-written because the zone parser in hickory-proto 0.26 builds the whole zone in memory,
//! drops line numbers and keeps character-strings as UTF-8 `String`s; an importer of millions of
//! records must stream, name the bad line and keep every byte. Tokens stay raw (escapes
//! undone later) because `\.` in a name and `.` mean different things.

use std::io::BufRead;

/// 1 MiB: the longest entry (all its lines). The largest value a record may hold (30,000 bytes)
/// written as `\DDD` takes about 120 kB, so this is reached only by a parenthesis left open.
pub(super) const MAX_ENTRY: usize = 1 << 20;

/// One token of an entry: its bytes as written (escapes kept, quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) raw: Vec<u8>,
    pub(super) quoted: bool,
}

/// A directive or a record: everything between line ends outside parentheses.
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// The line it starts on (1-based).
    pub(super) line: u64,
    /// The first line began with a space or tab: the record has the previous owner.
    pub(super) blank_owner: bool,
    pub(super) tokens: Vec<Token>,
}

/// Why the text could not be split into entries.
#[derive(Debug, thiserror::Error)]
pub(super) enum LexError {
    #[error("unterminated quoted string (a \" without its closing \" on the same line)")]
    Quote { line: u64 },
    #[error("unterminated parenthesis (a ( without its closing ) before the end of the file)")]
    OpenParen { line: u64 },
    #[error(") without an opening (")]
    CloseParen { line: u64 },
    #[error("the record is longer than {MAX_ENTRY} bytes (a parenthesis left open?)")]
    TooLong { line: u64 },
    #[error("{source}")]
    Read { line: u64, source: std::io::Error },
}

impl LexError {
    pub(super) fn line(&self) -> u64 {
        match self {
            Self::Quote { line }
            | Self::OpenParen { line }
            | Self::CloseParen { line }
            | Self::TooLong { line }
            | Self::Read { line, .. } => *line,
        }
    }
}

pub(super) struct Lexer<R> {
    input: R,
    buf: Vec<u8>,
    /// Lines read so far.
    line: u64,
    /// Bytes read so far.
    bytes: u64,
}

impl<R: BufRead> Lexer<R> {
    pub(super) fn new(input: R) -> Self {
        Self { input, buf: Vec::new(), line: 0, bytes: 0 }
    }

    /// Lines and bytes read so far.
    pub(super) fn position(&self) -> (u64, u64) {
        (self.line, self.bytes)
    }

    /// The next entry that has tokens, into `entry`; `false` at the end of the input.
    pub(super) fn next(&mut self, entry: &mut Entry) -> Result<bool, LexError> {
        entry.tokens.clear();
        // Open parentheses, and the line of the outermost.
        let (mut depth, mut open_line) = (0usize, 0u64);
        let mut size = 0;
        loop {
            self.buf.clear();
            let limit = (MAX_ENTRY + 1 - size) as u64;
            let n = <&mut R as std::io::Read>::take(&mut self.input, limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| LexError::Read { line: self.line + 1, source })?;
            if n == 0 {
                return if depth > 0 { Err(LexError::OpenParen { line: open_line }) } else { Ok(false) };
            }
            self.line += 1;
            self.bytes += n as u64;
            size += n;
            if size > MAX_ENTRY {
                return Err(LexError::TooLong { line: entry.line.max(self.line) });
            }
            if depth == 0 && entry.tokens.is_empty() {
                entry.line = self.line;
                entry.blank_owner = matches!(self.buf.first(), Some(b' ' | b'\t'));
            }
            self.split_line(&mut entry.tokens, &mut depth, &mut open_line)?;
            if depth == 0 && !entry.tokens.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Splits the line in `buf` into tokens, counting parentheses in `depth`; `open_line` is
    /// the line of the outermost open one.
    fn split_line(&self, tokens: &mut Vec<Token>, depth: &mut usize, open_line: &mut u64) -> Result<(), LexError> {
        let line = &self.buf;
        let mut i = 0;
        while i < line.len() {
            match line[i] {
                b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b';' => break,
                b'(' => {
                    if *depth == 0 {
                        *open_line = self.line;
                    }
                    *depth += 1;
                    i += 1;
                }
                b')' => {
                    *depth = depth.checked_sub(1).ok_or(LexError::CloseParen { line: self.line })?;
                    i += 1;
                }
                b'"' => {
                    let start = i + 1;
                    let mut j = start;
                    loop {
                        match line.get(j) {
                            None | Some(b'\n') => return Err(LexError::Quote { line: self.line }),
                            Some(b'\\') => j += 2,
                            Some(b'"') => break,
                            Some(_) => j += 1,
                        }
                    }
                    tokens.push(Token { raw: line[start..j].to_vec(), quoted: true });
                    i = j + 1;
                }
                _ => {
                    let start = i;
                    while i < line.len() && !matches!(line[i], b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"')
                    {
                        // An escaped byte is part of the token, whatever it is.
                        i += if line[i] == b'\\' { 2 } else { 1 };
                    }
                    let end = i.min(line.len());
                    tokens.push(Token { raw: line[start..end].to_vec(), quoted: false });
                }
            }
        }
        Ok(())
    }
}

/// A character-string with its escapes undone: `\X` is X, `\DDD` the byte DDD (decimal).
pub(super) fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let (byte, used) = escaped(&raw[i + 1..])?;
        out.push(byte);
        i += 1 + used;
    }
    Ok(out)
}

/// The byte an escape stands for (the text after the backslash) and how many bytes it used.
pub(super) fn escaped(after: &[u8]) -> Result<(u8, usize), String> {
    match after {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            let value = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
            let byte = u8::try_from(value).map_err(|_| format!("\\{value} is not a byte (\\DDD is decimal, 0-255)"))?;
            Ok((byte, 3))
        }
        [d, ..] if d.is_ascii_digit() => Err("\\ followed by a digit needs three digits (\\DDD)".into()),
        [x, ..] => Ok((*x, 1)),
        [] => Err("a \\ at the end of the text".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Result<Vec<(u64, bool, Vec<String>)>, LexError> {
        let mut lexer = Lexer::new(text.as_bytes());
        let mut entry = Entry::default();
        let mut out = Vec::new();
        while lexer.next(&mut entry)? {
            let tokens = entry
                .tokens
                .iter()
                .map(|t| {
                    let raw = String::from_utf8_lossy(&t.raw);
                    if t.quoted { format!("\"{raw}\"") } else { raw.into_owned() }
                })
                .collect();
            out.push((entry.line, entry.blank_owner, tokens));
        }
        Ok(out)
    }

    #[test]
    fn splits_lines_parentheses_comments_and_quotes() {
        let text = "; head\n@ IN SOA ns1 host (\n  1 ; serial\n  2 3 4 5 )\n\n\tTXT \"a \\\"b\\\" ;c\" d\\ e\r\n";
        let got = entries(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            (2, false, ["@", "IN", "SOA", "ns1", "host", "1", "2", "3", "4", "5"].map(String::from).to_vec())
        );
        assert_eq!(got[1], (6, true, vec!["TXT".into(), "\"a \\\"b\\\" ;c\"".into(), "d\\ e".into()]));
    }

    #[test]
    fn names_the_line_of_unbalanced_quotes_and_parentheses() {
        assert!(matches!(entries("a TXT \"ok\"\nb TXT \"open\n"), Err(LexError::Quote { line: 2 })));
        assert!(matches!(entries("a TXT \"x\"\nb SOA ( 1\n2\n"), Err(LexError::OpenParen { line: 2 })));
        assert!(matches!(entries("a TXT x )\n"), Err(LexError::CloseParen { line: 1 })));
        let long = format!("a TXT (\n{}", "\"x\"\n".repeat(MAX_ENTRY / 4 + 1));
        assert!(matches!(entries(&long), Err(LexError::TooLong { .. })));
    }

    #[test]
    fn unescapes_decimal_and_single_characters() {
        assert_eq!(unescape(br#"a\"b\\c\230\179\181\032"#).unwrap(), b"a\"b\\c\xe6\xb3\xb5 ");
        assert!(unescape(br"\256").is_err());
        assert!(unescape(br"\25").is_err());
        assert!(unescape(br"x\").is_err());
    }
}
