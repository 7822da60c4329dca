//! IPv4 and IPv6 headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{DecodeError, be16, be32, need};

/// Most IPv6 extension headers walked before giving up (RFC 8200 expects a handful; a long
/// chain is an evasion or a resource attack).
pub const MAX_EXT_HEADERS: usize = 8;

/// Fragmentation state of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment's data in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    pub id: u32,
}

/// IPv4-only header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Extra<'a> {
    pub tos: u8,
    pub ident: u16,
    /// Raw option bytes (empty when the header is 20 bytes).
    pub options: &'a [u8],
}

/// IPv6-only header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Extra {
    pub traffic_class: u8,
    pub flow_label: u32,
    /// Extension headers walked to reach the transport.
    pub ext_headers: u8,
}

/// A version-agnostic view of an IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHeader<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// The transport protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Bytes of header plus extension headers.
    pub header_len: usize,
    /// Length of the whole IP packet as the header declares it.
    pub total_len: usize,
    /// IPv4 "don't fragment".
    pub dont_fragment: bool,
    /// Set when this packet is a fragment (first or later).
    pub fragment: Option<Fragment>,
    /// The frame held fewer bytes than the header declares (short snaplen).
    pub truncated: bool,
    pub v4: Option<Ipv4Extra<'a>>,
    pub v6: Option<Ipv6Extra>,
}

impl IpHeader<'_> {
    pub fn is_v6(&self) -> bool {
        self.v6.is_some()
    }

    /// A later fragment carries no transport header.
    pub fn is_later_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| f.offset > 0)
    }
}

/// The bytes the header's length covers, bounded by what was captured.
fn bounded(buf: &[u8], start: usize, declared_end: usize) -> (&[u8], bool) {
    let end = declared_end.min(buf.len());
    let start = start.min(end);
    (&buf[start..end], declared_end > buf.len())
}

#[inline]
pub(super) fn decode_v4(buf: &[u8]) -> Result<(IpHeader<'_>, &[u8]), DecodeError> {
    let h = need(buf, 20, "ipv4")?;
    let version = h[0] >> 4;
    if version != 4 {
        return Err(DecodeError::BadIpVersion(version));
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(DecodeError::BadIpv4HeaderLen(ihl));
    }
    let full = need(buf, ihl, "ipv4 options")?;
    let total = usize::from(be16(h, 2));
    // TSO/GRO captures on the sending host show a total length of 0; trust the frame then.
    let total = if total == 0 { buf.len() } else { total };
    if total < ihl {
        return Err(DecodeError::BadIpv4TotalLen { total, header: ihl });
    }
    let flags_frag = be16(h, 6);
    let offset = u32::from(flags_frag & 0x1fff) * 8;
    let more = flags_frag & 0x2000 != 0;
    let ident = be16(h, 4);
    let fragment = (more || offset > 0).then_some(Fragment {
        offset,
        more,
        id: u32::from(ident),
    });
    let (payload, truncated) = bounded(buf, ihl, total);
    let header = IpHeader {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        ttl: h[8],
        protocol: h[9],
        header_len: ihl,
        total_len: total,
        dont_fragment: flags_frag & 0x4000 != 0,
        fragment,
        truncated,
        v4: Some(Ipv4Extra {
            tos: h[1],
            ident,
            options: &full[20..],
        }),
        v6: None,
    };
    Ok((header, payload))
}

#[inline]
pub(super) fn decode_v6(buf: &[u8]) -> Result<(IpHeader<'_>, &[u8]), DecodeError> {
    let h = need(buf, 40, "ipv6")?;
    let version = h[0] >> 4;
    if version != 6 {
        return Err(DecodeError::BadIpVersion(version));
    }
    let word = be32(h, 0);
    let payload_len = usize::from(be16(h, 4));
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    // Jumbograms (payload length 0 with a hop-by-hop option) and TSO captures: trust the frame.
    let total = if payload_len == 0 {
        buf.len()
    } else {
        40 + payload_len
    };
    let (mut rest, truncated) = bounded(buf, 40, total);
    let mut next = h[6];
    let mut header_len = 40usize;
    let mut fragment = None;
    let mut walked = 0usize;
    loop {
        // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len + 1) * 8 bytes.
        let ext_len = match next {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let e = need(rest, 8, "ipv6 extension")?;
                (usize::from(e[1]) + 1) * 8
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let e = need(rest, 8, "ipv6 auth header")?;
                (usize::from(e[1]) + 2) * 4
            }
            44 => {
                let e = need(rest, 8, "ipv6 fragment")?;
                let off_flags = be16(e, 2);
                fragment = Some(Fragment {
                    offset: u32::from(off_flags >> 3) * 8,
                    more: off_flags & 1 != 0,
                    id: be32(e, 4),
                });
                8
            }
            _ => break,
        };
        walked += 1;
        if walked > MAX_EXT_HEADERS {
            return Err(DecodeError::TooManyExtHeaders(MAX_EXT_HEADERS));
        }
        let ext = need(rest, ext_len, "ipv6 extension")?;
        next = ext[0];
        rest = &rest[ext_len..];
        header_len += ext_len;
        // Later fragments: the next-header byte names the transport but no header follows.
        if fragment.is_some_and(|f: Fragment| f.offset > 0) {
            break;
        }
    }
    let header = IpHeader {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        ttl: h[7],
        protocol: next,
        header_len,
        total_len: total,
        dont_fragment: false,
        fragment,
        truncated,
        v4: None,
        v6: Some(Ipv6Extra {
            traffic_class: u8::try_from((word >> 20) & 0xff).unwrap_or(0),
            flow_label: word & 0x000f_ffff,
            ext_headers: u8::try_from(walked).unwrap_or(u8::MAX),
        }),
    };
    Ok((header, rest))
}
