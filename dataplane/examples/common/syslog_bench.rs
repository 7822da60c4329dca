//! Shared by the syslog benchmark examples (`syslog_flood`, `syslog_sink`,
//! `syslog_parse_rate`): the flood's message and `*mmsg` headers. Not an example itself.

/// The flood's message number `n`: RFC 5424, structured data with the attacker's address,
/// padded to 400 bytes.
#[allow(dead_code)] // `syslog_sink` uses only the headers.
pub fn message(n: u64) -> Vec<u8> {
    let mut m = format!(
        "<132>1 2026-11-27T05:00:00.000000Z web01 ssh - auth_attempt [relay@55555 src_ip=\"198.51.100.{}\" src_port=\"{}\" username=\"root\" password=\"pw{n}\" n=\"{n}\"] ",
        n % 250,
        1024 + n % 60000
    )
    .into_bytes();
    m.resize(400, b'x');
    m
}

/// One `mmsghdr` per iovec, each pointing at its iovec; the iovecs must outlive every call
/// that uses the headers.
#[allow(dead_code)] // `syslog_parse_rate` uses only the message.
pub fn mmsg_headers(iovecs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: all-zero is a valid mmsghdr; it then points at one live iovec.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = std::ptr::from_mut(iov);
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect()
}
