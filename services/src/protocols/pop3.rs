//! pop3: a Dovecot 2.3 (Debian) POP3 persona over the host's bait mailbox.
//!
//! Before login it answers as `pop3-login` does (its texts, its three-strikes rule for bad
//! commands, PLAIN as the only SASL mechanism, plaintext logins allowed as on a server
//! configured with `disable_plaintext_auth = no`); after login as the `pop3` process does.
//! Every login attempt is recorded with the password, whether it matched or not.

use std::sync::Arc;

use decnet_store::Severity;

use super::{
    line::{Line, LineBuffer},
    mailbox::{self, Mail, MailStore},
    sasl,
};
use crate::{
    persona::Persona,
    runtime::Protocol,
    session::{ConnInfo, Session, Step},
};

/// Dovecot's login process input buffer.
const MAX_LOGIN_LINE: usize = 4096;
/// The mail process's command line limit (`MAX_INBUF_SIZE`).
const MAX_LINE: usize = 2048;
/// `pop3-login` gives up after this many bad commands in a row.
const MAX_BAD_LOGIN: u32 = 3;
/// The `pop3` process gives up after more than this many bad commands in a row.
const MAX_BAD: u32 = 20;
/// Characters of a command argument kept in events.
const LOGGED_ARG: usize = 256;

const CAPABILITIES: &str = "CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n";

/// The service as configured for one host.
#[derive(Debug)]
pub struct Pop3 {
    banner: String,
    users: Vec<(String, String)>,
    store: Arc<MailStore>,
}

impl Pop3 {
    pub fn from_persona(p: &Persona) -> Self {
        Self::with_clock(p, mailbox::now_secs())
    }

    /// As [`Pop3::from_persona`], with mail dated relative to `now` (Unix seconds).
    pub fn with_clock(p: &Persona, now: i64) -> Self {
        let users = mailbox::mail_users(p, "POP3_USERS");
        Self {
            banner: p
                .get_or("POP3_BANNER", "Dovecot (Debian) ready.")
                .to_owned(),
            users,
            store: Arc::new(mailbox::for_host(p, now)),
        }
    }

    fn session_for(&self) -> Pop3Session {
        let count = self.store.inbox().mails.len();
        Pop3Session {
            banner: self.banner.clone(),
            users: self.users.clone(),
            store: Arc::clone(&self.store),
            lines: LineBuffer::new(MAX_LOGIN_LINE),
            state: State::Authorization,
            user: None,
            sasl_pending: false,
            bad: 0,
            deleted: vec![false; count],
            closed: false,
        }
    }
}

impl Protocol for Pop3 {
    fn slug(&self) -> &'static str {
        "pop3"
    }

    fn default_ports(&self) -> &'static [u16] {
        // 995 is POP3 over TLS, which this persona does not speak.
        &[110]
    }

    fn session(&self, _conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(self.session_for())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Authorization,
    Transaction { user: String },
}

/// One client connection.
#[derive(Debug)]
pub struct Pop3Session {
    banner: String,
    users: Vec<(String, String)>,
    store: Arc<MailStore>,
    lines: LineBuffer,
    state: State,
    /// The name given by USER, waiting for PASS.
    user: Option<String>,
    /// `AUTH PLAIN` was sent without an initial response: the next line is the response.
    sasl_pending: bool,
    bad: u32,
    deleted: Vec<bool>,
    closed: bool,
}

fn clip(s: &str) -> String {
    s.chars().take(LOGGED_ARG).collect()
}

impl Pop3Session {
    fn login(&mut self, user: &str, pass: &str, mechanism: &str, out: &mut Step) {
        let ok = self.users.iter().any(|(u, p)| u == user && p == pass);
        let status = if ok { "success" } else { "failed" };
        out.event(
            "auth",
            Severity::Warning,
            &[
                ("username", &clip(user)),
                ("password", &clip(pass)),
                ("status", status),
                ("mechanism", mechanism),
            ],
        );
        if ok {
            out.send(b"+OK Logged in.\r\n");
            self.state = State::Transaction {
                user: user.to_owned(),
            };
            self.bad = 0;
        } else {
            out.send(b"-ERR [AUTH] Authentication failed.\r\n");
            out.delay(mailbox::AUTH_FAILURE_DELAY);
        }
    }

    /// Finish a SASL PLAIN exchange with the client's (base64) response.
    fn plain_response(&mut self, response: &str, initial: bool, out: &mut Step) {
        if response == "*" {
            out.send(b"-ERR Authentication aborted by client.\r\n");
            return;
        }
        let decoded = if response == "=" {
            Some(Vec::new())
        } else {
            sasl::b64_decode(response.as_bytes())
        };
        let Some(decoded) = decoded else {
            let what = if initial { "initial" } else { "continued" };
            out.event(
                "auth",
                Severity::Warning,
                &[
                    ("username", ""),
                    ("password", ""),
                    ("status", "failed"),
                    ("mechanism", "PLAIN"),
                    ("raw", &clip(response)),
                ],
            );
            out.send(format!("-ERR [AUTH] Invalid base64 data in {what} response\r\n").as_bytes());
            return;
        };
        match sasl::parse_plain(&decoded) {
            Some(plain) => self.login(&plain.username, &plain.password, "PLAIN", out),
            None => {
                let raw = String::from_utf8_lossy(&decoded).replace('\0', " ");
                out.event(
                    "auth",
                    Severity::Warning,
                    &[
                        ("username", ""),
                        ("password", ""),
                        ("status", "failed"),
                        ("mechanism", "PLAIN"),
                        ("raw", &clip(&raw)),
                    ],
                );
                out.send(b"-ERR [AUTH] Authentication failed.\r\n");
            }
        }
    }

    /// One command before login; `false` if it counts as a bad command.
    fn authorization(&mut self, cmd: &str, args: &str, out: &mut Step) -> bool {
        match cmd {
            "CAPA" => {
                out.send(format!("+OK\r\n{CAPABILITIES}USER\r\nSASL PLAIN\r\n.\r\n").as_bytes());
            }
            "USER" => {
                self.user = Some(args.to_owned());
                out.send(b"+OK\r\n");
            }
            "PASS" => match self.user.take() {
                Some(user) => self.login(&user, args, "USER", out),
                None => out.send(b"-ERR No username given.\r\n"),
            },
            "AUTH" => {
                let (mech, ir) = args.split_once(' ').unwrap_or((args, ""));
                if mech.is_empty() {
                    // Old-style SASL discovery (Outlook).
                    out.send(b"+OK\r\nPLAIN\r\n.\r\n");
                } else if !mech.eq_ignore_ascii_case("PLAIN") {
                    out.event(
                        "auth",
                        Severity::Warning,
                        &[
                            ("username", ""),
                            ("password", ""),
                            ("status", "failed"),
                            ("mechanism", &clip(&mech.to_ascii_uppercase())),
                        ],
                    );
                    out.send(b"-ERR [AUTH] Unsupported authentication mechanism.\r\n");
                } else if ir.is_empty() {
                    self.sasl_pending = true;
                    out.send(b"+ \r\n");
                } else {
                    self.plain_response(ir, true, out);
                }
            }
            "APOP" => {
                let (user, digest) = args.split_once(' ').unwrap_or((args, ""));
                out.event(
                    "auth",
                    Severity::Warning,
                    &[
                        ("username", &clip(user)),
                        ("password", ""),
                        ("status", "failed"),
                        ("mechanism", "APOP"),
                        ("digest", &clip(digest)),
                    ],
                );
                out.send(b"-ERR APOP not enabled.\r\n");
            }
            "STLS" => out.send(b"-ERR TLS support isn't enabled.\r\n"),
            "XCLIENT" => out.send(b"+OK You are not from trusted IP - ignoring\r\n"),
            "QUIT" => {
                out.send(b"+OK Logging out\r\n");
                out.close();
            }
            _ => {
                out.send(b"-ERR Unknown command.\r\n");
                return false;
            }
        }
        true
    }

    /// Parse a message number the way Dovecot's `get_msgnum` does; on error the reply is sent.
    fn msgnum<'a>(
        &self,
        args: &'a str,
        then_space: bool,
        out: &mut Step,
    ) -> Option<(usize, &'a str)> {
        let (num, rest) = parse_number(args, "message number", then_space, out)?;
        let count = self.deleted.len();
        let Some(index) = usize::try_from(num)
            .ok()
            .filter(|n| (1..=count).contains(n))
        else {
            out.send(format!("-ERR There's no message {num}.\r\n").as_bytes());
            return None;
        };
        if self.deleted.get(index - 1).copied().unwrap_or(true) {
            out.send(b"-ERR Message is deleted.\r\n");
            return None;
        }
        Some((index - 1, rest.trim_start_matches(' ')))
    }

    fn uidl(&self, index: usize) -> String {
        let inbox = self.store.inbox();
        let uid = inbox.mails.get(index).map_or(0, |m| m.uid);
        format!("{uid:08X}{:08X}", inbox.uidvalidity)
    }

    /// One command after login; `false` if it counts as a bad command.
    fn transaction(&mut self, cmd: &str, args: &str, user: &str, out: &mut Step) -> bool {
        let args = args.trim_start_matches(' ');
        let store = Arc::clone(&self.store);
        let mails = &store.inbox().mails;
        let live = || {
            mails
                .iter()
                .zip(&self.deleted)
                .enumerate()
                .filter(|(_, (_, d))| !**d)
        };
        match cmd {
            "CAPA" => out.send(format!("+OK\r\n{CAPABILITIES}.\r\n").as_bytes()),
            "STAT" => {
                let (n, size) = live().fold((0, 0), |(n, s), (_, (m, _))| (n + 1, s + m.size()));
                out.send(format!("+OK {n} {size}\r\n").as_bytes());
            }
            "LIST" if args.is_empty() => {
                let mut text = format!("+OK {} messages:\r\n", live().count());
                for (i, (m, _)) in live() {
                    text.push_str(&format!("{} {}\r\n", i + 1, m.size()));
                }
                text.push_str(".\r\n");
                out.send(text.as_bytes());
            }
            "LIST" => {
                let Some((i, _)) = self.msgnum(args, false, out) else {
                    return false;
                };
                out.send(
                    format!("+OK {} {}\r\n", i + 1, mails.get(i).map_or(0, Mail::size)).as_bytes(),
                );
            }
            "UIDL" if args.is_empty() => {
                let mut text = String::from("+OK\r\n");
                for (i, _) in live() {
                    text.push_str(&format!("{} {}\r\n", i + 1, self.uidl(i)));
                }
                text.push_str(".\r\n");
                out.send(text.as_bytes());
            }
            "UIDL" => {
                let Some((i, _)) = self.msgnum(args, false, out) else {
                    return false;
                };
                out.send(format!("+OK {} {}\r\n", i + 1, self.uidl(i)).as_bytes());
            }
            "RETR" | "TOP" => {
                let Some((i, rest)) = self.msgnum(args, cmd == "TOP", out) else {
                    return false;
                };
                let Some(mail) = mails.get(i) else {
                    return false;
                };
                let lines = if cmd == "TOP" {
                    let Some((n, _)) = parse_number(rest, "size", false, out) else {
                        return false;
                    };
                    out.send(b"+OK\r\n");
                    Some(n)
                } else {
                    out.send(format!("+OK {} octets\r\n", mail.size()).as_bytes());
                    None
                };
                out.send(&dot_stuff(mail.header(), mail.body(), lines));
                let num = (i + 1).to_string();
                let kind = if cmd == "TOP" { "top" } else { "retr" };
                out.event(
                    kind,
                    Severity::Warning,
                    &[
                        ("message_num", &num),
                        ("subject", &mail.subject),
                        ("username", &clip(user)),
                    ],
                );
            }
            "DELE" => {
                let Some((i, _)) = self.msgnum(args, false, out) else {
                    return false;
                };
                if let Some(d) = self.deleted.get_mut(i) {
                    *d = true;
                }
                let num = (i + 1).to_string();
                let subject = mails.get(i).map_or("", |m| m.subject.as_str());
                out.event(
                    "delete",
                    Severity::Warning,
                    &[
                        ("message_num", &num),
                        ("subject", subject),
                        ("username", &clip(user)),
                    ],
                );
                out.send(b"+OK Marked to be deleted.\r\n");
            }
            "RSET" => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                out.send(b"+OK\r\n");
            }
            "NOOP" => out.send(b"+OK\r\n"),
            "QUIT" => {
                if self.deleted.iter().any(|d| *d) {
                    out.send(b"+OK Logging out, messages deleted.\r\n");
                } else {
                    out.send(b"+OK Logging out.\r\n");
                }
                out.close();
            }
            _ => {
                out.send(format!("-ERR Unknown command: {}\r\n", clip(cmd)).as_bytes());
                return false;
            }
        }
        true
    }

    fn line(&mut self, line: &[u8], out: &mut Step) {
        let text = String::from_utf8_lossy(line);
        if std::mem::take(&mut self.sasl_pending) {
            self.plain_response(&text, false, out);
            return;
        }
        let (cmd, args) = text.split_once(' ').unwrap_or((&text, ""));
        let cmd = cmd.to_ascii_uppercase();
        let state = self.state.clone();
        let logged = if matches!(cmd.as_str(), "PASS" | "AUTH" | "APOP") {
            ""
        } else {
            args
        };
        let (ok, limit, bye) = match &state {
            State::Authorization => {
                out.event(
                    "command",
                    Severity::Info,
                    &[
                        ("cmd", &clip(&cmd)),
                        ("args", &clip(logged)),
                        ("state", "authorization"),
                    ],
                );
                let ok = self.authorization(&cmd, args, out);
                (ok, MAX_BAD_LOGIN, "-ERR Too many invalid bad commands.\r\n")
            }
            State::Transaction { user } => {
                out.event(
                    "command",
                    Severity::Info,
                    &[
                        ("cmd", &clip(&cmd)),
                        ("args", &clip(logged)),
                        ("state", "transaction"),
                    ],
                );
                let ok = self.transaction(&cmd, args, user, out);
                // The mail process disconnects on the 21st, the login process on the 3rd.
                (ok, MAX_BAD + 1, "-ERR Too many bad commands.\r\n")
            }
        };
        if ok {
            self.bad = 0;
        } else {
            self.bad += 1;
            if self.bad >= limit {
                out.send(bye.as_bytes());
                out.close();
            }
        }
    }
}

/// Parse an unsigned number like Dovecot's `str_parse_uint`; on error the reply is sent.
fn parse_number<'a>(
    args: &'a str,
    what: &str,
    then_space: bool,
    out: &mut Step,
) -> Option<(u64, &'a str)> {
    let digits = args.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        out.send(format!("-ERR Invalid {what}: {}\r\n", clip(args)).as_bytes());
        return None;
    }
    let (num, rest) = args.split_at(digits);
    let limit = if what == "size" {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    };
    let Some(n) = num.parse::<u64>().ok().filter(|n| *n <= limit) else {
        let what = if what == "size" {
            "Size"
        } else {
            "Message number"
        };
        out.send(format!("-ERR {what} too large: {}\r\n", clip(args)).as_bytes());
        return None;
    };
    let expected_space = if then_space {
        rest.starts_with(' ')
    } else {
        rest.is_empty()
    };
    if !expected_space {
        let what = if what == "size" {
            "size"
        } else {
            "message number"
        };
        out.send(format!("-ERR Noise after {what}: {}\r\n", clip(rest)).as_bytes());
        return None;
    }
    Some((n, rest))
}

/// A message (or its header and first `lines` body lines) as a dot-stuffed multi-line reply.
fn dot_stuff(header: &str, body: &str, lines: Option<u64>) -> Vec<u8> {
    let body: String = match lines {
        None => body.to_owned(),
        Some(n) => body
            .split_inclusive("\r\n")
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .collect(),
    };
    let mut out = Vec::with_capacity(header.len() + body.len() + 8);
    for line in header
        .split_inclusive("\r\n")
        .chain(body.split_inclusive("\r\n"))
    {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

impl Session for Pop3Session {
    fn start(&mut self, step: &mut Step) {
        step.send(format!("+OK {}\r\n", self.banner).as_bytes());
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if self.closed {
            return;
        }
        for line in self.lines.push(data) {
            let too_long = match &line {
                Line::TooLong(_) => true,
                Line::Complete(l) => l.len() > MAX_LINE && self.state != State::Authorization,
            };
            if too_long {
                let (reply, sname) = if self.state == State::Authorization {
                    ("-ERR Input buffer full, aborting\r\n", "authorization")
                } else {
                    ("-ERR Input line too long.\r\n", "transaction")
                };
                step.event(
                    "protocol_error",
                    Severity::Notice,
                    &[("error", "line too long"), ("state", sname)],
                );
                step.send(reply.as_bytes());
                step.close();
            } else if let Line::Complete(l) = line {
                self.line(&l, step);
            }
            if step.close {
                self.closed = true;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
