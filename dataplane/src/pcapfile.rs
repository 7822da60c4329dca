//! pcap and pcapng files: a streaming reader (both formats, either byte order, µs or ns
//! timestamps) and a pcap writer.
//!
//! The reader pulls from any `Read` and hands out frames borrowed from its buffer. Every
//! length in the file is bounded ([`MAX_RECORD`]) before anything is allocated, so a hostile
//! file cannot make it allocate gigabytes. Only Ethernet (linktype 1) is accepted: the decoder
//! starts at the Ethernet header, and a file of another linktype is refused with an error
//! rather than decoded as garbage.

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use decnet_store::Event;

use crate::sniffer::{Analyzer, AnalyzerConfig, SnifferMetrics};

/// Largest record or block accepted (a 256 KiB jumbo/TSO frame plus headers is far below it).
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;

const PCAP_USEC: u32 = 0xa1b2_c3d4;
const PCAP_NSEC: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

/// Why a capture file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    BadMagic(u32),
    #[error("linktype {0} is not supported (only Ethernet, linktype 1)")]
    UnsupportedLinktype(u32),
    #[error("record of {0} bytes exceeds the {MAX_RECORD}-byte limit")]
    RecordTooLarge(usize),
    #[error("malformed pcapng block: {0}")]
    BadBlock(&'static str),
    #[error("packet refers to undeclared interface {0}")]
    UnknownInterface(u32),
    #[error("file truncated inside a {0}")]
    Truncated(&'static str),
}

/// A capture file error with the file's name.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: PcapError,
}

/// One packet record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub ts_ns: i64,
    /// Length on the wire (may exceed `data.len()` when the snaplen cut it).
    pub orig_len: u32,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    /// Nanoseconds per timestamp unit numerator/denominator: ts_ns = units * mul / div.
    mul: i128,
    div: i128,
}

#[derive(Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// A streaming pcap/pcapng reader.
#[derive(Debug)]
pub struct PcapReader<R> {
    inner: R,
    format: Format,
    buf: Vec<u8>,
    /// Where the current record's frame sits in `buf`.
    frame: (usize, usize),
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let x = [
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ];
    if be {
        u16::from_be_bytes(x)
    } else {
        u16::from_le_bytes(x)
    }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let mut x = [0u8; 4];
    for (i, v) in x.iter_mut().enumerate() {
        *v = b.get(at + i).copied().unwrap_or(0);
    }
    if be {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

/// Read exactly `n` bytes into `buf`; `Ok(false)` on a clean end of file before the first byte.
fn fill<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    n: usize,
    what: &'static str,
) -> Result<bool, PcapError> {
    if n > MAX_RECORD {
        return Err(PcapError::RecordTooLarge(n));
    }
    buf.clear();
    buf.resize(n, 0);
    let mut got = 0;
    while got < n {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(PcapError::Truncated(what)),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

impl<R: Read> PcapReader<R> {
    /// Read the file header; fails on an unknown magic or a non-Ethernet pcap linktype.
    pub fn new(mut inner: R) -> Result<Self, PcapError> {
        let mut buf = Vec::new();
        if !fill(&mut inner, &mut buf, 4, "file header")? {
            return Err(PcapError::Truncated("file header"));
        }
        let magic_le = u32_at(&buf, 0, false);
        let magic_be = u32_at(&buf, 0, true);
        let format = match (magic_le, magic_be) {
            (PCAP_USEC | PCAP_NSEC, _) | (_, PCAP_USEC | PCAP_NSEC) => {
                let big_endian = magic_be == PCAP_USEC || magic_be == PCAP_NSEC;
                let nanos = magic_le == PCAP_NSEC || magic_be == PCAP_NSEC;
                if !fill(&mut inner, &mut buf, 20, "file header")? {
                    return Err(PcapError::Truncated("file header"));
                }
                let linktype = u32_at(&buf, 16, big_endian) & 0x0fff_ffff;
                if linktype != LINKTYPE_ETHERNET {
                    return Err(PcapError::UnsupportedLinktype(linktype));
                }
                Format::Pcap { big_endian, nanos }
            }
            (PCAPNG_SHB, _) => {
                let big_endian = read_shb_rest(&mut inner, &mut buf)?;
                Format::PcapNg {
                    big_endian,
                    interfaces: Vec::new(),
                }
            }
            _ => return Err(PcapError::BadMagic(magic_be)),
        };
        Ok(Self {
            inner,
            format,
            buf,
            frame: (0, 0),
        })
    }

    /// The next packet, `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, PcapError> {
        let rec = match self.format {
            Format::Pcap { big_endian, nanos } => self.next_pcap(big_endian, nanos)?,
            Format::PcapNg { .. } => self.next_pcapng()?,
        };
        Ok(rec.map(|(ts_ns, orig_len)| Record {
            ts_ns,
            orig_len,
            data: self.buf.get(self.frame.0..self.frame.1).unwrap_or_default(),
        }))
    }

    fn next_pcap(&mut self, be: bool, nanos: bool) -> Result<Option<(i64, u32)>, PcapError> {
        if !fill(&mut self.inner, &mut self.buf, 16, "record header")? {
            return Ok(None);
        }
        let secs = i64::from(u32_at(&self.buf, 0, be));
        let frac = i64::from(u32_at(&self.buf, 4, be));
        let incl = usize::try_from(u32_at(&self.buf, 8, be)).unwrap_or(usize::MAX);
        let orig = u32_at(&self.buf, 12, be);
        let ts = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        if !fill(&mut self.inner, &mut self.buf, incl, "packet record")? && incl > 0 {
            return Err(PcapError::Truncated("packet record"));
        }
        self.frame = (0, incl);
        Ok(Some((ts, orig)))
    }

    fn next_pcapng(&mut self) -> Result<Option<(i64, u32)>, PcapError> {
        loop {
            if !fill(&mut self.inner, &mut self.buf, 8, "block header")? {
                return Ok(None);
            }
            let Format::PcapNg { big_endian, .. } = self.format else {
                return Ok(None);
            };
            let raw_type = u32_at(&self.buf, 0, false);
            if raw_type == PCAPNG_SHB {
                // A new section: byte order may change and interfaces restart.
                let len_bytes = [self.buf[4], self.buf[5], self.buf[6], self.buf[7]];
                let be = read_shb_after_len(&mut self.inner, &mut self.buf, len_bytes)?;
                self.format = Format::PcapNg {
                    big_endian: be,
                    interfaces: Vec::new(),
                };
                continue;
            }
            let btype = u32_at(&self.buf, 0, big_endian);
            let total = usize::try_from(u32_at(&self.buf, 4, big_endian)).unwrap_or(usize::MAX);
            if total < 12 || total % 4 != 0 {
                return Err(PcapError::BadBlock(
                    "block length below 12 or not a multiple of 4",
                ));
            }
            if !fill(&mut self.inner, &mut self.buf, total - 8, "block")? {
                return Err(PcapError::Truncated("block"));
            }
            // `buf` = block body followed by the trailing length copy.
            let body_len = total - 12;
            let Format::PcapNg { interfaces, .. } = &mut self.format else {
                return Ok(None);
            };
            match btype {
                1 => {
                    if body_len < 8 {
                        return Err(PcapError::BadBlock("interface description too short"));
                    }
                    let linktype = u32::from(u16_at(&self.buf, 0, big_endian));
                    if linktype != LINKTYPE_ETHERNET {
                        return Err(PcapError::UnsupportedLinktype(linktype));
                    }
                    let (mul, div) = tsresol(&self.buf[8..body_len], big_endian);
                    interfaces.push(Interface { mul, div });
                }
                6 => {
                    if body_len < 20 {
                        return Err(PcapError::BadBlock("enhanced packet block too short"));
                    }
                    let ifid = u32_at(&self.buf, 0, big_endian);
                    let iface = usize::try_from(ifid)
                        .ok()
                        .and_then(|i| interfaces.get(i))
                        .ok_or(PcapError::UnknownInterface(ifid))?;
                    let units = (u64::from(u32_at(&self.buf, 4, big_endian)) << 32)
                        | u64::from(u32_at(&self.buf, 8, big_endian));
                    let cap =
                        usize::try_from(u32_at(&self.buf, 12, big_endian)).unwrap_or(usize::MAX);
                    let orig = u32_at(&self.buf, 16, big_endian);
                    if cap > body_len - 20 {
                        return Err(PcapError::BadBlock("captured length exceeds the block"));
                    }
                    let ts = i128::from(units) * iface.mul / iface.div.max(1);
                    self.frame = (20, 20 + cap);
                    return Ok(Some((i64::try_from(ts).unwrap_or(i64::MAX), orig)));
                }
                3 => {
                    if body_len < 4 {
                        return Err(PcapError::BadBlock("simple packet block too short"));
                    }
                    if interfaces.is_empty() {
                        return Err(PcapError::UnknownInterface(0));
                    }
                    let orig = u32_at(&self.buf, 0, big_endian);
                    let cap = usize::try_from(orig)
                        .unwrap_or(usize::MAX)
                        .min(body_len - 4);
                    self.frame = (4, 4 + cap);
                    // Simple packet blocks carry no timestamp.
                    return Ok(Some((0, orig)));
                }
                // Name resolution, statistics, custom and unknown blocks: skipped.
                _ => {}
            }
        }
    }
}

/// The rest of a section header block after its 4-byte type; returns big-endian-ness.
fn read_shb_rest<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, PcapError> {
    if !fill(r, buf, 4, "section header")? {
        return Err(PcapError::Truncated("section header"));
    }
    let len = [buf[0], buf[1], buf[2], buf[3]];
    read_shb_after_len(r, buf, len)
}

fn read_shb_after_len<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: [u8; 4],
) -> Result<bool, PcapError> {
    if !fill(r, buf, 4, "section header")? {
        return Err(PcapError::Truncated("section header"));
    }
    let big_endian = match (u32_at(buf, 0, false), u32_at(buf, 0, true)) {
        (PCAPNG_BOM, _) => false,
        (_, PCAPNG_BOM) => true,
        _ => return Err(PcapError::BadBlock("section header byte-order magic")),
    };
    let total = usize::try_from(if big_endian {
        u32::from_be_bytes(len)
    } else {
        u32::from_le_bytes(len)
    })
    .unwrap_or(usize::MAX);
    if total < 28 || total % 4 != 0 {
        return Err(PcapError::BadBlock("section header length"));
    }
    if !fill(r, buf, total - 12, "section header")? {
        return Err(PcapError::Truncated("section header"));
    }
    Ok(big_endian)
}

/// `if_tsresol` (option 9) as a ns multiplier/divisor; default microseconds.
fn tsresol(mut opts: &[u8], be: bool) -> (i128, i128) {
    while opts.len() >= 4 {
        let code = u16_at(opts, 0, be);
        let len = usize::from(u16_at(opts, 2, be));
        let padded = (len + 3) & !3;
        let Some(value) = opts.get(4..4 + len) else {
            break;
        };
        if code == 0 {
            break;
        }
        if code == 9 && len == 1 {
            let v = value[0];
            let exp = u32::from(v & 0x7f);
            return if v & 0x80 == 0 {
                // Units of 10^-exp seconds.
                match exp {
                    0..=9 => (10i128.pow(9 - exp), 1),
                    10..=38 => (1, 10i128.pow(exp - 9)),
                    _ => (1000, 1),
                }
            } else {
                // Units of 2^-exp seconds.
                match exp {
                    0..=100 => (1_000_000_000, 1i128 << exp.min(100)),
                    _ => (1000, 1),
                }
            };
        }
        opts = opts.get(4 + padded..).unwrap_or_default();
    }
    (1000, 1)
}

/// A pcap writer (little-endian, microsecond or nanosecond timestamps, Ethernet).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    inner: W,
    nanos: bool,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Write the file header.
    pub fn new(mut inner: W, snaplen: u32, nanos: bool) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&(if nanos { PCAP_NSEC } else { PCAP_USEC }).to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        inner.write_all(&h)?;
        Ok(Self {
            inner,
            nanos,
            snaplen,
        })
    }

    /// Write one frame, cut to the snaplen. Timestamps before 1970 or after 2106 are clamped
    /// (the format's seconds are an unsigned 32-bit field).
    pub fn write_packet(&mut self, ts_ns: i64, data: &[u8]) -> io::Result<()> {
        let ts = ts_ns.max(0);
        let secs = u32::try_from(ts / 1_000_000_000).unwrap_or(u32::MAX);
        let sub = ts % 1_000_000_000;
        let frac = u32::try_from(if self.nanos { sub } else { sub / 1000 }).unwrap_or(0);
        let keep = data
            .len()
            .min(usize::try_from(self.snaplen).unwrap_or(usize::MAX));
        let orig = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&frac.to_le_bytes());
        h[8..12].copy_from_slice(&u32::try_from(keep).unwrap_or(u32::MAX).to_le_bytes());
        h[12..16].copy_from_slice(&orig.to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(&data[..keep])
    }

    /// Flush the inner writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The inner writer, mutably (writing through it corrupts the file's record framing).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Flush and return the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// A pcapng writer: one little-endian section with one Ethernet interface whose timestamps
/// are in nanoseconds (`if_tsresol` = 9), then Enhanced Packet Blocks.
#[derive(Debug)]
pub struct PcapNgWriter<W: Write> {
    inner: W,
    snaplen: u32,
}

impl<W: Write> PcapNgWriter<W> {
    /// Write the Section Header and Interface Description blocks.
    pub fn new(mut inner: W, snaplen: u32) -> io::Result<Self> {
        // Section Header Block: no options, section length unknown (-1).
        let mut shb = Vec::with_capacity(28);
        shb.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        inner.write_all(&shb)?;
        // Interface Description Block: if_tsresol (code 9) = 9 (10^-9 s), then opt_endofopt.
        let mut idb = Vec::with_capacity(32);
        idb.extend_from_slice(&1u32.to_le_bytes());
        idb.extend_from_slice(&32u32.to_le_bytes());
        idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes()[..2]);
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 0, 0]);
        idb.extend_from_slice(&0u32.to_le_bytes());
        idb.extend_from_slice(&32u32.to_le_bytes());
        inner.write_all(&idb)?;
        Ok(Self { inner, snaplen })
    }

    /// Write one frame as an Enhanced Packet Block, cut to the snaplen; negative timestamps
    /// are clamped to 0.
    pub fn write_packet(&mut self, ts_ns: i64, data: &[u8]) -> io::Result<()> {
        let ts = u64::try_from(ts_ns.max(0)).unwrap_or(0);
        let keep = data
            .len()
            .min(usize::try_from(self.snaplen).unwrap_or(usize::MAX));
        let padded = keep.div_ceil(4) * 4;
        let total = u32::try_from(32 + padded)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        let cap = u32::try_from(keep).unwrap_or(u32::MAX);
        let orig = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&6u32.to_le_bytes());
        h[4..8].copy_from_slice(&total.to_le_bytes());
        // Interface 0; the timestamp is split into its high and low 32 bits.
        h[12..16].copy_from_slice(&((ts >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(ts as u32).to_le_bytes());
        h[20..24].copy_from_slice(&cap.to_le_bytes());
        h[24..28].copy_from_slice(&orig.to_le_bytes());
        self.inner.write_all(&h)?;
        self.inner.write_all(&data[..keep])?;
        self.inner.write_all(&[0u8; 3][..padded - keep])?;
        self.inner.write_all(&total.to_le_bytes())
    }

    /// Flush and return the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// Run an [`Analyzer`] over every record of a capture; events in the order produced.
pub fn analyze_reader<R: Read>(
    reader: R,
    config: AnalyzerConfig,
    deckies: HashMap<IpAddr, String>,
) -> Result<(Vec<Event>, Arc<SnifferMetrics>), PcapError> {
    let mut pcap = PcapReader::new(reader)?;
    let metrics = Arc::new(SnifferMetrics::default());
    let mut analyzer = Analyzer::new(config, deckies, Arc::clone(&metrics));
    let mut events = Vec::new();
    while let Some(rec) = pcap.next_record()? {
        analyzer.process_frame(rec.ts_ns, rec.data, &mut events);
    }
    analyzer.finish(&mut events);
    Ok((events, metrics))
}

/// Analyze a pcap/pcapng file with the default settings.
pub fn analyze_pcap(
    path: &Path,
    deckies: HashMap<IpAddr, String>,
) -> Result<Vec<Event>, FileError> {
    analyze_pcap_with(path, AnalyzerConfig::default(), deckies).map(|(e, _)| e)
}

/// Analyze a pcap/pcapng file; errors name the file.
pub fn analyze_pcap_with(
    path: &Path,
    config: AnalyzerConfig,
    deckies: HashMap<IpAddr, String>,
) -> Result<(Vec<Event>, Arc<SnifferMetrics>), FileError> {
    let err = |source| FileError {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| err(PcapError::Io(e)))?;
    analyze_reader(io::BufReader::new(file), config, deckies).map_err(err)
}

#[cfg(test)]
mod tests;
