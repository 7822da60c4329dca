//! The thread that puts a ring's pcap buffers on disk (see [`super::segment_file`] for why).

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::mpsc::{Receiver, SyncSender, sync_channel},
    thread::JoinHandle,
};

/// Alignment of the buffers, of every write's offset and of its length: the largest logical
/// block size in use (4 KiB drives; 512-byte ones accept it too).
pub(super) const ALIGN: usize = 4096;
/// Bytes gathered before a write: one write per MiB.
pub(super) const BUF: usize = 1 << 20;
/// Buffers per ring: the one being filled and up to three on their way to the disk.
pub(super) const BUFFERS: usize = 4;

/// `BUF` bytes aligned to `ALIGN`, inside a slightly larger allocation (no `unsafe`).
pub(super) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> Self {
        // Filled (not zero-allocated) so every page is faulted in now, when the ring starts,
        // rather than while frames are being captured; the content is never written out.
        let storage = vec![0xa5u8; BUF + ALIGN];
        // align_offset cannot fail for bytes at run time; a misaligned buffer would only make
        // the direct writes fall back to the page cache.
        let start = storage.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self { storage, start }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + BUF]
    }

    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + BUF]
    }
}

pub(super) enum Job {
    /// The following writes go to this file.
    Open {
        path: PathBuf,
        file: File,
        direct: bool,
    },
    /// Write `buf[..len]` at `offset`, then truncate the file to `truncate_to` if given.
    Write {
        buf: AlignedBuf,
        len: usize,
        offset: u64,
        truncate_to: Option<u64>,
    },
    /// The file is complete: page-cache mode sends its tail to disk and drops it.
    Finish { end: u64 },
}

/// A buffer back from the writer thread, with how its write went.
struct Done {
    buf: AlignedBuf,
    result: io::Result<()>,
    /// The file had to leave `O_DIRECT` for the page cache.
    direct_refused: bool,
}

/// One ring's disk-writer thread and its buffers.
pub(super) struct DiskWriter {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    pub(super) spares: Vec<AlignedBuf>,
    pub(super) in_flight: usize,
    /// A direct write was refused on this disk: later segments should not try again.
    pub(super) direct_refused: bool,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DiskWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskWriter")
            .field("spares", &self.spares.len())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl DiskWriter {
    /// Start the thread of capture queue `queue` (named `pcap-disk-q<queue>`, as `top -H`
    /// and the sniffer benchmark's per-thread CPU show it).
    pub(super) fn spawn(queue: usize) -> io::Result<Self> {
        // Every job but `Open`/`Finish` holds a buffer, so neither channel ever fills beyond
        // the buffers plus the two bookkeeping jobs of a segment change.
        let (jobs, job_rx) = sync_channel::<Job>(BUFFERS + 2);
        let (done_tx, done) = sync_channel::<Done>(BUFFERS + 2);
        let thread = std::thread::Builder::new()
            .name(format!("pcap-disk-q{queue}"))
            .spawn(move || write_jobs(&job_rx, &done_tx))?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            spares: (0..BUFFERS).map(|_| AlignedBuf::new()).collect(),
            in_flight: 0,
            direct_refused: false,
            thread: Some(thread),
        })
    }

    pub(super) fn send(&mut self, job: Job) -> io::Result<()> {
        let holds_buffer = matches!(job, Job::Write { .. });
        let sent = self.jobs.as_ref().is_some_and(|j| j.send(job).is_ok());
        if !sent {
            return Err(io::Error::other("the pcap disk-writer thread ended"));
        }
        self.in_flight += usize::from(holds_buffer);
        Ok(())
    }

    fn settle(&mut self, done: Done) -> io::Result<()> {
        self.in_flight -= 1;
        self.spares.push(done.buf);
        self.direct_refused |= done.direct_refused;
        done.result
    }

    /// Collect what the thread has finished without waiting; the first failure is returned.
    pub(super) fn reap(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        while let Ok(done) = self.done.try_recv() {
            let r = self.settle(done);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Wait for one result from the thread.
    fn wait_one(&mut self) -> io::Result<()> {
        match self.done.recv() {
            Ok(done) => self.settle(done),
            // Its buffers are gone with it: nothing is in flight any more.
            Err(_) => {
                self.in_flight = 0;
                Err(io::Error::other("the pcap disk-writer thread ended"))
            }
        }
    }

    /// A free buffer: waits for the disk only when every buffer is in flight.
    pub(super) fn take_buffer(&mut self) -> io::Result<AlignedBuf> {
        self.reap()?;
        loop {
            if let Some(buf) = self.spares.pop() {
                return Ok(buf);
            }
            self.wait_one()?;
        }
    }

    /// Wait until every job sent so far is done; the first failure is returned.
    pub(super) fn wait_idle(&mut self) -> io::Result<()> {
        let mut first = self.reap();
        while self.in_flight > 0 {
            let r = self.wait_one();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has written what it holds.
        self.jobs = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the pcap disk-writer thread panicked");
        }
    }
}

/// The writer thread: jobs in order, each buffer sent back with its result.
fn write_jobs(jobs: &Receiver<Job>, done: &SyncSender<Done>) {
    let mut target: Option<Target> = None;
    for job in jobs {
        let (buf, result, direct_refused) = match job {
            Job::Open { path, file, direct } => {
                target = Some(Target {
                    path,
                    file,
                    direct,
                    released: 0,
                    failed_at: None,
                });
                continue;
            }
            Job::Write {
                buf,
                len,
                offset,
                truncate_to,
            } => {
                let (result, refused) = match &mut target {
                    Some(t) => {
                        let was_direct = t.direct;
                        let r = t.write(&buf.bytes()[..len], offset, truncate_to);
                        (r, was_direct && !t.direct)
                    }
                    None => (
                        Err(io::Error::other("pcap write before its segment was opened")),
                        false,
                    ),
                };
                (buf, result, refused)
            }
            Job::Finish { end } => {
                if let Some(t) = target.take() {
                    t.finish(end);
                }
                continue;
            }
        };
        let done_job = Done {
            buf,
            result,
            direct_refused,
        };
        if done.send(done_job).is_err() {
            return;
        }
    }
}

/// The open segment, as the writer thread holds it.
struct Target {
    path: PathBuf,
    file: File,
    direct: bool,
    /// Page-cache mode: the cache was told to drop the file's bytes below this offset.
    released: u64,
    /// A write at this offset failed: the file ends there and takes no more writes.
    failed_at: Option<u64>,
}

impl Target {
    /// Write, or after a failed write refuse: a later write succeeding past the failed one
    /// would leave a hole of zeros inside the segment. The first failure truncates the file to
    /// where it happened, so the file is a clean (if cut) pcap that is never sealed.
    fn write(&mut self, bytes: &[u8], offset: u64, truncate_to: Option<u64>) -> io::Result<()> {
        if let Some(at) = self.failed_at {
            return Err(io::Error::other(format!(
                "{}: not written past offset {at}, where a write failed",
                self.path.display()
            )));
        }
        let r = self.write_at(bytes, offset, truncate_to);
        if r.is_err() {
            self.failed_at = Some(offset);
            let _ = self.file.set_len(offset);
        }
        r
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64, truncate_to: Option<u64>) -> io::Result<()> {
        match self.file.write_all_at(bytes, offset) {
            Ok(()) => {}
            // A direct write refused for its alignment: the file moves to the page cache and
            // the write is repeated there.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(path = %self.path.display(), "O_DIRECT write refused; pcap goes through the page cache");
                self.file = OpenOptions::new().write(true).open(&self.path)?;
                self.direct = false;
                self.file.write_all_at(bytes, offset)?;
            }
            Err(e) => return Err(e),
        }
        if let Some(len) = truncate_to {
            self.file.set_len(len)?;
        } else if !self.direct {
            self.release_behind(offset, bytes.len() as u64);
        }
        Ok(())
    }

    /// Page-cache mode: send the chunk just written to disk (asynchronously) and drop the
    /// chunks before it from the cache; their writeback had a chunk's time to finish (the
    /// kernel skips pages still dirty or under writeback: nothing is lost).
    fn release_behind(&mut self, offset: u64, len: u64) {
        advise(&self.file, &self.path, Advice::StartWriteback, offset, len);
        if offset > self.released {
            let (from, n) = (self.released, offset - self.released);
            advise(&self.file, &self.path, Advice::Drop, from, n);
            self.released = offset;
        }
    }

    fn finish(self, end: u64) {
        if !self.direct && end > self.released {
            let (from, n) = (self.released, end - self.released);
            advise(&self.file, &self.path, Advice::StartWriteback, from, n);
            advise(&self.file, &self.path, Advice::Drop, from, n);
        }
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

    #[test]
    fn after_a_failed_write_a_segment_takes_no_more_so_it_never_has_a_hole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("seg.pcap");
        let mut t = Target {
            path: path.clone(),
            file: File::create(&path).unwrap(),
            direct: false,
            released: 0,
            failed_at: None,
        };
        t.write(&[1; ALIGN], 0, None).unwrap();
        // The next buffer's write fails (here: a handle that cannot write).
        let writable = std::mem::replace(&mut t.file, File::open(&path).unwrap());
        let err = t.write(&[2; ALIGN], ALIGN as u64, None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
        assert_eq!(t.failed_at, Some(ALIGN as u64));
        // The disk recovers, but the buffer after the lost one must not land past a hole.
        t.file = writable;
        let err = t
            .write(&[3; ALIGN], 2 * ALIGN as u64, Some(2 * ALIGN as u64 + 10))
            .unwrap_err();
        assert!(err.to_string().contains("where a write failed"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), [1; ALIGN]);
    }

    #[test]
    fn a_dead_writer_thread_is_reported_instead_of_waited_for() {
        let mut disk = DiskWriter::spawn(0).unwrap();
        let buf = disk.take_buffer().unwrap();
        // A write with no segment opened fails in the thread; then the thread goes away.
        disk.send(Job::Write {
            buf,
            len: ALIGN,
            offset: 0,
            truncate_to: None,
        })
        .unwrap();
        assert!(disk.wait_idle().is_err());
        disk.jobs = None;
        if let Some(t) = disk.thread.take() {
            t.join().unwrap();
        }
        // Pretend a buffer was still out: waiting must end with an error, not spin.
        disk.in_flight = 1;
        let err = disk.wait_idle().unwrap_err();
        assert!(err.to_string().contains("thread ended"), "{err}");
        assert_eq!(disk.in_flight, 0);
    }
}
