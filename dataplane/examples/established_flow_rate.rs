//! The analyzer's cost per packet of one established UDP flow with a hot cache: the same
//! 60-byte frame `bench/sniffer.sh` sends (10.99.0.2:4000 → 10.99.0.1:9999), 20 µs apart (50
//! kpps), through `Analyzer::process_frame`, then through `Packet::decode` alone. What a live
//! capture costs on top of this is the frame's first cache miss, the wakeups and the pcap
//! write (`bench/sniffer.sh` measures those).
//!
//!     cargo run --release -p decnet-dataplane --example established_flow_rate [-- PACKETS [new]]
//!
//! With `new`, the source port cycles over 1024..65023 as in `bench/sniffer.sh`'s flood, so
//! most packets open a flow (every 64,000th reuses one). Each frame is announced to
//! `Analyzer::upcoming` before the one ahead of it is processed, as the capture loop does.

use std::{collections::HashMap, hint::black_box, sync::Arc, time::Instant};

use decnet_dataplane::{
    decode::Packet,
    sniffer::{Analyzer, AnalyzerConfig, SnifferMetrics},
};

fn frame() -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
    // IPv4, 46 bytes, TTL 64, UDP (checksum left 0: the decoder does not verify it).
    f.extend_from_slice(&[0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 99, 0, 2, 10, 99, 0, 1]);
    // UDP 4000 → 9999, 26 bytes.
    f.extend_from_slice(&[0x0f, 0xa0, 0x27, 0x0f, 0, 26, 0, 0]);
    f.resize(60, 0x41);
    f
}

fn main() {
    let packets: i64 = std::env::args()
        .nth(1)
        .map_or(Ok(5_000_000), |a| a.parse())
        .unwrap_or_else(|e| {
            eprintln!("PACKETS must be a number: {e}");
            std::process::exit(2)
        });
    let new_flows = std::env::args().nth(2).is_some_and(|a| a == "new");
    let mut frame = frame();
    let start_ns = 1_700_000_000_000_000_000i64;
    let mut analyzer = Analyzer::new(
        AnalyzerConfig::default(),
        HashMap::new(),
        Arc::new(SnifferMetrics::default()),
    );
    let mut out = Vec::new();
    // As the capture loop does, the next frame is announced before each one is processed.
    let mut next = frame.clone();
    let port_of = |i: i64| 1024 + u16::try_from(i % 64_000).unwrap_or(0);
    let t = Instant::now();
    for i in 0..packets {
        if new_flows {
            frame[34..36].copy_from_slice(&port_of(i).to_be_bytes());
            next[34..36].copy_from_slice(&port_of(i + 1).to_be_bytes());
        }
        analyzer.upcoming(black_box(&next));
        analyzer.process_frame(start_ns + i * 20_000, black_box(&frame), &mut out);
        out.clear();
    }
    let analyze = t.elapsed().as_nanos() as f64 / packets as f64;
    let t = Instant::now();
    let mut decoded = 0u64;
    for i in 0..packets {
        decoded += u64::from(black_box(Packet::decode(i, black_box(&frame))).is_ok());
    }
    let decode = t.elapsed().as_nanos() as f64 / packets as f64;
    println!(
        "packets={packets} new_flows={new_flows} analyze_ns_per_packet={analyze:.1} decode_ns_per_packet={decode:.1} decoded={decoded}"
    );
}
