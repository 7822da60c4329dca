//! The ftp emulator against real clients: Python's ftplib, curl (passive and active mode)
//! and nmap's service detection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

use decnet_e2e::{Decky, msgid, sd_param};
use serde_json::Value;

const ANONYMOUS: &str = r#"
import ftplib, hashlib, io, json, sys
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=10)
out = {'welcome': ftp.getwelcome(), 'port': ftp.sock.getsockname()[1]}
out['login'] = ftp.login()
lines = []
out['list_reply'] = ftp.retrlines('LIST', lines.append)
out['list'] = lines
buf = io.BytesIO()
out['retr'] = ftp.retrbinary('RETR credentials.txt', buf.write)
out['creds'] = buf.getvalue().decode()
payload = b'#!/bin/sh\n' + bytes(range(256)) * 64
out['stor'] = ftp.storbinary('STOR drop.bin', io.BytesIO(payload))
out['sha'] = hashlib.sha256(payload).hexdigest()
out['size'] = len(payload)
out['nlst'] = ftp.nlst()
out['quit'] = ftp.quit()
print(json.dumps(out))
"#;

const LOCAL_USER: &str = r#"
import ftplib, io, json, sys
port = int(sys.argv[1])
out = {}
bad = ftplib.FTP()
bad.connect('127.0.0.1', port, timeout=10)
out['bad_port'] = bad.sock.getsockname()[1]
try:
    bad.login('deploy', 'wrong')
except ftplib.error_perm as e:
    out['bad'] = str(e)
bad.close()
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', port, timeout=10)
out['port'] = ftp.sock.getsockname()[1]
out['login'] = ftp.login('deploy', 'Winter2024!')
out['pwd'] = ftp.pwd()
out['mkd'] = ftp.mkd('incoming')
out['cwd'] = ftp.cwd('incoming')
ftp.storbinary('STOR notes.txt', io.BytesIO(b'hello from the outside'))
buf = io.BytesIO()
ftp.retrbinary('RETR notes.txt', buf.write)
out['back'] = buf.getvalue().decode()
out['size'] = ftp.size('notes.txt')
out['syst'] = ftp.sendcmd('SYST')
ftp.quit()
print(json.dumps(out))
"#;

const OVERLAPPING_UPLOADS: &str = r#"
import ftplib, json, sys, time
port = int(sys.argv[1])
def start(name):
    ftp = ftplib.FTP()
    ftp.connect('127.0.0.1', port, timeout=10)
    ftp.login()
    return ftp, ftp.transfercmd('STOR ' + name)
out = {}
a, a_data = start('a.bin')
a_data.sendall(b'a' * 600000)
time.sleep(0.5)
# b arrives while the service still holds a's bytes.
b, b_data = start('b.bin')
b_data.sendall(b'b' * 600000)
time.sleep(0.5)
a_data.close(); out['a'] = a.voidresp()
b_data.close(); out['b'] = b.voidresp()
time.sleep(0.5)
# a and b are stored and gone: c is kept whole again.
c, c_data = start('c.bin')
c_data.sendall(b'c' * 600000)
c_data.close(); out['c'] = c.voidresp()
print(json.dumps(out))
"#;

fn python(script: &str, port: u16) -> Value {
    serde_json::from_str(&decnet_e2e::python_client(script, port)).unwrap()
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "15"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The events of the connection from client port `port`.
fn of_connection(lines: &[String], port: u64) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| sd_param(l, "src_port").as_deref() == Some(&port.to_string()))
        .collect()
}

fn kinds<'a>(lines: &[&'a String]) -> Vec<&'a str> {
    lines.iter().filter_map(|l| msgid(l)).collect()
}

fn assert_stealthy(text: &str) {
    let lower = text.to_ascii_lowercase();
    for word in ["decnet", "honeypot", "decoy", "fake"] {
        assert!(!lower.contains(word), "{word:?} visible in {text}");
    }
}

fn quarantine() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn python_ftplib_anonymous_session_is_captured() {
    let q = quarantine();
    let decky = Decky::start("ftp", &[("QUARANTINE_DIR", q.path().to_str().unwrap())]);
    let out = python(ANONYMOUS, decky.port);
    assert_eq!(out["welcome"], "220 (vsFTPd 3.0.3)");
    assert_eq!(out["login"], "230 Login successful.");
    assert_eq!(out["list_reply"], "226 Directory send OK.");
    let list: Vec<&str> = out["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(list.len(), 4, "{list:?}");
    for (line, name) in list.iter().zip([
        "backup.tar.gz",
        "config.ini",
        "credentials.txt",
        "db_dump.sql",
    ]) {
        assert!(
            line.starts_with("-rw-r--r--    1 1000     1000  "),
            "{line}"
        );
        assert!(line.ends_with(&format!(" {name}")), "{line}");
    }
    assert_eq!(out["retr"], "226 Transfer complete.");
    assert!(out["creds"].as_str().unwrap().contains("srv-web-42"));
    assert_eq!(out["stor"], "226 Transfer complete.");
    assert_eq!(out["quit"], "221 Goodbye.");
    let nlst = out["nlst"].as_array().unwrap();
    assert!(nlst.iter().any(|n| n == "drop.bin"), "{nlst:?}");
    assert_stealthy(&out.to_string());

    let lines = decky.wait_for(|l| l.iter().any(|x| x.contains(" disconnect ")));
    let port = out["port"].as_u64().unwrap();
    let conn = of_connection(&lines, port);
    assert_eq!(
        kinds(&conn),
        [
            "connect",
            "user",
            "auth_attempt",
            "command", // TYPE A
            "command", // PASV
            "command", // LIST
            "command", // TYPE I
            "command", // PASV
            "download",
            "command", // TYPE I
            "command", // PASV
            "upload",
            "command", // TYPE A
            "command", // PASV
            "command", // NLST
            "command", // QUIT
            "disconnect"
        ]
    );
    for line in &conn {
        assert_eq!(sd_param(line, "src_ip").as_deref(), Some("127.0.0.1"));
        assert_eq!(sd_param(line, "dst_port").unwrap(), decky.port.to_string());
        assert!(line.contains(" e2e-host ftp - "), "{line}");
    }
    let auth = conn[2];
    assert!(auth.starts_with("<132>1 "), "auth is a warning: {auth}");
    assert_eq!(sd_param(auth, "username").as_deref(), Some("anonymous"));
    assert_eq!(sd_param(auth, "password").as_deref(), Some("anonymous@"));
    assert_eq!(sd_param(auth, "success").as_deref(), Some("true"));
    assert_eq!(sd_param(conn[5], "cmd").as_deref(), Some("LIST"));
    assert_eq!(
        sd_param(conn[8], "path").as_deref(),
        Some("/credentials.txt")
    );
    let upload = conn[11];
    let sha = out["sha"].as_str().unwrap();
    assert_eq!(sd_param(upload, "path").as_deref(), Some("/drop.bin"));
    assert_eq!(
        sd_param(upload, "size").unwrap(),
        out["size"].as_u64().unwrap().to_string()
    );
    assert_eq!(sd_param(upload, "sha256").as_deref(), Some(sha));
    assert_eq!(sd_param(upload, "stored_as").as_deref(), Some(sha));
    let stored = std::fs::read(q.path().join(sha)).unwrap();
    assert_eq!(stored.len() as u64, out["size"].as_u64().unwrap());
    assert!(stored.starts_with(b"#!/bin/sh\n"));
    for line in &lines {
        assert_stealthy(line);
    }
}

/// Uploads draw on one memory pool per service process (here 1 MiB): past it, an upload is
/// received and acknowledged as usual but reported truncated, instead of the container being
/// killed for its memory; bytes come back once an upload is stored.
#[test]
fn uploads_at_once_share_the_service_memory_pool() {
    let decky = Decky::start("ftp", &[("DECNET_SERVICE_MEMORY_MIB", "1")]);
    let out = python(OVERLAPPING_UPLOADS, decky.port);
    for name in ["a", "b", "c"] {
        assert_eq!(out[name], "226 Transfer complete.", "{out}");
    }
    let lines = decky.wait_for(|l| l.iter().filter(|x| x.contains(" upload ")).count() >= 3);
    let upload = |path: &str| {
        lines
            .iter()
            .find(|l| l.contains(" upload ") && sd_param(l, "path").as_deref() == Some(path))
            .unwrap_or_else(|| panic!("no upload of {path}: {lines:#?}"))
    };
    for (path, truncated) in [("/a.bin", "false"), ("/b.bin", "true"), ("/c.bin", "false")] {
        let line = upload(path);
        assert_eq!(sd_param(line, "size").as_deref(), Some("600000"), "{line}");
        assert_eq!(
            sd_param(line, "truncated").as_deref(),
            Some(truncated),
            "{line}"
        );
    }
}

#[test]
fn python_ftplib_local_user_and_failed_login() {
    let q = quarantine();
    let decky = Decky::start(
        "ftp",
        &[
            ("FTP_USERS", "deploy:Winter2024!"),
            ("QUARANTINE_DIR", q.path().to_str().unwrap()),
        ],
    );
    let started = std::time::Instant::now();
    let out = python(LOCAL_USER, decky.port);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "vsftpd delays failed logins"
    );
    assert_eq!(out["bad"], "530 Login incorrect.");
    assert_eq!(out["login"], "230 Login successful.");
    assert_eq!(out["pwd"], "/");
    assert_eq!(out["mkd"], "/incoming");
    assert_eq!(out["cwd"], "250 Directory successfully changed.");
    assert_eq!(out["back"], "hello from the outside");
    assert_eq!(out["size"], 22);
    assert_eq!(out["syst"], "215 UNIX Type: L8");

    let lines = decky.wait_for(|l| l.iter().filter(|x| x.contains(" disconnect ")).count() >= 2);
    let bad = of_connection(&lines, out["bad_port"].as_u64().unwrap());
    let auth = bad
        .iter()
        .find(|l| msgid(l) == Some("auth_attempt"))
        .unwrap();
    assert_eq!(sd_param(auth, "username").as_deref(), Some("deploy"));
    assert_eq!(sd_param(auth, "password").as_deref(), Some("wrong"));
    assert_eq!(sd_param(auth, "success").as_deref(), Some("false"));
    let good = of_connection(&lines, out["port"].as_u64().unwrap());
    let auth = good
        .iter()
        .find(|l| msgid(l) == Some("auth_attempt"))
        .unwrap();
    assert_eq!(sd_param(auth, "password").as_deref(), Some("Winter2024!"));
    assert_eq!(sd_param(auth, "success").as_deref(), Some("true"));
    let upload = good.iter().find(|l| msgid(l) == Some("upload")).unwrap();
    assert_eq!(
        sd_param(upload, "path").as_deref(),
        Some("/incoming/notes.txt")
    );
    let sha = sd_param(upload, "sha256").unwrap();
    assert_eq!(
        std::fs::read(q.path().join(&sha)).unwrap(),
        b"hello from the outside"
    );
}

#[test]
fn curl_passive_and_active_transfers() {
    let q = quarantine();
    let decky = Decky::start(
        "ftp",
        &[
            ("FTP_USERS", "deploy:pw"),
            ("QUARANTINE_DIR", q.path().to_str().unwrap()),
        ],
    );
    let base = format!("ftp://127.0.0.1:{}/", decky.port);
    let listing = String::from_utf8(curl(&[&base])).unwrap();
    assert_eq!(listing.lines().count(), 4, "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.trim_end().ends_with(" config.ini")),
        "{listing}"
    );
    let config = curl(&[&format!("{base}config.ini")]);
    assert!(String::from_utf8_lossy(&config).contains("[database]"));
    // -P: active mode, the server connects back (EPRT).
    let dump = curl(&["-P", "127.0.0.1", &format!("{base}db_dump.sql")]);
    assert!(dump.starts_with(b"-- MySQL dump 10.13"));
    let file = q.path().join("local-upload.txt");
    std::fs::write(&file, b"curl was here\n").unwrap();
    curl(&[
        "-u",
        "deploy:pw",
        "-T",
        file.to_str().unwrap(),
        &format!("{base}up.txt"),
    ]);

    let lines = decky.wait_for(|l| l.iter().filter(|x| x.contains(" disconnect ")).count() >= 4);
    let downloads: Vec<String> = lines
        .iter()
        .filter(|l| msgid(l) == Some("download"))
        .map(|l| sd_param(l, "path").unwrap())
        .collect();
    assert_eq!(downloads, ["/config.ini", "/db_dump.sql"]);
    let eprt = lines
        .iter()
        .find(|l| sd_param(l, "cmd").as_deref() == Some("EPRT"))
        .expect("curl -P uses EPRT");
    assert!(sd_param(eprt, "arg").unwrap().starts_with("|1|127.0.0.1|"));
    let upload = lines.iter().find(|l| msgid(l) == Some("upload")).unwrap();
    assert_eq!(sd_param(upload, "path").as_deref(), Some("/up.txt"));
    let sha = sd_param(upload, "sha256").unwrap();
    assert_eq!(
        std::fs::read(q.path().join(sha)).unwrap(),
        b"curl was here\n"
    );
}

#[test]
fn nmap_identifies_vsftpd() {
    let decky = Decky::start("ftp", &[]);
    let Some(line) = decnet_e2e::nmap_version_row(decky.port) else {
        return;
    };
    assert!(line.contains(" open "), "{line}");
    assert!(line.contains("ftp"), "{line}");
    assert!(line.ends_with("vsftpd 3.0.3"), "{line}");
}
