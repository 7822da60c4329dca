//! TCP (with options), UDP, ICMP and ICMPv6.

use super::{DecodeError, IpHeader, Transport, be16, be32, ipproto, need};

/// TCP flag bits (the low 9 bits of the flags word, NS included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    pub const NS: u16 = 0x100;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// Flags by name joined with `|` (`SYN|ACK`), `NONE` for a NULL segment.
    pub fn names(self) -> String {
        const NAMES: [(u16, &str); 9] = [
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
            (TcpFlags::NS, "NS"),
        ];
        let parts: Vec<&str> = NAMES
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, n)| *n)
            .collect();
        if parts.is_empty() {
            "NONE".to_owned()
        } else {
            parts.join("|")
        }
    }
}

/// A TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent: u16,
    /// Raw option bytes in wire order; walk them with [`Tcp::options`].
    pub options_raw: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Tcp<'a> {
    /// The options in wire order.
    pub fn options(&self) -> TcpOptions<'a> {
        TcpOptions {
            rest: self.options_raw,
            done: false,
        }
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    Eol,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    Sack(&'a [u8]),
    Timestamps {
        value: u32,
        echo: u32,
    },
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
    /// A length byte that is missing, below 2 or runs past the header: the walk stops here.
    Malformed {
        kind: u8,
    },
}

/// Iterator over TCP options; stops after EOL or a malformed option.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = TcpOption<'a>;

    fn next(&mut self) -> Option<TcpOption<'a>> {
        if self.done {
            return None;
        }
        let (&kind, after) = self.rest.split_first()?;
        match kind {
            0 => {
                self.done = true;
                return Some(TcpOption::Eol);
            }
            1 => {
                self.rest = after;
                return Some(TcpOption::Nop);
            }
            _ => {}
        }
        let len = match after.first() {
            Some(&l) if l >= 2 && usize::from(l) <= self.rest.len() => usize::from(l),
            _ => {
                self.done = true;
                return Some(TcpOption::Malformed { kind });
            }
        };
        let data = &self.rest[2..len];
        self.rest = &self.rest[len..];
        Some(match (kind, data.len()) {
            (2, 2) => TcpOption::Mss(be16(data, 0)),
            (3, 1) => TcpOption::WindowScale(data[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, _) => TcpOption::Sack(data),
            (8, 8) => TcpOption::Timestamps {
                value: be32(data, 0),
                echo: be32(data, 4),
            },
            _ => TcpOption::Unknown { kind, data },
        })
    }
}

/// A UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// The length field (header + payload) as sent.
    pub length: u16,
    pub payload: &'a [u8],
}

/// An ICMP or ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp<'a> {
    pub icmp_type: u8,
    pub code: u8,
    /// The 4 bytes after the checksum (identifier + sequence for echo).
    pub rest_of_header: [u8; 4],
    pub payload: &'a [u8],
}

impl Icmp<'_> {
    /// Identifier and sequence number, meaningful for echo request/reply.
    pub fn echo_id_seq(&self) -> (u16, u16) {
        (be16(&self.rest_of_header, 0), be16(&self.rest_of_header, 2))
    }
}

#[inline(always)]
pub(super) fn decode<'a>(
    ip: &IpHeader<'a>,
    payload: &'a [u8],
) -> Result<Transport<'a>, DecodeError> {
    if ip.is_later_fragment() {
        return Ok(Transport::Fragment(payload));
    }
    Ok(match ip.protocol {
        ipproto::TCP => {
            let h = need(payload, 20, "tcp")?;
            let offset = usize::from(h[12] >> 4) * 4;
            if offset < 20 {
                return Err(DecodeError::BadTcpDataOffset(offset));
            }
            let full = need(payload, offset, "tcp options")?;
            Transport::Tcp(Tcp {
                src_port: be16(h, 0),
                dst_port: be16(h, 2),
                seq: be32(h, 4),
                ack: be32(h, 8),
                flags: TcpFlags(be16(h, 12) & 0x01ff),
                window: be16(h, 14),
                urgent: be16(h, 18),
                options_raw: &full[20..],
                payload: &payload[offset..],
            })
        }
        ipproto::UDP => {
            let h = need(payload, 8, "udp")?;
            let length = be16(h, 4);
            // The UDP length bounds the payload too (zero is legal for IPv6 jumbograms).
            let end = match usize::from(length) {
                0 => payload.len(),
                l => l.clamp(8, payload.len()),
            };
            Transport::Udp(Udp {
                src_port: be16(h, 0),
                dst_port: be16(h, 2),
                length,
                payload: &payload[8..end],
            })
        }
        ipproto::ICMP | ipproto::ICMPV6 => {
            let h = need(payload, 8, "icmp")?;
            let icmp = Icmp {
                icmp_type: h[0],
                code: h[1],
                rest_of_header: [h[4], h[5], h[6], h[7]],
                payload: &payload[8..],
            };
            if ip.protocol == ipproto::ICMP {
                Transport::Icmp(icmp)
            } else {
                Transport::Icmpv6(icmp)
            }
        }
        59 => Transport::None,
        other => Transport::Other(other, payload),
    })
}
