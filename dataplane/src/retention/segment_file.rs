//! The file under one pcap segment: written around the page cache, by a thread of its own.
//!
//! Retained packets are written once and read only by an occasional export. Through the page
//! cache every byte is copied into a cache page, the page is tracked, written back and later
//! reclaimed — in a profile of `decnet sniffer` at 50 kpps, ext4's buffered-write path was
//! ≈ 15–20 % of the process's CPU. With `O_DIRECT` the disk reads the bytes from our buffer
//! instead. `O_DIRECT` wants the memory, the file offset and the length aligned to the
//! device's block, so bytes are gathered in [`BUF`]-byte buffers aligned to [`ALIGN`] and
//! written at aligned offsets; a flush (once a second, so an export sees recent packets, and at
//! sealing) writes the last partial block padded with zeros and truncates the file back to its
//! real length; that block is copied into the next buffer and written again, complete, later.
//!
//! A direct write waits for the device (0.5–1.2 ms per MiB on this machine's virtual disk,
//! far more on an SD card or a busy disk), and a capture thread that waits does not drain its
//! ring. So full buffers go to a [`DiskWriter`] thread, one per ring, while the capture thread
//! fills the next; it waits only when the other [`BUFFERS`] are all in flight, i.e. when the
//! disk is slower than the traffic over several MiB (buffered writes would then be throttled
//! too), and when a segment is sealed (its last bytes must be in the file before its index).
//! After a failed write the thread writes nothing more into that segment and truncates it
//! where the failure began: a segment never has a hole, and it is never sealed.
//!
//! [`BUFFERS`]: super::disk_writer::BUFFERS
//!
//! Where `O_DIRECT` is refused (a filesystem without it, a block size above [`ALIGN`]), the
//! same writes go through the page cache, and each written [`BUF`] chunk is sent to disk and
//! the ones before it dropped from the cache (pcap would otherwise push the database and the
//! binaries out of memory). A failure of that advice costs memory, not data: it is logged.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use super::disk_writer::{ALIGN, AlignedBuf, BUF, DiskWriter, Job};

/// The capture thread's side of one segment file.
pub(super) struct SegmentFile {
    disk: DiskWriter,
    direct: bool,
    buf: AlignedBuf,
    /// Bytes of `buf` in use.
    len: usize,
    /// File offset of the buffer's first byte (a multiple of `ALIGN`).
    file_off: u64,
    /// Bytes were added since the last flush.
    dirty: bool,
    /// A write of this segment failed: it must not be sealed as complete.
    failed: bool,
}

impl std::fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFile")
            .field("direct", &self.direct)
            .field("len", &self.len)
            .field("file_off", &self.file_off)
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

impl SegmentFile {
    /// Create (truncate) `path`, with `O_DIRECT` when `direct` and the filesystem allows it,
    /// written through `disk` (whose earlier segment must be finished).
    pub(super) fn create(path: &Path, direct: bool, mut disk: DiskWriter) -> io::Result<Self> {
        let (file, direct) = match direct.then(|| open(path, true)) {
            Some(Ok(file)) => (file, true),
            Some(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %path.display(), "O_DIRECT refused; pcap goes through the page cache");
                (open(path, false)?, false)
            }
            Some(Err(e)) => return Err(e),
            None => (open(path, false)?, false),
        };
        let buf = disk.take_buffer()?;
        disk.send(Job::Open {
            path: path.to_owned(),
            file,
            direct,
        })?;
        Ok(Self {
            disk,
            direct,
            buf,
            len: 0,
            file_off: 0,
            dirty: false,
            failed: false,
        })
    }

    /// Whether the file was opened to bypass the page cache.
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Note a failure: the segment is then never finished as complete.
    fn checked<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        self.failed |= r.is_err();
        r
    }

    /// Hand the buffer to the writer thread to write its first `write_len` bytes (then truncate
    /// the file to `truncate_to`), and continue in a free buffer that starts with the bytes
    /// from `keep_from` on, at the file offset `keep_from` (a multiple of `ALIGN`) stands for.
    fn hand_off(
        &mut self,
        write_len: usize,
        truncate_to: Option<u64>,
        keep_from: usize,
    ) -> io::Result<()> {
        let r = self.disk.take_buffer();
        let mut next = self.checked(r)?;
        let kept = self.len - keep_from;
        next.bytes_mut()[..kept].copy_from_slice(&self.buf.bytes()[keep_from..self.len]);
        let sent = std::mem::replace(&mut self.buf, next);
        let r = self.disk.send(Job::Write {
            buf: sent,
            len: write_len,
            offset: self.file_off,
            truncate_to,
        });
        self.checked(r)?;
        self.file_off += keep_from as u64;
        self.len = kept;
        Ok(())
    }

    /// Flush and wait until the writer thread has put it in the file.
    #[cfg(test)]
    pub(super) fn flush_and_wait(&mut self) -> io::Result<()> {
        self.flush()?;
        self.disk.wait_idle()
    }

    /// Flush, wait until every byte is in the file, and give the disk writer back for the
    /// next segment. This waits for the disk: for the buffers still in flight (up to 3 MiB)
    /// and the last one. After any failed write it fails too (the file ends where the first
    /// failed write began, and is left unsealed).
    pub(super) fn finish(mut self) -> io::Result<DiskWriter> {
        self.flush()?;
        let end = self.file_off + self.len as u64;
        self.disk.send(Job::Finish { end })?;
        let r = self.disk.wait_idle();
        self.checked(r)?;
        if self.failed {
            return Err(io::Error::other(
                "an earlier write of this segment failed; it ends there",
            ));
        }
        let Self { mut disk, buf, .. } = self;
        disk.spares.push(buf);
        Ok(disk)
    }
}

fn open(path: &Path, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

impl Write for SegmentFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A full buffer is handed off before the next bytes, not after the last: an error
        // then never comes back for bytes that were taken.
        if self.len == BUF && !data.is_empty() {
            self.hand_off(BUF, None, BUF)?;
        }
        let len = self.len;
        let n = data.len().min(BUF - len);
        self.buf.bytes_mut()[len..len + n].copy_from_slice(&data[..n]);
        self.len += n;
        self.dirty |= n > 0;
        Ok(n)
    }

    /// Send every byte written so far to the file: the last partial block goes out padded with
    /// zeros and the file is truncated back to its real length (by the writer thread, in
    /// order, shortly after: this does not wait for the disk).
    fn flush(&mut self) -> io::Result<()> {
        if !self.dirty || self.len == 0 {
            self.dirty = false;
            let r = self.disk.reap();
            return self.checked(r);
        }
        let len = self.len;
        let padded = len.next_multiple_of(ALIGN);
        self.buf.bytes_mut()[len..padded].fill(0);
        // The partial block continues in the next buffer, to be written again once complete.
        self.hand_off(padded, Some(self.file_off + len as u64), len - len % ALIGN)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::retention::disk_writer::BUFFERS;

    /// Bytes whose every position is recognisable.
    fn pattern(from: usize, n: usize) -> Vec<u8> {
        (from..from + n).map(|i| (i % 251) as u8).collect()
    }

    fn disk() -> DiskWriter {
        DiskWriter::spawn(0).unwrap()
    }

    /// The file once the writer thread has done everything sent so far.
    fn settled(f: &mut SegmentFile, path: &Path) -> Vec<u8> {
        f.disk.wait_idle().unwrap();
        std::fs::read(path).unwrap()
    }

    /// Writes of awkward sizes across several buffers with flushes between them, into two
    /// segments in turn through one disk writer: after every flush the file is exactly what
    /// was written, in both modes. Returns whether `O_DIRECT` was used.
    fn round_trip(direct: bool) -> bool {
        let tmp = tempfile::tempdir().unwrap();
        let mut disk = disk();
        let mut used_direct = true;
        for segment in 0..2 {
            let path = tmp.path().join(format!("seg{segment}.pcap"));
            let mut f = SegmentFile::create(&path, direct, disk).unwrap();
            used_direct &= f.is_direct();
            let mut written = 0usize;
            for (i, size) in [
                24usize, 16, 60, 4000, 96, 70_000, 1, 0, 333_333, 1_500_000, 17,
            ]
            .into_iter()
            .cycle()
            .take(40)
            .enumerate()
            {
                f.write_all(&pattern(written, size)).unwrap();
                written += size;
                if i % 3 == 0 {
                    f.flush().unwrap();
                    let on_disk = settled(&mut f, &path);
                    assert_eq!(on_disk.len(), written, "after flush {i}");
                    assert!(on_disk == pattern(0, written), "content after flush {i}");
                }
            }
            assert!(written > 3 * BUF);
            disk = f.finish().unwrap();
            assert_eq!(disk.in_flight, 0);
            assert_eq!(disk.spares.len(), BUFFERS);
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len(), written);
            assert!(on_disk == pattern(0, written));
        }
        used_direct
    }

    #[test]
    fn direct_writes_keep_every_byte_across_buffers_flushes_and_segments() {
        if !round_trip(true) {
            eprintln!(
                "NOTE: the temporary directory's filesystem refused O_DIRECT; \
                 the page-cache fallback was tested instead"
            );
        }
    }

    #[test]
    fn page_cache_writes_keep_every_byte_across_buffers_flushes_and_segments() {
        assert!(!round_trip(false));
    }

    #[test]
    fn a_failed_write_is_reported_for_what_it_is() {
        // /dev/full refuses every write with ENOSPC (and O_DIRECT, so this is the fallback).
        let mut f = SegmentFile::create(Path::new("/dev/full"), true, disk()).unwrap();
        // The first buffers go to the thread; the failure comes back at the latest when the
        // capture side needs one of them again.
        let err = f.write_all(&pattern(0, (BUFFERS + 1) * BUF)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        // The segment is not finished as if complete.
        assert!(f.finish().is_err());
    }

    #[test]
    fn flushes_on_block_and_buffer_boundaries_keep_every_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("seg.pcap");
        let mut f = SegmentFile::create(&path, true, disk()).unwrap();
        let mut written = 0;
        // Exactly a buffer, exactly a block, a block and a byte, then a buffer's worth that
        // ends one block short of the buffer's end.
        for size in [BUF, ALIGN, ALIGN + 1, BUF - ALIGN - ALIGN - 1, ALIGN, 5] {
            f.write_all(&pattern(written, size)).unwrap();
            written += size;
            f.flush().unwrap();
            f.flush().unwrap();
            let on_disk = settled(&mut f, &path);
            assert_eq!(on_disk.len(), written, "after {size}");
            assert!(on_disk == pattern(0, written), "content after {size}");
        }
        f.finish().unwrap();
        assert!(std::fs::read(&path).unwrap() == pattern(0, written));
    }

    #[test]
    fn a_flush_with_nothing_new_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("seg.pcap");
        let mut f = SegmentFile::create(&path, true, disk()).unwrap();
        f.write_all(b"abc").unwrap();
        f.flush().unwrap();
        f.disk.wait_idle().unwrap();
        // Someone else's bytes past the end stay: the second flush did not rewrite the block.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"xyz")
            .unwrap();
        f.flush().unwrap();
        assert_eq!(settled(&mut f, &path), b"abcxyz");
    }
}
