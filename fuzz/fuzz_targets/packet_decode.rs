//! Frame decoding, then the whole analyzer (flows, stream reassembly, fingerprints) over the
//! input cut into frames: byte 0 picks the frame size.
#![no_main]

use std::{collections::HashMap, sync::Arc};

use decnet_dataplane::{
    decode::Packet,
    sniffer::{Analyzer, AnalyzerConfig, SnifferMetrics},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(0, data)
        && let Some(t) = p.tcp()
    {
        let _ = t.options().count();
    }
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    // A small flow table: the default is allocated for 262,144 flows up front, which made each
    // input cost tens of megabytes and held the target to ~150 runs/s; 64 flows also reach
    // the eviction path.
    let mut config = AnalyzerConfig::default();
    config.flows.max_flows = 64;
    let mut analyzer = Analyzer::new(config, HashMap::new(), Arc::new(SnifferMetrics::default()));
    let mut out = Vec::new();
    for (i, frame) in rest.chunks(usize::from(size).max(14)).enumerate() {
        analyzer.process_frame(i as i64 * 1_000_000, frame, &mut out);
    }
    analyzer.finish(&mut out);
});
