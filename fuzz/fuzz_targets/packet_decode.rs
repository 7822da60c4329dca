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
    let mut analyzer = Analyzer::new(
        AnalyzerConfig::default(),
        HashMap::new(),
        Arc::new(SnifferMetrics::default()),
    );
    let mut out = Vec::new();
    for (i, frame) in rest.chunks(usize::from(size).max(14)).enumerate() {
        analyzer.process_frame(i as i64 * 1_000_000, frame, &mut out);
    }
    analyzer.finish(&mut out);
});
