//! The ssh service: its persona (identification, host keys, accept policy, templates) and the
//! session glue that carries bytes through the transport to authentication and then to the
//! connection layer.

use std::{path::Path, sync::Arc, time::Duration};

use decnet_store::Severity;

use super::{
    auth::{Auth, AuthPolicy, LOGIN_GRACE, Outcome},
    capture::DEFAULT_UPLOAD_LIMIT,
    connection::{Connection, Login},
    transcript::Clock,
    transport::{Transport, TransportConfig, TransportError, TransportEvent},
};
use crate::{
    persona::Persona,
    runtime::Protocol,
    session::{ConnInfo, Session, Step},
    shell::{Shell, fs::HostInfo},
};

/// Template files planted into every session's filesystem, at most.
const MAX_BAIT_FILES: usize = 256;
const MAX_BAIT_FILE: u64 = 64 * 1024;
/// Where the container image puts `templates/ssh/` (see its Dockerfile).
const DEFAULT_TEMPLATE_DIR: &str = "/usr/share/persona";

/// The identification a stock install of the persona's distro sends.
fn stock_version(distro: &str) -> &'static str {
    match distro {
        "ubuntu22" => "OpenSSH_8.9p1 Ubuntu-3ubuntu0.10",
        "ubuntu20" => "OpenSSH_8.2p1 Ubuntu-4ubuntu0.11",
        "rocky9" => "OpenSSH_8.7",
        "centos7" => "OpenSSH_7.4",
        "alpine" => "OpenSSH_9.6",
        "fedora" => "OpenSSH_9.3",
        "kali" => "OpenSSH_9.9p1 Debian-3",
        "arch" => "OpenSSH_9.9",
        _ => "OpenSSH_9.2p1 Debian-2+deb12u3",
    }
}

/// The kernel a stock install of the persona's distro runs.
fn stock_kernel(distro: &str) -> &'static str {
    match distro {
        "ubuntu22" => "5.15.0-126-generic",
        "ubuntu20" => "5.4.0-202-generic",
        "rocky9" => "5.14.0-427.42.1.el9_4.x86_64",
        "centos7" => "3.10.0-1160.119.1.el7.x86_64",
        "alpine" => "6.6.58-0-lts",
        "fedora" => "6.11.5-200.fc39.x86_64",
        "kali" => "6.11.2-amd64",
        "arch" => "6.12.1-arch1-1",
        _ => "6.1.0-27-amd64",
    }
}

/// Why the ssh service could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{key} must be a whole number, not {value:?}")]
    Number { key: &'static str, value: String },
}

#[derive(Debug)]
struct Config {
    transport: Arc<TransportConfig>,
    policy: Arc<AuthPolicy>,
    hostname: String,
    distro: String,
    kernel: String,
    motd: Option<String>,
    bait: Vec<(String, Vec<u8>)>,
    quarantine: bool,
    upload_limit: usize,
}

/// The service as configured for one host.
#[derive(Debug, Clone)]
pub struct Ssh {
    config: Arc<Config>,
}

fn number(p: &Persona, key: &'static str, default: usize) -> Result<usize, SshConfigError> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| SshConfigError::Number {
            key,
            value: v.to_owned(),
        }),
    }
}

/// Files under `dir/files/`, as absolute paths inside the emulated filesystem.
fn load_bait(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.join("files"), String::new())];
    while let Some((real, virt)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&real) else {
            continue;
        };
        for entry in entries.flatten() {
            if found.len() >= MAX_BAIT_FILES {
                return found;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{virt}/{name}");
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push((entry.path(), path)),
                Ok(m) if m.is_file() && m.len() <= MAX_BAIT_FILE => {
                    if let Ok(bytes) = std::fs::read(entry.path()) {
                        found.push((path, bytes));
                    }
                }
                _ => {}
            }
        }
    }
    found.sort();
    found
}

impl Ssh {
    pub fn from_persona(p: &Persona) -> Result<Self, SshConfigError> {
        let version = p
            .get("SSH_VERSION")
            .unwrap_or_else(|| stock_version(p.distro()));
        let banner = if version.starts_with("SSH-") {
            version.to_owned()
        } else {
            format!("SSH-2.0-{version}")
        };
        let hostname = p
            .get("SSH_HOSTNAME")
            .unwrap_or_else(|| p.hostname())
            .to_owned();
        let seed = p.get("SSH_HOSTKEY_SEED").unwrap_or(&hostname).to_owned();
        let transport = Arc::new(TransportConfig::new(&banner, seed.as_bytes())?);
        let mut credentials = p.credentials("SSH_USERS");
        credentials.push((
            "root".into(),
            p.get_or("SSH_ROOT_PASSWORD", "admin").to_owned(),
        ));
        let policy = AuthPolicy {
            credentials,
            accept_after: u32::try_from(number(p, "SSH_ACCEPT_AFTER", 0)?).unwrap_or(u32::MAX),
            keyboard_interactive: p.flag("SSH_KBD_INTERACTIVE", false),
            accept_keys: p.flag("SSH_ACCEPT_KEYS", false),
            ..AuthPolicy::default()
        };
        let dir = Path::new(p.get_or("SSH_TEMPLATE_DIR", DEFAULT_TEMPLATE_DIR));
        let distro = p.distro().to_owned();
        // /etc/motd differs per distro: `motd.<distro>` first, then a generic `motd`.
        let motd = std::fs::read_to_string(dir.join(format!("motd.{distro}")))
            .or_else(|_| std::fs::read_to_string(dir.join("motd")))
            .ok();
        let kernel = p
            .get("SSH_KERNEL")
            .or_else(|| p.get("KERNEL"))
            .unwrap_or_else(|| stock_kernel(&distro))
            .to_owned();
        Ok(Self {
            config: Arc::new(Config {
                transport,
                policy: Arc::new(policy),
                hostname,
                distro,
                kernel,
                motd,
                bait: load_bait(dir),
                quarantine: p.get("QUARANTINE_DIR").is_some(),
                upload_limit: number(p, "SSH_UPLOAD_LIMIT", DEFAULT_UPLOAD_LIMIT)?,
            }),
        })
    }

    /// A session with a hand-set clock (tests).
    pub fn session_with_clock(&self, conn: &ConnInfo, clock: Clock) -> SshSession {
        SshSession {
            config: Arc::clone(&self.config),
            transport: Transport::new(Arc::clone(&self.config.transport)),
            auth: Auth::new(Arc::clone(&self.config.policy)),
            connection: None,
            clock,
            local_ip: conn.local.ip().to_string(),
            client_version: None,
            client_reported: false,
            closed: false,
        }
    }
}

impl Protocol for Ssh {
    fn slug(&self) -> &'static str {
        "ssh"
    }

    fn default_ports(&self) -> &'static [u16] {
        &[22]
    }

    fn session(&self, conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(self.session_with_clock(conn, Clock::system()))
    }
}

/// One client connection.
#[derive(Debug)]
pub struct SshSession {
    config: Arc<Config>,
    transport: Transport,
    auth: Auth,
    connection: Option<Connection>,
    clock: Clock,
    local_ip: String,
    client_version: Option<String>,
    client_reported: bool,
    closed: bool,
}

impl SshSession {
    fn transport_event(&mut self, event: TransportEvent, step: &mut Step) {
        match event {
            TransportEvent::ClientVersion(v) => self.client_version = Some(v),
            TransportEvent::ClientKexInit {
                hassh,
                hassh_algorithms,
            } => {
                if !self.client_reported {
                    self.client_reported = true;
                    let version = self.client_version.clone().unwrap_or_default();
                    step.event(
                        "ssh_client",
                        Severity::Info,
                        &[
                            ("client_version", &version),
                            ("hassh", &hassh),
                            ("hassh_algorithms", &hassh_algorithms),
                        ],
                    );
                }
            }
            TransportEvent::Negotiated {
                kex,
                host_key,
                cipher,
                mac,
            } => step.event(
                "ssh_negotiated",
                Severity::Info,
                &[
                    ("kex", &kex),
                    ("host_key", &host_key),
                    ("cipher", &cipher),
                    ("mac", &mac),
                ],
            ),
            TransportEvent::Failed(_) => {
                self.closed = true;
                step.close();
            }
        }
    }

    fn login(&self, user: &str) -> Login {
        let host = HostInfo {
            hostname: self.config.hostname.clone(),
            distro: self.config.distro.clone(),
            kernel: self.config.kernel.clone(),
            ip: self.local_ip.clone(),
        };
        let stock = Shell::new(host.clone(), user).motd();
        let motd = match &self.config.motd {
            None => stock,
            Some(text) => {
                // The template replaces /etc/motd; the update-motd head and the last-login
                // line stay what this host would print.
                let head = stock.split_once("\n\n").map_or("", |(h, _)| h);
                let last = stock
                    .lines()
                    .find(|l| l.starts_with("Last login:"))
                    .unwrap_or_default();
                format!("{head}\n\n{text}{last}\n")
            }
        };
        Login {
            user: user.to_owned(),
            host,
            motd,
            bait: self.config.bait.clone(),
            quarantine: self.config.quarantine,
            openssh_client: self
                .client_version
                .as_deref()
                .is_some_and(|v| v.starts_with("SSH-2.0-OpenSSH")),
        }
    }

    fn upper(&mut self, payload: &[u8], msgs: &mut Vec<Vec<u8>>, step: &mut Step) -> bool {
        let Some(&kind) = payload.first() else {
            return true;
        };
        if let Some(conn) = &mut self.connection {
            if kind >= 80 {
                conn.handle(payload, msgs, step);
            }
            return true;
        }
        if !(50..80).contains(&kind) {
            return true;
        }
        let session_id = self.transport.session_id().unwrap_or_default().to_vec();
        match self.auth.handle(payload, &session_id, msgs, step) {
            Outcome::Pending => true,
            Outcome::Success { user } => {
                let login = self.login(&user);
                self.connection = Some(Connection::new(
                    login,
                    self.clock.clone(),
                    self.config.upload_limit,
                ));
                true
            }
            Outcome::Disconnect {
                reason,
                description,
            } => {
                for msg in msgs.drain(..) {
                    let mut out = Vec::new();
                    self.transport.send(&msg, &mut out);
                    step.send(&out);
                }
                let mut out = Vec::new();
                self.transport.disconnect(reason, &description, &mut out);
                step.send(&out);
                false
            }
        }
    }
}

impl SshSession {
    /// sshd's `LoginGraceTime` has passed without a successful login.
    fn grace_over(&self) -> bool {
        self.connection.is_none() && self.clock.elapsed() >= LOGIN_GRACE
    }
}

impl Session for SshSession {
    fn start(&mut self, step: &mut Step) {
        let mut out = Vec::new();
        self.transport.start(&mut out);
        step.send(&out);
    }

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if self.closed {
            return;
        }
        if self.grace_over() {
            // sshd's grace alarm: the unauthenticated child just exits.
            self.closed = true;
            step.close();
            return;
        }
        let (mut out, mut upper, mut events) = (Vec::new(), Vec::new(), Vec::new());
        self.transport
            .receive(data, &mut out, &mut upper, &mut events);
        step.send(&out);
        for event in events {
            self.transport_event(event, step);
        }
        let mut msgs = Vec::new();
        for payload in upper {
            if self.closed {
                break;
            }
            if !self.upper(&payload, &mut msgs, step) {
                self.closed = true;
                step.close();
                return;
            }
            for msg in msgs.drain(..) {
                let mut out = Vec::new();
                self.transport.send(&msg, &mut out);
                step.send(&out);
            }
        }
        if self.transport.is_closed() {
            self.closed = true;
            step.close();
        }
    }

    /// A client that never authenticates is dropped when the grace runs out even if it stays
    /// silent (it once kept its connection until the runtime's idle timeout, 300 s).
    fn wake_in(&self) -> Option<Duration> {
        (self.connection.is_none() && !self.closed)
            .then(|| LOGIN_GRACE.saturating_sub(self.clock.elapsed()))
    }

    fn wake(&mut self, step: &mut Step) {
        if !self.closed && self.grace_over() {
            self.closed = true;
            step.close();
        }
    }

    fn finish(&mut self, step: &mut Step) {
        if let Some(conn) = &mut self.connection {
            conn.finish(step);
        }
        if !self.client_reported
            && let Some(version) = &self.client_version
        {
            self.client_reported = true;
            step.event("ssh_client", Severity::Info, &[("client_version", version)]);
        }
    }
}

#[cfg(test)]
mod tests;
