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
        let storage = vec![0u8; BUF + ALIGN];
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
    buf: Option<AlignedBuf>,
    result: io::Result<()>,
}

/// One ring's disk-writer thread and its buffers.
pub(super) struct DiskWriter {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    pub(super) spares: Vec<AlignedBuf>,
    pub(super) in_flight: usize,
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
    /// Start the thread (`name` shows in `top -H` and in the sniffer's thread CPU report).
    pub(super) fn spawn(name: String) -> io::Result<Self> {
        // Every job but `Open`/`Finish` holds a buffer, so neither channel ever fills beyond
        // the buffers plus the two bookkeeping jobs of a segment change.
        let (jobs, job_rx) = sync_channel::<Job>(BUFFERS + 2);
        let (done_tx, done) = sync_channel::<Done>(BUFFERS + 2);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || write_jobs(&job_rx, &done_tx))?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            spares: (0..BUFFERS).map(|_| AlignedBuf::new()).collect(),
            in_flight: 0,
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
        if let Some(buf) = done.buf {
            self.in_flight -= 1;
            self.spares.push(buf);
        }
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
            Err(_) => Err(io::Error::other("the pcap disk-writer thread ended")),
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
        let (buf, result) = match job {
            Job::Open { path, file, direct } => {
                target = Some(Target {
                    path,
                    file,
                    direct,
                    released: 0,
                });
                continue;
            }
            Job::Write {
                buf,
                len,
                offset,
                truncate_to,
            } => {
                let result = match &mut target {
                    Some(t) => t.write(&buf.bytes()[..len], offset, truncate_to),
                    None => Err(io::Error::other("pcap write before its segment was opened")),
                };
                (Some(buf), result)
            }
            Job::Finish { end } => {
                if let Some(t) = target.take() {
                    t.finish(end);
                }
                continue;
            }
        };
        if done.send(Done { buf, result }).is_err() {
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
}

impl Target {
    fn write(&mut self, bytes: &[u8], offset: u64, truncate_to: Option<u64>) -> io::Result<()> {
        match self.file.write_all_at(bytes, offset) {
            Ok(()) => {}
            // A direct write refused for its alignment: the file moves to the page cache and
            // the write is repeated there.
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::info!(path = %self.path.display(), "O_DIRECT write refused; pcap goes through the page cache");
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
