//! ARP over Ethernet/IPv4 (the only flavour on a decoy LAN).

use std::net::Ipv4Addr;

use super::{DecodeError, be16, need};

/// An ARP packet. Other hardware/protocol sizes keep only the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub hw_type: u16,
    pub proto_type: u16,
    /// 1 = request, 2 = reply.
    pub operation: u16,
    /// Sender/target addresses, present for Ethernet + IPv4 ARP.
    pub sender_mac: Option<[u8; 6]>,
    pub sender_ip: Option<Ipv4Addr>,
    pub target_mac: Option<[u8; 6]>,
    pub target_ip: Option<Ipv4Addr>,
}

pub(super) fn decode(buf: &[u8]) -> Result<Arp, DecodeError> {
    let h = need(buf, 8, "arp")?;
    let mut arp = Arp {
        hw_type: be16(h, 0),
        proto_type: be16(h, 2),
        operation: be16(h, 6),
        sender_mac: None,
        sender_ip: None,
        target_mac: None,
        target_ip: None,
    };
    if h[4] == 6 && h[5] == 4 {
        let b = need(buf, 28, "arp addresses")?;
        let mac = |at: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[at..at + 6]);
            m
        };
        arp.sender_mac = Some(mac(8));
        arp.sender_ip = Some(Ipv4Addr::new(b[14], b[15], b[16], b[17]));
        arp.target_mac = Some(mac(18));
        arp.target_ip = Some(Ipv4Addr::new(b[24], b[25], b[26], b[27]));
    }
    Ok(arp)
}
