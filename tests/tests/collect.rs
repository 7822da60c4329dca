//! `decnet collect` as a process: a flood over the unix socket, `kill -9` at random points,
//! restarts, and an exact accounting of what SQL holds afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use decnet_store::repo::{EventQuery, SqlRepository};

struct Collector {
    child: Child,
    /// Highest `durable_total` the collector reported (events made durable in this run).
    durable: Arc<AtomicU64>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn start(data: &Path) -> Collector {
    let sock = data.join("intake.sock");
    let _ = std::fs::remove_file(&sock);
    let mut child = Command::new(decnet_e2e::workspace_bin("decnet"))
        .args([
            "collect",
            "--progress-secs",
            "0",
            "--durable-window-ms",
            "50",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("DECNET_LOG", "decnet_store::pipeline=debug")
        .env("NO_COLOR", "1")
        .env_remove("DECNET_DB_TYPE")
        .env_remove("DECNET_DB_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let durable = Arc::new(AtomicU64::new(0));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = BufReader::new(child.stderr.take().unwrap());
    {
        let durable = Arc::clone(&durable);
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Some(n) = line
                    .split("durable_total=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    durable.fetch_max(n, Ordering::SeqCst);
                }
                lines.lock().unwrap().push(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "collector did not start: {:?}",
            lines.lock().unwrap()
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("collector exited {status}: {:?}", lines.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Collector {
        child,
        durable,
        stderr: lines,
    }
}

fn line(run: u32, n: u64) -> Vec<u8> {
    format!(
        "<132>1 2026-11-27T05:00:00.000000Z web01 ssh - command [relay@55555 src_ip=\"198.51.100.7\" run=\"{run}\" n=\"{n}\" cmd=\"{}\"] flood",
        "x".repeat(300)
    )
    .into_bytes()
}

/// Send numbered messages of `run` until `stop`; returns how many the socket accepted.
fn flood(sock: PathBuf, run: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let client = UnixDatagram::unbound().unwrap();
        client
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            match client.send_to(&line(run, sent), &sock) {
                Ok(_) => sent += 1,
                // The collector died (or is backpressuring): the message was not accepted.
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        sent
    })
}

#[test]
fn kill_9_at_random_points_loses_nothing_durable_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("state");
    let sock = data.join("intake.sock");
    let mut seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    let mut rand_ms = |lo: u64, hi: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + seed % (hi - lo)
    };
    let mut durable_per_run = Vec::new();
    let kills = 4;
    for run in 0..kills {
        let mut collector = start(&data);
        let stop = Arc::new(AtomicBool::new(false));
        let sender = flood(sock.clone(), run, Arc::clone(&stop));
        std::thread::sleep(Duration::from_millis(rand_ms(150, 900)));
        collector.child.kill().unwrap(); // SIGKILL
        collector.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        // Give the stderr reader a moment to see the last lines written before the kill.
        std::thread::sleep(Duration::from_millis(100));
        let durable = collector.durable.load(Ordering::SeqCst);
        assert!(sent > 0, "run {run}: nothing was sent");
        assert!(
            durable <= sent,
            "run {run}: {durable} durable of {sent} sent"
        );
        durable_per_run.push((run, sent, durable));
    }

    // A last run that ends cleanly: everything it accepted must reach SQL.
    let mut collector = start(&data);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = flood(sock.clone(), kills, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let last_sent = sender.join().unwrap();
    sigint(&collector.child);
    let status = collector.child.wait().unwrap();
    assert!(status.success(), "{:?}", collector.stderr.lock().unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}?mode=ro", data.join("decnet.db").display());
    let repo = rt
        .block_on(SqlRepository::connect(&url.replace("mode=ro", "mode=rw")))
        .unwrap();
    let mut seen = HashSet::new();
    let mut per_run = vec![0u64; kills as usize + 1];
    let mut after = 0;
    loop {
        let page = rt
            .block_on(repo.events_after(after, &EventQuery::default(), 10_000))
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for e in &page {
            let run: u32 = e.event.field("run").unwrap().parse().unwrap();
            let n: u64 = e.event.field("n").unwrap().parse().unwrap();
            assert!(seen.insert((run, n)), "duplicate event run {run} n {n}");
            per_run[run as usize] += 1;
        }
    }
    for (run, sent, durable) in &durable_per_run {
        let stored = per_run[*run as usize];
        eprintln!("run {run}: sent {sent}, reported durable {durable}, in SQL {stored}");
        assert!(
            stored >= *durable,
            "run {run}: {stored} in SQL but {durable} were durable"
        );
        assert!(
            stored <= *sent,
            "run {run}: {stored} in SQL but only {sent} sent"
        );
    }
    assert_eq!(
        per_run[kills as usize], last_sent,
        "clean run must store all it accepted"
    );
    assert!(
        durable_per_run.iter().any(|(_, _, d)| *d > 0),
        "no run made anything durable before its kill: the test did not exercise recovery"
    );
    // Every segment was flushed and deleted.
    let left: Vec<_> = std::fs::read_dir(data.join("segments")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// SIGINT through the `kill` command (no libc in this crate).
fn sigint(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn a_second_collector_on_the_same_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("state");
    let mut first = start(&data);
    let out = Command::new(decnet_e2e::workspace_bin("decnet"))
        .args(["collect", "--no-unix", "--udp", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("DECNET_DB_TYPE")
        .env_remove("DECNET_DB_URL")
        .output()
        .unwrap();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another `decnet collect` already runs"),
        "{err}"
    );
}

#[test]
fn bad_store_settings_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(decnet_e2e::workspace_bin("decnet"));
        cmd.arg("collect")
            .args(args)
            .env_remove("DECNET_DB_URL")
            .env_remove("DECNET_DB_TYPE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let data = tmp.path().join("d");
    let data = data.to_str().unwrap();
    let out = run(&["--data-dir", data], &[("DECNET_DB_TYPE", "postgres")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs DECNET_DB_URL"));
    let out = run(&["--data-dir", "/proc/decnet"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/decnet"));
    let out = run(&["--data-dir", data, "--no-unix"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to listen on"));
}

#[test]
fn a_second_collector_on_the_same_database_is_refused_by_the_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        tmp.path().join("shared.db").display()
    );
    let spawn = |dir: &str| {
        Command::new(decnet_e2e::workspace_bin("decnet"))
            .args([
                "collect",
                "--no-unix",
                "--udp",
                "127.0.0.1:0",
                "--progress-secs",
                "0",
                "--data-dir",
            ])
            .arg(tmp.path().join(dir))
            .env("DECNET_DB_URL", &db)
            .env_remove("DECNET_DB_TYPE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = spawn("a");
    // Wait until the first one listens (it has taken the lease by then).
    let mut err = BufReader::new(first.stderr.take().unwrap());
    let mut banner = String::new();
    err.read_line(&mut banner).unwrap();
    assert!(banner.contains("listening"), "{banner}");
    let second = spawn("b").wait_with_output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let text = String::from_utf8_lossy(&second.stderr);
    assert!(
        text.contains("holds this database's collect lease"),
        "{text}"
    );
}
