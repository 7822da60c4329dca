use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

use crate::testutil::unhex;

/// OpenSSH client SYN on Linux 6.x loopback (tcpdump -i lo, frame 1 of tests/corpus/ssh.pcap).
const LINUX_SYN: &str = "00000000000000000000000008004510003c650e40004006d79b7f0000017f000001cb9cbb96740f33f900000000a002ffd7fe3000000204ffd70402080add86b3b5000000000103030a";
/// nmap -sS probe (nmap-syn.pcap frame 1): TTL 45, window 1024, MSS 1460 only.
const NMAP_SYN: &str = "00000000000000000000000008004500002c801c00002d060fae7f0000017f000001e1ecbc1144a0c0910000000060020400f2f30000020405b4";
/// nmap -sX probe: FIN|PSH|URG.
const NMAP_XMAS: &str = "0000000000000000000000000800450000281148000031067a867f0000017f000001f6c5bb9c13065f19000000005029040089370000";

#[test]
fn linux_syn_with_options_in_order() {
    let frame = unhex(LINUX_SYN);
    let p = Packet::decode(7, &frame).unwrap();
    assert_eq!(p.ts_ns, 7);
    assert_eq!(p.ethernet.ethertype, ethertype::IPV4);
    let ip = p.ip().unwrap();
    assert_eq!(ip.src, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(ip.ttl, 64);
    assert!(ip.dont_fragment);
    assert_eq!(ip.fragment, None);
    let t = p.tcp().unwrap();
    assert_eq!((t.src_port, t.dst_port), (52124, 48022));
    assert_eq!(t.flags, TcpFlags(TcpFlags::SYN));
    assert_eq!(t.window, 65495);
    assert!(t.payload.is_empty());
    let opts: Vec<TcpOption<'_>> = t.options().collect();
    assert_eq!(
        opts,
        vec![
            TcpOption::Mss(65495),
            TcpOption::SackPermitted,
            TcpOption::Timestamps {
                value: 0xdd86_b3b5,
                echo: 0
            },
            TcpOption::Nop,
            TcpOption::WindowScale(10),
        ]
    );
}

#[test]
fn nmap_probes() {
    let frame = unhex(NMAP_SYN);
    let p = Packet::decode(0, &frame).unwrap();
    let t = p.tcp().unwrap();
    assert_eq!(p.ip().unwrap().ttl, 45);
    assert_eq!(t.window, 1024);
    assert_eq!(t.options().collect::<Vec<_>>(), vec![TcpOption::Mss(1460)]);
    let frame = unhex(NMAP_XMAS);
    let p = Packet::decode(0, &frame).unwrap();
    assert_eq!(p.tcp().unwrap().flags.names(), "FIN|PSH|URG");
}

/// Build an Ethernet frame with the given tags and payload.
fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(proto: u8, flags_frag: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let ihl = 20 + options.len();
    let total = (ihl + payload.len()) as u16;
    let mut h = vec![0x40 | (ihl / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&flags_frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h.extend_from_slice(options);
    h.extend_from_slice(payload);
    h
}

#[test]
fn qinq_udp_with_ethernet_padding() {
    let udp = [0x30, 0x39, 0x00, 0x35, 0x00, 0x0b, 0, 0, b'a', b'b', b'c'];
    let mut ip = ipv4(17, 0, &[], &udp);
    // Padding after the IP packet (minimum Ethernet frame) must not reach the payload.
    ip.extend_from_slice(&[0xee; 20]);
    let frame = eth(
        &[(ethertype::QINQ, 0x0064), (ethertype::VLAN, 0x200a)],
        ethertype::IPV4,
        &ip,
    );
    let p = Packet::decode(0, &frame).unwrap();
    assert_eq!(p.ethernet.vlans(), &[100, 10]);
    let u = p.udp().unwrap();
    assert_eq!((u.src_port, u.dst_port), (12345, 53));
    assert_eq!(u.payload, b"abc");
    let three = eth(
        &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)],
        ethertype::IPV4,
        &ip,
    );
    assert_eq!(Packet::decode(0, &three), Err(DecodeError::TooManyVlanTags));
}

#[test]
fn ipv4_options_and_fragments_are_flagged() {
    // Router alert option (4 bytes), first fragment of an ICMP echo.
    let icmp = [8, 0, 0, 0, 0x00, 0x01, 0x00, 0x02, b'p', b'i'];
    let ip = ipv4(1, 0x2000, &[0x94, 0x04, 0, 0], &icmp);
    let frame = eth(&[], ethertype::IPV4, &ip);
    let p = Packet::decode(0, &frame).unwrap();
    let h = p.ip().unwrap();
    assert_eq!(h.v4.unwrap().options, &[0x94, 0x04, 0, 0]);
    assert_eq!(
        h.fragment,
        Some(Fragment {
            offset: 0,
            more: true,
            id: 0x1234
        })
    );
    let Transport::Icmp(i) = p.transport else {
        panic!("not icmp: {:?}", p.transport)
    };
    assert_eq!((i.icmp_type, i.echo_id_seq()), (8, (1, 2)));
    assert_eq!(i.payload, b"pi");
    // A later fragment carries no transport header.
    let later = eth(&[], ethertype::IPV4, &ipv4(6, 0x0003, &[], &[1, 2, 3, 4]));
    let p = Packet::decode(0, &later).unwrap();
    assert_eq!(p.transport, Transport::Fragment(&[1, 2, 3, 4]));
    assert_eq!(p.ip().unwrap().fragment.unwrap().offset, 24);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    let dst = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    // Hop-by-hop (8 bytes) → destination options (16 bytes) → TCP SYN.
    let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&[6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let tcp = [
        0x04, 0xd2, 0x00, 0x16, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 4,
        0x05, 0xa0,
    ];
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&((ext.len() + tcp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&ext);
    ip.extend_from_slice(&tcp);
    let frame = eth(&[], ethertype::IPV6, &ip);
    let p = Packet::decode(0, &frame).unwrap();
    let h = p.ip().unwrap();
    assert_eq!(h.protocol, ipproto::TCP);
    assert_eq!(h.header_len, 40 + 24);
    assert_eq!(h.v6.unwrap().ext_headers, 2);
    assert_eq!(h.ttl, 64);
    let t = p.tcp().unwrap();
    assert_eq!(t.dst_port, 22);
    assert_eq!(t.options().next(), Some(TcpOption::Mss(1440)));
    // An extension header claiming more bytes than the packet has is an error, not a panic.
    let mut bad = ip.clone();
    bad[40 + 1] = 200;
    assert!(matches!(
        Packet::decode(0, &eth(&[], ethertype::IPV6, &bad)),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn arp_request() {
    let arp = unhex("0001080006040001020000000001c0a80001000000000000c0a80002");
    let frame = eth(&[], ethertype::ARP, &arp);
    let p = Packet::decode(0, &frame).unwrap();
    let Network::Arp(a) = p.network else {
        panic!("not arp")
    };
    assert_eq!(a.operation, 1);
    assert_eq!(a.sender_ip, Some(Ipv4Addr::new(192, 168, 0, 1)));
    assert_eq!(a.target_ip, Some(Ipv4Addr::new(192, 168, 0, 2)));
}

#[test]
fn malformed_tcp_options_stop_the_walk() {
    let t = Tcp {
        src_port: 1,
        dst_port: 2,
        seq: 0,
        ack: 0,
        flags: TcpFlags(2),
        window: 0,
        urgent: 0,
        options_raw: &[1, 2, 4, 5, 0xb4, 3, 0, 1],
        payload: &[],
    };
    assert_eq!(
        t.options().collect::<Vec<_>>(),
        vec![
            TcpOption::Nop,
            TcpOption::Mss(0x05b4),
            TcpOption::Malformed { kind: 3 }
        ]
    );
}

#[test]
fn truncated_headers_are_errors() {
    let frame = unhex(LINUX_SYN);
    for cut in 0..frame.len() {
        let r = Packet::decode(0, &frame[..cut]);
        // Cutting the frame inside the IP packet keeps a (truncated) packet only once the TCP
        // header with its options is whole.
        if cut < 14 + 20 + 40 {
            assert!(r.is_err(), "cut {cut}: {r:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(p) = Packet::decode(0, &bytes)
            && let Some(t) = p.tcp()
        {
            let _ = t.options().count();
        }
    }

    #[test]
    fn decode_never_panics_behind_valid_headers(
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), Just(0x0806)],
        first in any::<u8>(),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut body = vec![first];
        body.extend(tail);
        let frame = eth(&[], ethertype, &body);
        let _ = Packet::decode(0, &frame);
        // And with a plausible IPv4 header in front of random transport bytes.
        for proto in [1u8, 6, 17, 58] {
            let frame = eth(&[], 0x0800, &ipv4(proto, 0, &[], &body));
            if let Ok(p) = Packet::decode(0, &frame)
                && let Some(t) = p.tcp()
            {
                let _ = t.options().count();
            }
        }
    }
}
