//! `decnet correlate` (one shot, from a file, stdin or the store) and `decnet profiler`
//! (continuous): thin wrappers around `decnet-intel`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    time::Duration,
};

use decnet_dataplane::syslog::{self, Limits};
use decnet_intel::{Config, Profiler, report, worker::Worker};
use decnet_store::repo::EventQuery;

use crate::{
    args::{CorrelateArgs, CorrelateOutput, IntelArgs, ProfilerArgs},
    collect::{open_store, runtime},
    failure::Failure,
};

/// Longest line read from a log file; longer ones are skipped and counted.
const MAX_LINE: usize = 64 * 1024;

fn config(args: &IntelArgs) -> Config {
    Config {
        session_gap_ns: i64::try_from(args.session_gap_secs)
            .unwrap_or(86_400)
            .saturating_mul(1_000_000_000),
        min_deckies: usize::try_from(args.min_deckies).unwrap_or(2),
        ..Config::default()
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Feed every line of `input` to the engine; returns (lines, unparsable lines).
fn feed_lines(engine: &mut Profiler, input: impl Read) -> Result<(u64, u64), Failure> {
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    let limits = Limits::default();
    let (mut lines, mut bad) = (0u64, 0u64);
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::runtime(format!("cannot read the log: {e}")))?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE && !line.ends_with(b"\n") {
            skip_line(&mut reader)?;
            bad += 1;
            continue;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            continue;
        }
        lines += 1;
        let now = now_ns();
        match syslog::parse(text, &limits, now) {
            Ok(p) => engine.feed(&p.message.to_event(now)),
            Err(_) => bad += 1,
        }
        if lines % DISCARD_EVERY == 0 {
            engine.discard_changes();
        }
    }
    Ok((lines, bad))
}

/// Events fed between two [`Profiler::discard_changes`]: correlate keeps no repository, so the
/// ended sessions and bounties meant for one are dropped as they come.
const DISCARD_EVERY: u64 = 4096;

/// Read past the rest of an oversized line without holding it (a log line with no newline
/// could be as large as the file).
fn skip_line(reader: &mut impl BufRead) -> Result<(), Failure> {
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| Failure::runtime(format!("cannot read the log: {e}")))?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

pub fn correlate(args: &CorrelateArgs, json: bool) -> Result<(), Failure> {
    let mut engine = Profiler::new(Config {
        max_cached_attackers: usize::MAX,
        max_cached_bytes: usize::MAX,
        ..config(&args.intel)
    });
    let stdin = args.stdin || args.log_file.as_deref() == Some(std::path::Path::new("-"));
    let mut bad = 0;
    if stdin {
        bad = feed_lines(&mut engine, std::io::stdin().lock())?.1;
    } else if let Some(path) = &args.log_file {
        let file = std::fs::File::open(path)
            .map_err(|e| Failure::config(format!("cannot open {}: {e}", path.display())))?;
        bad = feed_lines(&mut engine, file)?.1;
    } else {
        let rt = runtime()?;
        let (_dir, repo) = open_store(&args.store, &rt)?;
        rt.block_on(async {
            let mut after = 0;
            loop {
                let rows = repo
                    .events_after(after, &EventQuery::default(), decnet_store::repo::MAX_PAGE)
                    .await
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                let Some(last) = rows.last().map(|r| r.id) else {
                    break;
                };
                for r in &rows {
                    engine.feed(&r.event);
                }
                engine.discard_changes();
                after = last;
            }
            repo.close().await;
            Ok::<_, Failure>(())
        })?;
    }
    if bad > 0 {
        eprintln!("correlate: {bad} lines could not be read as syslog and were skipped");
    }
    let output = if json {
        CorrelateOutput::Json
    } else {
        args.output
    };
    let mut out = std::io::stdout().lock();
    let write = |out: &mut dyn Write, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| Failure::runtime(format!("cannot write the output: {e}")))
    };
    match output {
        CorrelateOutput::Json => {
            let text = serde_json::to_string_pretty(&report::to_json(&engine))
                .map_err(|e| Failure::runtime(e.to_string()))?;
            write(&mut out, text.as_bytes())?;
            write(&mut out, b"\n")?;
        }
        CorrelateOutput::Syslog => {
            let now = now_ns();
            for t in engine.traversals() {
                let mut line = report::to_syslog(&t, now);
                line.push(b'\n');
                write(&mut out, &line)?;
            }
        }
        CorrelateOutput::Table => {
            let s = report::stats(&engine);
            let mut table = comfy_table::Table::new();
            table.set_header([
                "attacker",
                "path",
                "deckies",
                "hops",
                "first seen",
                "duration s",
            ]);
            for t in engine.traversals() {
                table.add_row([
                    t.attacker_ip.clone(),
                    t.path.clone(),
                    t.decky_count.to_string(),
                    t.hop_count.to_string(),
                    report::time(t.first_seen_ns),
                    format!("{:.1}", t.duration_s),
                ]);
            }
            let summary = format!(
                "{} events, {} attackers, {} traversals, {} linked identities\n",
                s.events, s.attackers, s.traversals, s.identities
            );
            write(&mut out, summary.as_bytes())?;
            if s.traversals > 0 {
                write(&mut out, format!("{table}\n").as_bytes())?;
            }
            for (key, ips) in engine.identities() {
                let line = format!(
                    "identity {}: {}\n",
                    &key[..12.min(key.len())],
                    ips.join(", ")
                );
                write(&mut out, line.as_bytes())?;
            }
        }
    }
    Ok(())
}

pub fn profiler(args: &ProfilerArgs) -> Result<(), Failure> {
    decnet_store::datadir::private_umask();
    let rt = runtime()?;
    let (dir, repo) = open_store(&args.store, &rt)?;
    let _lock = dir
        .lock("profiler")
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let cfg = Config {
        max_cached_attackers: usize::try_from(args.max_cached).unwrap_or(usize::MAX),
        max_cached_bytes: usize::try_from(args.max_cached_mib << 20).unwrap_or(usize::MAX),
        ..config(&args.intel)
    };
    rt.block_on(async {
        let fail = |e: decnet_intel::IntelError| Failure::runtime(e.to_string());
        let mut worker = Worker::open(repo.clone(), cfg.clone(), args.batch)
            .await
            .map_err(fail)?
            .with_commit_interval(Duration::from_millis(args.commit_interval_ms));
        if args.once {
            let started = std::time::Instant::now();
            let n = worker.run_until_idle().await.map_err(fail)?;
            eprintln!(
                "profiler: {n} events profiled in {:.2} s; cursor at event {}",
                started.elapsed().as_secs_f64(),
                worker.cursor()
            );
            repo.close().await;
            return Ok(());
        }
        eprintln!(
            "profiler: following events from id {} every {} s; Ctrl-C stops",
            worker.cursor(),
            args.interval_secs
        );
        follow(
            &mut worker,
            Duration::from_secs(args.interval_secs),
            stop_signal(),
        )
        .await;
        eprintln!("profiler: stopped at event {}", worker.cursor());
        repo.close().await;
        Ok(())
    })
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    match term.as_mut() {
        Some(t) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The profiler's follow loop: catch up, wait `interval`, again, until `stop` resolves. A
/// failed pass (a database hiccup) committed nothing and is retried at the next one.
pub async fn follow(
    worker: &mut Worker,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            pass = worker.run_until_idle() => match pass {
                Ok(n) if n > 0 => tracing::info!(events = n, cursor = worker.cursor(), "profiled"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "profiler pass failed; retrying"),
            },
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// The profiler inside `decnet serve`: a task following the events table until `stop` is
/// notified. Its failures to open are reported, not fatal to the intake.
pub fn spawn_in_serve(
    rt: &tokio::runtime::Runtime,
    repo: decnet_store::repo::SqlRepository,
    args: &IntelArgs,
    interval: Duration,
    stop: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    let cfg = config(args);
    rt.spawn(async move {
        let mut worker = match Worker::open(repo, cfg, decnet_intel::worker::DEFAULT_BATCH).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "serve: the profiler cannot start; attackers will not be updated");
                eprintln!("serve: the profiler cannot start ({e}); attackers will not be updated");
                return;
            }
        };
        eprintln!("serve: profiler following events from id {}", worker.cursor());
        follow(&mut worker, interval, stop.notified()).await;
        eprintln!("serve: profiler stopped at event {}", worker.cursor());
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An oversized line is skipped in place (not read into memory) and counted, and the lines
    /// around it are still read.
    #[test]
    fn an_oversized_line_is_skipped_and_counted() {
        let good = b"<134>1 2026-11-27T05:00:00Z web01 ssh - command [relay@55555 src_ip=\"198.51.100.9\" command=\"id\"] x\n";
        let mut log = good.to_vec();
        log.extend(std::iter::repeat_n(b'a', MAX_LINE * 5));
        log.push(b'\n');
        log.extend_from_slice(good);
        let mut engine = Profiler::new(Config::default());
        let (lines, bad) = feed_lines(&mut engine, &log[..]).unwrap();
        assert_eq!((lines, bad), (2, 1));
        let mut reader = BufReader::with_capacity(16, &b"abcdefghijklmnopqrstuvwxyz\nnext\n"[..]);
        skip_line(&mut reader).unwrap();
        let mut rest = String::new();
        reader.read_line(&mut rest).unwrap();
        assert_eq!(rest, "next\n");
    }
}
