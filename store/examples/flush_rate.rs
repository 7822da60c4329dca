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
        // What the flusher does for one segment: read and decode it, insert it in one
        // transaction.
        let start = Instant::now();
        let (id, entries) = segment::read_sealed(&sealed.path).map_err(|e| e.to_string())?;
        let rows: Vec<(u64, Event)> = entries
            .into_iter()
            .filter_map(|(seq, e)| e.ok().map(|e| (seq, e)))
            .collect();
        let decoded = start.elapsed().as_secs_f64();
        eprintln!("read+decode: {decoded:.3}s");
        let inserted = rt
            .block_on(repo.insert_segment(id, &rows))
            .map_err(|e| e.to_string())?;
        Ok((inserted, start.elapsed().as_secs_f64()))
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
