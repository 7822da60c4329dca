//! Thin, checked wrappers over the libc calls both backends need (fds, mmap, sockopts, poll).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use super::CaptureError;

/// Turns a `-1` libc return into a [`CaptureError::Os`] naming the call.
pub(crate) fn cvt(
    ret: libc::c_int,
    what: impl FnOnce() -> String,
) -> Result<libc::c_int, CaptureError> {
    if ret < 0 {
        Err(CaptureError::Os {
            what: what(),
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
) -> Result<OwnedFd, CaptureError> {
    // SAFETY: plain syscall; the fd is owned by the returned OwnedFd.
    let fd = cvt(
        unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) },
        || format!("socket({domain}, {ty}, {proto})"),
    )?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
    what: &str,
) -> Result<(), CaptureError> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| CaptureError::Config(format!("{what}: option too large")))?;
    // SAFETY: `val` points to `len` readable bytes for the duration of the call.
    let ret =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (val as *const T).cast(), len) };
    cvt(ret, || format!("setsockopt({what})")).map(|_| ())
}

/// Reads a fixed-size socket option; returns the length the kernel filled in.
pub(crate) fn getsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &mut T,
    what: &str,
) -> Result<usize, CaptureError> {
    let mut len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| CaptureError::Config(format!("{what}: option too large")))?;
    // SAFETY: `val` points to `len` writable bytes; the kernel writes at most `len`.
    let ret = unsafe { libc::getsockopt(fd, level, name, (val as *mut T).cast(), &mut len) };
    cvt(ret, || format!("getsockopt({what})"))?;
    Ok(len as usize)
}

/// `if_nametoindex`, with a clear error for a missing interface.
pub(crate) fn ifindex(name: &str) -> Result<u32, CaptureError> {
    let c = CString::new(name).map_err(|_| CaptureError::NoInterface(name.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(CaptureError::NoInterface(name.to_owned()))
    } else {
        Ok(idx)
    }
}

/// Number of RX queues the interface exposes (`/sys/class/net/<if>/queues/rx-*`), at least 1.
pub(crate) fn rx_queue_count(name: &str) -> u32 {
    let dir = format!("/sys/class/net/{name}/queues");
    let n = std::fs::read_dir(dir).map_or(1, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count()
    });
    u32::try_from(n.max(1)).unwrap_or(1)
}

/// An owned memory mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it between threads is sound.
unsafe impl Send for Mmap {}

impl Mmap {
    /// `mmap(fd, offset)` shared read/write (kernel rings), or anonymous when `fd` is None (UMEM).
    pub(crate) fn new(
        len: usize,
        fd: Option<RawFd>,
        offset: i64,
        populate: bool,
        what: &str,
    ) -> Result<Self, CaptureError> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        let flags = if populate {
            flags | libc::MAP_POPULATE
        } else {
            flags
        };
        // SAFETY: a fresh mapping at a kernel-chosen address; checked for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(CaptureError::Os {
                what: format!("mmap({what}, {len} bytes)"),
                source: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| CaptureError::Config(format!("mmap({what}) returned null")))?;
        Ok(Self { ptr, len })
    }

    /// Anonymous memory for a UMEM, backed by transparent huge pages where the kernel allows
    /// (`madvise` or `always` mode): every frame sits in its own 2–4 KiB chunk, so with 4 KiB
    /// pages each received frame would be a TLB miss; 2 MiB pages cover the UMEM with a few
    /// entries. Falls back to ordinary pages silently (the hint is best effort). Populated.
    pub(crate) fn huge_anonymous(len: usize, what: &str) -> Result<Self, CaptureError> {
        const HUGE: usize = 2 << 20;
        if len < HUGE {
            return Self::new(len, None, 0, true, what);
        }
        // Over-map by one huge page to start on a 2 MiB boundary, then trim both ends.
        let raw = Self::new(len + HUGE, None, 0, false, what)?;
        let base = raw.ptr.as_ptr() as usize;
        let start = base.next_multiple_of(HUGE);
        let (head, tail) = (start - base, base + raw.len - (start + len));
        std::mem::forget(raw);
        // SAFETY: unmapping the unused head and tail of the mapping made just above; the
        // middle `[start, start + len)` stays mapped and is owned by the value returned.
        unsafe {
            if head > 0 {
                libc::munmap(base as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        let ptr = NonNull::new(start as *mut u8)
            .ok_or_else(|| CaptureError::Config(format!("mmap({what}) returned null")))?;
        let map = Self { ptr, len };
        // SAFETY: advice and population on the range this value owns; no memory is read.
        unsafe {
            if libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_HUGEPAGE) != 0 {
                tracing::debug!(what, error = %io::Error::last_os_error(), "no huge pages");
            }
            // Fault everything in now (as MAP_POPULATE would), not on the capture path.
            if libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_POPULATE_WRITE) != 0 {
                let page = 4096;
                for off in (0..len).step_by(page) {
                    ptr.as_ptr().add(off).write_volatile(0);
                }
            }
        }
        Ok(map)
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region this value mapped; nothing borrows it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable. `Ok(false)` on timeout or EINTR.
pub(crate) fn poll_in(fd: RawFd, timeout_ms: i32) -> Result<bool, CaptureError> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(CaptureError::Os {
            what: "poll".into(),
            source: e,
        });
    }
    if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(CaptureError::Os {
            what: "poll: socket error".into(),
            source: io::Error::other(format!("revents {:#x}", pfd.revents)),
        });
    }
    Ok(ret > 0)
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Pins the calling thread to `cpu` (modulo the CPUs this process may use).
pub(crate) fn pin_current_thread(cpu: usize) -> Result<usize, CaptureError> {
    // SAFETY: cpu_set_t is plain data; sched_{get,set}affinity get valid pointers and sizes.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        cvt(
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed),
            || "sched_getaffinity".into(),
        )?;
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &allowed))
            .collect();
        let Some(&target) = cpus.get(cpu % cpus.len().max(1)) else {
            return Err(CaptureError::Config("no CPU available to pin to".into()));
        };
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(target, &mut set);
        cvt(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            || format!("sched_setaffinity(cpu {target})"),
        )?;
        Ok(target)
    }
}

/// Puts `ifindex` in promiscuous mode for as long as the returned socket lives: a
/// `PACKET_MR_PROMISC` membership is reference-counted by the kernel and dropped with the socket,
/// so a crash never leaves the interface promiscuous. Protocol 0: the socket receives nothing.
pub(crate) fn promisc_guard(ifindex: u32) -> Result<OwnedFd, CaptureError> {
    let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
    let mreq = libc::packet_mreq {
        mr_ifindex: i32::try_from(ifindex)
            .map_err(|_| CaptureError::Config("ifindex out of range".into()))?,
        mr_type: u16::try_from(libc::PACKET_MR_PROMISC).unwrap_or(1),
        mr_alen: 0,
        mr_address: [0; 8],
    };
    setsockopt(
        &fd,
        libc::SOL_PACKET,
        libc::PACKET_ADD_MEMBERSHIP,
        &mreq,
        "PACKET_ADD_MEMBERSHIP promisc",
    )?;
    Ok(fd)
}

/// Raises the soft `RLIMIT_MEMLOCK` to the hard limit. Older kernels charge UMEM and BPF maps to
/// it; 6.x charges memcg instead, so failure is only logged (platform notes §2).
pub(crate) fn raise_memlock() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out/in pointers.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                tracing::debug!(error = %io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK");
            }
        }
    }
}
