//! A minimal DER walker for the X.509 fields the sniffer reports (CNs and validity).
//!
//! Only definite lengths up to 4 length bytes are accepted (DER forbids the rest); nesting is
//! walked explicitly along a fixed path, so there is no recursion to exhaust.

use super::{printable, sha256_hex};

/// Why a certificate could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    #[error("DER element truncated")]
    Truncated,
    #[error("DER length form not allowed")]
    BadLength,
    #[error("expected DER tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag { expected: u8, found: u8 },
}

/// One TLV: tag, content, and the rest after it.
fn tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), DerError> {
    let (&tag, rest) = buf.split_first().ok_or(DerError::Truncated)?;
    let (&first, rest) = rest.split_first().ok_or(DerError::Truncated)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(DerError::BadLength);
        }
        let bytes = rest.get(..n).ok_or(DerError::Truncated)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    let content = rest.get(..len).ok_or(DerError::Truncated)?;
    Ok((tag, content, &rest[len..]))
}

fn expect(buf: &[u8], tag: u8) -> Result<(&[u8], &[u8]), DerError> {
    let (found, content, rest) = tlv(buf)?;
    if found != tag {
        return Err(DerError::UnexpectedTag {
            expected: tag,
            found,
        });
    }
    Ok((content, rest))
}

/// What the sniffer reports about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    /// RFC 3339 UTC (`2026-11-27T08:00:00Z`).
    pub not_before: String,
    pub not_after: String,
    pub sha256: String,
}

const SEQUENCE: u8 = 0x30;
/// OID 2.5.4.3 (commonName), content bytes.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// The first commonName in a Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_name(name: &[u8]) -> Result<Option<String>, DerError> {
    let mut rdns = name;
    while !rdns.is_empty() {
        let (_, set, rest) = tlv(rdns)?;
        rdns = rest;
        let mut atvs = set;
        while !atvs.is_empty() {
            let (atv, rest) = expect(atvs, SEQUENCE)?;
            atvs = rest;
            let (oid, value) = expect(atv, 0x06)?;
            if oid == OID_CN {
                let (tag, text, _) = tlv(value)?;
                // BMPString is UTF-16BE; keep its ASCII subset readable.
                let s = if tag == 0x1e {
                    let ascii: Vec<u8> = text.chunks(2).filter_map(|c| c.get(1).copied()).collect();
                    printable(&ascii)
                } else {
                    printable(text)
                };
                return Ok(Some(s));
            }
        }
    }
    Ok(None)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as RFC 3339.
fn time(tag: u8, t: &[u8]) -> String {
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let (year, rest): (String, &[u8]) = match (tag, t.len()) {
        (0x17, 13) if digits(&t[..12]) => {
            let yy = u32::from(t[0] - b'0') * 10 + u32::from(t[1] - b'0');
            // RFC 5280 §4.1.2.5.1: 50–99 are 19xx.
            let y = if yy >= 50 { 1900 + yy } else { 2000 + yy };
            (y.to_string(), &t[2..])
        }
        (0x18, 15) if digits(&t[..14]) => (String::from_utf8_lossy(&t[..4]).into_owned(), &t[4..]),
        _ => return printable(t),
    };
    let s = |a: usize| String::from_utf8_lossy(&rest[a..a + 2]).into_owned();
    format!("{year}-{}-{}T{}:{}:{}Z", s(0), s(2), s(4), s(6), s(8))
}

/// Summarise a DER certificate.
pub fn certificate_summary(der: &[u8]) -> Result<CertSummary, DerError> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    let (_, _, rest) = tlv(rest)?; // serialNumber
    let (_, rest) = expect(rest, SEQUENCE)?; // signature algorithm
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, _) = expect(rest, SEQUENCE)?;
    let (nb_tag, nb, vrest) = tlv(validity)?;
    let (na_tag, na, _) = tlv(vrest)?;
    Ok(CertSummary {
        subject_cn: common_name(subject)?,
        issuer_cn: common_name(issuer)?,
        not_before: time(nb_tag, nb),
        not_after: time(na_tag, na),
        sha256: sha256_hex(der),
    })
}
