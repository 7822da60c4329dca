//! Legacy scp (what `scp -O` and older clients run remotely). Sink mode (`scp -t TARGET`):
//! `C`/`D`/`E`/`T` control records each acknowledged with a NUL byte, file bodies captured
//! as uploads. Source mode (`scp -f PATH…`): files of the emulated filesystem sent back, each
//! download an event.

use super::capture::{Budget, Upload};
use crate::{
    session::Step,
    shell::fs::{FakeFs, resolve},
};

/// Longest control record; scp's own buffer is about this size.
const MAX_RECORD: usize = 2048;
/// Directory nesting followed with `-r`.
const MAX_DEPTH: usize = 64;

#[derive(Debug)]
enum State {
    Record,
    Body {
        upload: Upload,
        left: u64,
    },
    /// The file's bytes are in; the source's own status byte comes next.
    SourceAck {
        upload: Upload,
    },
    Done,
}

/// One `scp -t` run.
#[derive(Debug)]
pub struct ScpSink {
    target: String,
    dirs: Vec<String>,
    state: State,
    record: Vec<u8>,
    budget: Budget,
    quarantine: bool,
    fs: FakeFs,
    /// Exit status to report once the client is done (1 after a protocol error).
    pub status: u32,
}

/// What an `scp` command line asks the remote side to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScpCommand {
    /// `scp -t TARGET`: receive files into TARGET.
    Sink(String),
    /// `scp -f PATH…`: send these files.
    Source(Vec<String>),
}

/// Parse an `scp … -t|-f …` command line; `None` for anything else.
pub fn parse_command(command: &str) -> Option<ScpCommand> {
    let mut words = command.split_whitespace();
    let prog = words.next()?;
    if prog.rsplit('/').next() != Some("scp") {
        return None;
    }
    let args: Vec<&str> = words.collect();
    let flags: String = args
        .iter()
        .take_while(|a| a.starts_with('-') && **a != "--")
        .flat_map(|a| a.chars().skip(1))
        .collect();
    let operands: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(|a| (*a).to_owned())
        .collect();
    if flags.contains('t') {
        Some(ScpCommand::Sink(
            operands.last().cloned().unwrap_or_else(|| ".".to_owned()),
        ))
    } else if flags.contains('f') {
        Some(ScpCommand::Source(operands))
    } else {
        None
    }
}

impl ScpSink {
    pub fn new(target: &str, home: &str, fs: FakeFs, budget: Budget, quarantine: bool) -> Self {
        Self {
            target: resolve(home, home, target),
            dirs: Vec::new(),
            state: State::Record,
            record: Vec::new(),
            budget,
            quarantine,
            fs,
            status: 0,
        }
    }

    /// The sink's opening: ready for the first record.
    pub fn start(out: &mut Vec<u8>) {
        out.push(0);
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub fn receive(&mut self, mut data: &[u8], out: &mut Vec<u8>, step: &mut Step) {
        while !data.is_empty() {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return,
                State::Body { mut upload, left } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    let offset = upload.written();
                    upload.write(offset, &data[..n], &self.budget);
                    data = &data[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::SourceAck { upload }
                    } else {
                        State::Body { upload, left }
                    };
                }
                State::SourceAck { upload } => {
                    data = &data[1..];
                    let path = upload.path.clone();
                    let kept = upload.finish("scp", self.quarantine, step);
                    let _ = self.fs.write(&path, kept, false);
                    out.push(0);
                    self.state = State::Record;
                }
                State::Record => {
                    self.state = State::Record;
                    let (byte, rest) = (data[0], &data[1..]);
                    data = rest;
                    if byte != b'\n' {
                        if self.record.len() < MAX_RECORD {
                            self.record.push(byte);
                        }
                        continue;
                    }
                    let record =
                        String::from_utf8_lossy(&std::mem::take(&mut self.record)).into_owned();
                    self.record(&record, out);
                }
            }
        }
    }

    fn record(&mut self, record: &str, out: &mut Vec<u8>) {
        let mut fields = record.get(1..).unwrap_or_default().splitn(3, ' ');
        match record.as_bytes().first() {
            Some(b'C') => {
                let (_mode, size, name) = (fields.next(), fields.next(), fields.next());
                let (Some(size), Some(name)) = (size.and_then(|s| s.parse::<u64>().ok()), name)
                else {
                    return self.error("protocol error: bad mode", out);
                };
                if name.contains('/') || name == ".." {
                    return self.error(&format!("error: unexpected filename: {name}"), out);
                }
                let path = match self.dirs.last() {
                    Some(dir) => format!("{dir}/{name}"),
                    None if self.fs.is_dir(&self.target) => {
                        format!("{}/{name}", self.target.trim_end_matches('/'))
                    }
                    None => self.target.clone(),
                };
                out.push(0);
                let upload = Upload::new(&path);
                self.state = if size == 0 {
                    State::SourceAck { upload }
                } else {
                    State::Body { upload, left: size }
                };
            }
            Some(b'D') => {
                let name = fields.nth(2).unwrap_or_default();
                if name.contains('/') || name == ".." || self.dirs.len() >= MAX_DEPTH {
                    return self.error(&format!("error: unexpected filename: {name}"), out);
                }
                let base = self
                    .dirs
                    .last()
                    .cloned()
                    .unwrap_or_else(|| self.target.clone());
                let dir = if self.dirs.is_empty() && !self.fs.is_dir(&base) {
                    base
                } else {
                    format!("{}/{name}", base.trim_end_matches('/'))
                };
                let _ = self.fs.mkdir(&dir);
                self.dirs.push(dir);
                out.push(0);
            }
            Some(b'E') => {
                self.dirs.pop();
                out.push(0);
            }
            Some(b'T') => out.push(0),
            // The source reports its own errors with 1/2: nothing to answer.
            Some(1 | 2) => {}
            _ => self.error("protocol error: expected control record", out),
        }
    }

    fn error(&mut self, message: &str, out: &mut Vec<u8>) {
        out.push(1);
        out.extend_from_slice(format!("scp: {message}\n").as_bytes());
        self.status = 1;
        self.state = State::Done;
    }

    /// The client closed its side: a file cut short is captured as it is.
    pub fn finish(&mut self, step: &mut Step) {
        if let State::Body { upload, .. } | State::SourceAck { upload } =
            std::mem::replace(&mut self.state, State::Done)
        {
            upload.finish("scp", self.quarantine, step);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// Waiting for the sink's NUL before the next file's `C` record.
    Ready,
    /// The `C` record is out; its NUL allows the body.
    Record,
    /// The body is out; its NUL moves on to the next file.
    Body,
    Done,
}

/// One `scp -f` run: files go out one by one, each step paced by the sink's NUL bytes.
#[derive(Debug)]
pub struct ScpSource {
    queue: std::collections::VecDeque<(String, Source)>,
    state: Sending,
    pub status: u32,
}

/// A file to send (its content, shared with the filesystem), or why it cannot be.
type Source = Result<std::sync::Arc<[u8]>, &'static str>;

impl ScpSource {
    pub fn new(paths: &[String], home: &str, fs: &FakeFs) -> Self {
        let queue = paths
            .iter()
            .take(64)
            .map(|p| {
                let path = resolve(home, home, p);
                let content = match fs.get(&path) {
                    Some(crate::shell::fs::Node::File { content, .. }) => Ok(content.clone()),
                    Some(crate::shell::fs::Node::Dir) => Err("not a regular file"),
                    None => Err("No such file or directory"),
                };
                (path, content)
            })
            .collect();
        Self {
            queue,
            state: Sending::Ready,
            status: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == Sending::Done
    }

    /// Bytes from the sink (its NUL acknowledgements, or an error record that ends the run).
    pub fn receive(&mut self, data: &[u8], out: &mut Vec<u8>, step: &mut Step) {
        for &b in data {
            if self.state == Sending::Done {
                return;
            }
            if b != 0 {
                self.state = Sending::Done;
                self.status = 1;
                return;
            }
            self.advance(out, step);
        }
    }

    fn advance(&mut self, out: &mut Vec<u8>, step: &mut Step) {
        match self.state {
            Sending::Ready => loop {
                let Some((path, content)) = self.queue.front() else {
                    self.state = Sending::Done;
                    return;
                };
                match content {
                    Ok(bytes) => {
                        let name = path.rsplit('/').next().unwrap_or_default();
                        out.extend_from_slice(format!("C0644 {} {name}\n", bytes.len()).as_bytes());
                        step.event(
                            "download",
                            decnet_store::Severity::Warning,
                            &[
                                ("path", path),
                                ("size", &bytes.len().to_string()),
                                ("method", "scp"),
                            ],
                        );
                        self.state = Sending::Record;
                        return;
                    }
                    Err(why) => {
                        out.push(1);
                        out.extend_from_slice(format!("scp: {path}: {why}\n").as_bytes());
                        self.status = 1;
                        self.queue.pop_front();
                    }
                }
            },
            Sending::Record => {
                if let Some((_, Ok(bytes))) = self.queue.pop_front() {
                    out.extend_from_slice(&bytes);
                    out.push(0);
                }
                self.state = Sending::Body;
            }
            Sending::Body => {
                self.state = Sending::Ready;
                self.advance(out, step);
            }
            Sending::Done => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code
    use super::*;
    use crate::shell::fs::HostInfo;

    fn sink(target: &str) -> ScpSink {
        let host = HostInfo {
            hostname: "h".into(),
            distro: "debian".into(),
            kernel: "6.1.0-27-amd64".into(),
            ip: "10.0.0.5".into(),
        };
        ScpSink::new(
            target,
            "/root",
            FakeFs::for_host(&host),
            Budget::new(1 << 20),
            true,
        )
    }

    #[test]
    fn scp_command_lines() {
        let sink = |t: &str| Some(ScpCommand::Sink(t.into()));
        assert_eq!(parse_command("scp -t /tmp/"), sink("/tmp/"));
        assert_eq!(parse_command("scp -v -d -t -- /tmp/x"), sink("/tmp/x"));
        assert_eq!(parse_command("/usr/bin/scp -r -t ."), sink("."));
        assert_eq!(
            parse_command("scp -f /etc/passwd x"),
            Some(ScpCommand::Source(vec!["/etc/passwd".into(), "x".into()]))
        );
        assert_eq!(parse_command("ls -t"), None);
        assert_eq!(parse_command("scp a b"), None);
    }

    #[test]
    fn source_mode_sends_files_paced_by_acks() {
        let host = HostInfo {
            hostname: "h".into(),
            distro: "debian".into(),
            kernel: "6.1.0-27-amd64".into(),
            ip: "10.0.0.5".into(),
        };
        let fs = FakeFs::for_host(&host);
        let mut src = ScpSource::new(
            &["/etc/hostname".into(), "/nope".into(), "/etc".into()],
            "/root",
            &fs,
        );
        let mut out = Vec::new();
        let mut step = Step::default();
        src.receive(b"\0", &mut out, &mut step);
        assert_eq!(out, b"C0644 2 hostname\n");
        src.receive(b"\0", &mut out, &mut step);
        assert_eq!(out, b"C0644 2 hostname\nh\n\0");
        out.clear();
        src.receive(b"\0", &mut out, &mut step);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "\u{1}scp: /nope: No such file or directory\n\u{1}scp: /etc: not a regular file\n"
        );
        assert!(src.is_done());
        assert_eq!(src.status, 1);
        assert_eq!(step.events[0].kind, "download");
        assert_eq!(step.events[0].field("path"), Some("/etc/hostname"));
    }

    #[test]
    fn files_are_acknowledged_and_captured() {
        let mut s = sink("/tmp");
        let mut out = Vec::new();
        let mut step = Step::default();
        ScpSink::start(&mut out);
        s.receive(
            b"T1700000000 0 1700000000 0\nC0644 5 a.sh\nhel",
            &mut out,
            &mut step,
        );
        s.receive(b"lo\0", &mut out, &mut step);
        s.receive(b"C0600 0 empty\n\0", &mut out, &mut step);
        assert_eq!(out, [0, 0, 0, 0, 0, 0]);
        assert_eq!(step.events.len(), 2);
        assert_eq!(step.events[0].field("path"), Some("/tmp/a.sh"));
        assert_eq!(step.events[0].field("size"), Some("5"));
        assert_eq!(step.events[0].field("method"), Some("scp"));
        assert_eq!(step.artifacts[0].bytes, b"hello");
        assert_eq!(step.events[1].field("path"), Some("/tmp/empty"));
    }

    #[test]
    fn recursive_copies_and_bad_records() {
        let mut s = sink("/tmp");
        let mut out = Vec::new();
        let mut step = Step::default();
        s.receive(b"D0755 0 kit\nC0644 2 x\nab\0E\n", &mut out, &mut step);
        assert_eq!(step.events[0].field("path"), Some("/tmp/kit/x"));
        s.receive(b"bogus\n", &mut out, &mut step);
        assert!(s.is_done());
        assert_eq!(s.status, 1);
        assert!(out.ends_with(b"scp: protocol error: expected control record\n"));
    }
}
