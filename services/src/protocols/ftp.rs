//! ftp: a vsftpd 3.0.3 persona with a per-host bait directory.
//!
//! Replies, their order and their edge cases follow vsftpd 3.0.3's `prelogin.c` and
//! `postlogin.c` with Debian's defaults plus the settings of a box that was opened up for file
//! drops: anonymous login (`FTP_ANONYMOUS`) and local users (`FTP_USERS`) chrooted to the
//! bait root, anonymous upload and mkdir allowed, everything else for anonymous denied, one
//! second of delay after a failed login and a hang-up after the third. The data channel is
//! the runtime's ([`DataOp`](crate::session::DataOp)); the session only decides what flows
//! over it. Every upload is hashed and, when a quarantine directory is configured, kept there
//! under its SHA-256.

mod bait;
mod files;
mod fs;
mod transfer;

use std::{
    collections::VecDeque,
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use decnet_store::Severity;

use self::{
    bait::{Identity, seed_of},
    fs::{Body, Node, Tree},
    transfer::{Transfer, Upload},
};
use super::{
    banner::greeting_line,
    line::{Line, LineBuffer},
};
use crate::{
    persona::{Persona, Stock},
    runtime::Protocol,
    session::{ConnInfo, DataEvent, Session, Step},
};

/// vsftpd's `VSFTP_MAX_COMMAND_LINE`.
const MAX_LINE: usize = 4096;
/// Bytes of one upload kept (and hashed); the rest is counted and dropped.
pub const MAX_UPLOAD: usize = 16 * 1024 * 1024;
/// Uploads small enough to be read back in the same session, and their total.
const KEEP_FILE: usize = 256 * 1024;
const KEEP_TOTAL: usize = 1024 * 1024;
/// Commands held while a transfer runs (a client that pipelines more is cut short).
const MAX_QUEUED: usize = 128;
/// Command arguments recorded per event.
const LOGGED_ARG: usize = 512;
/// vsftpd's `delay_failed_login` and `max_login_fails`.
const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);
const MAX_LOGIN_FAILS: u8 = 3;

/// The `ftp` system user anonymous sessions run as, and the first local user.
const FTP_UID: u32 = 106;
const FTP_GID: u32 = 113;
const USER_UID: u32 = 1000;

const FEAT: &str = "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n \
                    TVFS\r\n UTF8\r\n211 End\r\n";
const HELP: &str = "214-The following commands are recognized.\r\n \
                    ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD\r\n \
                    MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR RMD  RNFR\r\n \
                    RNTO SITE SIZE SMNT STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD\r\n \
                    XPWD XRMD\r\n214 Help OK.\r\n";

/// The service as configured for one host.
#[derive(Debug, Clone)]
pub struct Ftp {
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    greeting: String,
    /// vsftpd version of the persona's distro, for STAT.
    version: &'static str,
    anonymous: bool,
    users: Vec<(String, String)>,
    bait: Vec<bait::BaitFile>,
    /// Uploads are written to quarantine (so events name the stored file).
    quarantine: bool,
}

impl Ftp {
    pub fn from_persona(p: &Persona) -> Self {
        let hostname = p.hostname().to_owned();
        let domain = hostname
            .split_once('.')
            .map_or_else(|| "corp.local".to_owned(), |(_, d)| d.to_ascii_lowercase());
        let id = Identity {
            seed: seed_of(&hostname),
            hostname,
            domain,
        };
        Self {
            config: Arc::new(Config {
                greeting: greeting_line(
                    &p.get("FTP_BANNER").map_or_else(
                        || format!("220 (vsFTPd {})", p.stock_version(Stock::Vsftpd)),
                        str::to_owned,
                    ),
                    "220",
                ),
                version: p.stock_version(Stock::Vsftpd),
                anonymous: p.flag("FTP_ANONYMOUS", true),
                users: p.credentials("FTP_USERS"),
                bait: bait::generate(&id),
                quarantine: p.get("QUARANTINE_DIR").is_some(),
            }),
        }
    }

    /// A session as of `now` (Unix seconds): listings date themselves against it.
    pub fn session_at(&self, conn: &ConnInfo, now: i64) -> FtpSession {
        FtpSession::new(Arc::clone(&self.config), conn, now)
    }
}

impl Protocol for Ftp {
    fn slug(&self) -> &'static str {
        "ftp"
    }

    fn default_ports(&self) -> &'static [u16] {
        &[21]
    }

    fn session(&self, conn: &ConnInfo) -> Box<dyn Session> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Box::new(self.session_at(conn, now))
    }
}

#[derive(Debug)]
enum Login {
    /// Not logged in; the name given with USER, if any.
    Out(String),
    In {
        user: String,
        anonymous: bool,
    },
}

#[derive(Debug)]
enum Input {
    Line(Vec<u8>),
    TooLong,
}

/// One client connection.
#[derive(Debug)]
pub struct FtpSession {
    config: Arc<Config>,
    peer: IpAddr,
    local: IpAddr,
    now: i64,
    lines: LineBuffer,
    queue: VecDeque<Input>,
    login: Login,
    fails: u8,
    tree: Tree,
    cwd: String,
    ascii: bool,
    rest: u64,
    rnfr: Option<String>,
    epsv_all: bool,
    /// PASV/EPSV asked the runtime for a listener; `true` for EPSV.
    listening: Option<bool>,
    /// PASV or PORT set up the channel the next transfer uses.
    channel: bool,
    transfer: Option<Transfer>,
    kept: usize,
    closed: bool,
}

fn clip(text: &str) -> String {
    text.chars().take(LOGGED_ARG).collect()
}

fn quote(path: &str) -> String {
    path.replace('"', "\"\"")
}

/// vsftpd's `str_a_to_filesize_t`: leading digits of a short string, else 0.
fn filesize(arg: &str) -> u64 {
    if arg.len() > 15 {
        return 0;
    }
    arg.bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
}

/// C `atoi`: optional sign and leading digits, 0 otherwise.
fn atoi(text: &str) -> i64 {
    let text = text.trim_start();
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .take(12)
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    if neg { -n } else { n }
}

impl FtpSession {
    fn new(config: Arc<Config>, conn: &ConnInfo, now: i64) -> Self {
        let mut tree = Tree::new(Node::dir(
            config.bait.first().map_or(now, |b| b.mtime - 86_400),
            "drwxr-xr-x",
            0,
            0,
            false,
        ));
        for file in &config.bait {
            tree.insert(
                &format!("/{}", file.name),
                Node {
                    dir: false,
                    size: file.bytes.len() as u64,
                    mtime: file.mtime,
                    mode: "-rw-r--r--",
                    uid: USER_UID,
                    gid: USER_UID,
                    body: Body::Bait(Arc::clone(&file.bytes)),
                    ours: false,
                },
            );
        }
        Self {
            config,
            peer: conn.peer.ip(),
            local: conn.local.ip(),
            now,
            lines: LineBuffer::new(MAX_LINE),
            queue: VecDeque::new(),
            login: Login::Out(String::new()),
            fails: 0,
            tree,
            cwd: "/".to_owned(),
            ascii: false,
            rest: 0,
            rnfr: None,
            epsv_all: false,
            listening: None,
            channel: false,
            transfer: None,
            kept: 0,
            closed: false,
        }
    }

    fn busy(&self) -> bool {
        self.listening.is_some() || self.transfer.is_some()
    }

    fn anonymous(&self) -> bool {
        matches!(
            self.login,
            Login::In {
                anonymous: true,
                ..
            }
        )
    }

    fn reply(step: &mut Step, code: u16, text: &str) {
        step.send(format!("{code} {text}\r\n").as_bytes());
    }

    fn hang_up(&mut self, step: &mut Step, code: u16, text: &str) {
        Self::reply(step, code, text);
        step.close();
        self.closed = true;
    }

    fn pump(&mut self, step: &mut Step) {
        while !self.busy() && !self.closed {
            match self.queue.pop_front() {
                Some(Input::Line(line)) => self.command(&line, step),
                Some(Input::TooLong) => self.hang_up(step, 500, "Input line too long."),
                None => break,
            }
        }
    }

    fn command(&mut self, raw: &[u8], step: &mut Step) {
        // A telnet IP/SYNCH pair in front marks an urgent ABOR; vsftpd takes it as ABOR.
        let raw = raw.strip_prefix(b"\xff\xf4\xff\xf2").unwrap_or(raw);
        let mut end = raw.len();
        while end > 0 && raw[end - 1] == b'\r' {
            end -= 1;
        }
        let text = String::from_utf8_lossy(&raw[..end]);
        let (cmd, arg) = if text == " " {
            (" ".to_owned(), String::new())
        } else {
            match text.split_once(' ') {
                Some((c, a)) => (c.to_ascii_uppercase(), a.to_owned()),
                None => (text.to_ascii_uppercase(), String::new()),
            }
        };
        if matches!(self.login, Login::Out(_)) {
            self.pre_login(&cmd, &arg, step);
        } else {
            self.post_login(&cmd, &arg, step);
        }
    }

    fn event_command(step: &mut Step, cmd: &str, arg: &str) {
        step.event(
            "command",
            Severity::Info,
            &[("cmd", &clip(cmd)), ("arg", &clip(arg))],
        );
    }

    fn pre_login(&mut self, cmd: &str, arg: &str, step: &mut Step) {
        match cmd {
            "USER" => {
                step.event("user", Severity::Info, &[("username", &clip(arg))]);
                self.login = Login::Out(arg.to_owned());
                Self::reply(step, 331, "Please specify the password.");
            }
            "PASS" => self.pass(arg, step),
            // vsftpd ignores empty lines (NAT helpers send them).
            "" if arg.is_empty() => {}
            _ => {
                Self::event_command(step, cmd, arg);
                match cmd {
                    "QUIT" => self.hang_up(step, 221, "Goodbye."),
                    "FEAT" => step.send(FEAT.as_bytes()),
                    "OPTS" => Self::opts(arg, step),
                    _ => Self::reply(step, 530, "Please login with USER and PASS."),
                }
            }
        }
    }

    fn pass(&mut self, password: &str, step: &mut Step) {
        let Login::Out(user) = &self.login else {
            return;
        };
        let user = user.clone();
        if user.is_empty() {
            Self::event_command(step, "PASS", password);
            Self::reply(step, 503, "Login with USER first.");
            return;
        }
        let upper = user.to_ascii_uppercase();
        let anonymous = upper == "FTP" || upper == "ANONYMOUS";
        let ok = (anonymous && self.config.anonymous)
            || (!anonymous
                && self
                    .config
                    .users
                    .iter()
                    .any(|(u, p)| *u == user && p == password));
        step.event(
            "auth_attempt",
            Severity::Warning,
            &[
                ("username", &clip(&user)),
                ("password", &clip(password)),
                ("success", if ok { "true" } else { "false" }),
            ],
        );
        if ok {
            self.login = Login::In { user, anonymous };
            Self::reply(step, 230, "Login successful.");
            return;
        }
        self.login = Login::Out(String::new());
        step.delay(FAILED_LOGIN_DELAY);
        Self::reply(step, 530, "Login incorrect.");
        self.fails += 1;
        if self.fails >= MAX_LOGIN_FAILS {
            step.close();
            self.closed = true;
        }
    }

    fn opts(arg: &str, step: &mut Step) {
        if arg.eq_ignore_ascii_case("UTF8 ON") {
            Self::reply(step, 200, "Always in UTF8 mode.");
        } else {
            Self::reply(step, 501, "Option not understood.");
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per FTP command, in vsftpd's order
    fn post_login(&mut self, cmd: &str, arg: &str, step: &mut Step) {
        let anonymous = self.anonymous();
        if !matches!(cmd, "RETR" | "STOR" | "APPE" | "STOU" | "") {
            Self::event_command(step, cmd, arg);
        }
        match cmd {
            "QUIT" => self.hang_up(step, 221, "Goodbye."),
            "PWD" | "XPWD" => Self::reply(
                step,
                257,
                &format!("\"{}\" is the current directory", quote(&self.cwd)),
            ),
            "CWD" | "XCWD" => self.cwd(arg, step),
            "CDUP" | "XCUP" => self.cwd("..", step),
            "PASV" | "P@SW" if !self.epsv_all => self.pasv(false, step),
            "EPSV" => self.epsv(arg, step),
            "RETR" => self.retr(arg, step),
            "NOOP" => Self::reply(step, 200, "NOOP ok."),
            "SYST" => Self::reply(step, 215, "UNIX Type: L8"),
            "HELP" => step.send(HELP.as_bytes()),
            "LIST" => self.list(arg, true, step),
            "NLST" => self.list(arg, false, step),
            "TYPE" => self.type_(arg, step),
            "PORT" if !self.epsv_all => self.port(arg, step),
            "EPRT" => self.eprt(arg, step),
            "STOR" => self.upload("STOR", arg, Upload::Store, step),
            "STOU" => self.upload("STOU", arg, Upload::Unique, step),
            "APPE" if !anonymous => self.upload("APPE", arg, Upload::Append, step),
            "MKD" | "XMKD" => self.mkd(arg, step),
            "RMD" | "XRMD" if !anonymous => self.rmd(arg, step),
            "DELE" if !anonymous => self.dele(arg, step),
            "RNFR" if !anonymous => self.rnfr(arg, step),
            "RNTO" if !anonymous => self.rnto(arg, step),
            "SITE" if !anonymous => Self::site(arg, step),
            "REST" => {
                self.rest = filesize(arg);
                Self::reply(
                    step,
                    350,
                    &format!("Restart position accepted ({}).", self.rest),
                );
            }
            "SIZE" => match self.file(arg) {
                Some(node) => Self::reply(step, 213, &node.size.to_string()),
                None => Self::reply(step, 550, "Could not get file size."),
            },
            "MDTM" => self.mdtm(arg, step),
            "ABOR" => Self::reply(step, 225, "No transfer to ABOR."),
            "STRU" => match arg.to_ascii_uppercase().as_str() {
                "F" => Self::reply(step, 200, "Structure set to F."),
                _ => Self::reply(step, 504, "Bad STRU command."),
            },
            "MODE" => match arg.to_ascii_uppercase().as_str() {
                "S" => Self::reply(step, 200, "Mode set to S."),
                _ => Self::reply(step, 504, "Bad MODE command."),
            },
            "ALLO" => Self::reply(step, 202, "ALLO command ignored."),
            "REIN" | "ACCT" | "SMNT" => {
                Self::reply(step, 502, &format!("{cmd} not implemented."));
            }
            "FEAT" => step.send(FEAT.as_bytes()),
            "OPTS" => Self::opts(arg, step),
            "STAT" if arg.is_empty() => self.stat(step),
            "STAT" => {
                let (listing, _) = self.listing(arg, true, true);
                step.send(b"213-Status follows:\r\n");
                step.send(&listing);
                Self::reply(step, 213, "End of status");
            }
            "USER" => match &self.login {
                Login::In {
                    anonymous: true, ..
                } => Self::reply(step, 530, "Can't change from guest user."),
                Login::In { user, .. } if user == arg => {
                    Self::reply(step, 331, "Any password will do.");
                }
                _ => Self::reply(step, 530, "Can't change to another user."),
            },
            "PASS" => Self::reply(step, 230, "Already logged in."),
            // What the configuration forbids this user (and TLS, which is off).
            "PASV" | "PORT" | "APPE" | "RMD" | "XRMD" | "DELE" | "RNFR" | "RNTO" | "SITE"
            | "PBSZ" | "PROT" => {
                if cmd == "APPE" {
                    Self::event_command(step, cmd, arg);
                }
                Self::reply(step, 550, "Permission denied.");
            }
            "" if arg.is_empty() => {}
            "GET" | "POST" | "HEAD" | "OPTIONS" | "CONNECT" => {
                self.hang_up(step, 500, "HTTP protocol commands not allowed.");
            }
            _ => Self::reply(step, 500, "Unknown command."),
        }
    }

    fn type_(&mut self, arg: &str, step: &mut Step) {
        match arg.to_ascii_uppercase().as_str() {
            "I" | "L8" | "L 8" => {
                self.ascii = false;
                Self::reply(step, 200, "Switching to Binary mode.");
            }
            "A" | "A N" => {
                self.ascii = true;
                Self::reply(step, 200, "Switching to ASCII mode.");
            }
            _ => Self::reply(step, 500, "Unrecognised TYPE command."),
        }
    }

    fn stat(&self, step: &mut Step) {
        let user = match &self.login {
            Login::In {
                anonymous: true, ..
            } => "ftp",
            Login::In { user, .. } => user.as_str(),
            Login::Out(_) => "",
        };
        let text = format!(
            "211-FTP server status:\r\n     Connected to {}\r\n     Logged in as {user}\r\n     \
             TYPE: {}\r\n     No session bandwidth limit\r\n     Session timeout in seconds is \
             300\r\n     Control connection is plain text\r\n     Data connections will be plain \
             text\r\n     At session startup, client count was 1\r\n     vsFTPd {} - secure, \
             fast, stable\r\n211 End of status\r\n",
            self.peer,
            if self.ascii { "ASCII" } else { "BINARY" },
            self.config.version,
        );
        step.send(text.as_bytes());
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Session for FtpSession {
    fn start(&mut self, step: &mut Step) {
        step.send(self.config.greeting.as_bytes());
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if self.closed {
            return;
        }
        for line in self.lines.push(data) {
            if self.queue.len() < MAX_QUEUED {
                self.queue.push_back(match line {
                    Line::Complete(l) => Input::Line(l),
                    Line::TooLong(_) => Input::TooLong,
                });
            }
            self.pump(step);
            if self.closed {
                return;
            }
        }
    }

    fn data(&mut self, event: DataEvent, step: &mut Step) {
        if self.closed {
            return;
        }
        self.data_event(event, step);
        self.pump(step);
    }

    fn idle(&mut self, step: &mut Step) {
        // vsftpd's idle_session_timeout alarm.
        if !self.closed {
            Self::reply(step, 421, "Timeout.");
        }
    }
}

#[cfg(test)]
mod tests;
