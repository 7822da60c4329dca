//! IMAP command framing (lines plus `{n}` literals, bounded) and argument parsing.

/// One framing result.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole command: its lines joined by CRLF with literal bytes inline, no final CRLF.
    Command(Vec<u8>),
    /// A synchronising literal was announced: the client waits for `+ OK`.
    Continue,
    /// A line grew past the limit; the connection cannot be kept in sync.
    TooLong,
    /// A literal larger than the limit was announced.
    LiteralTooBig,
}

/// Splits the byte stream into commands, reading announced literals whole.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// `buf[..scanned]` holds no line end: a line fed a byte at a time is searched once, not
    /// again from its start on every byte.
    scanned: usize,
    command: Vec<u8>,
    /// Literal bytes still to read into `command`.
    literal: usize,
    max: usize,
    broken: bool,
    /// Bytes searched for a line end, for the tests that bound it.
    #[cfg(test)]
    searched: usize,
}

/// `{123}` or `{123+}` at the end of a line: the size and whether it is non-synchronising.
fn literal_marker(line: &[u8]) -> Option<(usize, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let plus = digits.last() == Some(&b'+');
    if plus {
        digits = &digits[..digits.len() - 1];
    }
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some((usize::try_from(n).unwrap_or(usize::MAX), plus))
}

impl Framer {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            command: Vec::new(),
            literal: 0,
            max,
            broken: false,
            #[cfg(test)]
            searched: 0,
        }
    }

    /// Commands may be larger once logged in.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Bytes held toward the next command.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buf.len() + self.command.len()
    }

    /// Bytes searched for a line end so far.
    #[cfg(test)]
    pub fn searched(&self) -> usize {
        self.searched
    }

    /// Feed bytes; returns what they complete, in order. After `TooLong` or
    /// `LiteralTooBig` nothing more is returned.
    pub fn push(&mut self, data: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        if self.broken {
            return frames;
        }
        self.buf.extend_from_slice(data);
        // Consumed bytes are cut from the front once, after the loop: cutting each line as it
        // was read moved the rest of the buffer once per line.
        let mut at = 0;
        loop {
            if self.literal > 0 {
                let take = self.literal.min(self.buf.len() - at);
                self.command.extend_from_slice(&self.buf[at..at + take]);
                at += take;
                self.literal -= take;
                if self.literal > 0 {
                    break;
                }
            }
            let from = self.scanned.max(at);
            let found = self.buf[from..].iter().position(|&b| b == b'\n');
            #[cfg(test)]
            {
                self.searched += found.map_or(self.buf.len() - from, |i| i + 1);
            }
            let Some(end) = found.map(|i| from + i) else {
                self.scanned = self.buf.len();
                if self.command.len() + self.buf.len() - at > self.max {
                    self.fail(&mut frames, Frame::TooLong);
                    return frames;
                }
                break;
            };
            let (start, mut stop) = (at, end);
            at = end + 1;
            if stop > start && self.buf[stop - 1] == b'\r' {
                stop -= 1;
            }
            if self.command.len() + (stop - start) > self.max {
                self.fail(&mut frames, Frame::TooLong);
                return frames;
            }
            self.command.extend_from_slice(&self.buf[start..stop]);
            match literal_marker(&self.buf[start..stop]) {
                Some((n, _)) if n > self.max.saturating_sub(self.command.len()) => {
                    self.fail(&mut frames, Frame::LiteralTooBig);
                    return frames;
                }
                Some((n, plus)) => {
                    self.command.extend_from_slice(b"\r\n");
                    self.literal = n;
                    if !plus {
                        frames.push(Frame::Continue);
                    }
                }
                None => frames.push(Frame::Command(std::mem::take(&mut self.command))),
            }
        }
        self.buf.drain(..at);
        self.scanned = self.scanned.saturating_sub(at);
        frames
    }

    fn fail(&mut self, frames: &mut Vec<Frame>, frame: Frame) {
        frames.push(frame);
        self.broken = true;
        self.buf = Vec::new();
        self.scanned = 0;
        self.command = Vec::new();
    }
}

/// One parsed argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    List(Vec<Arg>),
}

impl Arg {
    /// The value of an atom, quoted string or literal (an IMAP "astring").
    pub fn astring(&self) -> Option<String> {
        match self {
            Arg::Atom(a) if a != "NIL" => Some(a.clone()),
            Arg::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    pub fn atom(&self) -> Option<&str> {
        match self {
            Arg::Atom(a) => Some(a),
            _ => None,
        }
    }
}

/// Nesting deeper than any real command, to bound recursion.
const MAX_DEPTH: usize = 16;
/// Arguments per command.
const MAX_ARGS: usize = 2048;

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    count: usize,
}

fn is_atom_char(b: u8) -> bool {
    // A backslash is allowed: system flags (`\Seen`) are atoms to Dovecot's parser.
    !matches!(b, b'(' | b')' | b'{' | b' ' | b'"') && b > 0x1f && b != 0x7f
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// A word up to the next space (tag and command name).
    fn word(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|b| b != b' ') {
            self.pos += 1;
        }
        let word = String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned();
        if self.peek() == Some(b' ') {
            self.pos += 1;
        }
        word
    }

    fn list(&mut self, depth: usize, close: Option<u8>) -> Result<Vec<Arg>, &'static str> {
        let mut args = Vec::new();
        loop {
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            let Some(b) = self.peek() else {
                return match close {
                    Some(_) => Err("Missing ')'"),
                    None => Ok(args),
                };
            };
            self.count += 1;
            if self.count > MAX_ARGS {
                return Err("Too many arguments");
            }
            match b {
                b')' => {
                    self.pos += 1;
                    return match close {
                        Some(_) => Ok(args),
                        None => Err("Unexpected ')'"),
                    };
                }
                b'(' => {
                    if depth >= MAX_DEPTH {
                        return Err("Too deep list nesting");
                    }
                    self.pos += 1;
                    args.push(Arg::List(self.list(depth + 1, Some(b')'))?));
                }
                b'"' => args.push(Arg::Str(self.quoted()?)),
                b'{' => args.push(Arg::Str(self.literal()?)),
                _ => args.push(Arg::Atom(self.atom()?)),
            }
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, &'static str> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n') => return Err("Missing '\"'"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c),
                        _ => return Err("Invalid escape in string"),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Vec<u8>, &'static str> {
        let rest = &self.bytes[self.pos..];
        let close = rest
            .iter()
            .position(|&b| b == b'}')
            .ok_or("Invalid literal")?;
        let digits = rest[1..close].strip_suffix(b"+").unwrap_or(&rest[1..close]);
        let n: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or("Invalid literal size")?;
        let start = self.pos + close + 1;
        if self.bytes.get(start..start + 2) != Some(b"\r\n") {
            return Err("Missing CRLF after literal");
        }
        let data = self
            .bytes
            .get(start + 2..start + 2 + n)
            .ok_or("Invalid literal size")?;
        self.pos = start + 2 + n;
        Ok(data.to_vec())
    }

    /// An atom; `[...]` sections (as in `BODY[HEADER.FIELDS (FROM)]`) are kept whole.
    fn atom(&mut self) -> Result<String, &'static str> {
        let start = self.pos;
        let mut bracket = false;
        while let Some(b) = self.peek() {
            if bracket {
                if b == b']' {
                    bracket = false;
                } else if b < 0x20 {
                    return Err("Missing ']'");
                }
            } else if b == b'[' {
                bracket = true;
            } else if !is_atom_char(b) {
                break;
            }
            self.pos += 1;
        }
        if bracket {
            return Err("Missing ']'");
        }
        if self.pos == start {
            self.pos += 1;
            return Err("Unexpected character");
        }
        Ok(String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned())
    }
}

/// A command split into tag, name and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub name: String,
    pub args: Result<Vec<Arg>, &'static str>,
}

pub fn parse(bytes: &[u8]) -> Command {
    let mut p = Parser {
        bytes,
        pos: 0,
        count: 0,
    };
    let tag = p.word();
    let name = p.word();
    let args = p.list(0, None);
    Command { tag, name, args }
}

/// Dovecot's tag rule: no atom-specials, wildcards, quoted-specials, `+` or controls.
pub fn valid_tag(tag: &str) -> bool {
    tag.len() <= 100
        && tag.bytes().all(|b| {
            !matches!(
                b,
                b'+' | b'(' | b')' | b'{' | b'/' | b' ' | b'%' | b'*' | b'"' | b'\\'
            ) && b >= b' '
        })
}

/// A mailbox name as Dovecot writes it: an atom when it can be, else quoted.
pub fn astring_out(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| is_atom_char(b) && !matches!(b, b'%' | b'*' | b']' | b'\\'))
    {
        s.to_owned()
    } else {
        quote(s)
    }
}

/// A quoted string, or a literal if it cannot be quoted.
pub fn quote(s: &str) -> String {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b >= 0x80) {
        format!("{{{}}}\r\n{s}", s.len())
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A string that may be NIL.
pub fn nstring(s: Option<&str>) -> String {
    s.map_or_else(|| "NIL".to_owned(), quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_and_literals() {
        let mut f = Framer::new(1024);
        assert_eq!(
            f.push(b"a1 NOOP\r\na2 LOGIN {4}\r\n"),
            vec![Frame::Command(b"a1 NOOP".to_vec()), Frame::Continue]
        );
        assert_eq!(f.push(b"us\r\n"), vec![]);
        assert_eq!(
            f.push(b" {2+}\r\npw\r\n"),
            vec![Frame::Command(
                b"a2 LOGIN {4}\r\nus\r\n {2+}\r\npw".to_vec()
            )]
        );
        let cmd = parse(b"a2 LOGIN {4}\r\nus\r\n {2+}\r\npw");
        assert_eq!(
            cmd.args,
            Ok(vec![Arg::Str(b"us\r\n".to_vec()), Arg::Str(b"pw".to_vec())])
        );
    }

    #[test]
    fn bounds_lines_and_literals() {
        let mut f = Framer::new(16);
        assert_eq!(f.push(b"a LOGIN {17}\r\n"), vec![Frame::LiteralTooBig]);
        assert_eq!(f.push(b"more\r\n"), vec![]);
        let mut f = Framer::new(16);
        assert_eq!(f.push(&[b'x'; 40]), vec![Frame::TooLong]);
        let mut f = Framer::new(64);
        assert_eq!(
            f.push(b"a LOGIN {99999999999999999999}\r\n"),
            vec![Frame::Command(b"a LOGIN {99999999999999999999}".to_vec())]
        );
    }

    #[test]
    fn parses_arguments() {
        let cmd =
            parse(br#"A1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]<0.100> "q\"x")"#);
        assert_eq!((cmd.tag.as_str(), cmd.name.as_str()), ("A1", "FETCH"));
        assert_eq!(
            cmd.args,
            Ok(vec![
                Arg::Atom("1:*".into()),
                Arg::List(vec![
                    Arg::Atom("FLAGS".into()),
                    Arg::Atom("BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]<0.100>".into()),
                    Arg::Str(b"q\"x".to_vec()),
                ])
            ])
        );
        assert_eq!(parse(b"a LOGIN \"x").args, Err("Missing '\"'"));
        assert_eq!(parse(b"a X (a (b)").args, Err("Missing ')'"));
        assert_eq!(parse(b"a X a)").args, Err("Unexpected ')'"));
        let mut deep = b"a X ".to_vec();
        deep.extend([b'('; 100]);
        assert_eq!(parse(&deep).args, Err("Too deep list nesting"));
    }

    #[test]
    fn tags_and_quoting() {
        assert!(valid_tag("A0001") && valid_tag(""));
        assert!(!valid_tag("a/b") && !valid_tag("+") && !valid_tag("*"));
        assert_eq!(astring_out("INBOX"), "INBOX");
        assert_eq!(astring_out("Sent Items"), "\"Sent Items\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}
