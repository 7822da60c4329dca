//! The file under one pcap segment: written around the page cache.
//!
//! Retained packets are written once and read only by an occasional export. Through the page
//! cache every byte is copied into a cache page, the page is tracked, written back and later
//! reclaimed — in a profile of `decnet sniffer` at 50 kpps, ext4's buffered-write path was
//! ≈ 15 % of the process's CPU. With `O_DIRECT` the disk reads the bytes from this buffer
//! instead. `O_DIRECT` wants the memory, the file offset and the length aligned to the
//! device's block, so bytes are gathered in a [`BUF`]-byte buffer aligned to [`ALIGN`] and
//! written at aligned offsets; a flush (once a second, so an export sees recent packets, and at
//! sealing) writes the last partial block padded with zeros and truncates the file back to its
//! real length; that block stays in the buffer and is written again, complete, later.
//!
//! Where `O_DIRECT` is refused (a filesystem without it, a block size above [`ALIGN`]), the
//! same writes go through the page cache, and each written [`BUF`] chunk is sent to disk and
//! the one before it dropped from the cache (pcap would otherwise push the database and the
//! binaries out of memory). A failure of that advice costs memory, not data: it is logged.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Alignment of the buffer, of every write's offset and of its length: the largest logical
/// block size in use (4 KiB drives; 512-byte ones accept it too).
pub(super) const ALIGN: usize = 4096;
/// Bytes gathered before a write: one write (a few hundred µs on a virtual disk) per MiB.
pub(super) const BUF: usize = 1 << 20;

pub(super) struct SegmentFile {
    path: PathBuf,
    file: File,
    direct: bool,
    /// `BUF + ALIGN` bytes; the buffer is the aligned `BUF` bytes at `start`.
    storage: Vec<u8>,
    start: usize,
    /// Bytes of the buffer in use.
    len: usize,
    /// File offset of the buffer's first byte (a multiple of `ALIGN`).
    file_off: u64,
    /// Bytes were added since the last flush.
    dirty: bool,
    /// Buffered mode: the page cache was told to drop the file's bytes below this offset.
    released: u64,
}

impl std::fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFile")
            .field("path", &self.path)
            .field("direct", &self.direct)
            .field("len", &self.len)
            .field("file_off", &self.file_off)
            .finish_non_exhaustive()
    }
}

impl SegmentFile {
    /// Create (truncate) `path`, with `O_DIRECT` when `direct` and the filesystem allows it.
    pub(super) fn create(path: &Path, direct: bool) -> io::Result<Self> {
        let storage = vec![0u8; BUF + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        // align_offset cannot fail for bytes at run time; stay correct if it ever did.
        let (direct, start) = if start < ALIGN {
            (direct, start)
        } else {
            (false, 0)
        };
        let (file, direct) = match direct.then(|| open(path, true)) {
            Some(Ok(file)) => (file, true),
            Some(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %path.display(), "O_DIRECT refused; pcap goes through the page cache");
                (open(path, false)?, false)
            }
            Some(Err(e)) => return Err(e),
            None => (open(path, false)?, false),
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            direct,
            storage,
            start,
            len: 0,
            file_off: 0,
            dirty: false,
            released: 0,
        })
    }

    /// Whether the bytes bypass the page cache.
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    fn buf(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + BUF]
    }

    /// Write the buffer's first `n` bytes (a multiple of `ALIGN`) at `file_off`. A direct
    /// write refused for its alignment moves the file to the page cache and is repeated there.
    fn write_out(&mut self, n: usize) -> io::Result<()> {
        let (start, off) = (self.start, self.file_off);
        match self.file.write_all_at(&self.storage[start..start + n], off) {
            Ok(()) => Ok(()),
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %self.path.display(), "O_DIRECT write refused; pcap goes through the page cache");
                self.file = OpenOptions::new().write(true).open(&self.path)?;
                self.direct = false;
                self.file.write_all_at(&self.storage[start..start + n], off)
            }
            Err(e) => Err(e),
        }
    }

    /// Write the full buffer and start the next one after it.
    fn write_full(&mut self) -> io::Result<()> {
        self.write_out(BUF)?;
        let end = self.file_off + BUF as u64;
        self.release_behind(end);
        self.file_off = end;
        self.len = 0;
        Ok(())
    }

    /// Buffered mode: send the chunk just written to disk (asynchronously) and drop the
    /// chunks before it from the page cache; their writeback had a chunk's time to finish
    /// (the kernel skips pages still dirty or under writeback: nothing is lost).
    fn release_behind(&mut self, written_to: u64) {
        if self.direct {
            return;
        }
        advise(
            &self.file,
            &self.path,
            Advice::StartWriteback,
            self.file_off,
            written_to - self.file_off,
        );
        if self.file_off > self.released {
            let (from, len) = (self.released, self.file_off - self.released);
            advise(&self.file, &self.path, Advice::Drop, from, len);
            self.released = self.file_off;
        }
    }

    /// Flush, then (buffered mode) send the tail to disk and drop it from the page cache.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        if !self.direct {
            let end = self.file_off + self.len as u64;
            if end > self.released {
                advise(
                    &self.file,
                    &self.path,
                    Advice::StartWriteback,
                    self.released,
                    end - self.released,
                );
                advise(
                    &self.file,
                    &self.path,
                    Advice::Drop,
                    self.released,
                    end - self.released,
                );
            }
        }
        Ok(())
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
        // A full buffer here is one whose write failed: try it again, or report why not.
        if self.len == BUF {
            self.write_full()?;
        }
        let len = self.len;
        let n = data.len().min(BUF - len);
        self.buf()[len..len + n].copy_from_slice(&data[..n]);
        self.len += n;
        self.dirty |= n > 0;
        if self.len == BUF {
            self.write_full()?;
        }
        Ok(n)
    }

    /// Put every byte written so far in the file: the last partial block goes out padded with
    /// zeros and the file is truncated back to its real length.
    fn flush(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let len = self.len;
        let padded = len.next_multiple_of(ALIGN);
        self.buf()[len..padded].fill(0);
        self.write_out(padded)?;
        self.file.set_len(self.file_off + len as u64)?;
        self.dirty = false;
        // Full blocks are done; the partial one stays at the buffer's start.
        let full = len - len % ALIGN;
        if full > 0 {
            let start = self.start;
            self.storage.copy_within(start + full..start + len, start);
            self.file_off += full as u64;
            self.len -= full;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Advice {
    StartWriteback,
    Drop,
}

fn advise(file: &File, path: &Path, advice: Advice, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    let fd = file.as_raw_fd();
    // SAFETY: plain syscalls on an open fd; no memory is passed.
    let err = unsafe {
        match advice {
            Advice::StartWriteback => {
                if libc::sync_file_range(fd, off, n, libc::SYNC_FILE_RANGE_WRITE) == 0 {
                    0
                } else {
                    io::Error::last_os_error().raw_os_error().unwrap_or(-1)
                }
            }
            Advice::Drop => libc::posix_fadvise(fd, off, n, libc::POSIX_FADV_DONTNEED),
        }
    };
    if err != 0 {
        tracing::debug!(path = %path.display(), ?advice, errno = err, "page-cache advice refused");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Bytes whose every position is recognisable.
    fn pattern(from: usize, n: usize) -> Vec<u8> {
        (from..from + n).map(|i| (i % 251) as u8).collect()
    }

    /// Writes of awkward sizes across several buffers with flushes between them: after every
    /// flush the file is exactly what was written, in both modes.
    fn round_trip(direct: bool) -> bool {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("seg.pcap");
        let mut f = SegmentFile::create(&path, direct).unwrap();
        let used_direct = f.is_direct();
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
                let on_disk = std::fs::read(&path).unwrap();
                assert_eq!(on_disk.len(), written, "after flush {i}");
                assert!(on_disk == pattern(0, written), "content after flush {i}");
            }
        }
        assert!(written > 3 * BUF);
        f.finish().unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), written);
        assert!(on_disk == pattern(0, written));
        used_direct
    }

    #[test]
    fn direct_writes_keep_every_byte_across_buffers_and_flushes() {
        if !round_trip(true) {
            eprintln!(
                "NOTE: the temporary directory's filesystem refused O_DIRECT; \
                 the page-cache fallback was tested instead"
            );
        }
    }

    #[test]
    fn page_cache_writes_keep_every_byte_across_buffers_and_flushes() {
        assert!(!round_trip(false));
    }

    #[test]
    fn a_failed_write_is_reported_for_what_it_is_and_retried() {
        // /dev/full refuses every write with ENOSPC (and O_DIRECT, so this is the fallback).
        let mut f = SegmentFile::create(Path::new("/dev/full"), true).unwrap();
        let err = f.write_all(&pattern(0, BUF + 10)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        // The buffer is still full: the next write tries it again instead of claiming that
        // nothing could be written.
        let err = f.write(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    }

    #[test]
    fn a_flush_with_nothing_new_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("seg.pcap");
        let mut f = SegmentFile::create(&path, true).unwrap();
        f.write_all(b"abc").unwrap();
        f.flush().unwrap();
        // Someone else's bytes past the end stay: the second flush did not rewrite the block.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"xyz")
            .unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcxyz");
    }
}
