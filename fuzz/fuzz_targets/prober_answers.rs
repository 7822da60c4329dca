//! What attackers' servers answer the active prober: a JARM probe's ServerHello, an SSH
//! server's banner + KEXINIT, a raw TCP answer to the fingerprint SYN.
#![no_main]

use decnet_prober::{hassh, jarm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let answer = jarm::parse_server_hello(data);
    let _ = jarm::jarm_hash(&[answer.as_str(); 10].join(","));
    let _ = hassh::from_stream(data);
});
