//! redb segment → SQL flush rate for `bench/syslog.sh`: writes COUNT events of about 400 bytes
//! into sealed segments the way the pipeline's writers do (batches of the pipeline's
//! `batch_max`, sealed when a segment reaches the default `SegmentPolicy::max_bytes`), then
//! starts the real pipeline on that directory so its flusher moves them into SQLite (or the
//! database DECNET_DB_URL names) one after another, and prints `events=N segments=K seconds=S
//! rate=R`: events over the time from the pipeline's start (before the first segment is read)
//! to the last segment's commit returning (durable: `synchronous=FULL`).
//!
//! The WAL checkpoint runs in the background after each commit. A checkpoint of one segment
//! that overlaps the next segment's insert is inside the timed span; only the last one runs
//! after it, and the example waits for it and prints how long it took, outside the rate.
//!
//! `--one-segment` writes all COUNT events into a single segment instead (the benchmark's
//! shape before 2026-11-27 23:00: 200,000 events ≈ 100 MB, three times what the pipeline
//! ever seals, so the SQLite page cache spills).
//!
//! `cargo run --release -p decnet-store --example flush_rate -- 200000 [--one-segment]`

use std::{
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use decnet_store::{
    Event, Severity,
    metrics::StoreMetrics,
    pipeline::{Pipeline, PipelineConfig},
    repo::SqlRepository,
    segment::{SegmentPolicy, SegmentWriter},
};

fn event(n: u64) -> Event {
    let mut e = Event::new(
        1_790_000_000_000_000_000 + i64::try_from(n).unwrap_or(0),
        "web01",
        "ssh",
        "auth_attempt",
        Severity::Warning,
    );
    e.src_ip = Some(std::net::IpAddr::from([198, 51, 100, (n % 250) as u8]));
    e.src_port = Some(40_000);
    for (k, v) in [
        ("username", "root"),
        ("password", "hunter2"),
        ("n", &n.to_string()),
    ] {
        let _ = e.push_field(k, v);
    }
    e.set_raw(&[b'x'; 300]);
    e
}

/// Write `count` events as sealed segments in `dir` the way one pipeline writer would;
/// returns how many segments.
fn write_segments(
    dir: &std::path::Path,
    count: u64,
    config: &PipelineConfig,
    one_segment: bool,
) -> Result<u64, String> {
    // Size decides here, as under a flood fast enough to fill a segment within its age limit;
    // the benchmark must not depend on how fast this machine builds the events.
    let policy = SegmentPolicy {
        max_age: Duration::MAX,
        max_bytes: if one_segment {
            u64::MAX
        } else {
            config.policy.max_bytes
        },
        ..config.policy.clone()
    };
    let mut id = 1;
    let mut segments = 0;
    let mut open: Option<SegmentWriter> = None;
    let mut n = 0;
    while n < count {
        let take = (count - n).min(config.batch_max as u64);
        let batch: Vec<Event> = (n..n + take).map(event).collect();
        n += take;
        let w = match open.as_mut() {
            Some(w) => w,
            None => {
                let w = SegmentWriter::create(dir, id).map_err(|e| e.to_string())?;
                id += 1;
                open.insert(w)
            }
        };
        w.append(&batch, false).map_err(|e| e.to_string())?;
        if w.should_rotate(&policy)
            && let Some(w) = open.take()
        {
            w.seal().map_err(|e| e.to_string())?;
            segments += 1;
        }
    }
    if let Some(w) = open.take() {
        w.seal().map_err(|e| e.to_string())?;
        segments += 1;
    }
    Ok(segments)
}

struct Outcome {
    events: u64,
    segments: u64,
    seconds: f64,
    checkpoint: Option<f64>,
}

fn run(count: u64, one_segment: bool) -> Result<Outcome, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let segments_dir = dir.path().join("segments");
    std::fs::create_dir(&segments_dir).map_err(|e| e.to_string())?;
    let config = PipelineConfig::new(segments_dir.clone());
    let segments = write_segments(&segments_dir, count, &config, one_segment)?;

    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let url = std::env::var("DECNET_DB_URL").unwrap_or_else(|_| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )
    });
    let repo = rt
        .block_on(SqlRepository::connect(&url))
        .map_err(|e| e.to_string())?;
    let metrics = Arc::new(StoreMetrics::default());
    // The real flusher: the pipeline recovers the sealed segments as its backlog and flushes
    // them in id order, each in its own transaction, deleting each file after its commit.
    let start = Instant::now();
    let pipeline = Pipeline::start(
        &config,
        repo.clone(),
        rt.handle().clone(),
        Arc::clone(&metrics),
    )
    .map_err(|e| e.to_string())?;
    // `flushed` grows right after each commit returns.
    while metrics.segments_flushed.get() + metrics.flush_errors.get() < segments {
        std::thread::sleep(Duration::from_micros(200));
    }
    let seconds = start.elapsed().as_secs_f64();
    if metrics.flush_errors.get() > 0 || metrics.undecodable.get() > 0 {
        return Err(format!(
            "{} failed flushes, {} undecodable entries",
            metrics.flush_errors.get(),
            metrics.undecodable.get()
        ));
    }
    let checkpoint = if url.starts_with("sqlite:") {
        loop {
            let (busy, log, done): (i64, i64, i64) = rt
                .block_on(sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(repo.pool()))
                .unwrap_or((1, 0, 0));
            if busy == 0 && log == done {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(start.elapsed().as_secs_f64() - seconds)
    } else {
        None
    };
    let events = metrics.flushed.get();
    if events != count {
        return Err(format!("{events} of {count} events flushed"));
    }
    pipeline.shutdown();
    Ok(Outcome {
        events,
        segments,
        seconds,
        checkpoint,
    })
}

fn main() -> ExitCode {
    let mut count = 200_000;
    let mut one_segment = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--one-segment" => one_segment = true,
            n => match n.parse() {
                Ok(n) => count = n,
                Err(_) => {
                    eprintln!("usage: flush_rate [COUNT] [--one-segment]");
                    return ExitCode::from(2);
                }
            },
        }
    }
    match run(count, one_segment) {
        Ok(o) => {
            if let Some(c) = o.checkpoint {
                eprintln!("last WAL checkpoint done {c:.3}s after the last commit");
            }
            println!(
                "events={} segments={} seconds={:.3} rate={:.0}",
                o.events,
                o.segments,
                o.seconds,
                o.events as f64 / o.seconds
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flush benchmark failed: {e}");
            ExitCode::from(1)
        }
    }
}
