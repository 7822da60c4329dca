//! An interactive `shell` channel: the emulated shell behind a terminal line discipline.
//! With a pty the kernel's cooked mode is imitated (echo, erase, ^C, ^D, ^U, CR→NL on input,
//! NL→CRLF on output, prompt); without one bash reads plain lines and prints no prompt.
//! Everything shown and typed goes into the session's transcript.

use decnet_store::Severity;

use super::transcript::{Clock, Transcript};
use crate::{session::ServiceEvent, shell::Shell};

/// Longest input line kept; a longer one is cut, as a terminal's line buffer would.
const MAX_LINE: usize = 4096;
/// Output one batch of input may produce before the rest of that input is dropped: what a
/// channel holds for a client that does not read.
const MAX_OUTPUT_PER_INPUT: usize = super::connection::MAX_PENDING;

/// What the client asked for with `pty-req`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pty {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// Where the input parser is inside an escape sequence (arrow keys and the like are eaten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Escape,
    Csi,
}

#[derive(Debug)]
pub struct Terminal {
    shell: Shell,
    pty: bool,
    line: Vec<u8>,
    esc: Esc,
    after_cr: bool,
    transcript: Transcript,
}

fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

impl Terminal {
    pub fn new(shell: Shell, pty: Option<&Pty>, clock: &Clock) -> Self {
        let (cols, rows, term) = pty.map_or((80, 24, ""), |p| (p.cols, p.rows, p.term.as_str()));
        Self {
            shell,
            pty: pty.is_some(),
            line: Vec::new(),
            esc: Esc::None,
            after_cr: false,
            transcript: Transcript::new(clock, cols, rows, term),
        }
    }

    fn emit(&mut self, clock: &Clock, bytes: &[u8], out: &mut Vec<u8>) {
        self.transcript.output(clock, bytes);
        out.extend_from_slice(bytes);
    }

    /// The login: sshd prints the motd and last-login line only when a pty was allocated.
    pub fn start(&mut self, motd: &str, clock: &Clock, out: &mut Vec<u8>) {
        if self.pty {
            let mut text = crlf(motd);
            text.extend_from_slice(self.shell.prompt().as_bytes());
            self.emit(clock, &text, out);
        }
    }

    pub fn resize(&mut self, clock: &Clock, cols: u32, rows: u32) {
        self.transcript.resize(clock, cols, rows);
    }

    /// Keystrokes (or piped stdin) from the client. Returns true when the shell exited.
    pub fn input(
        &mut self,
        data: &[u8],
        clock: &Clock,
        out: &mut Vec<u8>,
        events: &mut Vec<ServiceEvent>,
    ) -> bool {
        self.transcript.input(clock, data);
        let mut echo = Vec::new();
        for (i, &b) in data.iter().enumerate() {
            if let Some(exited) = self.byte(b, clock, &mut echo, out, events) {
                self.emit(clock, &std::mem::take(&mut echo), out);
                if exited {
                    return true;
                }
                if out.len() >= MAX_OUTPUT_PER_INPUT {
                    // A real shell would block writing to a terminal nobody reads, and the
                    // client's input would wait; here the rest of this input is dropped, and
                    // said so (256 KiB of `cat big` lines once built gigabytes at once).
                    let dropped = (data.len() - i - 1).to_string();
                    events.push(ServiceEvent {
                        kind: "input_dropped".to_owned(),
                        severity: Severity::Notice,
                        fields: vec![
                            ("reason".to_owned(), "output_backlog".to_owned()),
                            ("bytes".to_owned(), dropped),
                        ],
                    });
                    return false;
                }
            }
        }
        self.emit(clock, &echo, out);
        false
    }

    /// One input byte. Returns `Some` when a line was run (so echo must be flushed first
    /// to keep the order on screen), with whether the shell exited.
    fn byte(
        &mut self,
        b: u8,
        clock: &Clock,
        echo: &mut Vec<u8>,
        out: &mut Vec<u8>,
        events: &mut Vec<ServiceEvent>,
    ) -> Option<bool> {
        match (self.esc, b) {
            (Esc::Escape, b'[' | b'O') => {
                self.esc = Esc::Csi;
                return None;
            }
            (Esc::Escape, _) => {
                self.esc = Esc::None;
                return None;
            }
            (Esc::Csi, 0x40..=0x7e) => {
                self.esc = Esc::None;
                return None;
            }
            (Esc::Csi, _) => return None,
            (Esc::None, _) => {}
        }
        if std::mem::take(&mut self.after_cr) && b == b'\n' && !self.pty {
            return None;
        }
        match b {
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                if self.pty {
                    echo.extend_from_slice(b"\r\n");
                }
                let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                self.emit(clock, &std::mem::take(echo), out);
                Some(self.run(&line, clock, out, events))
            }
            0x7f | 0x08 if self.pty => {
                if self.line.pop().is_some() {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                None
            }
            0x15 if self.pty => {
                for _ in 0..self.line.len() {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                self.line.clear();
                None
            }
            0x03 if self.pty => {
                self.line.clear();
                echo.extend_from_slice(b"^C\r\n");
                echo.extend_from_slice(self.shell.prompt().as_bytes());
                None
            }
            0x04 if self.pty => {
                if !self.line.is_empty() {
                    return None;
                }
                echo.extend_from_slice(b"logout\r\n");
                Some(true)
            }
            0x1b => {
                self.esc = Esc::Escape;
                None
            }
            b'\t' | 0x00..=0x1f if self.pty => None,
            b => {
                if self.line.len() < MAX_LINE {
                    self.line.push(b);
                    if self.pty {
                        echo.push(b);
                    }
                }
                None
            }
        }
    }

    fn run(
        &mut self,
        line: &str,
        clock: &Clock,
        out: &mut Vec<u8>,
        events: &mut Vec<ServiceEvent>,
    ) -> bool {
        let result = self.shell.run(line);
        events.extend(result.events);
        let mut text = if self.pty {
            crlf(&result.text)
        } else {
            result.text.into_bytes()
        };
        if self.pty && !result.exit {
            text.extend_from_slice(self.shell.prompt().as_bytes());
        }
        self.emit(clock, &text, out);
        result.exit
    }

    /// The client sent EOF: bash sees end of input and exits.
    pub fn eof(&mut self, clock: &Clock, out: &mut Vec<u8>, events: &mut Vec<ServiceEvent>) {
        if !self.pty && !self.line.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
            self.run(&line, clock, out, events);
        }
    }

    pub fn into_transcript(self) -> Transcript {
        self.transcript
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code
    use super::*;
    use crate::shell::fs::HostInfo;

    fn term(on: bool) -> (Terminal, Clock) {
        let host = HostInfo {
            hostname: "web1".into(),
            distro: "debian".into(),
            kernel: "6.1.0-27-amd64".into(),
            ip: "10.0.0.5".into(),
        };
        let clock = Clock::Manual(std::sync::Arc::default());
        let pty = Pty {
            term: "xterm".into(),
            cols: 80,
            rows: 24,
        };
        let pty = on.then_some(&pty);
        (Terminal::new(Shell::new(host, "root"), pty, &clock), clock)
    }

    /// One batch of input builds at most a few MiB of output; the rest is dropped and said so.
    #[test]
    fn one_input_cannot_build_unbounded_output() {
        let (mut t, clock) = term(true);
        let (mut out, mut events) = (Vec::new(), Vec::new());
        let flood = b"id\r".repeat(100_000);
        assert!(!t.input(&flood, &clock, &mut out, &mut events));
        assert!(out.len() < MAX_OUTPUT_PER_INPUT + 4096, "{}", out.len());
        let dropped = events.iter().find(|e| e.kind == "input_dropped").unwrap();
        let bytes: usize = dropped.field("bytes").unwrap().parse().unwrap();
        assert!(bytes > 0 && bytes < flood.len());
        // The shell still answers what comes next.
        let mut more = Vec::new();
        t.input(b"id\r", &clock, &mut more, &mut events);
        assert!(String::from_utf8_lossy(&more).contains("uid=0(root)"));
    }

    #[test]
    fn cooked_mode_echoes_and_edits() {
        let (mut t, clock) = term(true);
        let mut out = Vec::new();
        let mut events = Vec::new();
        t.start("motd\n", &clock, &mut out);
        assert_eq!(out, b"motd\r\nroot@web1:~# ");
        out.clear();
        assert!(!t.input(b"iz\x7fd\r", &clock, &mut out, &mut events));
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "iz\x08 \x08d\r\nuid=0(root) gid=0(root) groups=0(root)\r\nroot@web1:~# "
        );
        assert_eq!(events[0].field("cmd"), Some("id"));
        out.clear();
        t.input(b"ls\x03\x1b[Apwd\r", &clock, &mut out, &mut events);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "ls^C\r\nroot@web1:~# pwd\r\n/root\r\nroot@web1:~# "
        );
        out.clear();
        assert!(t.input(b"\x04", &clock, &mut out, &mut events));
        assert_eq!(out, b"logout\r\n");
        let cast = String::from_utf8(t.into_transcript().into_bytes()).unwrap();
        assert!(cast.contains("\"i\",\"iz\u{7f}d\\r\""), "{cast}");
        assert!(cast.contains("uid=0(root)"));
    }

    #[test]
    fn without_a_pty_lines_run_silently() {
        let (mut t, clock) = term(false);
        let mut out = Vec::new();
        let mut events = Vec::new();
        t.start("motd\n", &clock, &mut out);
        assert!(out.is_empty());
        t.input(b"whoami\necho hi", &clock, &mut out, &mut events);
        assert_eq!(out, b"root\n");
        t.eof(&clock, &mut out, &mut events);
        assert_eq!(out, b"root\nhi\n");
        assert!(t.input(b"exit\n", &clock, &mut out, &mut events));
    }
}
