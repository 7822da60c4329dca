//! What the appliance knows about its own network: default route and local addresses.
//! Used only for defaults; explicit flags and INI values always win.

use std::net::Ipv4Addr;

/// The default IPv4 route: interface and gateway, from `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub interface: String,
    pub gateway: Ipv4Addr,
}

/// Read the default route, if the machine has one.
pub fn default_route() -> Option<DefaultRoute> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_route_table(&table)
}

/// Parse the kernel's route table text (destination and gateway are little-endian hex).
pub fn parse_route_table(table: &str) -> Option<DefaultRoute> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (iface, dest, gw, mask) = (cols.first()?, cols.get(1)?, cols.get(2)?, cols.get(7)?);
        if *dest != "00000000" || *mask != "00000000" {
            return None;
        }
        let raw = u32::from_str_radix(gw, 16).ok()?;
        Some(DefaultRoute {
            interface: (*iface).to_owned(),
            gateway: Ipv4Addr::from(raw.swap_bytes()),
        })
    })
}

/// Every IPv4 address of this machine.
pub fn local_ipv4() -> Vec<Ipv4Addr> {
    if_addrs::get_if_addrs()
        .map(|ifs| {
            ifs.into_iter()
                .filter_map(|i| match i.ip() {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_default_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        let r = parse_route_table(table).unwrap();
        assert_eq!(r.interface, "eth0");
        assert_eq!(r.gateway, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(parse_route_table("Iface\n"), None);
    }
}
