#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::{Arc, atomic::AtomicU64};

use proptest::prelude::*;

use super::*;

fn connection(openssh: bool) -> Connection {
    let host = HostInfo {
        hostname: "SRV-WEB-42".into(),
        distro: "debian".into(),
        kernel: "6.1.0-27-amd64".into(),
        ip: "10.0.0.5".into(),
    };
    let login = Login {
        user: "root".into(),
        motd: "Welcome\n".into(),
        bait: vec![("/opt/app/.env".into(), b"DB_PASSWORD=hunter2\n".to_vec())],
        host,
        quarantine: true,
        openssh_client: openssh,
    };
    Connection::new(login, Clock::Manual(Arc::new(AtomicU64::new(0))), 1 << 20)
}

fn run(c: &mut Connection, payload: &[u8]) -> (Vec<Vec<u8>>, Step) {
    let mut msgs = Vec::new();
    let mut step = Step::default();
    c.handle(payload, &mut msgs, &mut step);
    (msgs, step)
}

fn open_session(c: &mut Connection, window: u32) -> u32 {
    let mut w = Writer::message(MSG_CHANNEL_OPEN);
    w.string(b"session").u32(7).u32(window).u32(32768);
    let (msgs, _) = run(c, &w.finish());
    let mut r = Reader::new(&msgs[0]);
    assert_eq!(r.u8(), Some(MSG_CHANNEL_OPEN_CONFIRMATION));
    assert_eq!(r.u32(), Some(7));
    let id = r.u32().unwrap();
    assert_eq!((r.u32(), r.u32()), (Some(0), Some(32768)));
    id
}

fn channel_request(id: u32, kind: &str, want_reply: bool, rest: &[u8]) -> Vec<u8> {
    let mut w = Writer::message(MSG_CHANNEL_REQUEST);
    w.u32(id).string(kind.as_bytes()).bool(want_reply).raw(rest);
    w.finish()
}

fn data(id: u32, bytes: &[u8]) -> Vec<u8> {
    let mut w = Writer::message(MSG_CHANNEL_DATA);
    w.u32(id).string(bytes);
    w.finish()
}

/// The text of every CHANNEL_DATA in `msgs`, and the other message types in order.
fn split(msgs: &[Vec<u8>]) -> (String, Vec<u8>) {
    let mut text = Vec::new();
    let mut kinds = Vec::new();
    for m in msgs {
        let mut r = Reader::new(m);
        let kind = r.u8().unwrap();
        if kind == MSG_CHANNEL_DATA {
            assert_eq!(r.u32(), Some(7));
            text.extend_from_slice(r.string().unwrap());
        } else {
            kinds.push(kind);
        }
    }
    (String::from_utf8_lossy(&text).into_owned(), kinds)
}

fn request_name(msg: &[u8]) -> Option<String> {
    let mut r = Reader::new(msg);
    (r.u8()? == MSG_CHANNEL_REQUEST).then_some(())?;
    r.u32()?;
    r.utf8().map(str::to_owned)
}

#[test]
fn pty_shell_session_is_recorded() {
    let mut c = connection(true);
    let id = open_session(&mut c, 1 << 20);
    let pty = Writer::new()
        .string(b"xterm-256color")
        .u32(120)
        .u32(40)
        .u32(0)
        .u32(0)
        .string(b"\0")
        .finish();
    let (msgs, _) = run(&mut c, &channel_request(id, "pty-req", true, &pty));
    assert_eq!(msgs, [Writer::message(MSG_CHANNEL_SUCCESS).u32(7).finish()]);
    let env = Writer::new().string(b"EVIL").string(b"1").finish();
    let (msgs, _) = run(&mut c, &channel_request(id, "env", true, &env));
    assert_eq!(msgs, [Writer::message(MSG_CHANNEL_FAILURE).u32(7).finish()]);
    let (msgs, _) = run(&mut c, &channel_request(id, "shell", true, b""));
    assert_eq!(
        msgs[0],
        Writer::message(MSG_CHANNEL_WINDOW_ADJUST)
            .u32(7)
            .u32(WINDOW)
            .finish()
    );
    assert_eq!(
        msgs[1],
        Writer::message(MSG_CHANNEL_SUCCESS).u32(7).finish()
    );
    assert_eq!(split(&msgs[2..]).0, "Welcome\r\nroot@SRV-WEB-42:~# ");

    let (msgs, step) = run(&mut c, &data(id, b"cat /opt/app/.env\r"));
    assert_eq!(
        split(&msgs).0,
        "cat /opt/app/.env\r\nDB_PASSWORD=hunter2\r\nroot@SRV-WEB-42:~# "
    );
    assert_eq!(step.events[0].kind, "command");
    assert_eq!(step.events[0].field("cmd"), Some("cat /opt/app/.env"));

    let (msgs, step) = run(&mut c, &data(id, b"exit\r"));
    let (text, kinds) = split(&msgs);
    assert_eq!(text, "exit\r\nlogout\r\n");
    assert_eq!(
        kinds,
        [
            MSG_CHANNEL_REQUEST,
            MSG_CHANNEL_REQUEST,
            MSG_CHANNEL_EOF,
            MSG_CHANNEL_CLOSE
        ]
    );
    let names: Vec<String> = msgs.iter().filter_map(|m| request_name(m)).collect();
    assert_eq!(names, ["exit-status", "eow@openssh.com"]);
    let transcript = step.events.iter().find(|e| e.kind == "transcript").unwrap();
    let name = transcript.field("stored_as").unwrap();
    assert!(name.ends_with(".cast"));
    let cast = &step.artifacts[0];
    assert_eq!(cast.name, name);
    let text = String::from_utf8(cast.bytes.clone()).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(120), Some(40))
    );
    assert!(text.contains("DB_PASSWORD=hunter2"));

    // The client's CLOSE answers ours: nothing more is sent.
    let (msgs, _) = run(&mut c, &Writer::message(MSG_CHANNEL_CLOSE).u32(id).finish());
    assert!(msgs.is_empty());
}

/// A client that asks for one-byte packets still gets its output in packets of a sane size
/// (every byte a packet of its own, each send moving the rest of the buffer, was quadratic).
#[test]
fn tiny_max_packet_requests_get_packets_of_a_sane_size() {
    let mut c = connection(false);
    let mut w = Writer::message(MSG_CHANNEL_OPEN);
    w.string(b"session").u32(7).u32(u32::MAX).u32(1);
    let (msgs, _) = run(&mut c, &w.finish());
    let mut r = Reader::new(&msgs[0]);
    assert_eq!(r.u8(), Some(MSG_CHANNEL_OPEN_CONFIRMATION));
    r.u32();
    let id = r.u32().unwrap();
    let line = format!("cat {}", vec!["/etc/passwd"; 20].join(" "));
    let cmd = Writer::new().string(line.as_bytes()).finish();
    let (msgs, _) = run(&mut c, &channel_request(id, "exec", true, &cmd));
    let (text, _) = split(&msgs);
    assert!(text.len() > 1500, "{text}");
    let sizes: Vec<usize> = msgs
        .iter()
        .filter(|m| m[0] == MSG_CHANNEL_DATA)
        .map(|m| Reader::new(&m[5..]).string().unwrap().len())
        .collect();
    assert!(
        sizes[..sizes.len() - 1]
            .iter()
            .all(|&n| n == MIN_PACKET as usize),
        "{sizes:?}"
    );
}

#[test]
fn exec_runs_one_command_and_closes() {
    let mut c = connection(false);
    let id = open_session(&mut c, 1 << 20);
    let cmd = Writer::new().string(b"uname -a; id").finish();
    let (msgs, step) = run(&mut c, &channel_request(id, "exec", true, &cmd));
    let (text, kinds) = split(&msgs);
    assert_eq!(
        text,
        "Linux SRV-WEB-42 6.1.0-27-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01) x86_64 GNU/Linux\nuid=0(root) gid=0(root) groups=0(root)\n"
    );
    assert_eq!(
        kinds,
        [
            MSG_CHANNEL_WINDOW_ADJUST,
            MSG_CHANNEL_SUCCESS,
            MSG_CHANNEL_REQUEST,
            MSG_CHANNEL_EOF,
            MSG_CHANNEL_CLOSE
        ]
    );
    let status = msgs.iter().find(|m| m[0] == MSG_CHANNEL_REQUEST).unwrap();
    assert!(
        status.ends_with(&[0, 0, 0, 0, 0]),
        "exit-status 0, no reply wanted"
    );
    assert_eq!(step.events[0].field("cmd"), Some("uname -a; id"));
}

#[test]
fn output_waits_for_the_clients_window() {
    let mut c = connection(false);
    let id = open_session(&mut c, 10);
    let cmd = Writer::new().string(b"echo 0123456789abcdef").finish();
    let (msgs, _) = run(&mut c, &channel_request(id, "exec", false, &cmd));
    let (text, kinds) = split(&msgs);
    assert_eq!(text, "0123456789");
    assert_eq!(kinds, [MSG_CHANNEL_WINDOW_ADJUST]);
    let (msgs, _) = run(
        &mut c,
        &Writer::message(MSG_CHANNEL_WINDOW_ADJUST)
            .u32(id)
            .u32(100)
            .finish(),
    );
    let (text, kinds) = split(&msgs);
    assert_eq!(text, "abcdef\n");
    assert_eq!(
        kinds,
        [MSG_CHANNEL_REQUEST, MSG_CHANNEL_EOF, MSG_CHANNEL_CLOSE]
    );
}

/// Output waiting for a window holds memory from the process's pool, given back as it is sent.
#[test]
fn pending_output_is_held_from_the_memory_pool() {
    let mut c = connection(false);
    let id = open_session(&mut c, 10);
    let cmd = Writer::new().string(b"echo 0123456789abcdef").finish();
    run(&mut c, &channel_request(id, "exec", false, &cmd));
    let ch = c.channels.values().next().unwrap();
    assert_eq!(ch.held.bytes(), 7);
    run(
        &mut c,
        &Writer::message(MSG_CHANNEL_WINDOW_ADJUST)
            .u32(id)
            .u32(100)
            .finish(),
    );
    if let Some(ch) = c.channels.values().next() {
        assert_eq!(ch.held.bytes(), 0);
    }
}

#[test]
fn forwarding_is_refused_and_logged() {
    let mut c = connection(true);
    let mut w = Writer::message(MSG_CHANNEL_OPEN);
    w.string(b"direct-tcpip")
        .u32(3)
        .u32(1 << 20)
        .u32(32768)
        .string(b"10.1.2.3")
        .u32(3389)
        .string(b"127.0.0.1")
        .u32(50000);
    let (msgs, step) = run(&mut c, &w.finish());
    assert_eq!(
        msgs,
        [Writer::message(MSG_CHANNEL_OPEN_FAILURE)
            .u32(3)
            .u32(1)
            .string(b"open failed")
            .string(b"")
            .finish()]
    );
    let ev = &step.events[0];
    assert_eq!(ev.kind, "tunnel_request");
    assert_eq!(ev.field("kind"), Some("direct-tcpip"));
    assert_eq!(ev.field("host"), Some("10.1.2.3"));
    assert_eq!(ev.field("port"), Some("3389"));

    let mut w = Writer::message(MSG_GLOBAL_REQUEST);
    w.string(b"keepalive@openssh.com").bool(true);
    let (msgs, _) = run(&mut c, &w.finish());
    assert_eq!(msgs, [vec![MSG_REQUEST_FAILURE]]);
    let mut w = Writer::message(MSG_GLOBAL_REQUEST);
    w.string(b"tcpip-forward")
        .bool(true)
        .string(b"0.0.0.0")
        .u32(8080);
    let (msgs, step) = run(&mut c, &w.finish());
    assert_eq!(msgs, [vec![MSG_REQUEST_FAILURE]]);
    assert_eq!(step.events[0].field("port"), Some("8080"));
}

#[test]
fn legacy_scp_upload_through_exec() {
    let mut c = connection(true);
    let id = open_session(&mut c, 1 << 20);
    let cmd = Writer::new().string(b"scp -t /tmp/").finish();
    let (msgs, step) = run(&mut c, &channel_request(id, "exec", true, &cmd));
    assert_eq!(split(&msgs).0, "\0");
    assert_eq!(step.events[0].field("cmd"), Some("scp -t /tmp/"));
    let (msgs, _) = run(&mut c, &data(id, b"C0755 4 x.sh\n"));
    assert_eq!(split(&msgs).0, "\0");
    let (msgs, step) = run(&mut c, &data(id, b"id\n\n\0"));
    assert_eq!(split(&msgs).0, "\0");
    assert_eq!(step.events[0].field("path"), Some("/tmp/x.sh"));
    assert_eq!(step.artifacts[0].bytes, b"id\n\n");
    let (msgs, _) = run(&mut c, &Writer::message(MSG_CHANNEL_EOF).u32(id).finish());
    let names: Vec<String> = msgs.iter().filter_map(|m| request_name(m)).collect();
    assert_eq!(names, ["exit-status", "eow@openssh.com"]);
}

#[test]
fn sftp_subsystem_starts() {
    let mut c = connection(false);
    let id = open_session(&mut c, 1 << 20);
    let name = Writer::new().string(b"sftp").finish();
    let (msgs, _) = run(&mut c, &channel_request(id, "subsystem", true, &name));
    assert_eq!(msgs.len(), 2);
    let mut init = Writer::new();
    init.string(&[1, 0, 0, 0, 3]);
    let (msgs, _) = run(&mut c, &data(id, &init.finish()));
    assert_eq!(split(&msgs).0.as_bytes()[4], 2, "SSH_FXP_VERSION");
    let other = Writer::new().string(b"netconf").finish();
    let id2 = open_session(&mut c, 1 << 20);
    let (msgs, _) = run(&mut c, &channel_request(id2, "subsystem", true, &other));
    assert_eq!(msgs, [Writer::message(MSG_CHANNEL_FAILURE).u32(7).finish()]);
}

#[test]
fn a_dropped_connection_still_keeps_the_transcript() {
    let mut c = connection(false);
    let id = open_session(&mut c, 1 << 20);
    let _ = run(&mut c, &channel_request(id, "shell", false, b""));
    let _ = run(&mut c, &data(id, b"whoami\n"));
    let mut step = Step::default();
    c.finish(&mut step);
    assert_eq!(step.events[0].kind, "transcript");
    assert_eq!(step.artifacts.len(), 1);
}

proptest! {
    #[test]
    fn never_panics(payloads in proptest::collection::vec((80u8..101, proptest::collection::vec(any::<u8>(), 0..64)), 0..32)) {
        let mut c = connection(true);
        let id = open_session(&mut c, 64);
        let _ = run(&mut c, &channel_request(id, "shell", false, b""));
        for (kind, body) in payloads {
            let mut p = vec![kind];
            p.extend_from_slice(&body);
            let _ = run(&mut c, &p);
        }
        let mut step = Step::default();
        c.finish(&mut step);
    }
}
