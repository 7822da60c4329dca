//! One repository suite, run against SQLite always and against PostgreSQL and MariaDB when
//! their admin URLs are given (`.ci/run` starts both and sets them; CI fails rather than skips
//! when they are missing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use super::*;
use crate::Severity;
use sql::{Arg, Sql};

const PG_ENV: &str = "DECNET_TEST_PG_URL";
const MYSQL_ENV: &str = "DECNET_TEST_MYSQL_URL";

fn event(
    ts_s: i64,
    decky: &str,
    service: &str,
    kind: &str,
    ip: &str,
    fields: &[(&str, &str)],
) -> Event {
    let mut e = Event::new(
        ts_s * 1_000_000_000,
        decky,
        service,
        kind,
        Severity::Warning,
    );
    e.src_ip = ip.parse::<IpAddr>().ok();
    e.src_port = Some(40_000);
    for (k, v) in fields {
        e.push_field(k, v).unwrap();
    }
    e.set_raw(format!("<132>1 raw {kind} \0\u{ff}").as_bytes());
    e
}

fn rows(events: Vec<Event>) -> Vec<(u64, Event)> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64, e))
        .collect()
}

/// A database of its own for one test on a server whose admin URL is in `env`; `None` (with a
/// loud message) when the server is not configured outside CI.
async fn server_repo(env: &str, kind: &str) -> Option<SqlRepository> {
    Some(
        SqlRepository::connect(&server_db(env, kind).await?)
            .await
            .unwrap(),
    )
}

/// The URL of a new empty database on the server whose admin URL is in `env`.
async fn server_db(env: &str, kind: &str) -> Option<String> {
    let Ok(admin) = std::env::var(env) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{env} is not set in CI: .ci/run must start {kind} and export it"
        );
        eprintln!("SKIPPED: {kind} repository tests need {env} (./scripts/test.sh sets it)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("decnet_t{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = {
        use sqlx::Connection;
        sqlx::AnyConnection::connect(&admin)
            .await
            .expect("admin connection")
    };
    let create = format!("CREATE DATABASE {name}");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin_conn)
        .await
        .unwrap();
    // Same server and credentials, the new database as the path.
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let slash = base.rfind('/').unwrap();
    let url = match query {
        Some(q) => format!("{}/{name}?{q}", &base[..slash]),
        None => format!("{}/{name}", &base[..slash]),
    };
    Some(url)
}

async fn sqlite_repo(dir: &tempfile::TempDir) -> SqlRepository {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    SqlRepository::connect(&url).await.unwrap()
}

async fn suite(repo: &SqlRepository) {
    exactly_once_segments(repo).await;
    every_column_of_every_row_round_trips(repo).await;
    search_grammar(repo).await;
    histogram_stats_and_cursor(repo).await;
    hostile_text_round_trips(repo).await;
    users_state_bounties(repo).await;
    attackers_and_deckies(repo).await;
    retention(repo).await;
    leases(repo).await;
    intel_tables(repo).await;
    sealed_segments_stream_in(repo).await;
    event_tally_follows_the_table(repo).await;
    // Migrating again is a no-op.
    repo.migrate().await.unwrap();
}

/// The running tally equals a full count of the table after appends (new addresses, a new
/// decky, an event without an address) and after a deletion that moves the lowest id; a tally
/// that may remember only two addresses falls back to the database's distinct count.
async fn event_tally_follows_the_table(repo: &SqlRepository) {
    let mut tally = EventTally::default();
    let mut capped = EventTally::new(std::time::Duration::from_secs(600), 2);
    let late = 9_000_000_000;
    let batches = [
        vec![
            event(late, "tally-a", "ssh", "k", "10.77.0.1", &[]),
            event(late, "tally-a", "ssh", "k", "2001:db8::77", &[]),
            event(late + 1, "tally-b", "http", "k", "10.77.0.1", &[]),
        ],
        vec![
            event(late + 2, "tally-c", "ssh", "k", "10.77.0.2", &[]),
            event(late + 3, "tally-a", "ssh", "k", "10.77.0.3", &[]),
        ],
    ];
    let mut no_address = event(late + 1, "tally-b", "http", "k", "10.77.0.9", &[]);
    no_address.src_ip = None;
    let check = async |tally: &mut EventTally, when: &str| {
        let full = repo.stats().await.unwrap();
        let range = repo.event_id_range().await.unwrap();
        assert_eq!(tally.refresh(repo, range).await.unwrap(), full, "{when}");
    };
    check(&mut tally, "before").await;
    check(&mut capped, "before").await;
    let mut first = batches[0].clone();
    first.push(no_address);
    repo.insert_segment(8_800_001, &rows(first)).await.unwrap();
    check(&mut tally, "after an append").await;
    check(&mut capped, "after an append").await;
    // Everything older than the batches goes: the lowest id moves, the tally starts over.
    let deleted = repo
        .delete_events_before(late * 1_000_000_000)
        .await
        .unwrap();
    assert!(deleted > 0);
    check(&mut tally, "after a deletion").await;
    check(&mut capped, "after a deletion").await;
    repo.insert_segment(8_800_002, &rows(batches[1].clone()))
        .await
        .unwrap();
    check(&mut tally, "after a second append").await;
    check(&mut capped, "after a second append").await;
    let stats = repo.stats().await.unwrap();
    assert_eq!(
        (
            stats.total_events,
            stats.unique_attackers,
            stats.deckies_seen
        ),
        (6, 4, 3)
    );
}

/// A sealed segment flushed as the flusher does it: every decodable entry inserted exactly
/// once, a damaged one counted and skipped, the marker counting what was inserted.
async fn sealed_segments_stream_in(repo: &SqlRepository) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = crate::segment::SegmentWriter::create(dir.path(), 40).unwrap();
    let events: Vec<Event> = (0..300)
        .map(|i| {
            let mut e = event(
                7_000_000 + i,
                "sealed01",
                "ssh",
                "auth_attempt",
                if i % 2 == 0 {
                    "10.9.0.1"
                } else {
                    "2001:db8::9"
                },
                &[("n", &i.to_string()), ("n", "dup"), ("user", "r\0ot")],
            );
            if i == 7 {
                e.src_ip = None;
                e.set_raw(b"");
            }
            e
        })
        .collect();
    w.append(&events[..100], false).unwrap();
    w.append_bytes(&[1, 2, 3]).unwrap();
    w.append(&events[100..], true).unwrap();
    let (sealed, _) = w.seal().unwrap();
    let segment = crate::segment::SealedSegment::open(&sealed.path).unwrap();
    assert_eq!(segment.entries(), 301);
    let flushed = repo.insert_sealed(&segment).await.unwrap();
    assert_eq!(
        flushed,
        SegmentFlush {
            inserted: 300,
            undecodable: 1
        }
    );
    // A replay inserts nothing and still reports the damaged entry.
    let again = repo.insert_sealed(&segment).await.unwrap();
    assert_eq!(
        again,
        SegmentFlush {
            inserted: 0,
            undecodable: 1
        }
    );
    let marker: i64 =
        sqlx::query_scalar("SELECT events FROM flushed_segments WHERE segment_id = 40")
            .fetch_one(repo.pool())
            .await
            .unwrap();
    assert_eq!(marker, 300);
    let q = EventQuery {
        search: "decky:sealed01".into(),
        ..EventQuery::default()
    };
    let mut stored: Vec<Event> = repo
        .events(&q, 1000, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.event)
        .collect();
    stored.sort_by_key(|e| e.ts_ns);
    // As stored: NULs replaced, a repeated field key keeps its first value.
    let expected: Vec<Event> = events
        .iter()
        .map(|e| {
            let mut x = Event::new(e.ts_ns, &e.decky, &e.service, &e.kind, e.severity);
            x.src_ip = e.src_ip;
            x.src_port = e.src_port;
            x.push_field("n", e.field("n").unwrap()).unwrap();
            x.push_field("user", "r\u{fffd}ot").unwrap();
            x.set_raw(e.raw());
            x
        })
        .collect();
    assert_eq!(stored, expected);
}

async fn exactly_once_segments(repo: &SqlRepository) {
    let batch = rows(
        (0..2500)
            .map(|i| {
                event(
                    1000 + i,
                    "web01",
                    "http",
                    "request",
                    "10.0.0.9",
                    &[("n", &i.to_string())],
                )
            })
            .collect(),
    );
    assert_eq!(repo.insert_segment(5, &batch).await.unwrap(), 2500);
    // A replay after a crash between commit and delete inserts nothing.
    assert_eq!(repo.insert_segment(5, &batch).await.unwrap(), 0);
    assert_eq!(repo.insert_segment(6, &batch[..10]).await.unwrap(), 10);
    assert_eq!(repo.max_segment_id().await.unwrap(), 6);
    assert_eq!(
        repo.count_events(&EventQuery::default()).await.unwrap(),
        2510
    );
    repo.purge().await.unwrap();
    assert_eq!(repo.count_events(&EventQuery::default()).await.unwrap(), 0);
}

/// Every column of rows spread over the SQLite path's multi-row statements and its
/// single-row remainder: long and NUL-bearing keys are clipped and cleaned, absent
/// addresses stay NULL, empty raw bytes stay empty (not NULL).
async fn every_column_of_every_row_round_trips(repo: &SqlRepository) {
    let long = "\u{e9}".repeat(300);
    let events: Vec<Event> = (0..70)
        .map(|i| {
            let decky = if i % 7 == 0 {
                long.clone()
            } else {
                format!("d{i}")
            };
            let mut e = event(
                2000 + i,
                &decky,
                if i % 5 == 0 { "s\0x" } else { "ssh" },
                &format!("k{i}"),
                if i % 3 == 0 { "" } else { "10.1.2.3" },
                &[("n", &i.to_string()), ("q", "\"quoted\"")],
            );
            if i % 2 == 0 {
                e.dst_ip = "2001:db8::1".parse().ok();
                e.dst_port = Some(u16::try_from(i).unwrap());
            }
            if i % 4 == 0 {
                e.set_raw(&[]);
            }
            e.severity = Severity::from_code(u8::try_from(i % 8).unwrap()).unwrap();
            e.truncated = i % 6 == 0;
            e
        })
        .collect();
    let batch = rows(events.clone());
    assert_eq!(repo.insert_segment(7, &batch).await.unwrap(), 70);
    let got = repo
        .events_after(0, &EventQuery::default(), 1000)
        .await
        .unwrap();
    assert_eq!(got.len(), 70);
    for (want, got) in events.iter().zip(&got) {
        let got = &got.event;
        let mut want = want.clone();
        if want.decky.chars().count() > 255 {
            want.decky = "\u{e9}".repeat(255);
        }
        want.service = want.service.replace('\0', "\u{fffd}");
        assert_eq!(got, &want);
    }
    repo.purge().await.unwrap();
}

async fn seed(repo: &SqlRepository) {
    let events = vec![
        event(
            100,
            "web01",
            "ssh",
            "auth_attempt",
            "198.51.100.1",
            &[("username", "root"), ("password", "toor")],
        ),
        event(
            101,
            "web01",
            "ssh",
            "auth_attempt",
            "198.51.100.1",
            &[("username", "admin"), ("password", "admin")],
        ),
        event(
            160,
            "db02",
            "mysql",
            "auth_attempt",
            "198.51.100.2",
            &[("username", "root"), ("password", "Hunter2")],
        ),
        event(
            200,
            "db02",
            "http",
            "request",
            "203.0.113.5",
            &[("path", "/wp-login.php"), ("method", "POST")],
        ),
    ];
    repo.insert_segment(10, &rows(events)).await.unwrap();
}

async fn search(repo: &SqlRepository, s: &str) -> Vec<i64> {
    let query = EventQuery {
        search: s.to_owned(),
        ..EventQuery::default()
    };
    let found = repo.events(&query, 100, 0).await.unwrap();
    assert_eq!(
        repo.count_events(&query).await.unwrap(),
        found.len() as i64,
        "count for {s:?}"
    );
    found
        .into_iter()
        .map(|e| e.event.ts_ns / 1_000_000_000)
        .collect()
}

async fn search_grammar(repo: &SqlRepository) {
    seed(repo).await;
    assert_eq!(search(repo, "").await, [200, 160, 101, 100]);
    assert_eq!(search(repo, "decky:web01").await, [101, 100]);
    assert_eq!(
        search(repo, "service:ssh event:auth_attempt").await,
        [101, 100]
    );
    assert_eq!(search(repo, "attacker:198.51.100.2").await, [160]);
    assert_eq!(search(repo, "username:root").await, [160, 100]);
    // Two field tokens: both must hold (the original kept only the last one's value).
    assert_eq!(search(repo, "username:root password:toor").await, [100]);
    assert_eq!(
        search(repo, "username:root password:nope").await,
        Vec::<i64>::new()
    );
    // Bare words match anywhere, case-insensitively; LIKE wildcards are literal.
    assert_eq!(search(repo, "WP-LOGIN").await, [200]);
    assert_eq!(search(repo, "hunter2").await, [160]);
    assert_eq!(search(repo, "%").await, Vec::<i64>::new());
    assert_eq!(search(repo, "\"wp-login.php\" method:POST").await, [200]);
    let window = EventQuery {
        start_ns: Some(101_000_000_000),
        end_ns: Some(200_000_000_000),
        ..EventQuery::default()
    };
    assert_eq!(repo.count_events(&window).await.unwrap(), 2);
    let err = repo
        .count_events(&EventQuery {
            search: "x ".repeat(600),
            ..EventQuery::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    let page = repo.events(&EventQuery::default(), 2, 1).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].event.ts_ns, 160_000_000_000);
}

async fn histogram_stats_and_cursor(repo: &SqlRepository) {
    let bars = repo.histogram(&EventQuery::default(), 60).await.unwrap();
    let got: Vec<(i64, i64)> = bars
        .iter()
        .map(|b| (b.start_ns / 1_000_000_000, b.count))
        .collect();
    assert_eq!(got, [(60, 2), (120, 1), (180, 1)]);
    assert!(repo.histogram(&EventQuery::default(), 0).await.is_err());
    let stats = repo.stats().await.unwrap();
    assert_eq!(stats.total_events, 4);
    assert_eq!(stats.unique_attackers, 3);
    assert_eq!(stats.deckies_seen, 2);
    let all = repo
        .events_after(0, &EventQuery::default(), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let after = repo
        .events_after(all[1].id, &EventQuery::default(), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    let ssh_after = repo
        .events_after(
            all[0].id,
            &EventQuery {
                search: "service:ssh".into(),
                ..EventQuery::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(ssh_after.len(), 1);
    assert_eq!(repo.max_event_id().await.unwrap(), all[3].id);
}

async fn hostile_text_round_trips(repo: &SqlRepository) {
    let mut e = event(
        300,
        "h\u{e9}st",
        "x",
        "k",
        "::1",
        &[("cmd", "rm -rf / \0; echo '\"%_!"), ("emoji", "\u{1F600}")],
    );
    e.push_field("cmd", "second value of a repeated key")
        .unwrap();
    e.set_raw(&[0, 159, 146, 150, 255]);
    repo.insert_segment(11, &[(0, e.clone())]).await.unwrap();
    let got = repo
        .events(
            &EventQuery {
                search: "emoji:\u{1F600}".into(),
                ..EventQuery::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let back = &got[0].event;
    assert_eq!(back.raw(), e.raw());
    assert_eq!(back.decky, "h\u{e9}st");
    assert_eq!(back.src_ip, e.src_ip);
    assert_eq!(back.field("cmd"), Some("rm -rf / \u{fffd}; echo '\"%_!"));
    assert_eq!(search(repo, "%_!").await, [300]);
}

async fn users_state_bounties(repo: &SqlRepository) {
    let admin = repo
        .create_user("admin", "$argon2id$x", "admin", true)
        .await
        .unwrap();
    assert!(
        repo.create_user("admin", "h", "viewer", false)
            .await
            .is_err()
    );
    assert!(repo.create_user("eve", "h", "root", false).await.is_err());
    repo.create_user("viewer1", "h", "viewer", false)
        .await
        .unwrap();
    assert_eq!(
        repo.user_by_name("admin").await.unwrap().unwrap().uuid,
        admin.uuid
    );
    assert!(
        repo.set_user_password(&admin.uuid, "$argon2id$y", false)
            .await
            .unwrap()
    );
    let changed = repo.user_by_uuid(&admin.uuid).await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "$argon2id$y");
    assert!(!changed.must_change_password);
    assert!(repo.set_user_role(&admin.uuid, "viewer").await.unwrap());
    assert_eq!(repo.list_users().await.unwrap().len(), 2);
    assert!(repo.delete_user(&admin.uuid).await.unwrap());
    assert!(!repo.delete_user(&admin.uuid).await.unwrap());

    assert_eq!(repo.state("cursor").await.unwrap(), None);
    repo.set_state("cursor", &serde_json::json!({"id": 5}))
        .await
        .unwrap();
    repo.set_state("cursor", &serde_json::json!({"id": 7}))
        .await
        .unwrap();
    assert_eq!(
        repo.state("cursor").await.unwrap(),
        Some(serde_json::json!({"id": 7}))
    );

    let b = NewBounty {
        ts_ns: 1,
        decky: "web01".into(),
        service: "ssh".into(),
        attacker_ip: "198.51.100.1".into(),
        bounty_type: "credential".into(),
        payload: r#"{"username":"root","password":"toor"}"#.into(),
    };
    assert!(repo.add_bounty(&b).await.unwrap());
    assert!(!repo.add_bounty(&b).await.unwrap());
    let other = NewBounty {
        payload: r#"{"username":"root","password":"x"}"#.into(),
        ..b.clone()
    };
    assert!(repo.add_bounty(&other).await.unwrap());
    assert_eq!(
        repo.count_bounties(Some("credential"), None).await.unwrap(),
        2
    );
    assert_eq!(
        repo.count_bounties(None, Some("10.9.9.9")).await.unwrap(),
        0
    );
    let listed = repo
        .bounties(None, Some("198.51.100.1"), 10, 0)
        .await
        .unwrap();
    assert_eq!(listed[0].payload, other.payload);
}

async fn attackers_and_deckies(repo: &SqlRepository) {
    let mut a = Attacker {
        uuid: String::new(),
        ip: "198.51.100.1".into(),
        first_seen_ns: 1,
        last_seen_ns: 5,
        event_count: 3,
        service_count: 1,
        decky_count: 1,
        services: r#"["ssh"]"#.into(),
        deckies: r#"["web01"]"#.into(),
        fingerprints: "[]".into(),
        commands: "[]".into(),
        traversal_path: String::new(),
        is_traversal: false,
        bounty_count: 1,
        credential_count: 1,
        score: 40,
    };
    let uuid = repo.upsert_attacker(&a).await.unwrap();
    a.event_count = 9;
    a.score = 70;
    assert_eq!(repo.upsert_attacker(&a).await.unwrap(), uuid);
    let b = Attacker {
        ip: "203.0.113.5".into(),
        last_seen_ns: 9,
        score: 10,
        services: r#"["http"]"#.into(),
        ..a.clone()
    };
    repo.upsert_attacker(&b).await.unwrap();
    let got = repo.attacker_by_uuid(&uuid).await.unwrap().unwrap();
    assert_eq!((got.event_count, got.score), (9, 70));
    let by_score: Vec<String> = repo
        .attackers(None, None, "score", 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(by_score, ["198.51.100.1", "203.0.113.5"]);
    let recent: Vec<String> = repo
        .attackers(None, None, "last_seen", 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(recent, ["203.0.113.5", "198.51.100.1"]);
    // Summaries are the rows without their command lists.
    let full = repo.attackers(None, None, "score", 10, 0).await.unwrap();
    let summaries = repo
        .attacker_summaries(None, None, "score", 10, 0)
        .await
        .unwrap();
    let stripped: Vec<Attacker> = full
        .into_iter()
        .map(|a| Attacker {
            commands: String::new(),
            ..a
        })
        .collect();
    assert_eq!(summaries, stripped);
    // Keyset pages of one row walk every attacker seen since a time once, newest first.
    for (i, ip) in ["192.0.2.71", "192.0.2.72", "192.0.2.73"]
        .iter()
        .enumerate()
    {
        let last_seen_ns = if i == 0 { 9 } else { 7 };
        repo.upsert_attacker(&Attacker {
            ip: (*ip).into(),
            last_seen_ns,
            service_count: 0,
            services: r#"["ftp"]"#.into(),
            ..a.clone()
        })
        .await
        .unwrap();
    }
    let mut walked = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = repo
            .attackers_seen_since(6, after.as_ref().map(|(t, u)| (*t, u.as_str())), 1)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.last_seen_ns, last.uuid.clone()));
        walked.extend(page.into_iter().map(|a| (a.last_seen_ns, a.ip)));
    }
    let mut want: Vec<(i64, String)> = [
        (9, "203.0.113.5"),
        (9, "192.0.2.71"),
        (7, "192.0.2.72"),
        (7, "192.0.2.73"),
    ]
    .iter()
    .map(|(t, ip)| (*t, (*ip).to_owned()))
    .collect();
    // Same time: ordered by uuid, which the repository derives; compare as sets per time.
    walked.sort();
    want.sort();
    assert_eq!(walked, want);
    assert_eq!(repo.attackers_seen_since(10, None, 10).await.unwrap(), []);
    assert_eq!(repo.count_attackers(Some("203.0"), None).await.unwrap(), 1);
    assert_eq!(repo.count_attackers(None, Some("ssh")).await.unwrap(), 1);
    assert!(
        repo.attackers(None, None, "ip; DROP TABLE x", 10, 0)
            .await
            .is_err()
    );

    let d = DeckyRecord {
        name: "web01".into(),
        spec: "{}".into(),
        state: "running".into(),
        last_error: None,
        updated_ns: 0,
    };
    repo.upsert_decky(&d).await.unwrap();
    repo.upsert_decky(&DeckyRecord {
        state: "failed".into(),
        last_error: Some("boom".into()),
        ..d.clone()
    })
    .await
    .unwrap();
    let fleet = repo.deckies().await.unwrap();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].last_error.as_deref(), Some("boom"));
    assert!(repo.delete_decky("web01").await.unwrap());
}

fn intel_update(ip: &str, events: i64, identity: Option<&str>) -> AttackerUpdate {
    AttackerUpdate {
        attacker: Attacker {
            uuid: format!("00000000-0000-0000-0000-{events:012}"),
            ip: ip.to_owned(),
            first_seen_ns: 1,
            last_seen_ns: events,
            event_count: events,
            service_count: 1,
            decky_count: 1,
            services: r#"["ssh"]"#.into(),
            deckies: r#"["d1"]"#.into(),
            fingerprints: "[]".into(),
            commands: r#"[{"command":"id \u0000"}]"#.into(),
            traversal_path: String::new(),
            is_traversal: false,
            bounty_count: 1,
            credential_count: 1,
            score: 20,
        },
        behavior: BehaviorRow {
            os_guess: Some("linux".into()),
            hop_distance: Some(7),
            tcp_fingerprint: "{}".into(),
            retransmit_count: 0,
            behavior_class: "brute_force".into(),
            beacon_interval_s: None,
            beacon_jitter_pct: Some(12.5),
            tool_guesses: r#"["hydra"]"#.into(),
            timing_stats: "{}".into(),
            phase_sequence: "{}".into(),
        },
        identity_key: identity.map(str::to_owned),
        state: format!(r#"{{"events":{events},"text":"\u00ff"}}"#),
    }
}

fn session(id: &str, ip: &str, closed: bool) -> SessionRow {
    SessionRow {
        id: id.to_owned(),
        attacker_ip: ip.to_owned(),
        decky: "d1".into(),
        service: "ssh".into(),
        dst_port: Some(22),
        start_ns: 10,
        end_ns: 20,
        event_count: 3,
        flow_count: 1,
        commands: r#"["id","uname -a"]"#.into(),
        credentials: r#"[{"username":"root","secret":"x"}]"#.into(),
        auth_success: true,
        closed,
    }
}

async fn intel_tables(repo: &SqlRepository) {
    let bounty = NewBounty {
        ts_ns: 5,
        decky: "d1".into(),
        service: "ssh".into(),
        attacker_ip: "192.0.2.50".into(),
        bounty_type: "credential".into(),
        payload: r#"{"username":"root","secret":"x"}"#.into(),
    };
    let before = repo.count_bounties(None, Some("192.0.2.50")).await.unwrap();
    let commit = IntelCommit {
        attackers: vec![
            intel_update("192.0.2.50", 3, Some("k1")),
            intel_update("192.0.2.51", 4, Some("k1")),
            intel_update("2001:db8::52", 5, Some("k2")),
        ],
        sessions: vec![
            session("s1", "192.0.2.50", false),
            session("s2", "192.0.2.51", true),
            SessionRow {
                end_ns: 35,
                ..session("s3", "192.0.2.50", false)
            },
        ],
        // A duplicate inside the batch is deduplicated by the unique key too.
        bounties: vec![bounty.clone(), bounty.clone()],
        cursor: Some(("test_cursor".into(), 42)),
    };
    repo.commit_intel(&commit).await.unwrap();
    assert_eq!(
        repo.count_bounties(None, Some("192.0.2.50")).await.unwrap(),
        before + 1
    );
    assert_eq!(
        repo.state("test_cursor").await.unwrap(),
        Some(serde_json::json!(42))
    );
    let a = repo.attacker_by_ip("192.0.2.50").await.unwrap().unwrap();
    assert_eq!(a.event_count, 3);
    assert_eq!(a.score, 20);
    let b = repo.behavior(&a.uuid).await.unwrap().unwrap();
    assert_eq!(b, commit.attackers[0].behavior);
    // The same two-row statement with NULL and non-NULL beacon intervals in alternating
    // positions (PostgreSQL once rejected this: sqlx 0.9 typed an f64 NULL as float4).
    for pair in [
        [Some(61.25), None],
        [None, Some(2.5)],
        [Some(7.0), Some(1.0)],
        [None, None],
    ] {
        let attackers: Vec<AttackerUpdate> = ["192.0.2.53", "192.0.2.54"]
            .iter()
            .zip(pair)
            .map(|(ip, beacon)| {
                let mut update = intel_update(ip, 6, None);
                update.attacker.uuid = format!("00000000-0000-0000-0000-0000000000{}", &ip[8..]);
                update.behavior.beacon_interval_s = beacon;
                update
            })
            .collect();
        let one = IntelCommit {
            attackers,
            sessions: Vec::new(),
            bounties: Vec::new(),
            cursor: None,
        };
        repo.commit_intel(&one).await.unwrap();
        for (ip, beacon) in ["192.0.2.53", "192.0.2.54"].iter().zip(pair) {
            let a = repo.attacker_by_ip(ip).await.unwrap().unwrap();
            let b = repo.behavior(&a.uuid).await.unwrap().unwrap();
            assert_eq!(b.beacon_interval_s, beacon, "{ip}");
        }
    }
    let groups = repo.identity_groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].ips, ["192.0.2.50", "192.0.2.51"]);
    let states = repo
        .attacker_states(&[
            "192.0.2.51".into(),
            "2001:db8::52".into(),
            "192.0.2.99".into(),
        ])
        .await
        .unwrap();
    assert_eq!(states.len(), 2);
    let saved = states.iter().find(|s| s.ip == "2001:db8::52").unwrap();
    assert!(saved.state.contains(r#""events":5"#));
    // With the lists of its attacker row.
    let row = repo.attacker_by_ip("2001:db8::52").await.unwrap().unwrap();
    assert_eq!(
        (&saved.commands, &saved.fingerprints),
        (&row.commands, &row.fingerprints)
    );
    // Each IP once, with the end of its latest open session.
    assert_eq!(
        repo.open_session_ends(10).await.unwrap(),
        [("192.0.2.50".to_owned(), 35)]
    );
    let s = repo.sessions(Some("192.0.2.50"), 10, 0).await.unwrap();
    assert_eq!(s[0], session("s1", "192.0.2.50", false));
    assert_eq!(s.len(), 2);
    assert_eq!(
        repo.session("192.0.2.50", "s1").await.unwrap(),
        Some(session("s1", "192.0.2.50", false))
    );
    assert_eq!(repo.session("192.0.2.51", "s1").await.unwrap(), None);
    assert_eq!(repo.session("192.0.2.50", "s9").await.unwrap(), None);

    // Re-committing (a replayed batch) upserts in place: same uuid, same rows, new values.
    let mut again = commit.clone();
    again.attackers[0].attacker.uuid = "ffffffff-ffff-ffff-ffff-ffffffffffff".into();
    again.attackers[0].attacker.event_count = 9;
    again.sessions[0].closed = true;
    again.sessions[2].closed = true;
    again.cursor = Some(("test_cursor".into(), 43));
    // Lists not changed since they were written are passed empty and kept as stored.
    again.attackers[0].attacker.commands = String::new();
    again.attackers[0].attacker.fingerprints = String::new();
    again.sessions[0].commands = String::new();
    again.sessions[0].credentials = String::new();
    again.sessions[2].commands = r#"["whoami"]"#.into();
    repo.commit_intel(&again).await.unwrap();
    let a2 = repo.attacker_by_ip("192.0.2.50").await.unwrap().unwrap();
    assert_eq!(a2.uuid, a.uuid);
    assert_eq!(a2.event_count, 9);
    assert_eq!(
        (&a2.commands, &a2.fingerprints),
        (&a.commands, &a.fingerprints)
    );
    assert!(
        a2.commands.starts_with(r#"[{"command":"id"#),
        "{}",
        a2.commands
    );
    let s1 = repo.session("192.0.2.50", "s1").await.unwrap().unwrap();
    assert_eq!(
        s1,
        SessionRow {
            closed: true,
            ..session("s1", "192.0.2.50", false)
        }
    );
    let s3 = repo.session("192.0.2.50", "s3").await.unwrap().unwrap();
    assert_eq!(s3.commands, r#"["whoami"]"#);
    assert_eq!(s3.credentials, session("s3", "", false).credentials);
    assert_eq!(
        repo.count_bounties(None, Some("192.0.2.50")).await.unwrap(),
        before + 1
    );
    assert!(repo.open_session_ends(10).await.unwrap().is_empty());
    assert_eq!(
        repo.state("test_cursor").await.unwrap(),
        Some(serde_json::json!(43))
    );
    assert_eq!(repo.sessions(None, 10, 0).await.unwrap().len(), 3);
}

async fn retention(repo: &SqlRepository) {
    repo.purge().await.unwrap();
    let batch = rows(
        (0..200)
            .map(|i| event(i, "d", "s", "k", "10.0.0.1", &[("pad", &"x".repeat(400))]))
            .collect(),
    );
    repo.insert_segment(20, &batch).await.unwrap();
    assert_eq!(repo.delete_events_before(50_000_000_000).await.unwrap(), 50);
    let before = repo.events_bytes().await.unwrap();
    repo.enforce_size(before / 2).await.unwrap();
    assert!(repo.events_bytes().await.unwrap() <= before / 2);
    let left = repo.events(&EventQuery::default(), 1000, 0).await.unwrap();
    assert!(!left.is_empty());
    // The oldest went first.
    let oldest = left.iter().map(|e| e.event.ts_ns).min().unwrap();
    assert!(oldest > 50_000_000_000 + 60_000_000_000, "{oldest}");
}

async fn leases(repo: &SqlRepository) {
    let minute = 60_000_000_000;
    assert_eq!(
        repo.acquire_lease("collect", "a", minute).await.unwrap(),
        Ok(())
    );
    // The holder renews; another is refused and told who holds it.
    assert_eq!(
        repo.acquire_lease("collect", "a", minute).await.unwrap(),
        Ok(())
    );
    let held = repo
        .acquire_lease("collect", "b", minute)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(held.holder, "a");
    // Other roles are independent.
    assert_eq!(
        repo.acquire_lease("profiler", "b", minute).await.unwrap(),
        Ok(())
    );
    // An expired lease is taken over.
    assert_eq!(
        repo.acquire_lease("collect", "a", -1).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        repo.acquire_lease("collect", "b", minute).await.unwrap(),
        Ok(())
    );
    repo.release_lease("collect", "a").await.unwrap();
    assert!(
        repo.acquire_lease("collect", "c", minute)
            .await
            .unwrap()
            .is_err()
    );
    repo.release_lease("collect", "b").await.unwrap();
    assert_eq!(
        repo.acquire_lease("collect", "c", minute).await.unwrap(),
        Ok(())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_repository_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(&sqlite_repo(&dir).await).await;
}

/// The segment insert streams: SQLite runs the virtual table as a co-routine feeding the
/// insert row by row, never copying the segment into a temporary table first (which would
/// hold a whole segment in memory, with `temp_store=MEMORY`); and the row source cannot be
/// read from a view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_segment_insert_streams_without_a_temporary_copy() {
    let dir = tempfile::tempdir().unwrap();
    let repo = sqlite_repo(&dir).await;
    let batch = rows(vec![event(1, "d", "s", "k", "10.0.0.1", &[])]);
    assert_eq!(repo.insert_segment(1, &batch).await.unwrap(), 1);
    // The writer's one connection has the module registered by the insert above.
    let explain = format!("EXPLAIN {}", sqlite_flush::insert_text());
    let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(explain))
        .fetch_all(repo.sqlite_writer.as_ref().unwrap())
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get(row, "opcode"))
        .collect();
    assert!(plan.iter().any(|op| op == "VFilter"), "{plan:?}");
    assert!(!plan.iter().any(|op| op == "OpenEphemeral"), "{plan:?}");
    // A view in the database file may not read the row source (SQLITE_VTAB_DIRECTONLY).
    let writer = repo.sqlite_writer.as_ref().unwrap();
    sqlx::query("CREATE VIEW rows_view AS SELECT seq FROM decnet_segment_rows")
        .execute(writer)
        .await
        .unwrap();
    let refused = sqlx::query("SELECT * FROM rows_view")
        .fetch_all(writer)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("unsafe use"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_repository_suite() {
    if let Some(repo) = server_repo(PG_ENV, "PostgreSQL").await {
        suite(&repo).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_passes_the_repository_suite() {
    if let Some(repo) = server_repo(MYSQL_ENV, "MariaDB").await {
        suite(&repo).await;
    }
}

/// A database at schema version 2 (per-row unique key) with events in it migrates to the
/// per-segment marker: ids and rows are kept, replays of its segments insert nothing, and the
/// markers keep segment ids increasing.
async fn migrates_v2_events(url: &str) {
    let repo = SqlRepository::open(url).await.unwrap();
    repo.migrate_up_to(2).await.unwrap();
    let batch = rows(
        (0..3)
            .map(|i| event(100 + i, "web01", "ssh", "login", "10.0.0.7", &[]))
            .collect(),
    );
    for (segment, (seq, e)) in [(7, &batch[0]), (7, &batch[1]), (8, &batch[2])] {
        let mut sql = Sql::new(
            repo.backend,
            "INSERT INTO events (segment_id, seq, ts_ns, decky, service, kind, severity, \
             fields, raw, truncated) VALUES (",
        );
        for (i, arg) in [
            Arg::I64(segment),
            Arg::I64(i64::try_from(*seq).unwrap()),
            Arg::I64(e.ts_ns),
            Arg::Text(e.decky.clone()),
            Arg::Text(e.service.clone()),
            Arg::Text(e.kind.clone()),
            Arg::I64(4),
            Arg::Text("{}".into()),
            Arg::Bytes(e.raw().to_vec()),
            Arg::I64(0),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(arg);
        }
        sql.push(")");
        sql.query().execute(repo.pool()).await.unwrap();
    }
    let before = repo.events(&EventQuery::default(), 10, 0).await.unwrap();
    repo.migrate().await.unwrap();
    let after = repo.events(&EventQuery::default(), 10, 0).await.unwrap();
    assert_eq!(before, after);
    assert_eq!(after.len(), 3);
    assert_eq!(repo.max_segment_id().await.unwrap(), 8);
    assert_eq!(repo.insert_segment(7, &batch[..2]).await.unwrap(), 0);
    assert_eq!(repo.insert_segment(9, &batch).await.unwrap(), 3);
    let newest = repo.events(&EventQuery::default(), 1, 0).await.unwrap();
    assert!(newest[0].id > after[0].id);
    // Retention forgets old markers but never the newest.
    repo.delete_events_before(i64::MAX).await.unwrap();
    assert_eq!(repo.max_segment_id().await.unwrap(), 9);
    let markers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flushed_segments")
        .fetch_one(repo.pool())
        .await
        .unwrap();
    assert_eq!(markers, 1);
    repo.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_sqlite_database_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("v2.db").display());
    migrates_v2_events(&url).await;
    // A new file gets the larger page size.
    let repo = sqlite_repo(&dir).await;
    let page: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(repo.pool())
        .await
        .unwrap();
    assert_eq!(page, 16384);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_postgres_database_migrates() {
    if let Some(url) = server_db(PG_ENV, "PostgreSQL").await {
        migrates_v2_events(&url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_mariadb_database_migrates() {
    if let Some(url) = server_db(MYSQL_ENV, "MariaDB").await {
        migrates_v2_events(&url).await;
    }
}

#[tokio::test]
async fn a_database_from_a_diverging_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = sqlite_repo(&dir).await;
    sqlx::query("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        .execute(repo.pool())
        .await
        .unwrap();
    let err = repo.migrate().await.unwrap_err().to_string();
    assert!(err.contains("migrated by another version"), "{err}");
    sqlx::query("INSERT INTO schema_migrations VALUES (999, 'future', 'y', 0)")
        .execute(repo.pool())
        .await
        .unwrap();
    let err = repo.migrate().await.unwrap_err().to_string();
    assert!(err.contains("newer than this build"), "{err}");
}

#[test]
fn urls_resolve_from_type_and_url() {
    let def = "sqlite:///var/lib/decnet/decnet.db";
    assert_eq!(resolve_url(None, None, def).unwrap(), def);
    assert_eq!(resolve_url(Some("sqlite"), None, def).unwrap(), def);
    assert!(
        resolve_url(Some("postgres"), None, def)
            .unwrap_err()
            .to_string()
            .contains("needs DECNET_DB_URL")
    );
    assert!(resolve_url(Some("oracle"), None, def).is_err());
    assert_eq!(
        resolve_url(Some("mariadb"), Some("mysql://u@h/db"), def).unwrap(),
        "mysql://u@h/db"
    );
    let err = resolve_url(Some("postgres"), Some("mysql://u:secret@h/db"), def)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mysql URL"), "{err}");
    let err = resolve_url(None, Some("redis://u:secret@h/db"), def)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("secret") && err.contains("u:***@h"), "{err}");
}
