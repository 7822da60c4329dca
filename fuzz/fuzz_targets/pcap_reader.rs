//! pcap / pcapng reader over arbitrary files.
#![no_main]

use decnet_dataplane::pcapfile::PcapReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = PcapReader::new(data) else {
        return;
    };
    let mut n = 0usize;
    while let Ok(Some(rec)) = reader.next_record() {
        assert!(rec.data.len() <= decnet_dataplane::pcapfile::MAX_RECORD);
        n += 1;
        if n > 100_000 {
            break;
        }
    }
});
