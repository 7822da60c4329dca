//! Where an event's addresses live among its fields: the wire contract shared by every
//! producer (which writes them) and the intake (which lifts them back out).

use std::net::{IpAddr, SocketAddr};

use crate::Event;

/// Fields that may carry the attacker's address, in the priority the original used.
pub const SRC_IP_FIELDS: [&str; 7] = [
    "src_ip",
    "src",
    "client_ip",
    "remote_ip",
    "remote_addr",
    "target_ip",
    "ip",
];

/// An IP address, alone or as `ip:port` / `[ipv6]:port`.
pub fn parse_address(value: &str) -> Option<(IpAddr, Option<u16>)> {
    let value = value.trim();
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some((ip, None));
    }
    value
        .parse::<SocketAddr>()
        .ok()
        .map(|sa| (sa.ip(), Some(sa.port())))
}

fn parse_port(value: &str) -> Option<u16> {
    value.trim().parse().ok()
}

/// Source and destination addresses as a reader finds them in the fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldAddresses {
    pub src_ip: Option<IpAddr>,
    pub src_port: Option<u16>,
    pub dst_ip: Option<IpAddr>,
    pub dst_port: Option<u16>,
}

impl FieldAddresses {
    /// The addresses in the fields `field` looks up (the first value of a key): the first
    /// usable of [`SRC_IP_FIELDS`], `dst_ip`, and `src_port`/`dst_port` (or the port of an
    /// `ip:port` value).
    pub fn find<'f>(field: impl Fn(&str) -> Option<&'f str>) -> Self {
        let src = SRC_IP_FIELDS
            .iter()
            .find_map(|key| field(key).and_then(parse_address));
        let dst = field("dst_ip").and_then(parse_address);
        Self {
            src_ip: src.map(|(ip, _)| ip),
            src_port: field("src_port")
                .and_then(parse_port)
                .or(src.and_then(|(_, p)| p)),
            dst_ip: dst.map(|(ip, _)| ip),
            dst_port: field("dst_port")
                .and_then(parse_port)
                .or(dst.and_then(|(_, p)| p)),
        }
    }
}

impl Event {
    /// The addresses the fields carry: the first usable of [`SRC_IP_FIELDS`], `dst_ip`, and
    /// `src_port`/`dst_port` (or the port of an `ip:port` value).
    pub fn field_addresses(&self) -> FieldAddresses {
        FieldAddresses::find(|key| self.field(key))
    }

    /// Set the address members from the fields (what the intake does with every message).
    pub fn lift_addresses(&mut self) {
        let a = self.field_addresses();
        self.src_ip = a.src_ip;
        self.src_port = a.src_port;
        self.dst_ip = a.dst_ip;
        self.dst_port = a.dst_port;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    #[test]
    fn priority_and_ports() {
        let mut e = Event::new(0, "d", "s", "k", Severity::Info);
        e.push_field("ip", "10.0.0.1").unwrap();
        e.push_field("remote_addr", "[2001:db8::1]:4444").unwrap();
        e.push_field("src", "not an ip").unwrap();
        e.lift_addresses();
        assert_eq!(e.src_ip, "2001:db8::1".parse().ok());
        assert_eq!(e.src_port, Some(4444));
        assert_eq!(
            parse_address(" 1.2.3.4 "),
            Some(("1.2.3.4".parse().unwrap(), None))
        );
    }
}
