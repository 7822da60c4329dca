//! An emulated interactive shell (bash-like) over a per-host fake filesystem, shared by the
//! ssh and telnet emulators. Sans-IO: a command line in, output text and events out. Nothing
//! is ever executed or fetched; URL fetches are recorded, not performed.

pub mod fs;

use decnet_store::Severity;

use crate::session::ServiceEvent;
use fs::{FakeFs, HostInfo, Node, resolve};

/// Bytes of output one command may produce (a `cat` of a huge overlay file is cut).
const MAX_OUTPUT: usize = 256 * 1024;
/// Most text one command builds before it is shown (cut to [`MAX_OUTPUT`]) or written to a file
/// (which the overlay caps at [`fs::MAX_OVERLAY_BYTES`]): `cat b b b …` over a 4 MB file once
/// built gigabytes before the output cap applied.
const MAX_BUILT: usize = fs::MAX_OVERLAY_BYTES + MAX_OUTPUT;
/// Bytes the commands and filters of one line may produce between them.
const MAX_LINE_WORK: usize = 4 * MAX_BUILT;
/// History entries kept per session.
const MAX_HISTORY: usize = 1000;
/// Bytes of history kept: a thousand lines of 4 KiB would hold 4 MiB per shell.
const MAX_HISTORY_BYTES: usize = 256 * 1024;

/// What one command line produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShellOutput {
    /// Terminal text, `\n` line ends (the transport converts for its terminal).
    pub text: String,
    pub events: Vec<ServiceEvent>,
    /// The user ended the session (`exit`, `logout`).
    pub exit: bool,
}

impl ShellOutput {
    fn event(&mut self, kind: &str, severity: Severity, fields: &[(&str, &str)]) {
        self.events.push(ServiceEvent {
            kind: kind.to_owned(),
            severity,
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }
}

/// One logged-in shell.
#[derive(Debug)]
pub struct Shell {
    host: HostInfo,
    user: String,
    cwd: String,
    fs: FakeFs,
    history: Vec<String>,
    history_bytes: usize,
    /// Seconds since boot at login, for `uptime`/`w`.
    uptime: u64,
    /// Bytes produced so far by the line being run ([`MAX_LINE_WORK`]).
    work: usize,
}

impl Shell {
    pub fn new(host: HostInfo, user: &str) -> Self {
        let mut fs = FakeFs::for_host(&host);
        let home = if user == "root" {
            "/root".to_owned()
        } else {
            format!("/home/{user}")
        };
        fs.mkdir(&home);
        let cwd = home;
        let uptime = 86_400 * 37 + 3_600 * 5 + u64::from(host.hostname.len() as u8) * 97;
        Self {
            host,
            user: user.to_owned(),
            cwd,
            fs,
            history: Vec::new(),
            history_bytes: 0,
            uptime,
            work: 0,
        }
    }

    /// The session's filesystem, for a service to plant persona files in.
    pub fn fs_mut(&mut self) -> &mut FakeFs {
        &mut self.fs
    }

    fn home(&self) -> String {
        if self.user == "root" {
            "/root".into()
        } else {
            format!("/home/{}", self.user)
        }
    }

    /// The prompt, e.g. `root@SRV-WEB-42:~# `.
    pub fn prompt(&self) -> String {
        let home = self.home();
        let dir = if self.cwd == home {
            "~".to_owned()
        } else if let Some(rest) = self.cwd.strip_prefix(&format!("{home}/")) {
            format!("~/{rest}")
        } else {
            self.cwd.clone()
        };
        let short = self
            .host
            .hostname
            .split('.')
            .next()
            .unwrap_or(&self.host.hostname);
        let sigil = if self.user == "root" { '#' } else { '$' };
        if self.host.is_busybox() {
            // Alpine's default PS1 is '\h:\w\$ '.
            return format!("{short}:{dir}{sigil} ");
        }
        format!("{}@{short}:{dir}{sigil} ", self.user)
    }

    /// The banner printed at login: the distro's stock motd and a last-login line.
    pub fn motd(&self) -> String {
        let pretty = self.host.pretty_name();
        let last = "Last login: Tue Nov 24 09:12:44 2026 from 10.0.0.12\n";
        match self.host.distro.as_str() {
            d if d.starts_with("ubuntu") => format!("Welcome to {pretty} (GNU/Linux {} x86_64)\n\n * Documentation:  https://help.ubuntu.com\n * Management:     https://landscape.canonical.com\n * Support:        https://ubuntu.com/pro\n\n{last}", self.host.kernel),
            "debian" | "kali" => format!("Linux {} {} {} x86_64\n\nThe programs included with the Debian GNU/Linux system are free software;\nthe exact distribution terms for each program are described in the\nindividual files in /usr/share/doc/*/copyright.\n\nDebian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\npermitted by applicable law.\n{last}", self.host.hostname.split('.').next().unwrap_or_default(), self.host.kernel, self.host.uname_version()),
            "alpine" => "Welcome to Alpine!\n\nThe Alpine Wiki contains a large amount of how-to guides and general\ninformation about administrating Alpine systems.\nSee <https://wiki.alpinelinux.org/>.\n\nYou can setup the system with the command: setup-alpine\n\nYou may change this message by editing /etc/motd.\n\n".to_owned(),
            _ => last.to_owned(),
        }
    }

    /// Run one command line.
    pub fn run(&mut self, line: &str) -> ShellOutput {
        let mut out = ShellOutput::default();
        let line = line.trim();
        if line.is_empty() {
            return out;
        }
        if self.history.len() < MAX_HISTORY && self.history_bytes + line.len() <= MAX_HISTORY_BYTES
        {
            self.history_bytes += line.len();
            self.history.push(line.to_owned());
        }
        out.event(
            "command",
            Severity::Warning,
            &[
                ("cmd", line),
                ("cwd", &self.cwd.clone()),
                ("user", &self.user.clone()),
            ],
        );
        self.work = 0;
        for part in split_sequence(line) {
            if self.work > MAX_LINE_WORK {
                // What a box out of memory answers; 4 KiB of `cat big big|x|x…` or
                // `cat big big > f;` once copied gigabytes for one line.
                out.text.push_str("-bash: fork: Cannot allocate memory\n");
                break;
            }
            self.run_pipeline(&part, &mut out);
            if out.exit || out.text.len() > MAX_OUTPUT {
                break;
            }
        }
        if out.text.len() > MAX_OUTPUT {
            let mut end = MAX_OUTPUT;
            while !out.text.is_char_boundary(end) {
                end -= 1;
            }
            out.text.truncate(end);
        }
        out
    }

    fn run_pipeline(&mut self, line: &str, out: &mut ShellOutput) {
        // Output redirection: `cmd > file` / `cmd >> file`.
        let (line, redirect) = match line.find('>') {
            Some(i) => {
                let append = line[i + 1..].starts_with('>');
                let target = line[i + if append { 2 } else { 1 }..].trim().to_owned();
                (line[..i].trim().to_owned(), Some((target, append)))
            }
            None => (line.to_owned(), None),
        };
        let mut stages = line.split('|').map(str::trim);
        let first = stages.next().unwrap_or_default();
        let mut text = self.command(first, out);
        self.work += text.len();
        for filter in stages {
            if self.work > MAX_LINE_WORK {
                break;
            }
            self.work += text.len();
            text = apply_filter(filter, text);
        }
        match redirect {
            Some((target, append)) if !target.is_empty() => {
                let path = resolve(&self.cwd, &self.home(), &target);
                if !self.fs.write(&path, text.into_bytes(), append) {
                    out.text
                        .push_str(&format!("-bash: {target}: No such file or directory\n"));
                }
            }
            _ => out.text.push_str(&text),
        }
    }

    fn path(&self, arg: &str) -> String {
        resolve(&self.cwd, &self.home(), arg)
    }

    #[allow(clippy::too_many_lines)] // one arm per command reads best as one table
    fn command(&mut self, line: &str, out: &mut ShellOutput) -> String {
        let words = split_words(line);
        let Some((cmd, args)) = words.split_first() else {
            return String::new();
        };
        let cmd = cmd.rsplit('/').next().unwrap_or(cmd);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let flags: String = args
            .iter()
            .filter(|a| a.starts_with('-'))
            .flat_map(|a| a.chars().skip(1))
            .collect();
        let operands: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with('-'))
            .collect();
        match cmd {
            "pwd" => format!("{}\n", self.cwd),
            "cd" => {
                let target = operands.first().map_or_else(|| self.home(), |p| self.path(p));
                if self.fs.is_dir(&target) {
                    self.cwd = target;
                    String::new()
                } else if self.fs.get(&target).is_some() {
                    format!("-bash: cd: {}: Not a directory\n", operands.first().unwrap_or(&""))
                } else {
                    format!("-bash: cd: {}: No such file or directory\n", operands.first().unwrap_or(&""))
                }
            }
            "ls" | "dir" | "ll" => {
                let long = flags.contains('l') || cmd == "ll";
                let all = flags.contains('a') || cmd == "ll";
                let targets: Vec<String> = if operands.is_empty() { vec![self.cwd.clone()] } else { operands.iter().map(|p| self.path(p)).collect() };
                let mut text = String::new();
                for (i, target) in targets.iter().enumerate() {
                    match self.fs.get(target) {
                        None => text.push_str(&format!("ls: cannot access '{}': No such file or directory\n", operands.get(i).unwrap_or(&""))),
                        Some(Node::File { content, mode }) => text.push_str(&if long { long_entry(operands.get(i).unwrap_or(&""), &Node::File { content: content.clone(), mode: *mode }) } else { format!("{}\n", operands.get(i).unwrap_or(&"")) }),
                        Some(Node::Dir) => {
                            let mut entries: Vec<(String, Node)> = self.fs.children(target).into_iter().map(|(n, node)| (n.to_owned(), node.clone())).collect();
                            if !all {
                                entries.retain(|(n, _)| !n.starts_with('.'));
                            } else {
                                entries.insert(0, ("..".into(), Node::Dir));
                                entries.insert(0, (".".into(), Node::Dir));
                            }
                            if long {
                                text.push_str(&format!("total {}\n", entries.len() * 4));
                                for (name, node) in &entries {
                                    text.push_str(&long_entry(name, node));
                                }
                            } else if !entries.is_empty() {
                                let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
                                text.push_str(&names.join("  "));
                                text.push('\n');
                            }
                        }
                    }
                }
                text
            }
            "cat" | "more" | "less" | "head" | "tail" => {
                let mut text = String::new();
                for op in &operands {
                    if text.len() > MAX_BUILT {
                        break;
                    }
                    let path = self.path(op);
                    match self.fs.get(&path) {
                        Some(Node::File { content, .. }) => {
                            let body = String::from_utf8_lossy(content).into_owned();
                            text.push_str(&if cmd == "head" { apply_filter("head", body) } else if cmd == "tail" { apply_filter("tail", body) } else { body });
                            if path.contains(".aws") || path.contains("shadow") || path.ends_with("config.php") || path.contains(".ssh") {
                                out.event("file_read", Severity::Warning, &[("path", &path)]);
                            }
                        }
                        Some(Node::Dir) => text.push_str(&format!("{cmd}: {op}: Is a directory\n")),
                        None => text.push_str(&format!("{cmd}: {op}: No such file or directory\n")),
                    }
                }
                text
            }
            "echo" => format!("{}\n", operands.join(" ")),
            "id" => if self.user == "root" { "uid=0(root) gid=0(root) groups=0(root)\n".into() } else { format!("uid=1000({u}) gid=1000({u}) groups=1000({u}),27(sudo)\n", u = self.user) },
            "whoami" => format!("{}\n", self.user),
            "hostname" => format!("{}\n", self.host.hostname),
            "uname" => {
                let short = self.host.hostname.split('.').next().unwrap_or_default();
                if flags.contains('a') {
                    format!("Linux {short} {} {} x86_64 GNU/Linux\n", self.host.kernel, self.host.uname_version())
                } else if flags.contains('r') {
                    format!("{}\n", self.host.kernel)
                } else if flags.contains('n') {
                    format!("{short}\n")
                } else if flags.contains('m') {
                    "x86_64\n".into()
                } else {
                    "Linux\n".into()
                }
            }
            "uptime" | "w" => {
                let days = self.uptime / 86_400;
                let hm = format!("{}:{:02}", (self.uptime % 86_400) / 3600, (self.uptime % 3600) / 60);
                let head = format!(" 03:14:07 up {days} days, {hm},  1 user,  load average: 0.08, 0.03, 0.01\n");
                if cmd == "w" {
                    format!("{head}USER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT\n{:<8} pts/0    10.0.0.12        03:12    0.00s  0.02s  0.00s w\n", self.user)
                } else {
                    head
                }
            }
            "ps" => "    PID TTY          TIME CMD\n      1 ?        00:00:04 systemd\n    412 ?        00:00:00 sshd\n    587 ?        00:00:12 cron\n    602 ?        00:01:31 mysqld\n    655 ?        00:00:09 apache2\n   2214 pts/0    00:00:00 bash\n   2240 pts/0    00:00:00 ps\n".into(),
            "ifconfig" | "ip" => format!(
                "eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n        inet {}  netmask 255.255.255.0\n        RX packets 1841277  bytes 1127719421 (1.0 GiB)\n        TX packets 997734  bytes 211872341 (202.0 MiB)\n\nlo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n        inet 127.0.0.1  netmask 255.0.0.0\n",
                self.host.ip
            ),
            "free" => "               total        used        free      shared  buff/cache   available\nMem:         8039176     2219340      612104       43204     5207732     5488260\nSwap:        2097148       10496     2086652\n".into(),
            "df" => "Filesystem     1K-blocks     Used Available Use% Mounted on\n/dev/sda1       81987992 23155276  54623488  30% /\ntmpfs            4019588        0   4019588   0% /dev/shm\n".into(),
            "nproc" => "4\n".into(),
            "history" => self.history.iter().enumerate().map(|(i, h)| format!("{:>5}  {h}\n", i + 1)).collect(),
            "env" | "printenv" | "export" => format!("SHELL=/bin/bash\nPWD={}\nLOGNAME={u}\nHOME={}\nLANG=C.UTF-8\nUSER={u}\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", self.cwd, self.home(), u = self.user),
            "wget" | "curl" => {
                let url = operands.iter().find(|a| a.contains("://") || a.contains('.')).copied().unwrap_or_default();
                out.event("url_fetch", Severity::Warning, &[("tool", cmd), ("url", url)]);
                let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or_default();
                if cmd == "wget" {
                    format!("--2026-11-27 03:14:07--  {url}\nResolving {host} ({host})... failed: Temporary failure in name resolution.\nwget: unable to resolve host address '{host}'\n")
                } else {
                    format!("curl: (6) Could not resolve host: {host}\n")
                }
            }
            "touch" => {
                for op in &operands {
                    let p = self.path(op);
                    if self.fs.get(&p).is_none() {
                        self.fs.write(&p, Vec::new(), false);
                    }
                }
                String::new()
            }
            "mkdir" | "rm" => {
                let mut text = String::new();
                for op in &operands {
                    let path = self.path(op);
                    if cmd == "mkdir" && !self.fs.mkdir(&path) {
                        text.push_str(&format!("mkdir: cannot create directory '{op}': File exists\n"));
                    } else if cmd == "rm" && !self.fs.remove(&path) {
                        text.push_str(&format!("rm: cannot remove '{op}': No such file or directory\n"));
                    }
                }
                text
            }
            "chmod" | "chown" | "clear" | "unset" | "sleep" | "true" | "cp" | "mv" | "kill" | "sync" => String::new(),
            "which" | "type" => operands.iter().map(|op| format!("/usr/bin/{op}\n")).collect(),
            "sudo" => {
                // `sudo sudo … cmd` is `cmd`: stripped in a loop, where recursing once per
                // `sudo` of a 4 KiB line could overflow the worker's stack.
                let mut rest: &[&str] = &args;
                while let Some((first, tail)) = rest.split_first()
                    && first.rsplit('/').next() == Some("sudo")
                {
                    rest = tail;
                }
                self.command(&rest.join(" "), out)
            }
            "exit" | "logout" => {
                out.exit = true;
                "logout\n".into()
            }
            other if self.host.is_busybox() => format!("-ash: {other}: not found\n"),
            other => format!("-bash: {other}: command not found\n"),
        }
    }
}

fn long_entry(name: &str, node: &Node) -> String {
    match node {
        Node::Dir => format!("drwxr-xr-x 2 root root     4096 Nov 24 09:12 {name}\n"),
        Node::File { content, mode } => {
            let perms: String = (0..9)
                .map(|i| {
                    let bit = 0o400 >> i;
                    if mode & bit == 0 {
                        '-'
                    } else {
                        ['r', 'w', 'x'][i % 3]
                    }
                })
                .collect();
            format!(
                "-{perms} 1 root root {:>8} Nov 24 09:12 {name}\n",
                content.len()
            )
        }
    }
}

/// `grep PAT`, `head [-n N]`, `tail [-n N]`, `wc -l`; other filters pass text through.
fn apply_filter(filter: &str, text: String) -> String {
    let words = split_words(filter);
    let n = words
        .iter()
        .position(|w| w == "-n")
        .and_then(|i| words.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    match words.first().map(String::as_str) {
        Some("grep") => {
            let pattern = words
                .iter()
                .skip(1)
                .find(|w| !w.starts_with('-'))
                .cloned()
                .unwrap_or_default();
            text.lines()
                .filter(|l| l.contains(&pattern))
                .map(|l| format!("{l}\n"))
                .collect()
        }
        Some("head") => text.lines().take(n).map(|l| format!("{l}\n")).collect(),
        Some("tail") => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect()
        }
        Some("wc") => format!("{}\n", text.lines().count()),
        _ => text,
    }
}

/// Split on `;`, `&&` and `||` outside quotes.
fn split_sequence(line: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ';') => parts.push(std::mem::take(&mut current)),
            (None, '&' | '|') if chars.peek() == Some(&c) => {
                chars.next();
                parts.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Split a simple command into words, honouring single and double quotes.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() || any {
                    words.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            (None, c) => current.push(c),
        }
    }
    if !current.is_empty() || any {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests;
