//! `decnet correlate` and `decnet profiler` as processes: RFC 5424 lines from a file and from
//! stdin, the store as input, and the profiler filling attacker rows that correlate agrees with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::IpAddr;

use assert_cmd::Command;
use decnet_store::{
    Event, Severity,
    repo::{Repository, SqlRepository},
    rfc5424,
};

fn decnet() -> Command {
    let mut cmd = Command::new(decnet_e2e::workspace_bin("decnet"));
    cmd.env_remove("DECNET_LOG")
        .env_remove("DECNET_DB_TYPE")
        .env_remove("DECNET_DB_URL");
    cmd
}

const S: i64 = 1_000_000_000;
const T0: i64 = 1_780_000_000 * S;

/// An intruder hopping across three deckies, and a scanner that stays on one.
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    for (i, decky) in ["web-01", "db-01", "files-01"].iter().enumerate() {
        let base = T0 + i64::try_from(i).unwrap() * 60 * S;
        for (j, (kind, fields)) in [
            (
                "auth_attempt",
                vec![
                    ("username", "svc"),
                    ("password", "Winter2026!"),
                    ("success", "true"),
                ],
            ),
            ("command", vec![("cmd", "id")]),
        ]
        .iter()
        .enumerate()
        {
            let mut e = Event::new(
                base + i64::try_from(j).unwrap() * 5 * S,
                *decky,
                "ssh",
                *kind,
                Severity::Warning,
            );
            e.src_ip = Some("192.0.2.66".parse::<IpAddr>().unwrap());
            e.src_port = Some(50_000);
            e.dst_port = Some(22);
            for (k, v) in fields {
                e.push_field(k, v).unwrap();
            }
            out.push(e);
        }
    }
    for i in 0..5 {
        let mut e = Event::new(T0 + i * S, "web-01", "http", "request", Severity::Info);
        e.src_ip = Some("198.51.100.9".parse::<IpAddr>().unwrap());
        e.push_field("headers", r#"{"User-Agent":"sqlmap/1.8"}"#)
            .unwrap();
        out.push(e);
    }
    out
}

fn lines() -> String {
    let mut text = String::new();
    for e in events() {
        text.push_str(&String::from_utf8(rfc5424::format(&e)).unwrap());
        text.push('\n');
    }
    text.push_str("not syslog at all \u{1}\n");
    text
}

#[test]
fn correlate_reads_a_file_or_stdin_and_prints_json_table_and_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.log");
    std::fs::write(&file, lines()).unwrap();

    let out = decnet()
        .args(["correlate", "--output", "json", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stats"]["traversals"], 1);
    assert_eq!(v["stats"]["attackers"], 2);
    // The garbage line reads as RFC 3164 (any bytes do) and names no attacker.
    assert_eq!(v["stats"]["events_without_attacker"], 1);
    let t = &v["traversals"][0];
    assert_eq!(t["attacker_ip"], "192.0.2.66");
    assert_eq!(t["path"], "web-01 → db-01 → files-01");
    assert_eq!(t["hop_count"], 6);
    let sqlmap = v["attackers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ip"] == "198.51.100.9")
        .unwrap();
    assert!(sqlmap["tool_guesses"].to_string().contains("sqlmap"));

    let out = decnet()
        .args(["correlate", "--output", "syslog", "-f", "-"])
        .write_stdin(lines())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("<132>1 "), "{text}");
    assert!(
        text.contains("decnet-correlator correlator - traversal_detected"),
        "{text}"
    );
    assert!(text.contains("attacker_ip=\"192.0.2.66\""), "{text}");
    assert!(text.contains("deckies=\"web-01,db-01,files-01\""), "{text}");

    let out = decnet()
        .args(["correlate", "--stdin"])
        .write_stdin(lines())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("web-01 → db-01 → files-01"), "{text}");

    let out = decnet()
        .args(["correlate", "-f", "/nonexistent/events.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/events.log"));
}

#[test]
fn profiler_once_fills_attackers_and_correlate_reads_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}?mode=rwc", data.join("decnet.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let repo = SqlRepository::connect(&url).await.unwrap();
        let rows: Vec<(u64, Event)> = events()
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i as u64, e))
            .collect();
        repo.insert_segment(1, &rows).await.unwrap();
        repo.close().await;
    });

    // A commit interval below the floor is refused before anything is read.
    let out = decnet()
        .args([
            "profiler",
            "--once",
            "--commit-interval-ms",
            "5",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--commit-interval-ms"));

    // Small batches on a short clock: several commits, the same results.
    let out = decnet()
        .args([
            "profiler",
            "--once",
            "--batch",
            "4",
            "--commit-interval-ms",
            "10",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("11 events profiled"));

    rt.block_on(async {
        let repo = SqlRepository::connect(&url).await.unwrap();
        let a = repo.attacker_by_ip("192.0.2.66").await.unwrap().unwrap();
        assert!(a.is_traversal);
        assert_eq!(a.traversal_path, "web-01 → db-01 → files-01");
        assert_eq!(a.event_count, 6);
        // 5 seen + 15 auth + 15 authenticated + 15 commands + 10 + 5 (three deckies)
        assert_eq!(a.score, 65);
        assert_eq!(
            repo.sessions(Some("192.0.2.66"), 10, 0)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            repo.count_bounties(Some("credential"), None).await.unwrap(),
            1
        );
        repo.close().await;
    });

    // Caught up: a second pass profiles nothing.
    let out = decnet()
        .args(["profiler", "--once", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 events profiled"));

    let out = decnet()
        .args(["--json", "correlate", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["traversals"][0]["path"], "web-01 → db-01 → files-01");
}
