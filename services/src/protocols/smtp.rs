//! smtp and smtp_relay: a Postfix 3.7 `smtpd` persona (Debian's defaults; the banner names
//! the distribution the way its package does).
//!
//! Replies, enhanced status codes and limits follow Postfix: `line_length_limit` 2048 (longer
//! commands are cut there), `message_size_limit` 10240000, `smtpd_recipient_limit` 1000, a
//! one-second pause on every reply after ten errors and a `421` hang-up at twenty, and the
//! `221 2.7.0` hang-up on HTTP and mail-header lines sent as commands. AUTH PLAIN and LOGIN
//! (Cyrus/Dovecot prompts) capture the decoded credentials. In `smtp` mode authentication
//! always fails and mail is accepted for local mailboxes only (others get `Relay access
//! denied`); in `smtp_relay` mode the server is an open relay that accepts any credentials and
//! any recipient. Accepted messages are hashed and, with a quarantine directory, kept there.

mod auth;
mod body;
mod envelope;

use std::{sync::Arc, time::Duration};

use decnet_store::Severity;
use rand::{Rng, SeedableRng, rngs::StdRng};

use self::{
    auth::Sasl,
    body::{DotReader, Message},
};
use super::{
    banner::greeting_line,
    line::{Line, LineBuffer},
};
use crate::{
    persona::Persona,
    runtime::Protocol,
    session::{ConnInfo, Session, Step},
};

/// Postfix's `line_length_limit`.
const MAX_LINE: usize = 2048;
/// Postfix's `message_size_limit`, as announced in EHLO.
pub const MAX_MESSAGE: usize = 10_240_000;
/// Postfix's `smtpd_recipient_limit`.
const MAX_RECIPIENTS: usize = 1000;
/// Postfix's `smtpd_soft_error_limit`, `smtpd_hard_error_limit`, `smtpd_error_sleep_time`
/// and `smtpd_junk_command_limit`.
const SOFT_ERRORS: u32 = 10;
const HARD_ERRORS: u32 = 20;
const ERROR_SLEEP: Duration = Duration::from_secs(1);
const JUNK_LIMIT: u32 = 100;
/// Bytes of an attacker-supplied value recorded per event field.
const LOGGED: usize = 512;

/// Mailboxes a stock Debian host has (passwd users and `/etc/aliases`).
const LOCAL_USERS: &[&str] = &[
    "root",
    "postmaster",
    "mailer-daemon",
    "abuse",
    "hostmaster",
    "webmaster",
    "www",
    "www-data",
    "noc",
    "security",
    "nobody",
    "news",
    "usenet",
    "ftp",
    "admin",
    "info",
    "mail",
    "backup",
];

/// The service as configured for one host.
#[derive(Debug, Clone)]
pub struct Smtp {
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    relay: bool,
    hostname: String,
    greeting: String,
    quarantine: bool,
}

impl Smtp {
    /// `relay`: the open-relay persona (`smtp_relay`).
    pub fn from_persona(p: &Persona, relay: bool) -> Self {
        let hostname: String = p
            .get("SMTP_MTA")
            .unwrap_or_else(|| p.hostname())
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        // Each distribution's packaged main.cf names itself in smtpd_banner (or does not).
        let vendor = match p.distro() {
            "debian" | "kali" => " (Debian/GNU)",
            d if d.starts_with("ubuntu") => " (Ubuntu)",
            _ => "",
        };
        let default_banner = format!("{hostname} ESMTP Postfix{vendor}");
        Self {
            config: Arc::new(Config {
                relay,
                greeting: greeting_line(p.get("SMTP_BANNER").unwrap_or(&default_banner), "220"),
                hostname,
                quarantine: p.get("QUARANTINE_DIR").is_some(),
            }),
        }
    }

    /// A session whose queue IDs come from `seed` (tests pin it).
    pub fn session_seeded(&self, seed: u64) -> SmtpSession {
        SmtpSession::new(Arc::clone(&self.config), seed)
    }
}

impl Protocol for Smtp {
    fn slug(&self) -> &'static str {
        if self.config.relay {
            "smtp_relay"
        } else {
            "smtp"
        }
    }

    fn default_ports(&self) -> &'static [u16] {
        &[25, 587]
    }

    fn session(&self, _conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(self.session_seeded(rand::rng().random()))
    }
}

#[derive(Debug)]
enum Mode {
    Command,
    Auth(Sasl),
    Data(DotReader),
    /// Inside a BDAT chunk: bytes still to come, whether it is the last one.
    Chunk {
        left: u64,
        last: bool,
    },
}

/// One client connection.
#[derive(Debug)]
pub struct SmtpSession {
    config: Arc<Config>,
    rng: StdRng,
    lines: LineBuffer,
    /// The start of a command longer than the line limit, handled once its end arrives.
    long: Option<Vec<u8>>,
    mode: Mode,
    helo: Option<String>,
    sender: Option<String>,
    recipients: Vec<String>,
    /// BDAT content gathered so far in this transaction.
    chunks: Option<Message>,
    /// BDAT chunks of a transaction that cannot be delivered are read and dropped.
    chunks_rejected: bool,
    authenticated: bool,
    errors: u32,
    junk: u32,
    closed: bool,
}

fn clip(text: &str) -> String {
    text.chars().take(LOGGED).collect()
}

/// `<user@domain>` or a bare address out of a MAIL/RCPT argument, and what follows it.
fn split_address(arg: &str) -> (&str, &str) {
    let arg = arg.trim_start();
    let end = if arg.starts_with('<') {
        arg.find('>').map_or_else(
            || arg.find(char::is_whitespace).unwrap_or(arg.len()),
            |i| i + 1,
        )
    } else {
        arg.find(char::is_whitespace).unwrap_or(arg.len())
    };
    (&arg[..end], &arg[end..])
}

/// The address inside the brackets, without a source route; `None` for junk.
fn bare_address(token: &str) -> Option<String> {
    let inner = token
        .strip_prefix('<')
        .map_or(token, |t| t.strip_suffix('>').unwrap_or(t));
    let inner = match inner.strip_prefix('@') {
        Some(route) => route.split_once(':').map_or(inner, |(_, a)| a),
        None => inner,
    };
    let junk = inner
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | '(' | ')'));
    (!junk).then(|| inner.to_owned())
}

/// The ESMTP keyword of a `MAIL`/`RCPT`: `FROM:` / `TO:` with the address glued on or not.
fn after_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = rest.trim_start();
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &rest[keyword.len()..])
        .filter(|a| !a.trim().is_empty())
}

/// Postfix's `is_header`: a token that looks like `Name:` (a mail header sent as a command).
fn is_header(token: &str) -> bool {
    token.len() > 1
        && token.ends_with(':')
        && token[..token.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':')
}

impl SmtpSession {
    fn new(config: Arc<Config>, seed: u64) -> Self {
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
            lines: LineBuffer::new(MAX_LINE),
            long: None,
            mode: Mode::Command,
            helo: None,
            sender: None,
            recipients: Vec::new(),
            chunks: None,
            chunks_rejected: false,
            authenticated: false,
            errors: 0,
            junk: 0,
            closed: false,
        }
    }

    /// Send one reply line; after too many errors every reply waits first, as Postfix does.
    fn reply(&self, step: &mut Step, text: &str) {
        if self.errors >= SOFT_ERRORS {
            step.delay(ERROR_SLEEP);
        }
        step.send(text.as_bytes());
        step.send(b"\r\n");
    }

    /// Send an error reply and count it.
    fn fail(&mut self, step: &mut Step, text: &str) {
        self.reply(step, text);
        self.errors += 1;
    }

    fn hang_up(&mut self, step: &mut Step, text: &str) {
        self.reply(step, text);
        step.close();
        self.closed = true;
    }

    fn reset_transaction(&mut self) {
        self.sender = None;
        self.recipients.clear();
        self.chunks = None;
        self.chunks_rejected = false;
    }

    fn line(&mut self, raw: &[u8], step: &mut Step) {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Auth(state) => self.auth_response(state, raw, step),
            _ => self.command(raw, step),
        }
        self.check_errors(step);
    }

    /// Postfix hangs up before reading another command once the hard limit is reached.
    fn check_errors(&mut self, step: &mut Step) {
        if !self.closed && self.errors >= HARD_ERRORS {
            let text = format!("421 4.7.0 {} Error: too many errors", self.config.hostname);
            step.event("too_many_errors", Severity::Notice, &[]);
            self.hang_up(step, &text);
        }
    }

    #[allow(clippy::too_many_lines)] // the command table
    fn command(&mut self, raw: &[u8], step: &mut Step) {
        let Ok(text) = std::str::from_utf8(raw) else {
            self.fail(step, "500 5.5.2 Error: bad UTF-8 syntax");
            return;
        };
        let Some(first) = text.split_whitespace().next() else {
            self.fail(step, "500 5.5.2 Error: bad syntax");
            return;
        };
        let verb = first.to_ascii_uppercase();
        let rest = text.trim_start()[first.len()..].trim();
        let args: Vec<&str> = rest.split_whitespace().collect();
        if matches!(
            verb.as_str(),
            "HELO" | "EHLO" | "NOOP" | "VRFY" | "RSET" | "ETRN"
        ) {
            self.junk += 1;
            if self.junk > JUNK_LIMIT {
                self.errors += 1;
            }
        }
        match verb.as_str() {
            "EHLO" | "HELO" => self.helo(&verb, &args, step),
            "AUTH" => self.auth(&args, step),
            "MAIL" => self.mail(rest, step),
            "RCPT" => self.rcpt(rest, step),
            "DATA" => self.data_cmd(&args, step),
            "BDAT" => self.bdat(&args, step),
            "RSET" if !args.is_empty() => self.fail(step, "501 5.5.4 Syntax: RSET"),
            "RSET" => {
                self.reset_transaction();
                self.reply(step, "250 2.0.0 Ok");
            }
            "NOOP" => self.reply(step, "250 2.0.0 Ok"),
            "QUIT" => self.hang_up(step, "221 2.0.0 Bye"),
            "VRFY" => self.vrfy(rest, step),
            "ETRN" => self.etrn(&args, step),
            "STARTTLS" => self.fail(step, "502 5.5.1 Error: command not implemented"),
            "XCLIENT" | "XFORWARD" => {
                self.fail(step, "550 5.7.0 Error: insufficient authorization");
            }
            _ => {
                step.event(
                    "unknown_command",
                    Severity::Notice,
                    &[("command", &clip(text.trim()))],
                );
                if matches!(verb.as_str(), "CONNECT" | "GET" | "POST") || is_header(first) {
                    self.hang_up(step, "221 2.7.0 Error: I can break rules, too. Goodbye.");
                } else {
                    self.fail(step, "502 5.5.2 Error: command not recognized");
                }
            }
        }
    }

    fn helo(&mut self, verb: &str, args: &[&str], step: &mut Step) {
        if args.is_empty() {
            self.fail(step, &format!("501 Syntax: {verb} hostname"));
            return;
        }
        let domain = args.join(" ");
        step.event(
            "ehlo",
            Severity::Info,
            &[("domain", &clip(&domain)), ("verb", verb)],
        );
        self.reset_transaction();
        self.helo = Some(domain);
        let host = &self.config.hostname;
        if verb == "HELO" {
            self.reply(step, &format!("250 {host}"));
            return;
        }
        let keywords = [
            host.as_str(),
            "PIPELINING",
            "SIZE 10240000",
            "VRFY",
            "ETRN",
            "AUTH PLAIN LOGIN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ];
        for (i, k) in keywords.iter().enumerate() {
            let sep = if i + 1 == keywords.len() { ' ' } else { '-' };
            self.reply(step, &format!("250{sep}{k}"));
        }
    }

    fn etrn(&mut self, args: &[&str], step: &mut Step) {
        if self.sender.is_some() {
            self.fail(step, "503 Error: MAIL transaction in progress");
        } else if let [domain] = args {
            let domain = domain.trim_start_matches(['@', '#']);
            self.fail(
                step,
                &format!("459 <{}>: service unavailable", clip(domain)),
            );
        } else {
            self.fail(step, "500 Syntax: ETRN domain");
        }
    }

    /// Feed bytes in command or AUTH mode: at most one line, so a mode switch it causes
    /// applies to the very next byte.
    fn feed_lines<'a>(&mut self, data: &'a [u8], step: &mut Step) -> &'a [u8] {
        let end = data
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| i + 1);
        let (chunk, rest) = data.split_at(end);
        for line in self.lines.push(chunk) {
            match line {
                Line::Complete(l) => self.line(&l, step),
                // Postfix reads the rest of an overlong line and acts on its start.
                Line::TooLong(start) => self.long = Some(start),
            }
        }
        if chunk.ends_with(b"\n")
            && let Some(start) = self.long.take()
        {
            self.line(&start, step);
        }
        rest
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session for SmtpSession {
    fn start(&mut self, step: &mut Step) {
        step.send(self.config.greeting.as_bytes());
    }

    fn idle(&mut self, step: &mut Step) {
        // smtpd_timeout expired.
        if !self.closed {
            let text = format!("421 4.4.2 {} Error: timeout exceeded", self.config.hostname);
            self.reply(step, &text);
        }
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        let mut rest = data;
        while !rest.is_empty() && !self.closed {
            match &mut self.mode {
                Mode::Data(reader) => match reader.feed(rest) {
                    Some(used) => {
                        rest = &rest[used..];
                        let Mode::Data(reader) = std::mem::replace(&mut self.mode, Mode::Command)
                        else {
                            return;
                        };
                        self.deliver(reader.message, step);
                        self.check_errors(step);
                    }
                    None => rest = &[],
                },
                Mode::Chunk { left, last } => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(rest.len());
                    let last = *last;
                    *left -= take as u64;
                    let done = *left == 0;
                    if !self.chunks_rejected
                        && let Some(message) = self.chunks.as_mut()
                    {
                        message.push(&rest[..take]);
                    }
                    rest = &rest[take..];
                    if done {
                        self.chunk_done(last, step);
                        self.check_errors(step);
                    }
                }
                Mode::Command | Mode::Auth(_) => rest = self.feed_lines(rest, step),
            }
        }
    }
}

#[cfg(test)]
mod tests;
