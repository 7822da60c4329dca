//! The dataplane: everything that turns bytes arriving at the sensor into events.
//!
//! It owns the capture backends (AF_XDP on pinned threads, AF_PACKET `TPACKET_V3` as the
//! fallback, pcap/pcapng files for offline work), zero-copy decoding of Ethernet/VLAN/IP/TCP/
//! UDP/ICMP/ARP, the per-thread flow table, passive fingerprints (TCP SYN, JA3/JA4, HASSH,
//! HTTP), packet retention, and the syslog intake that receives the deckies' RFC 5424 events.
//! Everything it produces is a [`decnet_store::Event`] handed to the store's segment writers.
//! The capture pipeline lands with its own issue. [`intake`] runs the syslog listeners (unix
//! datagram, UDP, TCP) over the sans-IO [`syslog`] layer, which parses RFC 5424 and RFC 3164 bytes, splits RFC 6587 / RFC 5425
//! TCP streams into frames, and holds the RFC 5424 formatter the services write with.

/// Live capture: AF_XDP (XDP + pinned per-queue threads), AF_PACKET `TPACKET_V3` fallback, mirror mode.
pub mod capture;
pub mod intake;
pub mod syslog;
