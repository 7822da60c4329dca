//! telnet: a Linux telnetd persona (netkit option negotiation, `login:` prompt, server-side
//! echo) that captures every credential and drops a successful login into the emulated shell.

use decnet_store::Severity;

use crate::{
    persona::Persona,
    runtime::Protocol,
    session::{ConnInfo, Session, Step},
    shell::{Shell, fs::HostInfo},
};

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
/// Longest input line kept; the rest of a longer one is dropped.
const MAX_LINE: usize = 4096;
/// Failed logins before the connection is closed, as `login` does.
const MAX_FAILURES: u32 = 3;
/// netkit telnetd's opening: DO TERMINAL-TYPE, DO TERMINAL-SPEED, DO X-DISPLAY-LOCATION,
/// DO NEW-ENVIRON — and nothing else that starts with IAC, which is what `nmap -sV` matches
/// as Linux telnetd.
const NEGOTIATION: &[u8] = b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27";
/// WILL ECHO, WILL SUPPRESS-GO-AHEAD: sent once a real telnet client answers, after which the
/// server echoes what is typed (a raw TCP client that never negotiates echoes locally).
const WILL_ECHO: &[u8] = b"\xff\xfb\x01\xff\xfb\x03";

/// The service as configured for one host.
#[derive(Debug, Clone)]
pub struct Telnet {
    banner: Option<String>,
    credentials: Vec<(String, String)>,
    hostname: String,
    distro: String,
    kernel: String,
}

impl Telnet {
    pub fn from_persona(p: &Persona) -> Self {
        let mut credentials = p.credentials("TELNET_USERS");
        credentials.push((
            "root".into(),
            p.get_or("TELNET_ROOT_PASSWORD", "admin").to_owned(),
        ));
        Self {
            banner: p.get("TELNET_BANNER").map(str::to_owned),
            credentials,
            hostname: p
                .get("TELNET_HOSTNAME")
                .unwrap_or_else(|| p.hostname())
                .to_owned(),
            distro: p.distro().to_owned(),
            kernel: p.get_or("KERNEL", "6.1.0-27-amd64").to_owned(),
        }
    }
}

impl Protocol for Telnet {
    fn slug(&self) -> &'static str {
        "telnet"
    }

    fn default_ports(&self) -> &'static [u16] {
        &[23]
    }

    fn session(&self, conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(TelnetSession {
            config: self.clone(),
            local_ip: conn.local.ip().to_string(),
            state: State::Login,
            line: Vec::new(),
            iac: Iac::Data,
            after_cr: false,
            failures: 0,
            negotiated: None,
        })
    }
}

#[derive(Debug)]
enum State {
    Login,
    Password(String),
    Shell(Box<Shell>),
    Closed,
}

/// Where the telnet command parser is inside an IAC sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iac {
    Data,
    Command,
    Option,
    Sub,
    SubCommand,
}

/// One client connection.
#[derive(Debug)]
pub struct TelnetSession {
    config: Telnet,
    local_ip: String,
    state: State,
    line: Vec<u8>,
    iac: Iac,
    after_cr: bool,
    failures: u32,
    /// `None` until the first bytes arrive; then whether the peer speaks telnet.
    negotiated: Option<bool>,
}

/// Terminal output: `\n` becomes `\r\n`.
fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

impl TelnetSession {
    fn short_host(&self) -> &str {
        self.config
            .hostname
            .split('.')
            .next()
            .unwrap_or(&self.config.hostname)
    }

    fn login_prompt(&self) -> String {
        format!("{} login: ", self.short_host())
    }

    fn echoing(&self) -> bool {
        self.negotiated == Some(true) && !matches!(self.state, State::Password(_) | State::Closed)
    }

    fn on_line(&mut self, line: &str, step: &mut Step) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Login => {
                let user = line.trim();
                if user.is_empty() {
                    step.send(self.login_prompt().as_bytes());
                    self.state = State::Login;
                } else {
                    step.send(b"Password: ");
                    self.state = State::Password(user.to_owned());
                }
            }
            State::Password(user) => {
                let ok = self
                    .config
                    .credentials
                    .iter()
                    .any(|(u, p)| *u == user && p == line);
                step.event(
                    "auth_attempt",
                    Severity::Warning,
                    &[
                        ("username", &user),
                        ("password", line),
                        ("success", if ok { "true" } else { "false" }),
                    ],
                );
                if ok {
                    let host = HostInfo {
                        hostname: self.config.hostname.clone(),
                        distro: self.config.distro.clone(),
                        kernel: self.config.kernel.clone(),
                        ip: self.local_ip.clone(),
                    };
                    let shell = Shell::new(host, &user);
                    step.send(&crlf(&format!("\n{}\n", shell.motd())));
                    step.send(shell.prompt().as_bytes());
                    self.state = State::Shell(Box::new(shell));
                } else {
                    self.failures += 1;
                    step.send(b"\r\nLogin incorrect\r\n");
                    if self.failures >= MAX_FAILURES {
                        step.close();
                    } else {
                        step.send(self.login_prompt().as_bytes());
                        self.state = State::Login;
                    }
                }
            }
            State::Shell(mut shell) => {
                let out = shell.run(line);
                step.events.extend(out.events);
                step.send(&crlf(&out.text));
                if out.exit {
                    step.close();
                } else {
                    step.send(shell.prompt().as_bytes());
                    self.state = State::Shell(shell);
                }
            }
            State::Closed => {}
        }
    }

    fn on_byte(&mut self, b: u8, step: &mut Step) {
        if std::mem::take(&mut self.after_cr) && (b == b'\n' || b == 0) {
            return;
        }
        match b {
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                if self.echoing() {
                    step.send(b"\r\n");
                }
                let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
                self.on_line(&line, step);
            }
            0x7f | 0x08 => {
                if self.line.pop().is_some() && self.echoing() {
                    step.send(b"\x08 \x08");
                }
            }
            0x03 => {
                self.line.clear();
                if let State::Shell(shell) = &self.state {
                    let prompt = shell.prompt();
                    step.send(b"^C\r\n");
                    step.send(prompt.as_bytes());
                }
            }
            0x04 if self.line.is_empty() => {
                if matches!(self.state, State::Shell(_)) {
                    step.send(b"logout\r\n");
                }
                step.close();
                self.state = State::Closed;
            }
            0 => {}
            b => {
                if self.line.len() < MAX_LINE {
                    self.line.push(b);
                    if self.echoing() {
                        step.send(&[b]);
                    }
                }
            }
        }
    }
}

impl Session for TelnetSession {
    fn start(&mut self, step: &mut Step) {
        step.send(NEGOTIATION);
        let banner = self.config.banner.clone().unwrap_or_else(|| {
            let host = HostInfo {
                hostname: String::new(),
                distro: self.config.distro.clone(),
                kernel: String::new(),
                ip: String::new(),
            };
            // /etc/issue.net is the pretty name without the release code name.
            host.pretty_name()
                .split(" (")
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        step.send(format!("{banner}\r\n").as_bytes());
        step.send(self.login_prompt().as_bytes());
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if self.negotiated.is_none() && !data.is_empty() {
            let telnet = data[0] == IAC;
            if telnet {
                step.send(WILL_ECHO);
            }
            self.negotiated = Some(telnet);
        }
        for &b in data {
            if matches!(self.state, State::Closed) || step.close {
                return;
            }
            self.iac = match (self.iac, b) {
                (Iac::Data, IAC) => Iac::Command,
                (Iac::Data, b) => {
                    self.on_byte(b, step);
                    Iac::Data
                }
                (Iac::Command, IAC) => {
                    self.on_byte(IAC, step);
                    Iac::Data
                }
                (Iac::Command, SB) => Iac::Sub,
                (Iac::Command, 251..=254) => Iac::Option,
                (Iac::Command | Iac::Option, _) => Iac::Data,
                (Iac::Sub, IAC) => Iac::SubCommand,
                (Iac::Sub, _) => Iac::Sub,
                (Iac::SubCommand, SE) => Iac::Data,
                (Iac::SubCommand, _) => Iac::Sub,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn session(env: &[(&str, &str)]) -> TelnetSession {
        let mut pairs = vec![
            ("NODE_NAME", "iot1"),
            ("HOSTNAME", "gateway-17"),
            ("DISTRO", "alpine"),
        ];
        pairs.extend_from_slice(env);
        let config = Telnet::from_persona(&Persona::from_pairs(&pairs));
        TelnetSession {
            config,
            local_ip: "10.0.0.9".into(),
            state: State::Login,
            line: Vec::new(),
            iac: Iac::Data,
            after_cr: false,
            failures: 0,
            negotiated: None,
        }
    }

    fn drive(s: &mut TelnetSession, input: &[u8]) -> (String, Step) {
        let mut step = Step::default();
        s.receive(input, &mut step);
        (String::from_utf8_lossy(&step.out).into_owned(), step)
    }

    #[test]
    fn greeting_is_linux_telnetd() {
        let mut s = session(&[]);
        let mut step = Step::default();
        s.start(&mut step);
        assert!(
            step.out
                .starts_with(b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27A")
        );
        assert!(
            step.out
                .ends_with(b"Alpine Linux v3.19\r\ngateway-17 login: ")
        );
    }

    #[test]
    fn failed_then_successful_login_reaches_the_shell() {
        let mut s = session(&[("TELNET_USERS", "admin:1234")]);
        // A client's option replies, then a user typing with CR NUL line ends.
        let (text, step) = drive(
            &mut s,
            b"\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0root\r\0wrong\r\0",
        );
        assert!(text.starts_with("\u{fffd}\u{fffd}\u{1}\u{fffd}\u{fffd}\u{3}root\r\nPassword: \r\nLogin incorrect\r\ngateway-17 login: "), "{text:?}");
        assert!(!text.contains("wrong"), "passwords are not echoed");
        assert_eq!(step.events[0].field("password"), Some("wrong"));
        assert_eq!(step.events[0].field("success"), Some("false"));
        let (text, step) = drive(&mut s, b"admin\r\n1234\r\nid\r\n");
        assert_eq!(step.events[0].field("success"), Some("true"));
        assert!(text.contains("gateway-17:~$ "), "{text:?}");
        assert!(text.contains("Welcome to Alpine!"));
        assert!(text.contains("uid=1000(admin)"));
        assert_eq!(step.events[1].kind, "command");
        let (text, step) = drive(&mut s, b"exit\r\n");
        assert!(text.contains("logout") && step.close);
    }

    #[test]
    fn three_failures_close() {
        let mut s = session(&[]);
        let (_, step) = drive(&mut s, b"a\r\nb\r\nc\r\nd\r\ne\r\nf\r\n");
        assert!(step.close);
        assert_eq!(step.events.len(), 3);
    }

    #[test]
    fn backspace_and_iac_escapes() {
        let mut s = session(&[]);
        let (_, _) = drive(&mut s, b"roox\x7ft\r\n");
        let (_, step) = drive(&mut s, b"ad\xff\xffmin\r\n");
        assert_eq!(step.events[0].field("username"), Some("root"));
        assert_eq!(step.events[0].field("password"), Some("ad\u{fffd}min"));
    }

    proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 0..16)) {
            let mut s = session(&[]);
            for c in &chunks {
                let _ = drive(&mut s, c);
            }
        }
    }
}
