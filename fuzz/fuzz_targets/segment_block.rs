//! A segment block read back from arbitrary (damaged or hostile) bytes: never a panic, a block
//! that parses yields exactly the entries it claims, and those entries rebuilt into a block read
//! back the same.
#![no_main]

use decnet_store::{
    block::{Block, BlockBuilder, entry_count},
    codec,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let claimed = entry_count(data);
    assert!(claimed >= 1 || data.len() >= 5);
    let Ok(block) = Block::parse(data) else {
        return;
    };
    let entries: Vec<&[u8]> = block.collect();
    assert_eq!(entries.len() as u32, claimed);
    let mut rebuilt = BlockBuilder::default();
    for entry in &entries {
        let _ = codec::decode_view(entry);
        rebuilt.push(entry);
    }
    let bytes = rebuilt.bytes().to_vec();
    let again: Vec<&[u8]> = Block::parse(&bytes)
        .expect("rebuilt block parses")
        .collect();
    assert_eq!(again, entries);
});
