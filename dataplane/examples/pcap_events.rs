//! Print the sniffer events of pcap/pcapng files, one line each (a debugging aid until the
//! `decnet sniffer` verb exists).
//!
//!     cargo run -p decnet-dataplane --example pcap_events -- FILE.pcap [...]

use std::{collections::HashMap, path::PathBuf};

use decnet_dataplane::pcapfile::analyze_pcap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args_os().skip(1).map(PathBuf::from) {
        for e in analyze_pcap(&path, HashMap::new())? {
            let addr = |ip: Option<std::net::IpAddr>, port: Option<u16>| match (ip, port) {
                (Some(ip), Some(p)) => format!("{ip}:{p}"),
                (Some(ip), None) => ip.to_string(),
                _ => "-".to_owned(),
            };
            let fields: Vec<String> = e
                .fields()
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            println!(
                "{} {} {} {} -> {} {}",
                e.ts_ns,
                e.kind,
                e.decky,
                addr(e.src_ip, e.src_port),
                addr(e.dst_ip, e.dst_port),
                fields.join(" ")
            );
        }
    }
    Ok(())
}
