//! redb segment → SQL flush rate for `bench/syslog.sh`: writes COUNT events of about 400 bytes
//! into one sealed segment, then times the flusher's insert of it into SQLite (or the database
//! DECNET_DB_URL names) and prints `events=N seconds=S rate=R`.
//!
//! `cargo run --release -p decnet-store --example flush_rate -- 200000`

use std::{process::ExitCode, time::Instant};

use decnet_store::{
    Event, Severity,
    repo::{Repository, SqlRepository},
    segment::{self, SegmentWriter},
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

fn main() -> ExitCode {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(200_000);
    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("cannot create a temporary directory");
        return ExitCode::from(1);
    };
    let run = || -> Result<(u64, f64), String> {
        let mut w = SegmentWriter::create(dir.path(), 1).map_err(|e| e.to_string())?;
        let events: Vec<Event> = (0..count).map(event).collect();
        for chunk in events.chunks(4096) {
            w.append(chunk, false).map_err(|e| e.to_string())?;
        }
        let (sealed, _) = w.seal().map_err(|e| e.to_string())?;
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
        // What the flusher does for one segment: open it, stream its entries into one
        // transaction and commit it.
        let start = Instant::now();
        let segment = segment::SealedSegment::open(&sealed.path).map_err(|e| e.to_string())?;
        let flushed = rt
            .block_on(repo.insert_sealed(&segment))
            .map_err(|e| e.to_string())?;
        if flushed.undecodable > 0 {
            return Err(format!("{} undecodable entries", flushed.undecodable));
        }
        let inserted = flushed.inserted;
        let committed = start.elapsed().as_secs_f64();
        // The WAL checkpoint runs after the commit, in the background; report when it has
        // copied everything, so its cost is visible (it is not part of the rate).
        if url.starts_with("sqlite:") {
            loop {
                let (busy, log, done): (i64, i64, i64) = rt
                    .block_on(
                        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(repo.pool()),
                    )
                    .unwrap_or((1, 0, 0));
                if busy == 0 && log == done {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            eprintln!(
                "WAL checkpointed {:.3}s after the commit",
                start.elapsed().as_secs_f64() - committed
            );
        }
        Ok((inserted, committed))
    };
    match run() {
        Ok((n, secs)) => {
            println!("events={n} seconds={secs:.3} rate={:.0}", n as f64 / secs);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flush benchmark failed: {e}");
            ExitCode::from(1)
        }
    }
}
