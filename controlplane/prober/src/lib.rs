//! The active prober: fingerprints attackers' own servers (JARM of their TLS ports,
//! hasshServer of their SSH ports, a TCP SYN-ACK fingerprint) and reports each as an event of
//! service `prober` whose `target_ip` is the attacker. The profiler files them as fingerprint
//! bounties.
//!
//! Probing connects back to an attacker, which is itself a tell and an opsec or legal choice,
//! so it only runs when asked (`decnet probe`, `decnet serve --probe`). Each probe is a
//! sans-IO part (bytes in, bytes out, tested byte for byte) and a thin tokio or socket part.

pub mod hassh;
pub mod jarm;
pub mod tcpfp;
pub mod worker;

use std::{net::SocketAddr, time::Duration};

/// Service slug of every prober event.
pub const SERVICE: &str = "prober";
/// The `decky` of prober events: an internal producer, not a fleet member.
pub const PSEUDO_HOST: &str = "prober";

/// Ports whose TLS servers get a JARM (the original's list).
pub const JARM_PORTS: [u16; 10] = [443, 8443, 8080, 4443, 50050, 2222, 993, 995, 8888, 9001];
/// Ports whose SSH servers get a hasshServer (the original's list).
pub const HASSH_PORTS: [u16; 4] = [22, 2222, 22222, 2022];
/// Ports asked for a SYN-ACK (the original's list).
pub const TCPFP_PORTS: [u16; 7] = [22, 80, 443, 8080, 8443, 445, 3389];

/// Why a probe produced no fingerprint.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{target}: {source}")]
    Io {
        target: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{target}: no answer within {timeout:?}")]
    Timeout {
        target: SocketAddr,
        timeout: Duration,
    },
    #[error("{target}: {reason}")]
    Protocol { target: SocketAddr, reason: String },
    #[error("the TCP fingerprint needs a raw socket (run as root or grant CAP_NET_RAW): {0}")]
    NeedsRawSocket(#[source] std::io::Error),
}
