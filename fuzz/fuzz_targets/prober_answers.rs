//! What attackers' servers answer the active prober: a JARM probe's ServerHello, an SSH
//! server's banner + KEXINIT, a raw IPv4 packet answering the TCP fingerprint's SYN.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use decnet_prober::{hassh, jarm, tcpfp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let answer = jarm::parse_server_hello(data);
    let _ = jarm::jarm_hash(&[answer.as_str(); 10].join(","));
    let _ = hassh::from_stream(data);
    let probe = tcpfp::SynProbe {
        src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 50_000),
        dst: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 22),
        seq: 0x0102_0304,
        tsval: 7,
    };
    let _ = probe.classify(data);
});
