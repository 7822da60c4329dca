//! The Docker logs follower against a real engine: containers labelled before and after it
//! starts, one unlabelled, a restart, Docker's partial (16 KiB) frames, an over-cap line, and
//! a stop. Needs root and a running engine; otherwise it says SKIPPED loudly (set
//! `DECNET_REQUIRE_DOCKER=1` to make that a failure). The image is `FROM scratch` with a tiny
//! static helper built here by rustc, so no registry is needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use decnet_dataplane::intake::{Intake, IntakeConfig, IntakeMetrics, docker::DockerLogsConfig};
use decnet_store::{
    metrics::StoreMetrics,
    pipeline::{Pipeline, PipelineConfig},
    repo::{EventQuery, SqlRepository, StoredEvent},
};

/// Prints RFC 5424 lines: at start (`START_LINES`, one run id per start), or, run through
/// `docker exec`, into PID 1's stdout, which is the container's log.
const HELPER: &str = r#"
use std::io::Write;
fn line(tag: &str, kind: &str, sd: &str, msg: &str) -> String {
    format!("<134>1 - - custom - {kind} [relay@55555 src_ip=\"203.0.113.7\" tag=\"{tag}\"{sd}] {msg}\n")
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() >= 4 {
        let mut out = std::fs::OpenOptions::new().write(true).open("/proc/1/fd/1").unwrap();
        let n: usize = a[3].parse().unwrap();
        if a[1] == "emit" {
            let from: usize = a[4].parse().unwrap();
            let mut all = String::new();
            for i in from..from + n { all += &line(&a[2], "probe", &format!(" n=\"{i}\""), "hello"); }
            out.write_all(all.as_bytes()).unwrap();
        } else {
            out.write_all(line(&a[2], "long", "", &"x".repeat(n)).as_bytes()).unwrap();
        }
        return;
    }
    let tag = std::env::var("TAG").unwrap_or_default();
    let n: usize = std::env::var("START_LINES").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut out = std::io::stdout();
    for i in 0..n { out.write_all(line(&tag, "start", &format!(" run=\"{run}\" n=\"{i}\""), "up").as_bytes()).unwrap(); }
    out.flush().unwrap();
    loop { std::thread::sleep(std::time::Duration::from_secs(3600)); }
}
"#;

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes every container and the image, even when an assertion failed.
struct Lab {
    image: String,
    containers: Vec<String>,
}

impl Lab {
    fn run(&mut self, name: &str, label: Option<&str>, start_lines: u32) {
        let mut args = vec![
            "run".to_owned(),
            "-d".to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            "--network".to_owned(),
            "none".to_owned(),
            "-e".to_owned(),
            format!("TAG={name}"),
            "-e".to_owned(),
            format!("START_LINES={start_lines}"),
        ];
        if let Some(l) = label {
            args.extend(["--label".to_owned(), l.to_owned()]);
        }
        args.push(self.image.clone());
        self.containers.push(name.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

fn build_image(dir: &Path, image: &str) {
    std::fs::write(dir.join("helper.rs"), HELPER).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .args([
            "--edition=2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-o",
        ])
        .arg(dir.join("helper"))
        .arg(dir.join("helper.rs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "static helper build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY helper /helper\nENTRYPOINT [\"/helper\"]\n",
    )
    .unwrap();
    docker_ok(&["build", "-q", "-t", image, dir.to_str().unwrap()]);
}

fn engine_available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    match Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`docker version` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("no docker CLI: {e}")),
    }
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool, status: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn labelled_containers_are_followed_exactly_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    if let Err(why) = engine_available() {
        assert!(
            std::env::var_os("DECNET_REQUIRE_DOCKER").is_none(),
            "DECNET_REQUIRE_DOCKER is set but Docker is unusable: {why}"
        );
        eprintln!(
            "\n*** SKIPPED docker_logs: {why}; run as root with a Docker engine (scripts/docker.sh start) ***\n"
        );
        return;
    }
    let id = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 1000
    );
    let label = format!("decnet.test.dockerlogs={id}");
    let names = ["a", "b", "c", "u"].map(|n| format!("decnet-dl-{id}-{n}"));
    let [a, b, c, u] = &names;
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = Lab {
        image: format!("decnet-test/dockerlogs:{id}"),
        containers: Vec::new(),
    };
    build_image(tmp.path(), &lab.image);

    // Before the follower: two labelled, one not. Their start lines predate it (not read).
    lab.run(a, Some(&label), 3);
    lab.run(b, Some(&label), 3);
    lab.run(u, None, 3);
    std::thread::sleep(Duration::from_millis(1500));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let segments = tmp.path().join("segments");
    std::fs::create_dir(&segments).unwrap();
    let url = format!("sqlite://{}?mode=rwc", tmp.path().join("t.db").display());
    let repo = rt.block_on(SqlRepository::connect(&url)).unwrap();
    let pipeline = Pipeline::start(
        &PipelineConfig::new(segments),
        repo.clone(),
        rt.handle().clone(),
        Arc::new(StoreMetrics::default()),
    )
    .unwrap();
    let config = IntakeConfig {
        docker_logs: Some(DockerLogsConfig {
            labels: vec![label.clone()],
            all: false,
        }),
        ..IntakeConfig::default()
    };
    let metrics = Arc::new(IntakeMetrics::default());
    let intake = Intake::start(&config, &pipeline.sender().unwrap(), Arc::clone(&metrics)).unwrap();
    let followed = || metrics.docker_containers_followed.get();
    let status = || {
        format!(
            "followed {}, lines {}, received {}, sent {}, parse errors {}, cut {}, docker errors {}",
            metrics.docker_containers_followed.get(),
            metrics.docker_lines.get(),
            metrics.received_messages.get(),
            metrics.sent.get(),
            metrics.parse_errors.get(),
            metrics.docker_truncated_lines.get(),
            metrics.docker_errors.get()
        )
    };
    wait_until("2 containers followed", 20, || followed() == 2, status);

    // After: one more labelled container, read from its start.
    lab.run(c, Some(&label), 3);
    wait_until("3 containers followed", 20, || followed() == 3, status);
    for name in &names {
        docker_ok(&["exec", name, "/helper", "emit", name, "5", "0"]);
    }
    // 20 000 bytes: Docker cuts it into 16 KiB partial frames, rejoined here. 70 000 bytes:
    // over the 64 KiB cap, cut and counted.
    docker_ok(&["exec", a, "/helper", "long", a, "20000"]);
    docker_ok(&["exec", a, "/helper", "long", a, "70000"]);
    wait_until(
        "c's first lines",
        20,
        || metrics.sent.get() >= 3 + 3 * 5 + 2,
        status,
    );

    // A restart: the new run's start lines and later lines, nothing of the old run again.
    docker_ok(&["restart", "-t", "0", c]);
    wait_until("c followed again", 20, || followed() == 3, status);
    docker_ok(&["exec", c, "/helper", "emit", c, "5", "5"]);
    let expected = 2 + 5 + 5 + (3 + 5) + (3 + 5);
    wait_until("every line", 30, || metrics.sent.get() >= expected, status);
    // Room for duplicates to show up, if any.
    std::thread::sleep(Duration::from_secs(2));

    intake.stop();
    assert_eq!(
        followed(),
        0,
        "stopping the intake stops every follower task"
    );
    docker_ok(&["exec", a, "/helper", "emit", a, "5", "100"]);
    std::thread::sleep(Duration::from_millis(500));
    pipeline.shutdown();

    assert_eq!(metrics.sent.get(), expected, "events sent");
    assert_eq!(metrics.docker_lines.get(), expected, "lines read");
    assert_eq!(metrics.docker_truncated_lines.get(), 1);
    assert_eq!(metrics.parse_errors.get(), 0);
    let events = |search: String| -> Vec<StoredEvent> {
        let query = EventQuery {
            search,
            ..EventQuery::default()
        };
        rt.block_on(repo.events(&query, 1000, 0)).unwrap()
    };
    let ns = |evs: &[StoredEvent]| {
        let mut ns: Vec<u32> = evs
            .iter()
            .map(|e| e.event.field("n").unwrap().parse().unwrap())
            .collect();
        ns.sort_unstable();
        ns
    };
    for (name, probes) in [(a, 5), (b, 5), (c, 10)] {
        let got = events(format!("decky:{name} event:probe"));
        assert_eq!(ns(&got), (0..probes).collect::<Vec<_>>(), "{name}");
        let e = &got[0].event;
        assert_eq!(e.field("tag"), Some(name.as_str()));
        assert_eq!(e.field("container"), Some(name.as_str()));
        assert_eq!(e.src_ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(e.service, "custom");
    }
    assert!(events(format!("decky:{a} event:start")).is_empty());
    assert!(events(format!("decky:{b} event:start")).is_empty());
    let starts = events(format!("decky:{c} event:start"));
    let mut runs: Vec<&str> = starts
        .iter()
        .map(|e| e.event.field("run").unwrap())
        .collect();
    runs.sort_unstable();
    runs.dedup();
    assert_eq!(
        (starts.len(), runs.len()),
        (6, 2),
        "two runs of c, once each"
    );
    assert_eq!(events(format!("decky:{a} event:long")).len(), 2);
    assert!(events(format!("tag:{u}")).is_empty(), "unlabelled ignored");
    assert_eq!(
        events(String::new()).len(),
        usize::try_from(expected).unwrap()
    );
    rt.block_on(repo.close());
}
