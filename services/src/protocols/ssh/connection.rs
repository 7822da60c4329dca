//! The connection protocol (RFC 4254) as sshd runs it after login: session channels with
//! window accounting, pty/env/window-change, shell, exec, the sftp subsystem and legacy scp;
//! forwarding refused (and logged: attackers pivot through ssh servers).

use std::collections::{BTreeMap, VecDeque};

use decnet_store::Severity;
use sha2::Digest as _;

use super::{
    capture::{Budget, hex},
    scp::{ScpCommand, ScpSink, ScpSource, parse_command},
    sftp::Sftp,
    terminal::{Pty, Terminal},
    transcript::Clock,
    wire::{Reader, Writer},
};
use crate::{
    memory::Held,
    session::Step,
    shell::{
        Shell,
        fs::{FakeFs, HostInfo},
    },
};

pub const MSG_GLOBAL_REQUEST: u8 = 80;
pub const MSG_REQUEST_FAILURE: u8 = 82;
pub const MSG_CHANNEL_OPEN: u8 = 90;
pub const MSG_CHANNEL_OPEN_CONFIRMATION: u8 = 91;
pub const MSG_CHANNEL_OPEN_FAILURE: u8 = 92;
pub const MSG_CHANNEL_WINDOW_ADJUST: u8 = 93;
pub const MSG_CHANNEL_DATA: u8 = 94;
pub const MSG_CHANNEL_EXTENDED_DATA: u8 = 95;
pub const MSG_CHANNEL_EOF: u8 = 96;
pub const MSG_CHANNEL_CLOSE: u8 = 97;
pub const MSG_CHANNEL_REQUEST: u8 = 98;
pub const MSG_CHANNEL_SUCCESS: u8 = 99;
pub const MSG_CHANNEL_FAILURE: u8 = 100;

const OPEN_ADMINISTRATIVELY_PROHIBITED: u32 = 1;
/// sshd's CHAN_SES_WINDOW_DEFAULT and CHAN_SES_PACKET_DEFAULT.
const WINDOW: u32 = 64 * 32 * 1024;
const MAX_PACKET: u32 = 32 * 1024;
/// Smallest packet the server sends channel data in, whatever the client asks for.
const MIN_PACKET: u32 = 512;
/// sshd's default MaxSessions.
const MAX_CHANNELS: usize = 10;
/// Output queued per channel while the client's window is shut; beyond it output is lost.
pub(super) const MAX_PENDING: usize = 4 * 1024 * 1024;
/// Longest string (host, env value, command) kept in an event.
const MAX_FIELD: usize = 1024;

/// What every channel of one login shares.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub host: HostInfo,
    /// Text printed before the first prompt of a pty shell.
    pub motd: String,
    /// Extra files every emulated filesystem of this host carries.
    pub bait: Vec<(String, Vec<u8>)>,
    pub quarantine: bool,
    /// The client is OpenSSH, which gets sshd's `eow@openssh.com` before EOF.
    pub openssh_client: bool,
}

#[derive(Debug)]
enum Pending {
    /// Bytes to send and how many of them went out already (an offset, so sending a large
    /// buffer in small packets does not move the rest of it each time).
    Data(Vec<u8>, usize),
    Msg(Vec<u8>),
}

#[derive(Debug)]
enum Mode {
    Larval,
    Shell(Box<Terminal>),
    Sftp(Box<Sftp>),
    Scp(Box<ScpSink>),
    ScpSource(Box<ScpSource>),
    /// Exit status and close are queued; input is ignored.
    Finished,
}

#[derive(Debug)]
struct Channel {
    remote: u32,
    /// Bytes the client still lets us send.
    window: u32,
    max_packet: u32,
    /// Bytes we still let the client send, and how many it used since the last adjust.
    local_window: u32,
    consumed: u32,
    pending: VecDeque<Pending>,
    /// The pending data's bytes, held from the process's memory pool: a client that opens
    /// its ten channels and never widens their windows holds up to 40 MiB of output per
    /// connection.
    held: Held,
    pty: Option<Pty>,
    mode: Mode,
    close_sent: bool,
    close_received: bool,
}

/// The connection layer of one logged-in session.
#[derive(Debug)]
pub struct Connection {
    login: Login,
    clock: Clock,
    budget: Budget,
    channels: BTreeMap<u32, Channel>,
    next_id: u32,
}

fn clip(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(MAX_FIELD)
        .collect()
}

fn home_of(user: &str) -> String {
    if user == "root" {
        "/root".into()
    } else {
        format!("/home/{user}")
    }
}

impl Connection {
    pub fn new(login: Login, clock: Clock, upload_limit: usize) -> Self {
        Self {
            login,
            clock,
            budget: Budget::new(upload_limit),
            channels: BTreeMap::new(),
            next_id: 0,
        }
    }

    fn filesystem(&self) -> FakeFs {
        let mut fs = FakeFs::for_host(&self.login.host);
        let _ = fs.mkdir(&home_of(&self.login.user));
        plant(&mut fs, &self.login.bait);
        fs
    }

    fn shell(&self) -> Shell {
        let mut shell = Shell::new(self.login.host.clone(), &self.login.user);
        plant(shell.fs_mut(), &self.login.bait);
        shell
    }

    /// Handle one connection-layer payload (message 80–127).
    pub fn handle(&mut self, payload: &[u8], msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        let mut r = Reader::new(payload);
        match r.u8() {
            Some(MSG_GLOBAL_REQUEST) => Self::global_request(&mut r, msgs, step),
            Some(MSG_CHANNEL_OPEN) => self.open(&mut r, msgs, step),
            Some(MSG_CHANNEL_WINDOW_ADJUST) => {
                let (Some(id), Some(add)) = (r.u32(), r.u32()) else {
                    return;
                };
                if let Some(ch) = self.channels.get_mut(&id) {
                    ch.window = ch.window.saturating_add(add);
                    flush(ch, msgs);
                }
            }
            Some(MSG_CHANNEL_DATA) => {
                let (Some(id), Some(data)) = (r.u32(), r.string()) else {
                    return;
                };
                self.data(id, data, msgs, step);
            }
            Some(MSG_CHANNEL_EXTENDED_DATA) => {
                let (Some(id), Some(_), Some(data)) = (r.u32(), r.u32(), r.string()) else {
                    return;
                };
                if let Some(ch) = self.channels.get_mut(&id) {
                    consume(ch, data.len(), msgs);
                }
            }
            Some(MSG_CHANNEL_EOF) => {
                if let Some(id) = r.u32() {
                    self.eof(id, msgs, step);
                }
            }
            Some(MSG_CHANNEL_CLOSE) => {
                if let Some(id) = r.u32() {
                    self.close(id, msgs, step);
                }
            }
            Some(MSG_CHANNEL_REQUEST) => self.request(&mut r, msgs, step),
            // Replies to our own requests (we never ask for one) and anything unknown.
            _ => {}
        }
    }

    fn global_request(r: &mut Reader<'_>, msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        let (Some(name), Some(want_reply)) = (r.string(), r.bool()) else {
            return;
        };
        if name == b"tcpip-forward" {
            let host = clip(r.string().unwrap_or_default());
            let port = r.u32().unwrap_or(0).to_string();
            step.event(
                "tunnel_request",
                Severity::Warning,
                &[("kind", "tcpip-forward"), ("host", &host), ("port", &port)],
            );
        }
        // keepalive@openssh.com and everything else: sshd knows no handler and says so.
        if want_reply {
            msgs.push(vec![MSG_REQUEST_FAILURE]);
        }
    }

    fn open(&mut self, r: &mut Reader<'_>, msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        let (Some(kind), Some(remote), Some(window), Some(max_packet)) =
            (r.string(), r.u32(), r.u32(), r.u32())
        else {
            return;
        };
        let refuse = |msgs: &mut Vec<Vec<u8>>| {
            let mut w = Writer::message(MSG_CHANNEL_OPEN_FAILURE);
            w.u32(remote)
                .u32(OPEN_ADMINISTRATIVELY_PROHIBITED)
                .string(b"open failed")
                .string(b"");
            msgs.push(w.finish());
        };
        match kind {
            b"session" if self.channels.len() < MAX_CHANNELS => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                self.channels.insert(
                    id,
                    Channel {
                        remote,
                        window,
                        // A client asking for tiny packets would make every byte of output a
                        // packet of its own; no real client asks for less than this.
                        max_packet: max_packet.clamp(MIN_PACKET, MAX_PACKET),
                        local_window: 0,
                        consumed: 0,
                        pending: VecDeque::new(),
                        held: Held::default(),
                        pty: None,
                        mode: Mode::Larval,
                        close_sent: false,
                        close_received: false,
                    },
                );
                // sshd opens session channels with an empty window and widens it once the
                // session has something to feed.
                let mut w = Writer::message(MSG_CHANNEL_OPEN_CONFIRMATION);
                w.u32(remote).u32(id).u32(0).u32(MAX_PACKET);
                msgs.push(w.finish());
            }
            b"direct-tcpip" | b"direct-streamlocal@openssh.com" => {
                let host = clip(r.string().unwrap_or_default());
                let (port, origin, origin_port) = if kind == b"direct-tcpip" {
                    let port = r.u32().unwrap_or(0).to_string();
                    let origin = clip(r.string().unwrap_or_default());
                    (port, origin, r.u32().unwrap_or(0).to_string())
                } else {
                    (String::new(), String::new(), String::new())
                };
                step.event(
                    "tunnel_request",
                    Severity::Warning,
                    &[
                        ("kind", &clip(kind)),
                        ("host", &host),
                        ("port", &port),
                        ("originator", &origin),
                        ("originator_port", &origin_port),
                    ],
                );
                refuse(msgs);
            }
            _ => refuse(msgs),
        }
    }

    fn request(&mut self, r: &mut Reader<'_>, msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        let (Some(id), Some(kind), Some(want_reply)) = (r.u32(), r.string(), r.bool()) else {
            return;
        };
        let Some(ch) = self.channels.get(&id) else {
            return;
        };
        let larval = matches!(ch.mode, Mode::Larval);
        let pty = ch.pty.clone();
        let mode = match kind {
            b"shell" if larval => {
                let mut term = Terminal::new(self.shell(), pty.as_ref(), &self.clock);
                let mut out = Vec::new();
                term.start(&self.login.motd, &self.clock, &mut out);
                Some((Mode::Shell(Box::new(term)), out))
            }
            b"subsystem" if larval && r.string() == Some(b"sftp") => {
                let sftp = Sftp::new(
                    self.filesystem(),
                    &self.login.user,
                    self.budget.clone(),
                    self.login.quarantine,
                );
                Some((Mode::Sftp(Box::new(sftp)), Vec::new()))
            }
            b"exec" if larval => {
                let command = clip(r.string().unwrap_or_default());
                self.exec(id, &command, want_reply, msgs, step);
                return;
            }
            _ => None,
        };
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        if let Some((mode, out)) = mode {
            start(ch, mode, want_reply, msgs);
            queue(ch, out, msgs);
            return;
        }
        let ok = match kind {
            b"pty-req" if larval => {
                let term = clip(r.string().unwrap_or_default());
                let (cols, rows) = (r.u32().unwrap_or(80), r.u32().unwrap_or(24));
                ch.pty = Some(Pty { term, cols, rows });
                true
            }
            b"env" => {
                // Debian's sshd_config: AcceptEnv LANG LC_*
                let name = r.string().unwrap_or_default();
                name == b"LANG" || name.starts_with(b"LC_")
            }
            b"window-change" => {
                let (cols, rows) = (r.u32().unwrap_or(80), r.u32().unwrap_or(24));
                if let Some(pty) = &mut ch.pty {
                    pty.cols = cols;
                    pty.rows = rows;
                }
                if let Mode::Shell(term) = &mut ch.mode {
                    term.resize(&self.clock, cols, rows);
                }
                true
            }
            _ => false,
        };
        if want_reply {
            let mut w = Writer::message(if ok {
                MSG_CHANNEL_SUCCESS
            } else {
                MSG_CHANNEL_FAILURE
            });
            w.u32(ch.remote);
            msgs.push(w.finish());
        }
    }

    fn exec(
        &mut self,
        id: u32,
        command: &str,
        want_reply: bool,
        msgs: &mut Vec<Vec<u8>>,
        step: &mut Step,
    ) {
        let user = self.login.user.clone();
        let home = home_of(&user);
        let scp = parse_command(command);
        if scp.is_some() {
            step.event(
                "command",
                Severity::Warning,
                &[("cmd", command), ("cwd", &home), ("user", &user)],
            );
        }
        if let Some(ScpCommand::Source(paths)) = scp {
            let source = ScpSource::new(&paths, &home, &self.filesystem());
            if let Some(ch) = self.channels.get_mut(&id) {
                start(ch, Mode::ScpSource(Box::new(source)), want_reply, msgs);
            }
            return;
        }
        if let Some(ScpCommand::Sink(target)) = scp {
            let sink = ScpSink::new(
                &target,
                &home,
                self.filesystem(),
                self.budget.clone(),
                self.login.quarantine,
            );
            let Some(ch) = self.channels.get_mut(&id) else {
                return;
            };
            start(ch, Mode::Scp(Box::new(sink)), want_reply, msgs);
            let mut out = Vec::new();
            ScpSink::start(&mut out);
            queue(ch, out, msgs);
            return;
        }
        let mut shell = self.shell();
        let result = shell.run(command);
        step.events.extend(result.events);
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let text = if ch.pty.is_some() {
            result.text.replace('\n', "\r\n")
        } else {
            result.text
        };
        let status = if text.contains(": command not found") {
            127
        } else {
            0
        };
        start(ch, Mode::Finished, want_reply, msgs);
        queue(ch, text.into_bytes(), msgs);
        finish(ch, status, self.login.openssh_client, msgs);
    }

    fn data(&mut self, id: u32, data: &[u8], msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        consume(ch, data.len(), msgs);
        let mut out = Vec::new();
        let done = match &mut ch.mode {
            Mode::Shell(term) => term
                .input(data, &self.clock, &mut out, &mut step.events)
                .then_some(0),
            Mode::Sftp(sftp) => {
                sftp.receive(data, &mut out, step);
                sftp.failed.then_some(1)
            }
            Mode::Scp(sink) => {
                sink.receive(data, &mut out, step);
                sink.is_done().then_some(sink.status)
            }
            Mode::ScpSource(source) => {
                source.receive(data, &mut out, step);
                source.is_done().then_some(source.status)
            }
            Mode::Larval | Mode::Finished => None,
        };
        queue(ch, out, msgs);
        if let Some(status) = done {
            self.end(id, status, msgs, step);
        }
    }

    fn eof(&mut self, id: u32, msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let mut out = Vec::new();
        let status = match &mut ch.mode {
            Mode::Shell(term) => {
                term.eof(&self.clock, &mut out, &mut step.events);
                0
            }
            Mode::Scp(sink) => sink.status,
            Mode::ScpSource(source) => source.status,
            Mode::Sftp(_) => 0,
            Mode::Larval | Mode::Finished => return,
        };
        queue(ch, out, msgs);
        self.end(id, status, msgs, step);
    }

    /// The program behind channel `id` ended: wrap up what it captured, then report its exit
    /// status and close, as sshd does when the child exits.
    fn end(&mut self, id: u32, status: u32, msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        self.wrap_up(id, step);
        if let Some(ch) = self.channels.get_mut(&id) {
            finish(ch, status, self.login.openssh_client, msgs);
        }
    }

    fn wrap_up(&mut self, id: u32, step: &mut Step) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        match std::mem::replace(&mut ch.mode, Mode::Finished) {
            Mode::Shell(term) => {
                let transcript = term.into_transcript();
                let duration = format!("{:.3}", transcript.duration().as_secs_f64());
                let bytes = transcript.into_bytes();
                let sha = hex(&sha2::Sha256::digest(&bytes));
                let name = format!("{sha}.cast");
                let stored_as = if self.login.quarantine {
                    name.clone()
                } else {
                    String::new()
                };
                step.event(
                    "transcript",
                    Severity::Info,
                    &[
                        ("stored_as", &stored_as),
                        ("bytes", &bytes.len().to_string()),
                        ("duration", &duration),
                        ("sha256", &sha),
                    ],
                );
                if self.login.quarantine {
                    step.store(&name, bytes);
                }
            }
            Mode::Sftp(mut sftp) => sftp.finish(step),
            Mode::Scp(mut sink) => sink.finish(step),
            Mode::ScpSource(_) => {}
            Mode::Larval | Mode::Finished => {}
        }
    }

    fn close(&mut self, id: u32, msgs: &mut Vec<Vec<u8>>, step: &mut Step) {
        self.wrap_up(id, step);
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        ch.close_received = true;
        if !ch.close_sent {
            // The client hung up first: what was still queued is dropped.
            ch.pending.clear();
            ch.held.shrink(usize::MAX);
            let mut w = Writer::message(MSG_CHANNEL_CLOSE);
            w.u32(ch.remote);
            msgs.push(w.finish());
            ch.close_sent = true;
        }
        self.channels.remove(&id);
    }

    /// The connection is gone: whatever channels were doing is wrapped up.
    pub fn finish(&mut self, step: &mut Step) {
        let ids: Vec<u32> = self.channels.keys().copied().collect();
        for id in ids {
            self.wrap_up(id, step);
        }
    }
}

/// Files from the persona's templates, added to a fresh filesystem.
fn plant(fs: &mut FakeFs, bait: &[(String, Vec<u8>)]) {
    for (path, content) in bait {
        let mut dir = String::new();
        let parents: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for part in parents.iter().take(parents.len().saturating_sub(1)) {
            dir.push('/');
            dir.push_str(part);
            let _ = fs.mkdir(&dir);
        }
        let _ = fs.write(path, content.clone(), false);
    }
}

/// A program started on the channel: sshd widens the window, then confirms the request.
fn start(ch: &mut Channel, mode: Mode, want_reply: bool, msgs: &mut Vec<Vec<u8>>) {
    ch.mode = mode;
    let mut w = Writer::message(MSG_CHANNEL_WINDOW_ADJUST);
    w.u32(ch.remote).u32(WINDOW - ch.local_window);
    msgs.push(w.finish());
    ch.local_window = WINDOW;
    if want_reply {
        let mut w = Writer::message(MSG_CHANNEL_SUCCESS);
        w.u32(ch.remote);
        msgs.push(w.finish());
    }
}

/// Account for `n` bytes the client sent and give the window back the way sshd does.
fn consume(ch: &mut Channel, n: usize, msgs: &mut Vec<Vec<u8>>) {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    ch.local_window = ch.local_window.saturating_sub(n);
    ch.consumed = ch.consumed.saturating_add(n);
    if ch.close_sent || matches!(ch.mode, Mode::Larval | Mode::Finished) {
        return;
    }
    if ch.local_window < WINDOW / 2 || ch.consumed > MAX_PACKET * 3 {
        let mut w = Writer::message(MSG_CHANNEL_WINDOW_ADJUST);
        w.u32(ch.remote).u32(ch.consumed);
        msgs.push(w.finish());
        ch.local_window = ch.local_window.saturating_add(ch.consumed);
        ch.consumed = 0;
    }
}

fn queue(ch: &mut Channel, data: Vec<u8>, msgs: &mut Vec<Vec<u8>>) {
    if data.is_empty() || ch.close_sent {
        return;
    }
    // Past the channel's cap or what the process can hold, output is dropped (as when the
    // client's window never opens, it would never be read).
    let room = MAX_PENDING.saturating_sub(ch.held.bytes());
    let mut data = data;
    data.truncate(ch.held.grow(data.len().min(room)));
    if !data.is_empty() {
        ch.pending.push_back(Pending::Data(data, 0));
    }
    flush(ch, msgs);
}

/// exit-status (and eow@openssh.com for OpenSSH clients), EOF, CLOSE — after the output.
fn finish(ch: &mut Channel, status: u32, openssh: bool, msgs: &mut Vec<Vec<u8>>) {
    if ch.close_sent {
        return;
    }
    let mut w = Writer::message(MSG_CHANNEL_REQUEST);
    w.u32(ch.remote)
        .string(b"exit-status")
        .bool(false)
        .u32(status);
    ch.pending.push_back(Pending::Msg(w.finish()));
    if openssh {
        let mut w = Writer::message(MSG_CHANNEL_REQUEST);
        w.u32(ch.remote).string(b"eow@openssh.com").bool(false);
        ch.pending.push_back(Pending::Msg(w.finish()));
    }
    let mut w = Writer::message(MSG_CHANNEL_EOF);
    w.u32(ch.remote);
    ch.pending.push_back(Pending::Msg(w.finish()));
    let mut w = Writer::message(MSG_CHANNEL_CLOSE);
    w.u32(ch.remote);
    ch.pending.push_back(Pending::Msg(w.finish()));
    ch.mode = Mode::Finished;
    flush(ch, msgs);
}

/// Send what the client's window allows, in packets no larger than it accepts.
fn flush(ch: &mut Channel, msgs: &mut Vec<Vec<u8>>) {
    while let Some(front) = ch.pending.front_mut() {
        match front {
            Pending::Data(buf, sent) => {
                let rest = buf.get(*sent..).unwrap_or_default();
                let n = rest
                    .len()
                    .min(ch.window as usize)
                    .min(ch.max_packet as usize);
                if n == 0 && !rest.is_empty() {
                    return;
                }
                let mut w = Writer::message(MSG_CHANNEL_DATA);
                w.u32(ch.remote).string(&rest[..n]);
                msgs.push(w.finish());
                *sent += n;
                ch.window -= u32::try_from(n).unwrap_or(0);
                ch.held.shrink(n);
                if *sent >= buf.len() {
                    ch.pending.pop_front();
                }
            }
            Pending::Msg(msg) => {
                if msg.first() == Some(&MSG_CHANNEL_CLOSE) {
                    ch.close_sent = true;
                }
                msgs.push(std::mem::take(msg));
                ch.pending.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests;
