//! The dataplane: everything that turns bytes arriving at the sensor into events.
//!
//! It owns the capture backends (AF_XDP on pinned threads, AF_PACKET `TPACKET_V3` as the
//! fallback, pcap/pcapng files for offline work), zero-copy decoding of Ethernet/VLAN/IP/TCP/
//! UDP/ICMP/ARP, the per-thread flow table, passive fingerprints (TCP SYN, JA3/JA4, HASSH,
//! HTTP), packet retention, and the syslog intake that receives the deckies' RFC 5424 events.
//! Everything it produces is a [`decnet_store::Event`] handed to the store's segment writers.
//!
//! The packet path is sans-IO and single-threaded per capture thread:
//! [`decode`] turns a frame into a borrowed [`decode::Packet`] (never panics on any bytes);
//! [`sniffer::Analyzer`] keeps a [`flow`] table (5-tuple, timeouts, per-direction counters,
//! IAT statistics, retransmissions), reassembles the first bytes of each TCP direction for the
//! [`fingerprint`] parsers (TCP SYN/p0f-style OS label, JA3/JA4/JA3S, TLS certificate, HASSH,
//! HTTP request, port scans) and emits `service = "sniffer"` events. [`pcapfile`] reads pcap
//! and pcapng files (and writes pcap) so the same analyzer runs offline:
//! [`pcapfile::analyze_pcap`].
//!
//! [`intake`] runs the syslog listeners (unix datagram, UDP, TCP) over the sans-IO [`syslog`]
//! layer, which parses RFC 5424 and RFC 3164 bytes, splits RFC 6587 / RFC 5425 TCP streams into
//! frames, and holds the RFC 5424 formatter the services write with.

/// Live capture: AF_XDP (XDP + pinned per-queue threads), AF_PACKET `TPACKET_V3` fallback, mirror mode.
pub mod capture;
pub mod decode;
pub mod fingerprint;
pub mod flow;
pub mod intake;
pub mod pcapfile;
/// Packet retention: rotating pcap segments under a size budget, per-segment IP index, export.
pub mod retention;
pub mod sniffer;
pub mod syslog;
#[cfg(test)]
mod testutil;

/// A hash map for keys an attacker chooses (5-tuples, source addresses) on the per-packet path:
/// foldhash is several times cheaper than SipHash, and its per-process random seed keeps
/// collisions from being precomputed.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Hint the CPU to fetch the two cache lines at `ptr` (a frame's headers, a hash bucket).
/// Never faults, so any address is allowed; a no-op off x86-64.
#[inline]
pub(crate) fn prefetch(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetch is a hint: it has no architectural effect and never faults.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(64).cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
