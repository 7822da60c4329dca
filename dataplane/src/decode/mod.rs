//! Zero-copy packet decoding: Ethernet, 802.1Q / QinQ, IPv4, IPv6, TCP, UDP, ICMP, ICMPv6, ARP.
//!
//! [`Packet::decode`] borrows the frame and never copies or allocates: every header is a small
//! `Copy` view and payloads are sub-slices. Every length read from the wire is checked before
//! it is used, so any byte sequence yields either a packet or a [`DecodeError`], never a panic
//! (property-tested and fuzzed). Lengths in the IP headers bound the payload, so Ethernet
//! padding never leaks into TCP/UDP payloads.

mod arp;
mod ip;
mod l4;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use arp::Arp;
pub use ip::{Fragment, IpHeader, Ipv4Extra, Ipv6Extra};
pub use l4::{Icmp, Tcp, TcpFlags, TcpOption, TcpOptions, Udp};

/// EtherTypes the decoder understands.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ tag still sent by some switches.
    pub const QINQ_OLD: u16 = 0x9100;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers the decoder understands.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// Most VLAN tags walked (QinQ is two; anything deeper is hostile or misconfigured).
pub const MAX_VLAN_TAGS: usize = 2;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{layer} header truncated: needs {need} bytes, frame has {have}")]
    Truncated {
        layer: &'static str,
        need: usize,
        have: usize,
    },
    #[error("more than {MAX_VLAN_TAGS} stacked VLAN tags")]
    TooManyVlanTags,
    #[error("IP version field says {0}, expected 4 or 6")]
    BadIpVersion(u8),
    #[error("IPv4 header length {0} is below 20 bytes")]
    BadIpv4HeaderLen(usize),
    #[error("IPv4 total length {total} is shorter than its header ({header})")]
    BadIpv4TotalLen { total: usize, header: usize },
    #[error("more than {0} IPv6 extension headers")]
    TooManyExtHeaders(usize),
    #[error("TCP data offset {0} is below 20 bytes")]
    BadTcpDataOffset(usize),
}

/// Take `n` bytes or report which layer was cut short.
pub(crate) fn need<'a>(
    buf: &'a [u8],
    n: usize,
    layer: &'static str,
) -> Result<&'a [u8], DecodeError> {
    buf.get(..n).ok_or(DecodeError::Truncated {
        layer,
        need: n,
        have: buf.len(),
    })
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b1, c, d]) => u32::from_be_bytes([a, b1, c, d]),
        _ => 0,
    }
}

/// The Ethernet header (after any VLAN tags: `ethertype` is the inner one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ethernet {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// The EtherType of the payload after the VLAN tags.
    pub ethertype: u16,
    /// VLAN IDs outermost first; `vlan_count` of them are valid.
    pub vlans: [u16; MAX_VLAN_TAGS],
    pub vlan_count: u8,
}

impl Ethernet {
    /// The VLAN IDs, outermost first.
    pub fn vlans(&self) -> &[u16] {
        &self.vlans[..usize::from(self.vlan_count).min(MAX_VLAN_TAGS)]
    }
}

/// The network layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network<'a> {
    Ip(IpHeader<'a>),
    Arp(Arp),
    /// An EtherType the decoder does not look into (LLDP, STP, …), with its payload.
    Other(u16, &'a [u8]),
}

/// The transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Tcp(Tcp<'a>),
    Udp(Udp<'a>),
    Icmp(Icmp<'a>),
    Icmpv6(Icmp<'a>),
    /// A non-first IP fragment: its bytes are the middle of some transport payload.
    Fragment(&'a [u8]),
    /// An IP protocol the decoder does not look into.
    Other(u8, &'a [u8]),
    /// No transport (ARP, non-IP, IPv6 "no next header").
    None,
}

/// One decoded frame: views into `data`, plus the capture timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time, UTC nanoseconds since the epoch.
    pub ts_ns: i64,
    /// The whole frame as captured.
    pub data: &'a [u8],
    pub ethernet: Ethernet,
    pub network: Network<'a>,
    pub transport: Transport<'a>,
}

impl<'a> Packet<'a> {
    /// Decode an Ethernet frame.
    #[inline]
    pub fn decode(ts_ns: i64, data: &'a [u8]) -> Result<Self, DecodeError> {
        let head = need(data, 14, "ethernet")?;
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&head[0..6]);
        src.copy_from_slice(&head[6..12]);
        let mut ethertype = be16(head, 12);
        let mut rest = &data[14..];
        let mut vlans = [0u16; MAX_VLAN_TAGS];
        let mut vlan_count = 0usize;
        while matches!(
            ethertype,
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
        ) {
            if vlan_count == MAX_VLAN_TAGS {
                return Err(DecodeError::TooManyVlanTags);
            }
            let tag = need(rest, 4, "vlan")?;
            vlans[vlan_count] = be16(tag, 0) & 0x0fff;
            vlan_count += 1;
            ethertype = be16(tag, 2);
            rest = &rest[4..];
        }
        let ethernet = Ethernet {
            dst,
            src,
            ethertype,
            vlans,
            vlan_count: u8::try_from(vlan_count).unwrap_or(u8::MAX),
        };
        let (network, transport) = match ethertype {
            ethertype::IPV4 => {
                let (ip, payload) = ip::decode_v4(rest)?;
                (Network::Ip(ip), l4::decode(&ip, payload)?)
            }
            ethertype::IPV6 => {
                let (ip, payload) = ip::decode_v6(rest)?;
                (Network::Ip(ip), l4::decode(&ip, payload)?)
            }
            ethertype::ARP => (Network::Arp(arp::decode(rest)?), Transport::None),
            other => (Network::Other(other, rest), Transport::None),
        };
        Ok(Self {
            ts_ns,
            data,
            ethernet,
            network,
            transport,
        })
    }

    /// The IP header, if this is an IP packet.
    pub fn ip(&self) -> Option<&IpHeader<'a>> {
        match &self.network {
            Network::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    /// The TCP header, if this is a (first-fragment or unfragmented) TCP segment.
    pub fn tcp(&self) -> Option<&Tcp<'a>> {
        match &self.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }

    /// The UDP header, if any.
    pub fn udp(&self) -> Option<&Udp<'a>> {
        match &self.transport {
            Transport::Udp(u) => Some(u),
            _ => None,
        }
    }

    /// Source and destination ports (TCP/UDP), if any.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.transport {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp(u) => Some((u.src_port, u.dst_port)),
            _ => None,
        }
    }

    /// Source address (IP), if any.
    pub fn src_ip(&self) -> Option<IpAddr> {
        self.ip().map(|ip| ip.src)
    }

    /// Destination address (IP), if any.
    pub fn dst_ip(&self) -> Option<IpAddr> {
        self.ip().map(|ip| ip.dst)
    }
}
