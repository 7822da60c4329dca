//! TCP SYN fingerprint with a p0f-style OS guess.
//!
//! The option layout string uses p0f v3's names (`mss`, `nop`, `ws`, `sok`, `sack`, `ts`,
//! `eol+N`, `?K`) so signatures can be compared with p0f's database by eye. The built-in table
//! is deliberately small: it labels the stacks a decoy LAN mostly sees and the nmap SYN probe;
//! anything else is `unknown` rather than a wrong guess.

use crate::decode::{IpHeader, Tcp, TcpFlags, TcpOption};

/// What a SYN says about its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynFingerprint {
    pub ttl: u8,
    /// The smallest common initial TTL (32, 64, 128, 255) at or above the observed TTL.
    pub initial_ttl: u8,
    pub hops: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
    /// p0f-style option layout, e.g. `mss,sok,ts,nop,ws`.
    pub options: String,
    pub df: bool,
    pub ip_version: u8,
    /// OS label from the signature table, `unknown` when nothing matches.
    pub os: &'static str,
}

/// The guessed initial TTL for an observed one.
pub fn initial_ttl(ttl: u8) -> u8 {
    match ttl {
        0..=32 => 32,
        33..=64 => 64,
        65..=128 => 128,
        _ => 255,
    }
}

/// The fingerprint of a SYN (not SYN-ACK) segment; `None` for other segments.
pub fn tcp_syn_fingerprint(ip: &IpHeader<'_>, tcp: &Tcp<'_>) -> Option<SynFingerprint> {
    if !tcp.flags.has(TcpFlags::SYN) || tcp.flags.has(TcpFlags::ACK) {
        return None;
    }
    let mut layout: Vec<String> = Vec::new();
    let (mut mss, mut wscale, mut sok, mut ts) = (None, None, false, false);
    let mut eol_at = None;
    for opt in tcp.options() {
        match opt {
            TcpOption::Eol => {
                eol_at = Some(layout.len());
            }
            TcpOption::Nop => layout.push("nop".into()),
            TcpOption::Mss(v) => {
                mss = Some(v);
                layout.push("mss".into());
            }
            TcpOption::WindowScale(v) => {
                wscale = Some(v);
                layout.push("ws".into());
            }
            TcpOption::SackPermitted => {
                sok = true;
                layout.push("sok".into());
            }
            TcpOption::Sack(_) => layout.push("sack".into()),
            TcpOption::Timestamps { .. } => {
                ts = true;
                layout.push("ts".into());
            }
            TcpOption::Unknown { kind, .. } | TcpOption::Malformed { kind } => {
                layout.push(format!("?{kind}"));
            }
        }
    }
    if eol_at.is_some() {
        // p0f writes the EOL with the count of padding bytes after it (`eol+1`).
        let consumed: usize = tcp
            .options()
            .take_while(|o| !matches!(o, TcpOption::Eol))
            .map(|o| match o {
                TcpOption::Nop => 1,
                TcpOption::Mss(_) => 4,
                TcpOption::WindowScale(_) => 3,
                TcpOption::SackPermitted => 2,
                TcpOption::Timestamps { .. } => 10,
                TcpOption::Sack(d) | TcpOption::Unknown { data: d, .. } => d.len() + 2,
                TcpOption::Eol | TcpOption::Malformed { .. } => 1,
            })
            .sum();
        let pad = tcp.options_raw.len().saturating_sub(consumed + 1);
        layout.push(format!("eol+{pad}"));
    }
    let options = layout.join(",");
    let ittl = initial_ttl(ip.ttl);
    let mut fp = SynFingerprint {
        ttl: ip.ttl,
        initial_ttl: ittl,
        hops: ittl.saturating_sub(ip.ttl),
        window: tcp.window,
        mss,
        wscale,
        sack_permitted: sok,
        timestamps: ts,
        options,
        df: ip.dont_fragment,
        ip_version: if ip.is_v6() { 6 } else { 4 },
        os: "unknown",
    };
    fp.os = classify(&fp);
    Some(fp)
}

/// One row of the built-in signature table.
struct Signature {
    label: &'static str,
    /// Initial TTL the stack uses (`0` = any).
    ittl: u8,
    /// Option layout, exact.
    layout: &'static str,
    /// Extra check on window/MSS/scale.
    check: fn(&SynFingerprint) -> bool,
}

fn any(_: &SynFingerprint) -> bool {
    true
}

/// nmap's raw SYN probe: MSS 1460 only, and one of a few fixed windows.
fn nmap_window(fp: &SynFingerprint) -> bool {
    fp.mss == Some(1460) && matches!(fp.window, 1024 | 2048 | 3072 | 4096)
}

/// The table, most specific first. Sources: p0f v3 `p0f.fp` layouts for the same stacks,
/// checked against captures of current kernels (Linux 6.x, Windows 10/11, macOS 14).
const SIGNATURES: &[Signature] = &[
    Signature {
        label: "nmap SYN scan",
        ittl: 0,
        layout: "mss",
        check: nmap_window,
    },
    Signature {
        label: "Linux",
        ittl: 64,
        layout: "mss,sok,ts,nop,ws",
        check: any,
    },
    Signature {
        label: "Linux",
        ittl: 64,
        layout: "mss,nop,nop,sok,nop,ws",
        check: any,
    },
    Signature {
        label: "Windows",
        ittl: 128,
        layout: "mss,nop,ws,nop,nop,sok",
        check: any,
    },
    Signature {
        label: "Windows",
        ittl: 128,
        layout: "mss,nop,ws,nop,nop,ts,nop,nop,sok",
        check: any,
    },
    Signature {
        label: "macOS/iOS",
        ittl: 64,
        layout: "mss,nop,ws,nop,nop,ts,sok,eol+1",
        check: any,
    },
    Signature {
        label: "FreeBSD",
        ittl: 64,
        layout: "mss,nop,ws,sok,ts",
        check: any,
    },
];

fn classify(fp: &SynFingerprint) -> &'static str {
    SIGNATURES
        .iter()
        .find(|s| {
            (s.ittl == 0 || s.ittl == fp.initial_ttl) && s.layout == fp.options && (s.check)(fp)
        })
        .map_or("unknown", |s| s.label)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{decode::Packet, testutil::ip4};

    fn syn(ttl: u8, window: u16, options: &[u8]) -> SynFingerprint {
        let mut tcp = vec![0xc0, 0x00, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0];
        let off = ((20 + options.len()) / 4) as u8;
        tcp.extend_from_slice(&[off << 4, 0x02]);
        tcp.extend_from_slice(&window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(options);
        let frame = ip4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            6,
            ttl,
            &tcp,
        );
        let p = Packet::decode(0, &frame).unwrap();
        tcp_syn_fingerprint(p.ip().unwrap(), p.tcp().unwrap()).unwrap()
    }

    #[test]
    fn os_table() {
        // Windows 10/11: mss,nop,ws,nop,nop,sok; TTL 128 seen 3 hops away.
        let w = syn(125, 64240, &[2, 4, 5, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2]);
        assert_eq!((w.os, w.initial_ttl, w.hops), ("Windows", 128, 3));
        assert_eq!(w.options, "mss,nop,ws,nop,nop,sok");
        // macOS: ... ts,sok,eol with one byte of padding after the EOL.
        let m = syn(
            64,
            65535,
            &[
                2, 4, 5, 0xb4, 1, 3, 3, 6, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 4, 2, 0, 0,
            ],
        );
        assert_eq!(m.options, "mss,nop,ws,nop,nop,ts,sok,eol+1");
        assert_eq!(m.os, "macOS/iOS");
        // FreeBSD: mss,nop,ws,sok,ts (padded with a trailing EOL-free layout).
        let f = syn(
            64,
            65535,
            &[
                2, 4, 5, 0xb4, 1, 3, 3, 6, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0,
            ],
        );
        assert_eq!((f.os, f.options.as_str()), ("FreeBSD", "mss,nop,ws,sok,ts"));
        // nmap's SYN probe; and the same layout with an ordinary window is not nmap.
        assert_eq!(syn(41, 1024, &[2, 4, 5, 0xb4]).os, "nmap SYN scan");
        assert_eq!(syn(64, 29200, &[2, 4, 5, 0xb4]).os, "unknown");
        // A Linux layout with a Windows TTL is not called Linux.
        assert_eq!(
            syn(
                128,
                64240,
                &[
                    2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7
                ]
            )
            .os,
            "unknown"
        );
        assert_eq!(initial_ttl(255), 255);
        assert_eq!(initial_ttl(30), 32);
    }
}
