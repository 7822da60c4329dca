//! What the sensor captures: decoy address prefixes and, optionally, ports.
//!
//! The XDP program applies this in the kernel (maps `filter_v4`/`filter_v6`/`ports`);
//! [`CaptureFilter::matches`] is the same rule in user space, used by AF_PACKET and as the
//! reference the XDP program is tested against.

use std::net::IpAddr;

use ipnet::IpNet;

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Frames to capture. Empty `prefixes` means everything (the `ports` set is then ignored too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    /// A frame is wanted when its source or destination address is in one of these.
    pub prefixes: Vec<IpNet>,
    /// When not empty, TCP/UDP frames must also have a source or destination port in it. Other
    /// IP protocols (ICMP above all) are captured on address alone.
    pub ports: Vec<u16>,
}

impl CaptureFilter {
    /// Captures every frame.
    pub fn all() -> Self {
        Self::default()
    }

    /// True when every frame is captured.
    pub fn is_all(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// The user-space twin of the XDP program's `wanted()`.
    pub fn matches(&self, frame: &[u8]) -> bool {
        if self.is_all() {
            return true;
        }
        let be16 = |o: usize| {
            frame
                .get(o..o + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let Some(mut proto) = be16(12) else {
            return false;
        };
        let mut l3 = ETH_HLEN;
        for _ in 0..2 {
            if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
                break;
            }
            let Some(p) = be16(l3 + 2) else { return false };
            proto = p;
            l3 += 4;
        }
        let (src, dst, l4, l4proto) = match proto {
            ETH_P_IP => {
                let Some(ip) = frame.get(l3..l3 + 20) else {
                    return false;
                };
                let src = IpAddr::from([ip[12], ip[13], ip[14], ip[15]]);
                let dst = IpAddr::from([ip[16], ip[17], ip[18], ip[19]]);
                let later_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0;
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                if ihl < 20 {
                    return false;
                }
                // Later fragments carry no L4 header: the address decides alone (proto 0).
                (src, dst, l3 + ihl, if later_fragment { 0 } else { ip[9] })
            }
            ETH_P_IPV6 => {
                let Some(ip) = frame.get(l3..l3 + 40) else {
                    return false;
                };
                let mut s = [0u8; 16];
                let mut d = [0u8; 16];
                s.copy_from_slice(&ip[8..24]);
                d.copy_from_slice(&ip[24..40]);
                (IpAddr::from(s), IpAddr::from(d), l3 + 40, ip[6])
            }
            _ => return false,
        };
        if !self
            .prefixes
            .iter()
            .any(|p| p.contains(&src) || p.contains(&dst))
        {
            return false;
        }
        if self.ports.is_empty() || (l4proto != IPPROTO_TCP && l4proto != IPPROTO_UDP) {
            return true;
        }
        match (be16(l4), be16(l4 + 2)) {
            (Some(sp), Some(dp)) => self.ports.contains(&sp) || self.ports.contains(&dp),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETH_P_IP.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f
    }

    #[test]
    fn prefixes_and_ports() {
        let f = CaptureFilter {
            prefixes: vec!["10.1.0.0/16".parse().unwrap()],
            ports: vec![],
        };
        assert!(f.matches(&udp4([10, 9, 0, 1], [10, 1, 2, 3], 1, 2)));
        assert!(f.matches(&udp4([10, 1, 2, 3], [10, 9, 0, 1], 1, 2)));
        assert!(!f.matches(&udp4([10, 9, 0, 1], [10, 2, 0, 1], 1, 2)));
        let f = CaptureFilter {
            ports: vec![22],
            ..f
        };
        assert!(f.matches(&udp4([10, 9, 0, 1], [10, 1, 2, 3], 5000, 22)));
        assert!(!f.matches(&udp4([10, 9, 0, 1], [10, 1, 2, 3], 5000, 23)));
        assert!(CaptureFilter::all().matches(&[]));
    }

    #[test]
    fn vlan_and_truncated_frames() {
        let f = CaptureFilter {
            prefixes: vec!["10.1.0.0/16".parse().unwrap()],
            ports: vec![],
        };
        let plain = udp4([10, 9, 0, 1], [10, 1, 2, 3], 1, 2);
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&plain[12..]);
        assert!(f.matches(&tagged));
        for n in 0..plain.len() {
            let _ = f.matches(&plain[..n]);
        }
        assert!(!f.matches(&plain[..20]));
    }

    #[test]
    fn ipv6_prefixes_and_ports() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0, 0, 8, IPPROTO_UDP, 64];
        ip.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        ip.extend_from_slice(
            &"2001:db8:1::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x13, 0x88, 0x00, 0x16, 0, 8, 0, 0]); // 5000 -> 22
        let mut flt = CaptureFilter {
            prefixes: vec!["2001:db8:1::/48".parse().unwrap()],
            ports: vec![],
        };
        assert!(flt.matches(&f));
        flt.ports = vec![22];
        assert!(flt.matches(&f));
        flt.ports = vec![23];
        assert!(!flt.matches(&f));
        flt.prefixes = vec!["2001:db8:2::/48".parse().unwrap()];
        flt.ports.clear();
        assert!(!flt.matches(&f));
    }
}
