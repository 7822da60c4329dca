//! Decode + analyze rate over the regression corpus (or given files), in packets per second.
//!
//!     cargo run --release -p decnet-dataplane --example analyze_rate [-- FILE.pcap ...]
//!
//! Every file is loaded into memory first, so the figure is decode + flow table +
//! fingerprints + event building on one core, without file I/O. Each pass replays all files
//! through one fresh analyzer; passes repeat until about two seconds have been spent.

use std::{
    collections::HashMap,
    io::Cursor,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use decnet_dataplane::{
    pcapfile::PcapReader,
    sniffer::{Analyzer, AnalyzerConfig, SnifferMetrics},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        let dir = PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/corpus");
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pcap") {
                files.push(path);
            }
        }
        files.sort();
    }
    // Frames with their timestamps, each file shifted after the previous one so flows of
    // different files never collide in time.
    let mut frames: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut bytes = 0usize;
    for path in &files {
        let data = std::fs::read(path)?;
        let mut reader = PcapReader::new(Cursor::new(data))?;
        let base = frames.last().map_or(0, |(ts, _)| ts + 3_600_000_000_000);
        let mut first = None;
        while let Some(rec) = reader.next_record()? {
            let t0 = *first.get_or_insert(rec.ts_ns);
            bytes += rec.data.len();
            frames.push((base + rec.ts_ns - t0, rec.data.to_vec()));
        }
    }
    let start = Instant::now();
    let mut passes = 0u64;
    let mut events = 0usize;
    while start.elapsed() < Duration::from_secs(2) {
        let mut analyzer = Analyzer::new(
            AnalyzerConfig::default(),
            HashMap::new(),
            Arc::new(SnifferMetrics::default()),
        );
        let mut out = Vec::new();
        for (ts, frame) in &frames {
            analyzer.process_frame(*ts, frame, &mut out);
        }
        analyzer.finish(&mut out);
        events = out.len();
        passes += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let packets = frames.len() as f64 * passes as f64;
    // Decode alone, for comparison (the analyzer's cost is mostly event building).
    let decode_start = Instant::now();
    let mut decode_passes = 0u64;
    let mut decoded = 0usize;
    while decode_start.elapsed() < Duration::from_secs(1) {
        for (ts, frame) in &frames {
            decoded += usize::from(decnet_dataplane::decode::Packet::decode(*ts, frame).is_ok());
        }
        decode_passes += 1;
    }
    let decode_rate =
        frames.len() as f64 * decode_passes as f64 / decode_start.elapsed().as_secs_f64();
    println!(
        "{} files, {} frames ({} bytes), {} events per pass; {passes} passes in {secs:.2} s",
        files.len(),
        frames.len(),
        bytes,
        events
    );
    println!(
        "{:.0} packets/s, {:.1} MB/s (decode + analyze, one core)",
        packets / secs,
        bytes as f64 * passes as f64 / secs / 1e6
    );
    println!(
        "{decode_rate:.0} packets/s decode only ({} decoded per pass)",
        decoded / usize::try_from(decode_passes.max(1)).unwrap_or(1)
    );
    Ok(())
}
