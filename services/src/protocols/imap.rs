//! imap: a Dovecot 2.3 (Debian) IMAP4rev1 persona over the host's bait mailbox.
//!
//! Before login it answers as `imap-login` does (its capability banner, its replies, three
//! bad commands and out); after login as the `imap` process does, down to the
//! `(0.001 + 0.000 secs)` timing suffix of every tagged reply. State machine
//! NOT_AUTH → AUTH → SELECTED. Every login attempt is recorded with the password, every
//! FETCH with the mailbox and UIDs read. Nothing an attacker does changes the mailbox for
//! anyone else: flags and expunges live in the session only.

mod fetch;
mod search;
mod syntax;

use std::sync::Arc;

use decnet_store::Severity;
use rand::{Rng, SeedableRng, rngs::StdRng};

use self::{
    fetch::{DELETED, DRAFT, Item, Msg, SEEN},
    syntax::{Arg, Frame, Framer, astring_out},
};
use super::{
    mailbox::{self, MailStore},
    sasl,
};
use crate::{
    persona::Persona,
    runtime::Protocol,
    session::{ConnInfo, Session, Step},
};

/// `IMAP_LOGIN_MAX_LINE_LENGTH`.
const MAX_LOGIN_COMMAND: usize = 8192;
/// `imap_max_line_length` default.
const MAX_COMMAND: usize = 65_536;
/// `imap-login` disconnects at this many bad commands.
const MAX_BAD_LOGIN: u32 = 3;
/// The `imap` process disconnects at this many bad commands in a row.
const MAX_BAD: u32 = 20;
const LOGGED: usize = 256;

const PRE_LOGIN_CAPS: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN";
const CAPS: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
     THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE \
     UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH \
     ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY \
     PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE";
const LOGIN_TAG_HINT: &str = "First parameter in line is IMAP's command tag, not the command \
     name. Add that before the command, like: a login user pass";

/// The service as configured for one host.
#[derive(Debug)]
pub struct Imap {
    banner: String,
    users: Vec<(String, String)>,
    store: Arc<MailStore>,
}

impl Imap {
    pub fn from_persona(p: &Persona) -> Self {
        Self::with_clock(p, mailbox::now_secs())
    }

    /// As [`Imap::from_persona`], with mail dated relative to `now` (Unix seconds).
    pub fn with_clock(p: &Persona, now: i64) -> Self {
        let users = mailbox::mail_users(p, "IMAP_USERS");
        Self {
            banner: p
                .get_or("IMAP_BANNER", "Dovecot (Debian) ready.")
                .to_owned(),
            users,
            store: Arc::new(mailbox::for_host(p, now)),
        }
    }

    fn session_with(&self, rng: StdRng) -> ImapSession {
        let folders = self
            .store
            .folders
            .iter()
            .map(|f| {
                let base = match f.name {
                    "Drafts" => DRAFT | SEEN,
                    _ => 0,
                };
                f.mails
                    .iter()
                    .enumerate()
                    .map(|(index, m)| Msg {
                        index,
                        uid: m.uid,
                        flags: base | if m.seen { SEEN } else { 0 },
                    })
                    .collect()
            })
            .collect();
        ImapSession {
            banner: self.banner.clone(),
            users: self.users.clone(),
            store: Arc::clone(&self.store),
            framer: Framer::new(MAX_LOGIN_COMMAND),
            state: State::NotAuth,
            mode: Mode::Commands,
            bad: 0,
            folders,
            rng,
            closed: false,
        }
    }
}

impl Protocol for Imap {
    fn slug(&self) -> &'static str {
        "imap"
    }

    fn default_ports(&self) -> &'static [u16] {
        // 993 is IMAP over TLS, which this persona does not speak.
        &[143]
    }

    fn session(&self, _conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(self.session_with(StdRng::from_os_rng()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    NotAuth,
    Auth {
        user: String,
    },
    Selected {
        user: String,
        folder: usize,
        read_only: bool,
    },
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::NotAuth => "NOT_AUTH",
            State::Auth { .. } => "AUTH",
            State::Selected { .. } => "SELECTED",
        }
    }

    fn user(&self) -> &str {
        match self {
            State::NotAuth => "",
            State::Auth { user } | State::Selected { user, .. } => user,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Commands,
    /// `AUTHENTICATE PLAIN` without an initial response: the next line is the response.
    AuthPlain {
        tag: String,
    },
    /// IDLE: waiting for `DONE`.
    Idle {
        tag: String,
    },
}

/// One client connection.
#[derive(Debug)]
pub struct ImapSession {
    banner: String,
    users: Vec<(String, String)>,
    store: Arc<MailStore>,
    framer: Framer,
    state: State,
    mode: Mode,
    bad: u32,
    /// Each folder as this session sees it (flags it set, messages it expunged).
    folders: Vec<Vec<Msg>>,
    /// Draws the plausible command timings Dovecot reports.
    rng: StdRng,
    closed: bool,
}

fn clip(s: &str) -> String {
    s.chars().take(LOGGED).collect()
}

/// Case-insensitive LIST pattern match: `*` matches anything, `%` anything but the separator.
///
/// One pass over the name per pattern byte (O(pattern × name)): the pattern is the attacker's,
/// and trying every split by recursion took exponential time on patterns of many wildcards.
fn list_match(pattern: &[u8], name: &[u8]) -> bool {
    // matched[j]: the pattern so far matches exactly `name[..j]`.
    let mut matched = vec![false; name.len() + 1];
    let mut next = matched.clone();
    matched[0] = true;
    for &p in pattern {
        // Whether some prefix the wildcard can extend from reaches the current position.
        let mut open = false;
        for (j, slot) in next.iter_mut().enumerate() {
            let before = j.checked_sub(1).and_then(|k| name.get(k));
            let here = matched.get(j).copied().unwrap_or(false);
            *slot = match p {
                b'*' => {
                    open |= here;
                    open
                }
                b'%' => {
                    // `%` cannot extend across a separator.
                    if before == Some(&b'.') {
                        open = false;
                    }
                    open |= here;
                    open
                }
                _ => {
                    before.is_some_and(|n| n.eq_ignore_ascii_case(&p))
                        && j.checked_sub(1).and_then(|k| matched.get(k)) == Some(&true)
                }
            };
        }
        std::mem::swap(&mut matched, &mut next);
        if !matched.contains(&true) {
            return false;
        }
    }
    matched.last() == Some(&true)
}

impl ImapSession {
    /// A tagged reply of the `imap` process, with its timing suffix.
    fn tagged(&mut self, tag: &str, text: &str, lock_wait: bool) -> String {
        let body = text.strip_suffix('.').unwrap_or(text);
        let cmd = if self.rng.random_ratio(1, 4) {
            0
        } else {
            self.rng.random_range(1..3)
        };
        let mut timing = format!(" (0.{cmd:03} + 0.000 ");
        if lock_wait {
            timing.push_str(&format!("+ 0.{:03} ", self.rng.random_range(0..2)));
        }
        let tag = if tag.is_empty() { "*" } else { tag };
        format!("{tag} {body}{timing}secs).\r\n")
    }

    fn login(&mut self, tag: &str, user: &str, pass: &str, mechanism: &str, out: &mut Step) {
        let ok = self.users.iter().any(|(u, p)| u == user && p == pass);
        out.event(
            "auth",
            Severity::Warning,
            &[
                ("username", &clip(user)),
                ("password", &clip(pass)),
                ("status", if ok { "success" } else { "failed" }),
                ("mechanism", mechanism),
            ],
        );
        if ok {
            out.send(format!("{tag} OK [CAPABILITY {CAPS}] Logged in\r\n").as_bytes());
            self.state = State::Auth {
                user: user.to_owned(),
            };
            self.framer.set_max(MAX_COMMAND);
            self.bad = 0;
        } else {
            out.send(
                format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n").as_bytes(),
            );
            out.delay(mailbox::AUTH_FAILURE_DELAY);
        }
    }

    fn plain_response(&mut self, tag: &str, response: &str, initial: bool, out: &mut Step) {
        if response == "*" {
            out.send(format!("{tag} BAD Authentication aborted by client.\r\n").as_bytes());
            return;
        }
        let decoded = if response == "=" {
            Some(Vec::new())
        } else {
            sasl::b64_decode(response.as_bytes())
        };
        let plain = decoded.as_deref().and_then(sasl::parse_plain);
        match (decoded.is_some(), plain) {
            (_, Some(p)) => self.login(tag, &p.username, &p.password, "PLAIN", out),
            (valid, None) => {
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
                if valid {
                    out.send(
                        format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
                            .as_bytes(),
                    );
                    out.delay(mailbox::AUTH_FAILURE_DELAY);
                } else {
                    let what = if initial { "initial" } else { "continued" };
                    out.send(
                        format!("{tag} BAD Invalid base64 data in {what} response\r\n").as_bytes(),
                    );
                }
            }
        }
    }

    fn id_reply(args: &[Arg], out: &mut Step) {
        if let Some(Arg::List(params)) = args.first() {
            let pairs: Vec<String> = params
                .chunks(2)
                .take(30)
                .map(|kv| {
                    let k = kv.first().and_then(Arg::astring).unwrap_or_default();
                    let v = kv
                        .get(1)
                        .and_then(Arg::astring)
                        .unwrap_or_else(|| "NIL".into());
                    format!("{}={}", clip(&k), clip(&v))
                })
                .collect();
            out.event(
                "id",
                Severity::Info,
                &[("params", &clip(&pairs.join("; ")))],
            );
        }
        out.send(b"* ID (\"name\" \"Dovecot\")\r\n");
    }

    /// A command before login, as `imap-login` runs it: `Ok(())` done, `Err(true)` for an
    /// unknown command, `Err(false)` for a bad one.
    fn not_auth(
        &mut self,
        tag: &str,
        name: &str,
        args: &[Arg],
        out: &mut Step,
    ) -> Result<(), bool> {
        match name {
            "CAPABILITY" => out.send(
                format!("* CAPABILITY {PRE_LOGIN_CAPS}\r\n{tag} OK Pre-login capabilities listed, post-login capabilities have more.\r\n")
                    .as_bytes(),
            ),
            "NOOP" => out.send(format!("{tag} OK NOOP completed.\r\n").as_bytes()),
            "LOGOUT" => {
                out.send(format!("* BYE Logging out\r\n{tag} OK Logout completed.\r\n").as_bytes());
                out.close();
            }
            "ENABLE" => out.send(format!("* ENABLED\r\n{tag} OK ENABLE ignored in non-authenticated state.\r\n").as_bytes()),
            "STARTTLS" => out.send(format!("{tag} BAD TLS support isn't enabled.\r\n").as_bytes()),
            "ID" => {
                Self::id_reply(args, out);
                out.send(format!("{tag} OK ID completed.\r\n").as_bytes());
            }
            "LOGIN" => {
                let (Some(user), Some(pass), None) = (
                    args.first().and_then(Arg::astring),
                    args.get(1).and_then(Arg::astring),
                    args.get(2),
                ) else {
                    return Err(false);
                };
                self.login(tag, &user, &pass, "LOGIN", out);
            }
            "AUTHENTICATE" => {
                let Some(mech) = args.first().and_then(Arg::astring) else { return Err(false) };
                let ir = args.get(1).and_then(Arg::astring);
                if !mech.eq_ignore_ascii_case("PLAIN") {
                    out.event(
                        "auth",
                        Severity::Warning,
                        &[("username", ""), ("password", ""), ("status", "failed"), ("mechanism", &clip(&mech.to_ascii_uppercase()))],
                    );
                    out.send(format!("{tag} NO [ALERT] Unsupported authentication mechanism.\r\n").as_bytes());
                } else if let Some(ir) = ir {
                    self.plain_response(tag, &ir, true, out);
                } else {
                    self.mode = Mode::AuthPlain { tag: tag.to_owned() };
                    out.send(b"+ \r\n");
                }
            }
            _ => return Err(true),
        }
        Ok(())
    }

    fn folder_index(&self, name: &str) -> Option<usize> {
        let store = &self.store;
        store.folders.iter().position(|f| {
            f.name == name || (f.name == "INBOX" && name.eq_ignore_ascii_case("INBOX"))
        })
    }

    fn list(
        &mut self,
        tag: &str,
        args: &[Arg],
        lsub: bool,
        out: &mut Step,
    ) -> Result<String, String> {
        let (Some(reference), Some(pattern)) = (
            args.first().and_then(Arg::astring).or(Some(String::new())),
            args.get(1).and_then(Arg::astring),
        ) else {
            return Err("Missing arguments.".into());
        };
        let verb = if lsub { "LSUB" } else { "LIST" };
        if pattern.is_empty() && !lsub {
            out.send(b"* LIST (\\Noselect) \".\" \"\"\r\n");
        } else {
            let full = format!("{reference}{pattern}");
            for f in &self.store.folders {
                if list_match(full.as_bytes(), f.name.as_bytes()) {
                    let attrs = if lsub {
                        String::new()
                    } else {
                        match f.special_use {
                            Some(su) => format!("\\HasNoChildren {su}"),
                            None => "\\HasNoChildren".into(),
                        }
                    };
                    out.send(
                        format!("* {verb} ({attrs}) \".\" {}\r\n", astring_out(f.name)).as_bytes(),
                    );
                }
            }
        }
        let done = if lsub {
            "OK Lsub completed."
        } else {
            "OK List completed."
        };
        Ok(self.tagged(tag, done, false))
    }

    fn status(&mut self, tag: &str, args: &[Arg], out: &mut Step) -> Result<String, String> {
        let (Some(name), Some(Arg::List(items))) =
            (args.first().and_then(Arg::astring), args.get(1))
        else {
            return Err("Invalid arguments.".into());
        };
        let Some(fi) = self.folder_index(&name) else {
            return Ok(self.tagged(
                tag,
                &format!("NO Mailbox doesn't exist: {}", clip(&name)),
                false,
            ));
        };
        let store = Arc::clone(&self.store);
        let folder = &store.folders[fi];
        let view = &self.folders[fi];
        let mut parts = Vec::new();
        for item in items {
            let key = item.atom().unwrap_or_default().to_ascii_uppercase();
            let value = match key.as_str() {
                "MESSAGES" => view.len() as u64,
                "RECENT" => 0,
                "UIDNEXT" => u64::from(folder.uidnext()),
                "UIDVALIDITY" => u64::from(folder.uidvalidity),
                "UNSEEN" => view.iter().filter(|m| m.flags & SEEN == 0).count() as u64,
                "SIZE" => view
                    .iter()
                    .filter_map(|m| folder.mails.get(m.index))
                    .map(|m| m.size() as u64)
                    .sum(),
                _ => return Err(format!("Invalid status item {}", clip(&key))),
            };
            parts.push(format!("{key} {value}"));
        }
        out.send(
            format!(
                "* STATUS {} ({})\r\n",
                astring_out(folder.name),
                parts.join(" ")
            )
            .as_bytes(),
        );
        Ok(self.tagged(tag, "OK Status completed.", false))
    }

    fn select(&mut self, tag: &str, name: &str, read_only: bool, out: &mut Step) -> String {
        let user = self.state.user().to_owned();
        self.state = State::Auth { user: user.clone() };
        let Some(fi) = self.folder_index(name) else {
            return self.tagged(
                tag,
                &format!("NO Mailbox doesn't exist: {}", clip(name)),
                false,
            );
        };
        let store = Arc::clone(&self.store);
        let folder = &store.folders[fi];
        let view = &self.folders[fi];
        let mut text = String::from("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
        if read_only {
            text.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
        } else {
            text.push_str("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n");
        }
        text.push_str(&format!("* {} EXISTS\r\n* 0 RECENT\r\n", view.len()));
        if let Some(first) = view.iter().position(|m| m.flags & SEEN == 0) {
            text.push_str(&format!("* OK [UNSEEN {}] First unseen.\r\n", first + 1));
        }
        text.push_str(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n",
            folder.uidvalidity,
            folder.uidnext()
        ));
        out.send(text.as_bytes());
        self.state = State::Selected {
            user,
            folder: fi,
            read_only,
        };
        let done = if read_only {
            "OK [READ-ONLY] Examine completed."
        } else {
            "OK [READ-WRITE] Select completed."
        };
        self.tagged(tag, done, true)
    }

    fn fetch(
        &mut self,
        tag: &str,
        args: &[Arg],
        uid: bool,
        out: &mut Step,
    ) -> Result<String, String> {
        let State::Selected {
            folder: fi,
            read_only,
            ..
        } = self.state
        else {
            return Err(String::new());
        };
        let (Some(set), Some(items)) = (args.first().and_then(Arg::astring), args.get(1)) else {
            return Err("Missing arguments.".into());
        };
        let mut items = fetch::parse_items(items)?;
        if uid && !items.contains(&Item::Uid) {
            items.insert(0, Item::Uid);
        }
        let store = Arc::clone(&self.store);
        let folder = &store.folders[fi];
        let view = &mut self.folders[fi];
        let chosen = fetch::sequence_set(&set, view, uid).ok_or("Invalid messageset")?;
        let mut uids = Vec::new();
        let mut read_body = false;
        for i in chosen {
            let Some(msg) = view.get_mut(i) else { continue };
            let Some(mail) = folder.mails.get(msg.index) else {
                continue;
            };
            let mut parts = Vec::new();
            let mut touched = false;
            for item in &items {
                let (text, reads) = fetch::render(item, mail, msg, store.tz);
                parts.push(text);
                touched |= reads;
            }
            read_body |= items
                .iter()
                .any(|i| matches!(i, Item::Body { .. } | Item::Rfc822(_)));
            if touched && !read_only && msg.flags & SEEN == 0 {
                msg.flags |= SEEN;
                if !items.contains(&Item::Flags) {
                    parts.push(format!("FLAGS {}", fetch::flags_text(msg.flags)));
                }
            }
            uids.push(msg.uid.to_string());
            out.send(format!("* {} FETCH ({})\r\n", i + 1, parts.join(" ")).as_bytes());
        }
        let sev = if read_body {
            Severity::Warning
        } else {
            Severity::Info
        };
        let item_names = match args.get(1) {
            Some(Arg::Atom(a)) => a.clone(),
            Some(Arg::List(l)) => l.iter().filter_map(Arg::atom).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        };
        out.event(
            "fetch",
            sev,
            &[
                ("mailbox", folder.name),
                ("uids", &clip(&uids.join(","))),
                ("items", &clip(&item_names)),
            ],
        );
        Ok(self.tagged(tag, "OK Fetch completed.", false))
    }

    fn store_flags(
        &mut self,
        tag: &str,
        args: &[Arg],
        uid: bool,
        out: &mut Step,
    ) -> Result<String, String> {
        let State::Selected {
            folder: fi,
            read_only,
            ..
        } = self.state
        else {
            return Err(String::new());
        };
        let (Some(set), Some(op)) = (
            args.first().and_then(Arg::astring),
            args.get(1).and_then(Arg::atom),
        ) else {
            return Err("Missing arguments.".into());
        };
        let op = op.to_ascii_uppercase();
        let silent = op.ends_with(".SILENT");
        let base = op.trim_end_matches(".SILENT");
        let names: Vec<String> = match args.get(2) {
            Some(Arg::List(l)) => l.iter().filter_map(Arg::astring).collect(),
            Some(_) => args[2..].iter().filter_map(Arg::astring).collect(),
            None => return Err("Missing arguments.".into()),
        };
        let mut bits = 0u8;
        for n in &names {
            bits |= fetch::flag_bit(n).ok_or_else(|| format!("Invalid system flag {}", clip(n)))?;
        }
        if read_only {
            return Ok(self.tagged(tag, "NO Mailbox is read-only.", false));
        }
        let view = &mut self.folders[fi];
        let chosen = fetch::sequence_set(&set, view, uid).ok_or("Invalid messageset")?;
        for i in chosen {
            let Some(msg) = view.get_mut(i) else { continue };
            msg.flags = match base {
                "FLAGS" => bits,
                "+FLAGS" => msg.flags | bits,
                "-FLAGS" => msg.flags & !bits,
                _ => return Err(format!("Invalid arguments: {}", clip(&op))),
            };
            if !silent {
                let uid_part = if uid {
                    format!(" UID {}", msg.uid)
                } else {
                    String::new()
                };
                out.send(
                    format!(
                        "* {} FETCH (FLAGS {}{uid_part})\r\n",
                        i + 1,
                        fetch::flags_text(msg.flags)
                    )
                    .as_bytes(),
                );
            }
        }
        Ok(self.tagged(tag, "OK Store completed.", false))
    }

    /// Remove \Deleted messages from the session's view, announcing each.
    fn expunge(&mut self, out: &mut Step) {
        let State::Selected {
            folder: fi,
            read_only: false,
            ..
        } = self.state
        else {
            return;
        };
        let view = &mut self.folders[fi];
        let mut i = 0;
        while i < view.len() {
            if view[i].flags & DELETED != 0 {
                view.remove(i);
                out.send(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
            } else {
                i += 1;
            }
        }
    }

    fn search(
        &mut self,
        tag: &str,
        args: &[Arg],
        uid: bool,
        out: &mut Step,
    ) -> Result<String, String> {
        let State::Selected { folder: fi, .. } = self.state else {
            return Err(String::new());
        };
        let store = Arc::clone(&self.store);
        let view = &self.folders[fi];
        let hits = search::search(args, view, &store.folders[fi].mails)?;
        let numbers: Vec<String> = hits
            .iter()
            .map(|&i| {
                if uid {
                    view[i].uid.to_string()
                } else {
                    (i + 1).to_string()
                }
            })
            .collect();
        let mut line = String::from("* SEARCH");
        for n in &numbers {
            line.push(' ');
            line.push_str(n);
        }
        out.send(format!("{line}\r\n").as_bytes());
        Ok(self.tagged(tag, "OK Search completed.", false))
    }

    /// A command after login, as the `imap` process runs it. `Err` carries the reason for a
    /// BAD reply (empty: no mailbox selected).
    fn authenticated(
        &mut self,
        tag: &str,
        name: &str,
        args: &[Arg],
        out: &mut Step,
    ) -> Result<String, String> {
        let selected = matches!(self.state, State::Selected { .. });
        let astr = |i: usize| args.get(i).and_then(Arg::astring);
        Ok(match name {
            "CAPABILITY" => {
                out.send(format!("* CAPABILITY {CAPS}\r\n").as_bytes());
                self.tagged(tag, "OK Capability completed.", false)
            }
            "NOOP" => self.tagged(tag, "OK NOOP completed.", false),
            "CHECK" if selected => self.tagged(tag, "OK Check completed.", false),
            "LOGOUT" => {
                out.send(b"* BYE Logging out\r\n");
                out.close();
                self.tagged(tag, "OK Logout completed.", false)
            }
            "ID" => {
                Self::id_reply(args, out);
                self.tagged(tag, "OK ID completed.", false)
            }
            "ENABLE" => {
                let enabled: Vec<String> = args
                    .iter()
                    .filter_map(Arg::atom)
                    .map(str::to_ascii_uppercase)
                    .filter(|c| c == "CONDSTORE" || c == "QRESYNC")
                    .collect();
                out.send(
                    format!(
                        "* ENABLED{}\r\n",
                        enabled.iter().map(|c| format!(" {c}")).collect::<String>()
                    )
                    .as_bytes(),
                );
                self.tagged(tag, "OK Enabled.", false)
            }
            "NAMESPACE" => {
                out.send(b"* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
                self.tagged(tag, "OK Namespace completed.", false)
            }
            "IDLE" => {
                self.mode = Mode::Idle {
                    tag: tag.to_owned(),
                };
                out.send(b"+ idling\r\n");
                String::new()
            }
            "SELECT" | "EXAMINE" => {
                let folder = astr(0).ok_or("Missing arguments.")?;
                self.select(tag, &folder, name == "EXAMINE", out)
            }
            "LIST" => self.list(tag, args, false, out)?,
            "LSUB" => self.list(tag, args, true, out)?,
            "STATUS" => self.status(tag, args, out)?,
            "CREATE" => {
                let folder = astr(0).ok_or("Missing arguments.")?;
                if self.folder_index(&folder).is_some() {
                    self.tagged(tag, "NO Mailbox already exists", false)
                } else {
                    self.tagged(tag, "OK Create completed.", false)
                }
            }
            "DELETE" => {
                let folder = astr(0).ok_or("Missing arguments.")?;
                match self.folder_index(&folder) {
                    Some(0) => self.tagged(tag, "NO INBOX can't be deleted.", false),
                    Some(_) => self.tagged(tag, "OK Delete completed.", false),
                    None => self.tagged(
                        tag,
                        &format!("NO Mailbox doesn't exist: {}", clip(&folder)),
                        false,
                    ),
                }
            }
            "RENAME" => {
                astr(1).ok_or("Missing arguments.")?;
                self.tagged(tag, "OK Rename completed.", false)
            }
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                astr(0).ok_or("Missing arguments.")?;
                let done = if name == "SUBSCRIBE" {
                    "OK Subscribe completed."
                } else {
                    "OK Unsubscribe completed."
                };
                self.tagged(tag, done, false)
            }
            "APPEND" => {
                let folder = astr(0).ok_or("Missing arguments.")?;
                let Some(Arg::Str(message)) = args.last() else {
                    return Err("Missing arguments.".into());
                };
                out.event(
                    "append",
                    Severity::Warning,
                    &[
                        ("mailbox", &clip(&folder)),
                        ("size", &message.len().to_string()),
                        ("preview", &clip(&String::from_utf8_lossy(message))),
                    ],
                );
                match self.folder_index(&folder) {
                    Some(fi) => {
                        let store = Arc::clone(&self.store);
                        let f = &store.folders[fi];
                        let done = format!(
                            "OK [APPENDUID {} {}] Append completed.",
                            f.uidvalidity,
                            f.uidnext()
                        );
                        self.tagged(tag, &done, false)
                    }
                    None => self.tagged(
                        tag,
                        &format!("NO [TRYCREATE] Mailbox doesn't exist: {}", clip(&folder)),
                        false,
                    ),
                }
            }
            "CLOSE" | "UNSELECT" if selected => {
                if name == "CLOSE" {
                    let mut sink = Step::default();
                    self.expunge(&mut sink);
                }
                self.state = State::Auth {
                    user: self.state.user().to_owned(),
                };
                let done = if name == "CLOSE" {
                    "OK Close completed."
                } else {
                    "OK Unselect completed."
                };
                self.tagged(tag, done, false)
            }
            "EXPUNGE" if selected => {
                self.expunge(out);
                self.tagged(tag, "OK Expunge completed.", false)
            }
            "FETCH" => self.fetch(tag, args, false, out)?,
            "STORE" => self.store_flags(tag, args, false, out)?,
            "SEARCH" => self.search(tag, args, false, out)?,
            "COPY" | "MOVE" if selected => {
                astr(1).ok_or("Missing arguments.")?;
                let done = if name == "COPY" {
                    "OK Copy completed."
                } else {
                    "OK Move completed."
                };
                self.tagged(tag, done, false)
            }
            "UID" => {
                let sub = args
                    .first()
                    .and_then(Arg::atom)
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let rest = args.get(1..).unwrap_or_default();
                match sub.as_str() {
                    "FETCH" => self.fetch(tag, rest, true, out)?,
                    "STORE" => self.store_flags(tag, rest, true, out)?,
                    "SEARCH" => self.search(tag, rest, true, out)?,
                    "COPY" | "MOVE" | "EXPUNGE" if selected => self.tagged(
                        tag,
                        &format!(
                            "OK {}{} completed.",
                            &sub[..1],
                            sub[1..].to_ascii_lowercase()
                        ),
                        false,
                    ),
                    "COPY" | "MOVE" | "EXPUNGE" => return Err(String::new()),
                    _ => return Err("Unknown command.".into()),
                }
            }
            "CHECK" | "CLOSE" | "UNSELECT" | "EXPUNGE" | "COPY" | "MOVE" => {
                return Err(String::new());
            }
            _ => return Err("Unknown command.".into()),
        })
    }

    fn bad(&mut self, out: &mut Step, limit: u32) -> bool {
        self.bad += 1;
        if self.bad >= limit {
            out.send(b"* BYE Too many invalid IMAP commands.\r\n");
            out.close();
            return true;
        }
        false
    }

    fn command(&mut self, bytes: &[u8], out: &mut Step) {
        match std::mem::replace(&mut self.mode, Mode::Commands) {
            Mode::AuthPlain { tag } => {
                let line = String::from_utf8_lossy(bytes).into_owned();
                self.plain_response(&tag, &line, false, out);
                return;
            }
            Mode::Idle { tag } => {
                let reply = if bytes.eq_ignore_ascii_case(b"DONE") {
                    self.tagged(&tag, "OK Idle completed.", true)
                } else {
                    self.tagged(&tag, "BAD Expected DONE.", false)
                };
                out.send(reply.as_bytes());
                return;
            }
            Mode::Commands => {}
        }
        let cmd = syntax::parse(bytes);
        let name = cmd.name.to_ascii_uppercase();
        let state = self.state.clone();
        let logged = if matches!(name.as_str(), "LOGIN" | "AUTHENTICATE") {
            cmd.args
                .as_ref()
                .ok()
                .and_then(|a| a.first())
                .and_then(Arg::astring)
                .unwrap_or_default()
        } else {
            let skip = cmd.tag.len() + cmd.name.len() + 2;
            String::from_utf8_lossy(bytes.get(skip..).unwrap_or_default()).into_owned()
        };
        out.event(
            "command",
            Severity::Info,
            &[
                ("cmd", &clip(&name)),
                ("state", state.name()),
                ("args", &clip(&logged)),
            ],
        );
        if state == State::NotAuth {
            self.pre_login(cmd, &name, out);
        } else {
            self.post_login(cmd, &name, out);
        }
    }

    fn pre_login(&mut self, cmd: syntax::Command, name: &str, out: &mut Step) {
        let tag = if syntax::valid_tag(&cmd.tag) {
            cmd.tag.clone()
        } else {
            String::new()
        };
        let shown = if tag.is_empty() {
            "*".to_owned()
        } else {
            tag.clone()
        };
        let args = match cmd.args {
            Ok(args) => args,
            Err(msg) => {
                out.send(format!("{shown} BAD {msg}\r\n").as_bytes());
                return;
            }
        };
        let result = if tag.is_empty() {
            Err(false)
        } else {
            self.not_auth(&tag, name, &args, out)
        };
        match result {
            Ok(()) => {}
            Err(true) if cmd.tag.eq_ignore_ascii_case("LOGIN") => {
                out.send(format!("{shown} BAD {LOGIN_TAG_HINT}\r\n").as_bytes());
            }
            Err(_) => {
                if !self.bad(out, MAX_BAD_LOGIN) {
                    out.send(
                        format!("{shown} BAD Error in IMAP command received by server.\r\n")
                            .as_bytes(),
                    );
                }
            }
        }
    }

    fn post_login(&mut self, cmd: syntax::Command, name: &str, out: &mut Step) {
        let tag = cmd.tag.clone();
        let result = if !syntax::valid_tag(&tag) || tag.is_empty() {
            Err(("BAD Error in IMAP tag: Invalid tag.".to_owned(), true))
        } else if name.is_empty() {
            Err(("BAD Error in IMAP command: Empty command.".to_owned(), true))
        } else {
            match cmd.args {
                Err(msg) => Err((format!("BAD Error in IMAP command {name}: {msg}"), true)),
                Ok(args) => self.authenticated(&tag, name, &args, out).map_err(|msg| {
                    if msg.is_empty() {
                        ("BAD No mailbox selected.".to_owned(), false)
                    } else {
                        (
                            format!("BAD Error in IMAP command {}: {msg}", clip(name)),
                            true,
                        )
                    }
                }),
            }
        };
        match result {
            Ok(reply) => {
                self.bad = 0;
                out.send(reply.as_bytes());
            }
            Err((text, counts)) => {
                let reply = self.tagged(&tag, &text, false);
                out.send(reply.as_bytes());
                if counts {
                    self.bad(out, MAX_BAD);
                } else {
                    self.bad = 0;
                }
            }
        }
    }
}

impl Session for ImapSession {
    fn start(&mut self, step: &mut Step) {
        step.send(format!("* OK [CAPABILITY {PRE_LOGIN_CAPS}] {}\r\n", self.banner).as_bytes());
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if self.closed {
            return;
        }
        for frame in self.framer.push(data) {
            match frame {
                Frame::Command(bytes) => self.command(&bytes, step),
                Frame::Continue => step.send(b"+ OK\r\n"),
                Frame::TooLong | Frame::LiteralTooBig => {
                    let (error, reply) = if frame == Frame::TooLong {
                        ("line too long", "* BYE Input buffer full, aborting\r\n")
                    } else {
                        ("literal too big", "* BYE Literal size too large\r\n")
                    };
                    step.event(
                        "protocol_error",
                        Severity::Notice,
                        &[("error", error), ("state", self.state.name())],
                    );
                    step.send(reply.as_bytes());
                    step.close();
                }
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
