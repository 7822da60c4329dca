//! Raw frames kept on disk: rotating pcap segments under a total size budget.
//!
//! Each capture thread owns one [`PcapRing`]. It writes `seg-<first_ts_ns>-q<queue>.pcap`
//! (nanosecond pcap, Ethernet) in the retention directory and starts a new segment once the
//! current one reaches `segment_bytes`. When a segment is sealed, a sidecar
//! `seg-….pcap.idx` is written next to it: a small text file with the first and last
//! timestamps and every IP address seen in the segment (up to [`MAX_INDEX_IPS`]; a segment
//! with more is marked to be scanned by every export, so spoofed addresses cannot grow the
//! index without bound). Then the oldest segments (by name, i.e. by first timestamp, across
//! all queues) are deleted until the directory holds at most `max_bytes` of pcap and indexes. Segment bytes bypass the page cache (`O_DIRECT`) where the
//! filesystem allows it: see [`segment_file`]. A segment on disk is complete up to the last
//! flush (once a second while packets arrive).
//!
//! [`export_pcap`] writes the packets of one address within a time range to one pcap: it
//! skips every sealed segment whose index rules it out and scans the others (and the segments
//! still open, which have no index yet).

use std::{
    collections::BTreeSet,
    fs::{self, File},
    io::{self, BufReader, Write},
    net::IpAddr,
    path::{Path, PathBuf},
    time::Instant,
};

use crate::{
    decode::Packet,
    pcapfile::{PcapError, PcapNgWriter, PcapReader, PcapWriter},
};

mod disk_writer;
mod segment_file;
use disk_writer::DiskWriter;
use segment_file::SegmentFile;

/// Largest frame kept (the snaplen of every segment).
pub const SNAPLEN: u32 = 65_535;
const PCAP_HEADER: u64 = 24;
const RECORD_HEADER: u64 = 16;

/// Why retention failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("{path}: {source} (check that the retention directory exists and is writable)")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Pcap {
        path: PathBuf,
        #[source]
        source: PcapError,
    },
    #[error("{path}: bad index line {line:?} (delete the .idx file: the segment is then scanned)")]
    BadIndex { path: PathBuf, line: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RetentionError + '_ {
    move |source| RetentionError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How much is kept and where.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Directory of the segments (created if missing).
    pub dir: PathBuf,
    /// Start a new segment at this size.
    pub segment_bytes: u64,
    /// Delete the oldest segments while the directory holds more than this.
    pub max_bytes: u64,
    /// Queue number, part of the file names (one ring per capture thread).
    pub queue: usize,
}

/// Addresses one segment's index lists; past it the index says "any address".
pub const MAX_INDEX_IPS: usize = 65_536;

/// What one sealed segment holds, from its sidecar index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    pub first_ts_ns: i64,
    pub last_ts_ns: i64,
    pub packets: u64,
    pub ips: BTreeSet<IpAddr>,
    /// More than [`MAX_INDEX_IPS`] addresses were seen: `ips` is incomplete, so the index
    /// rules no address out.
    pub ips_overflow: bool,
}

impl SegmentIndex {
    fn render(&self) -> String {
        let mut s = format!(
            "first_ts_ns {}\nlast_ts_ns {}\npackets {}\n",
            self.first_ts_ns, self.last_ts_ns, self.packets
        );
        if self.ips_overflow {
            s.push_str("ips_overflow 1\n");
        }
        for ip in &self.ips {
            s.push_str("ip ");
            s.push_str(&ip.to_string());
            s.push('\n');
        }
        s
    }

    /// Read a sidecar index.
    pub fn read(path: &Path) -> Result<Self, RetentionError> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        let mut idx = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || RetentionError::BadIndex {
                path: path.to_owned(),
                line: line.to_owned(),
            };
            let (key, value) = line.split_once(' ').ok_or_else(bad)?;
            match key {
                "first_ts_ns" => idx.first_ts_ns = value.parse().map_err(|_| bad())?,
                "last_ts_ns" => idx.last_ts_ns = value.parse().map_err(|_| bad())?,
                "packets" => idx.packets = value.parse().map_err(|_| bad())?,
                "ips_overflow" => idx.ips_overflow = value == "1",
                "ip" => {
                    idx.ips.insert(value.parse().map_err(|_| bad())?);
                }
                _ => return Err(bad()),
            }
        }
        Ok(idx)
    }

    /// Note an address seen in the segment.
    fn add_ip(&mut self, ip: IpAddr) {
        if self.ips.len() < MAX_INDEX_IPS {
            self.ips.insert(ip);
        } else if !self.ips.contains(&ip) {
            self.ips_overflow = true;
        }
    }

    /// Whether the segment may hold packets of `ip`.
    pub fn may_hold(&self, ip: &IpAddr) -> bool {
        self.ips_overflow || self.ips.contains(ip)
    }
}

fn index_path(segment: &Path) -> PathBuf {
    let mut s = segment.as_os_str().to_owned();
    s.push(".idx");
    PathBuf::from(s)
}

struct Open {
    path: PathBuf,
    writer: PcapWriter<SegmentFile>,
    bytes: u64,
    index: SegmentIndex,
    /// Addresses of the last frame written, already in `index.ips`.
    last_addrs: [Option<IpAddr>; 2],
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("path", &self.path)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// Counters of one ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub packets: u64,
    pub bytes: u64,
    pub segments_sealed: u64,
    pub segments_deleted: u64,
}

/// One capture thread's rotating pcap writer.
#[derive(Debug)]
pub struct PcapRing {
    config: RetentionConfig,
    open: Option<Open>,
    last_flush: Instant,
    stats: RetentionStats,
    /// Write segments with `O_DIRECT` where the filesystem allows it (see [`segment_file`]).
    direct_io: bool,
    /// The write mode last reported in the log (reported when it changes).
    reported_direct: Option<bool>,
    /// The disk-writer thread, between segments (the open segment holds it otherwise).
    disk: Option<DiskWriter>,
}

impl PcapRing {
    /// A ring writing into `config.dir` (created, mode 0700 under the caller's umask), with its
    /// disk-writer thread and buffers ready.
    pub fn new(config: RetentionConfig) -> Result<Self, RetentionError> {
        fs::create_dir_all(&config.dir).map_err(io_err(&config.dir))?;
        let disk = DiskWriter::spawn(config.queue).map_err(io_err(&config.dir))?;
        Ok(Self {
            config,
            open: None,
            last_flush: Instant::now(),
            stats: RetentionStats::default(),
            direct_io: true,
            reported_direct: None,
            disk: Some(disk),
        })
    }

    pub fn stats(&self) -> RetentionStats {
        self.stats
    }

    /// Keep one frame.
    pub fn write(&mut self, ts_ns: i64, frame: &[u8]) -> Result<(), RetentionError> {
        let addrs = Packet::decode(ts_ns, frame).map_or([None, None], |p| [p.src_ip(), p.dst_ip()]);
        self.write_indexed(ts_ns, frame, addrs)
    }

    /// Keep one frame whose source and destination addresses the caller already decoded
    /// (the capture path decodes every frame once, for the analyzer).
    pub fn write_indexed(
        &mut self,
        ts_ns: i64,
        frame: &[u8],
        addrs: [Option<IpAddr>; 2],
    ) -> Result<(), RetentionError> {
        let record = RECORD_HEADER + frame.len().min(SNAPLEN as usize) as u64;
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.bytes + record > self.config.segment_bytes && o.index.packets > 0)
        {
            self.seal()?;
        }
        let open = match self.open {
            Some(ref mut o) => o,
            None => {
                let o = self.create(ts_ns)?;
                self.open.insert(o)
            }
        };
        open.writer
            .write_packet(ts_ns, frame)
            .map_err(io_err(&open.path))?;
        open.bytes += record;
        let idx = &mut open.index;
        if idx.packets == 0 {
            idx.first_ts_ns = ts_ns;
        }
        idx.last_ts_ns = idx.last_ts_ns.max(ts_ns);
        idx.packets += 1;
        // Consecutive frames mostly share their addresses: skip the set lookups then.
        if addrs != open.last_addrs {
            for ip in addrs.into_iter().flatten() {
                idx.add_ip(ip);
            }
            open.last_addrs = addrs;
        }
        self.stats.packets += 1;
        self.stats.bytes += record;
        Ok(())
    }

    /// Flush the open segment if the last flush is more than a second old (so an export
    /// sees recent packets); cheap to call after every batch.
    pub fn maybe_flush(&mut self) -> Result<(), RetentionError> {
        if self.last_flush.elapsed().as_secs() >= 1 {
            self.last_flush = Instant::now();
            if let Some(o) = &mut self.open {
                o.writer.flush().map_err(io_err(&o.path))?;
            }
        }
        Ok(())
    }

    /// Seal the open segment (flush, write its index, enforce the budget).
    pub fn seal(&mut self) -> Result<(), RetentionError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let Open {
            path,
            writer,
            index,
            ..
        } = open;
        let disk = writer
            .into_inner()
            .and_then(SegmentFile::finish)
            .map_err(io_err(&path))?;
        self.disk = Some(disk);
        let idx_path = index_path(&path);
        let tmp = idx_path.with_extension("idx.tmp");
        fs::write(&tmp, index.render()).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &idx_path).map_err(io_err(&idx_path))?;
        self.stats.segments_sealed += 1;
        self.stats.segments_deleted += enforce_budget(&self.config.dir, self.config.max_bytes)?;
        Ok(())
    }

    fn create(&mut self, ts_ns: i64) -> Result<Open, RetentionError> {
        let mut n = 0u32;
        let path = loop {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            let p = self.config.dir.join(format!(
                "seg-{:020}-q{}{suffix}.pcap",
                ts_ns.max(0),
                self.config.queue
            ));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let disk = match self.disk.take() {
            Some(d) => d,
            None => DiskWriter::spawn(self.config.queue).map_err(io_err(&path))?,
        };
        // A direct write refused mid-segment (logged then) is not tried again.
        self.direct_io &= !disk.direct_refused;
        let file = SegmentFile::create(&path, self.direct_io, disk).map_err(io_err(&path))?;
        if self.reported_direct != Some(file.is_direct()) {
            self.reported_direct = Some(file.is_direct());
            let mode = if file.is_direct() {
                "O_DIRECT"
            } else {
                "the page cache"
            };
            tracing::info!(dir = %self.config.dir.display(), queue = self.config.queue, "pcap segments are written through {mode}");
        }
        let writer = PcapWriter::new(file, SNAPLEN, true).map_err(io_err(&path))?;
        Ok(Open {
            path,
            writer,
            bytes: PCAP_HEADER,
            index: SegmentIndex::default(),
            last_addrs: [None, None],
        })
    }
}

impl Drop for PcapRing {
    fn drop(&mut self) {
        if let Err(e) = self.seal() {
            tracing::error!(error = %e, "sealing the last pcap segment failed");
        }
    }
}

/// The segments of a retention directory, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<PathBuf>, RetentionError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("seg-") && name.ends_with(".pcap") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Delete the oldest segments (and their indexes) while the pcap files and their indexes total
/// more than `max_bytes`; returns how many were deleted. The newest segment is always kept, and so is
/// every queue's newest segment while it has no index: another capture thread is still
/// writing it (the directory is shared by all queues; deleting it would lose its packets
/// silently into an unlinked file).
pub fn enforce_budget(dir: &Path, max_bytes: u64) -> Result<u64, RetentionError> {
    let segs = segments(dir)?;
    let size_of = |p: &Path| fs::metadata(p).map_or(0, |m| m.len());
    let sizes: Vec<u64> = segs
        .iter()
        .map(|p| size_of(p) + size_of(&index_path(p)))
        .collect();
    let mut newest_of_queue = std::collections::HashMap::new();
    for (i, path) in segs.iter().enumerate() {
        if let Some(queue) = queue_of(path) {
            newest_of_queue.insert(queue, i);
        }
    }
    let open: BTreeSet<usize> = newest_of_queue
        .into_values()
        .filter(|&i| !index_path(&segs[i]).exists())
        .collect();
    let mut total: u64 = sizes.iter().sum();
    let mut deleted = 0;
    let candidates = segs.iter().zip(&sizes).enumerate();
    for (i, (path, size)) in candidates.take(segs.len().saturating_sub(1)) {
        if total <= max_bytes {
            break;
        }
        if open.contains(&i) {
            continue;
        }
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path)(e)),
        }
        let _ = fs::remove_file(index_path(path));
        total = total.saturating_sub(*size);
        deleted += 1;
    }
    Ok(deleted)
}

/// The queue of a segment named `seg-<first ts>-q<queue>[-<n>].pcap`.
fn queue_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let (_, rest) = name.rsplit_once("-q")?;
    let queue: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!queue.is_empty()).then_some(queue)
}

/// What [`export_pcap`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub segments_scanned: u64,
    pub segments_skipped: u64,
    pub packets: u64,
}

/// Write every retained packet from or to `ip` with `from_ns <= ts <= to_ns` into `out` as
/// one nanosecond pcap, in segment order.
pub fn export_pcap<W: Write>(
    dir: &Path,
    ip: IpAddr,
    from_ns: i64,
    to_ns: i64,
    out: W,
) -> Result<ExportSummary, RetentionError> {
    let out_name = PathBuf::from("<export output>");
    let mut writer = PcapWriter::new(out, SNAPLEN, true).map_err(io_err(&out_name))?;
    let summary = export_with(dir, ip, from_ns, to_ns, |ts, data| {
        writer.write_packet(ts, data)
    })?;
    writer.into_inner().map_err(io_err(&out_name))?;
    Ok(summary)
}

/// [`export_pcap`] as pcapng (one section, one nanosecond Ethernet interface): what the web
/// API serves. With nothing retained for `ip` the output is a valid pcapng with no packets.
pub fn export_pcapng<W: Write>(
    dir: &Path,
    ip: IpAddr,
    from_ns: i64,
    to_ns: i64,
    out: W,
) -> Result<ExportSummary, RetentionError> {
    let out_name = PathBuf::from("<export output>");
    let mut writer = PcapNgWriter::new(out, SNAPLEN).map_err(io_err(&out_name))?;
    let summary = export_with(dir, ip, from_ns, to_ns, |ts, data| {
        writer.write_packet(ts, data)
    })?;
    writer.into_inner().map_err(io_err(&out_name))?;
    Ok(summary)
}

fn export_with(
    dir: &Path,
    ip: IpAddr,
    from_ns: i64,
    to_ns: i64,
    mut write: impl FnMut(i64, &[u8]) -> io::Result<()>,
) -> Result<ExportSummary, RetentionError> {
    let out_name = PathBuf::from("<export output>");
    let mut summary = ExportSummary::default();
    for seg in segments(dir)? {
        let idx_path = index_path(&seg);
        let sealed = idx_path.exists();
        if sealed {
            let idx = SegmentIndex::read(&idx_path)?;
            if idx.last_ts_ns < from_ns || idx.first_ts_ns > to_ns || !idx.may_hold(&ip) {
                summary.segments_skipped += 1;
                continue;
            }
        }
        let file = match File::open(&seg) {
            Ok(f) => f,
            // Deleted by the budget between the listing and now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&seg)(e)),
        };
        summary.segments_scanned += 1;
        let mut reader = match PcapReader::new(BufReader::new(file)) {
            Ok(r) => r,
            // A segment being written may not have its header on disk yet.
            Err(_) if !sealed => continue,
            Err(source) => return Err(RetentionError::Pcap { path: seg, source }),
        };
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                // The open segment ends in a partly written record.
                Err(_) if !sealed => break,
                Err(source) => {
                    return Err(RetentionError::Pcap {
                        path: seg.clone(),
                        source,
                    });
                }
            };
            if rec.ts_ns < from_ns || rec.ts_ns > to_ns {
                continue;
            }
            let Ok(p) = Packet::decode(rec.ts_ns, rec.data) else {
                continue;
            };
            if p.src_ip() == Some(ip) || p.dst_ip() == Some(ip) {
                write(rec.ts_ns, rec.data).map_err(io_err(&out_name))?;
                summary.packets += 1;
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pcapfile::PcapReader;

    /// An Ethernet/IPv4/UDP frame from `src` to `dst` with `pad` payload bytes.
    fn frame(src: [u8; 4], dst: [u8; 4], pad: usize) -> Vec<u8> {
        let udp_len = 8 + pad;
        let ip_len = 20 + udp_len;
        let mut f = vec![0u8; 14 + ip_len];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&u16::try_from(ip_len).unwrap().to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&u16::try_from(udp_len).unwrap().to_be_bytes());
        f
    }

    fn count(path: &Path) -> Vec<(i64, Vec<u8>)> {
        let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push((rec.ts_ns, rec.data.to_vec()));
        }
        out
    }

    fn ring(dir: &Path, seg: u64, max: u64) -> PcapRing {
        PcapRing::new(RetentionConfig {
            dir: dir.to_owned(),
            segment_bytes: seg,
            max_bytes: max,
            queue: 0,
        })
        .unwrap()
    }

    #[test]
    fn rotates_at_the_segment_size_and_indexes_each_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = ring(tmp.path(), 1000, 1 << 30);
        // 100-byte frames: 116 bytes per record, 24-byte header → 8 records per 1000-byte segment.
        for i in 0..20 {
            r.write(1_000 + i, &frame([10, 0, 0, 1], [10, 0, 0, 2], 58))
                .unwrap();
        }
        r.seal().unwrap();
        let segs = segments(tmp.path()).unwrap();
        assert_eq!(segs.len(), 3);
        let mut all = Vec::new();
        for s in &segs {
            assert!(fs::metadata(s).unwrap().len() <= 1000);
            let idx = SegmentIndex::read(&index_path(s)).unwrap();
            let recs = count(s);
            assert_eq!(idx.packets, recs.len() as u64);
            assert_eq!(idx.first_ts_ns, recs[0].0);
            assert_eq!(idx.last_ts_ns, recs.last().unwrap().0);
            assert_eq!(
                idx.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                ["10.0.0.1", "10.0.0.2"]
            );
            all.extend(recs);
        }
        assert_eq!(all.len(), 20);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(r.stats().segments_sealed, 3);
    }

    /// ≈ 4 MiB of frames (several write buffers) with a flush every 1,000 frames, in both
    /// write modes: every frame comes back intact and in order, the open segment's file is
    /// complete after each flush, and the sealed file is exactly the records' length.
    fn big_segment_round_trip(direct_io: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = ring(tmp.path(), 64 << 20, 1 << 30);
        r.direct_io = direct_io;
        let n: u16 = 12_000;
        for i in 0..n {
            let mut f = frame([10, 0, 0, 1], [10, 0, 0, 2], 300);
            f[42..44].copy_from_slice(&i.to_be_bytes());
            r.write(1_000 + i64::from(i), &f).unwrap();
            if i % 1_000 == 999 {
                let o = r.open.as_mut().unwrap();
                o.writer.get_mut().flush_and_wait().unwrap();
                assert_eq!(fs::metadata(&o.path).unwrap().len(), o.bytes);
                assert_eq!(count(&o.path).len(), usize::from(i) + 1);
            }
        }
        let open = r.open.as_ref().unwrap();
        if direct_io && !open.writer.get_ref().is_direct() {
            eprintln!("NOTE: the temporary directory's filesystem refused O_DIRECT");
        }
        assert!(direct_io || !open.writer.get_ref().is_direct());
        let bytes = open.bytes;
        r.seal().unwrap();
        let segs = segments(tmp.path()).unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(fs::metadata(&segs[0]).unwrap().len(), bytes);
        let recs = count(&segs[0]);
        assert_eq!(recs.len(), usize::from(n));
        for (i, (ts, data)) in recs.iter().enumerate() {
            assert_eq!(*ts, 1_000 + i as i64);
            assert_eq!(data.len(), 342);
            assert_eq!(usize::from(u16::from_be_bytes([data[42], data[43]])), i);
        }
    }

    #[test]
    fn segments_of_several_write_buffers_keep_every_frame_with_o_direct() {
        big_segment_round_trip(true);
    }

    #[test]
    fn segments_of_several_write_buffers_keep_every_frame_through_the_page_cache() {
        big_segment_round_trip(false);
    }

    #[test]
    /// An open segment's flush pads its last block with zeros for an instant before truncating
    /// it (see `segment_file`): an export reading then exports no empty records and no error.
    fn export_ignores_an_open_segments_zero_padding() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = ring(tmp.path(), 1 << 20, 1 << 30);
        let ip = [192, 0, 2, 7];
        for i in 0..3 {
            r.write(5_000 + i, &frame(ip, [10, 0, 0, 5], 10)).unwrap();
        }
        let o = r.open.as_mut().unwrap();
        o.writer.get_mut().flush_and_wait().unwrap();
        // What a reader sees between the padded write and the truncation.
        let mut raw = fs::OpenOptions::new().append(true).open(&o.path).unwrap();
        raw.write_all(&[0u8; 4000]).unwrap();
        let mut out = Vec::new();
        let s = export_pcap(tmp.path(), IpAddr::from(ip), 0, i64::MAX, &mut out).unwrap();
        assert_eq!(s.packets, 3);
    }

    #[test]
    fn budget_deletes_the_oldest_segments_first() {
        let tmp = tempfile::tempdir().unwrap();
        // Segments of ≤1000 bytes, budget 2500: at most 2-3 segments survive.
        let mut r = ring(tmp.path(), 1000, 2500);
        for i in 0..80 {
            r.write(1_000 + i, &frame([10, 0, 0, 1], [10, 0, 0, 2], 58))
                .unwrap();
        }
        r.seal().unwrap();
        let segs = segments(tmp.path()).unwrap();
        let total: u64 = segs
            .iter()
            .map(|s| fs::metadata(s).unwrap().len() + fs::metadata(index_path(s)).unwrap().len())
            .sum();
        assert!(total <= 2500, "total {total} (segments and their indexes)");
        assert!(r.stats().segments_deleted >= 7);
        // What is left is the newest packets, ending with the last one written.
        let last = segs.last().unwrap();
        assert_eq!(count(last).last().unwrap().0, 1_079);
        let first_left = count(&segs[0])[0].0;
        assert!(first_left > 1_000 + 40, "oldest kept packet {first_left}");
        // Every index left belongs to a segment left.
        let idx_files = fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "idx")
            })
            .count();
        assert_eq!(idx_files, segs.len());
    }

    #[test]
    fn budget_spares_another_queues_open_segment() {
        let tmp = tempfile::tempdir().unwrap();
        let mut q1 = PcapRing::new(RetentionConfig {
            dir: tmp.path().to_owned(),
            segment_bytes: 1 << 20,
            max_bytes: 2500,
            queue: 1,
        })
        .unwrap();
        // Queue 1 opens its segment first (the oldest name) and keeps it open.
        q1.write(500, &frame([10, 0, 0, 9], [10, 0, 0, 2], 58))
            .unwrap();
        let mut q0 = ring(tmp.path(), 1000, 2500);
        for i in 0..80 {
            q0.write(1_000 + i, &frame([10, 0, 0, 1], [10, 0, 0, 2], 58))
                .unwrap();
        }
        q0.seal().unwrap();
        assert!(q0.stats().segments_deleted >= 7);
        let open = q1.open.as_ref().unwrap().path.clone();
        assert!(open.exists(), "queue 1's open segment was deleted");
        q1.seal().unwrap();
        assert_eq!(count(&open).len(), 1);
        assert_eq!(queue_of(&open).as_deref(), Some("1"));
        assert_eq!(
            queue_of(Path::new("seg-00000000000000001000-q12-3.pcap")).as_deref(),
            Some("12")
        );
    }

    /// A segment of more addresses than an index lists: the index stays bounded, says so, and
    /// rules no address out, so the export still finds an unlisted address's packets.
    #[test]
    fn an_index_of_too_many_addresses_rules_nothing_out() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = ring(tmp.path(), 1 << 30, 1 << 40);
        let decky = [10, 0, 0, 5];
        let n = u32::try_from(MAX_INDEX_IPS / 2 + 10).unwrap();
        for i in 0..n {
            let src = (0xc000_0000 + 2 * i).to_be_bytes();
            let dst = (0xc000_0000 + 2 * i + 1).to_be_bytes();
            r.write(1_000 + i64::from(i), &frame(src, dst, 4)).unwrap();
        }
        r.write(999_999, &frame([203, 0, 113, 1], decky, 4))
            .unwrap();
        r.seal().unwrap();
        let segs = segments(tmp.path()).unwrap();
        let idx = SegmentIndex::read(&index_path(&segs[0])).unwrap();
        assert_eq!(idx.ips.len(), MAX_INDEX_IPS);
        assert!(idx.ips_overflow);
        let late: IpAddr = "203.0.113.1".parse().unwrap();
        assert!(!idx.ips.contains(&late) && idx.may_hold(&late));
        let mut out = Vec::new();
        let s = export_pcap(tmp.path(), late, 0, i64::MAX, &mut out).unwrap();
        assert_eq!((s.packets, s.segments_scanned), (1, 1));
    }

    #[test]
    fn export_writes_one_addresses_packets_in_the_time_range() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = ring(tmp.path(), 600, 1 << 30);
        let attacker = [192, 0, 2, 7];
        let other = [198, 51, 100, 9];
        let decky = [10, 0, 0, 5];
        for i in 0..30i64 {
            let f = if i % 3 == 0 {
                frame(attacker, decky, 10)
            } else if i % 3 == 1 {
                frame(decky, attacker, 20)
            } else {
                frame(other, decky, 30)
            };
            r.write(10_000 + i * 10, &f).unwrap();
        }
        // The last segment stays open (no index): export scans it too.
        r.maybe_flush().unwrap();
        if let Some(o) = &mut r.open {
            o.writer.get_mut().flush_and_wait().unwrap();
        }
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut out = Vec::new();
        let s = export_pcap(tmp.path(), ip, 0, i64::MAX, &mut out).unwrap();
        assert_eq!(s.packets, 20);
        let mut rd = PcapReader::new(&out[..]).unwrap();
        let mut n = 0;
        while let Some(rec) = rd.next_record().unwrap() {
            let p = Packet::decode(rec.ts_ns, rec.data).unwrap();
            assert!(p.src_ip() == Some(ip) || p.dst_ip() == Some(ip));
            n += 1;
        }
        assert_eq!(n, 20);
        // A time range: packets 10..=19 (ts 10_100..=10_190) hold 7 of the attacker's.
        let mut out = Vec::new();
        let s = export_pcap(tmp.path(), ip, 10_100, 10_190, &mut out).unwrap();
        assert_eq!(s.packets, 7);
        assert!(s.segments_skipped > 0, "{s:?}");
        // An address never seen: every sealed segment is skipped by its index.
        let mut out = Vec::new();
        let s = export_pcap(
            tmp.path(),
            "203.0.113.1".parse().unwrap(),
            0,
            i64::MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(s.packets, 0);
        assert_eq!(s.segments_scanned, 1, "only the open segment is scanned");
        // pcapng: the same packets, byte for byte, with their nanosecond timestamps.
        let (mut classic, mut ng) = (Vec::new(), Vec::new());
        export_pcap(tmp.path(), ip, 0, i64::MAX, &mut classic).unwrap();
        let s = export_pcapng(tmp.path(), ip, 0, i64::MAX, &mut ng).unwrap();
        assert_eq!(s.packets, 20);
        assert_eq!(&ng[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        let records = |bytes: &[u8]| {
            let mut rd = PcapReader::new(bytes).unwrap();
            let mut v = Vec::new();
            while let Some(rec) = rd.next_record().unwrap() {
                v.push((rec.ts_ns, rec.data.to_vec()));
            }
            v
        };
        assert_eq!(records(&ng), records(&classic));
        drop(r);
        assert!(
            segments(tmp.path())
                .unwrap()
                .iter()
                .all(|s| index_path(s).exists())
        );
    }
}
