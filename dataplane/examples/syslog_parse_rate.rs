//! The intake's cost per message without the socket: one RFC 5424 message of 400 bytes, the
//! same `bench/syslog.sh` floods with (`syslog_flood`'s), parsed and encoded into a batch as
//! the intake thread does, in a loop; then parsing alone. The rest of the intake thread's cost
//! per message is the `recvmmsg` and the hand-off to the writers.
//!
//!     cargo run --release -p decnet-dataplane --example syslog_parse_rate [-- MESSAGES]

#[path = "common/syslog_bench.rs"]
mod syslog_bench;

use std::{hint::black_box, time::Instant};

use decnet_dataplane::syslog::{self, Limits};
use decnet_store::codec::EncodedBatch;
use syslog_bench::message;

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())
        .unwrap_or_else(|e| {
            eprintln!("MESSAGES must be a number: {e}");
            std::process::exit(2)
        });
    // 64 distinct messages, cycled: realistic variety without generating in the timed loop.
    let messages: Vec<Vec<u8>> = (0..64).map(message).collect();
    let limits = Limits::default();
    let now_ns = 1_764_000_000_000_000_000i64;
    let mut batch = EncodedBatch::with_capacity(64, 64 * 1024);
    let t = Instant::now();
    let mut encoded = 0usize;
    for i in 0..count {
        let bytes = &messages[i % messages.len()];
        if let Ok(parsed) = syslog::parse(black_box(bytes), &limits, now_ns) {
            parsed
                .message
                .with_draft(now_ns, |d| d.encode_into(&mut batch));
        }
        if batch.len() == 64 {
            encoded += batch.len();
            batch = EncodedBatch::with_capacity(64, 64 * 1024);
        }
    }
    let full = t.elapsed().as_nanos() as f64 / count as f64;
    let t = Instant::now();
    let mut ok = 0usize;
    for i in 0..count {
        let bytes = &messages[i % messages.len()];
        ok += usize::from(black_box(syslog::parse(black_box(bytes), &limits, now_ns)).is_ok());
    }
    let parse = t.elapsed().as_nanos() as f64 / count as f64;
    println!(
        "messages={count} parse_encode_ns_per_message={full:.0} parse_ns_per_message={parse:.0} encoded={encoded} parsed={ok}"
    );
}
