//! AF_XDP sockets over raw `libc` (no libbpf/libxdp C build): a UMEM, its fill ring, the RX ring.
//! Only receive is used; the completion ring exists because the kernel refuses to bind without one.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::sys::{self, Mmap};
use super::{CaptureBackend, CaptureError, CaptureStats, FrameConsumer, XskConfig};

/// `struct xdp_desc` from `linux/if_xdp.h`.
#[repr(C)]
#[derive(Clone, Copy)]
struct XdpDesc {
    addr: u64,
    len: u32,
    options: u32,
}

/// How the socket was bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XskBindMode {
    /// Frames are copied into the UMEM (every driver, veth included).
    Copy,
    /// The NIC DMAs straight into the UMEM (drivers with AF_XDP zero-copy support).
    ZeroCopy,
}

/// One mmap'd single-producer/single-consumer ring shared with the kernel.
#[derive(Debug)]
struct Ring {
    // Keeps the ring mapped; accessed through the raw pointers below.
    _map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    size: u32,
}

impl Ring {
    fn map(
        fd: &OwnedFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        entry: usize,
        pgoff: i64,
        what: &str,
    ) -> Result<Self, CaptureError> {
        let len = usize::try_from(off.desc)
            .unwrap_or(usize::MAX)
            .saturating_add(size as usize * entry);
        let map = Mmap::new(len, Some(fd.as_raw_fd()), pgoff, true, what)?;
        let at = |o: u64| -> Result<*mut u8, CaptureError> {
            let o = usize::try_from(o)
                .map_err(|_| CaptureError::Config(format!("{what}: bad ring offset")))?;
            if o >= map.len() {
                return Err(CaptureError::Config(format!(
                    "{what}: ring offset {o} beyond mapping"
                )));
            }
            // SAFETY: `o` is inside the mapping (checked above).
            Ok(unsafe { map.as_ptr().add(o) })
        };
        Ok(Self {
            producer: at(off.producer)?.cast::<AtomicU32>().cast_const(),
            consumer: at(off.consumer)?.cast::<AtomicU32>().cast_const(),
            flags: at(off.flags)?.cast::<AtomicU32>().cast_const(),
            desc: at(off.desc)?,
            mask: size - 1,
            size,
            _map: map,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into `self.map`, 4-byte aligned by the kernel, alive as long as self.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for producer().
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for producer().
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

/// One AF_XDP socket bound to one RX queue, with its own UMEM.
#[derive(Debug)]
pub struct XskSocket {
    // Rings and UMEM are unmapped before the socket closes (field drop order).
    rx: Ring,
    fill: Ring,
    _comp: Ring,
    umem: Mmap,
    fd: OwnedFd,
    frame_size: u64,
    /// Chunk addresses not currently in the fill ring.
    free: Vec<u64>,
    queue: u32,
    bind_mode: XskBindMode,
    busy_poll_spins: u32,
    coalesce_us: u32,
    coalesce_max_us: u32,
    /// The coalescing sleep in use, between `coalesce_us` and `coalesce_max_us`.
    sleep_us: u32,
    /// The last call found frames: traffic is flowing.
    active: bool,
    batch: u32,
    received: u64,
    bytes: u64,
    invalid: u64,
}

// SAFETY: the raw pointers point into mappings this value owns exclusively; the kernel is the
// only other party and synchronises through the ring's atomics. One thread uses a socket at a time.
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// Creates the socket, registers its UMEM and binds it to `queue` of `ifindex`.
    pub fn open(
        ifindex: u32,
        queue: u32,
        cfg: &XskConfig,
        mode: XskBindMode,
    ) -> Result<Self, CaptureError> {
        let ring = |n: u32, what: &str| {
            if n.is_power_of_two() {
                Ok(n)
            } else {
                Err(CaptureError::Config(format!(
                    "{what} size {n} is not a power of two"
                )))
            }
        };
        let rx_size = ring(cfg.rx_ring, "RX ring")?;
        let fill_size = ring(cfg.fill_ring, "fill ring")?;
        let frame_size = ring(cfg.frame_size, "frame")?;
        if !(2048..=4096).contains(&frame_size) {
            return Err(CaptureError::Config(format!(
                "frame size {frame_size} must be 2048 or 4096"
            )));
        }
        let frames = cfg.frames.max(fill_size);
        let fd = sys::socket(libc::AF_XDP, libc::SOCK_RAW, 0)?;
        let umem_len = frames as usize * frame_size as usize;
        let umem = Mmap::huge_anonymous(umem_len, "UMEM")?;
        let reg = libc::xdp_umem_reg {
            addr: umem.as_ptr() as u64,
            len: umem_len as u64,
            chunk_size: frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sys::setsockopt(&fd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        sys::setsockopt(
            &fd,
            libc::SOL_XDP,
            libc::XDP_UMEM_FILL_RING,
            &fill_size,
            "XDP_UMEM_FILL_RING",
        )?;
        // Minimal completion ring: unused for RX-only, but bind fails without one.
        let comp_size: u32 = 64;
        sys::setsockopt(
            &fd,
            libc::SOL_XDP,
            libc::XDP_UMEM_COMPLETION_RING,
            &comp_size,
            "XDP_UMEM_COMPLETION_RING",
        )?;
        sys::setsockopt(
            &fd,
            libc::SOL_XDP,
            libc::XDP_RX_RING,
            &rx_size,
            "XDP_RX_RING",
        )?;
        // SAFETY: plain data, filled by getsockopt.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let got = sys::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            &mut off,
            "XDP_MMAP_OFFSETS",
        )?;
        if got != size_of::<libc::xdp_mmap_offsets>() {
            return Err(CaptureError::Config(
                "kernel too old: XDP_MMAP_OFFSETS without ring flags (need >= 5.4)".into(),
            ));
        }
        let pg = |v: u64| i64::try_from(v).unwrap_or(0);
        let rx = Ring::map(
            &fd,
            &off.rx,
            rx_size,
            size_of::<XdpDesc>(),
            libc::XDP_PGOFF_RX_RING,
            "XSK RX ring",
        )?;
        let fill = Ring::map(
            &fd,
            &off.fr,
            fill_size,
            8,
            pg(libc::XDP_UMEM_PGOFF_FILL_RING),
            "XSK fill ring",
        )?;
        let comp = Ring::map(
            &fd,
            &off.cr,
            comp_size,
            8,
            pg(libc::XDP_UMEM_PGOFF_COMPLETION_RING),
            "XSK completion ring",
        )?;

        let flags = libc::XDP_USE_NEED_WAKEUP
            | match mode {
                XskBindMode::Copy => libc::XDP_COPY,
                XskBindMode::ZeroCopy => libc::XDP_ZEROCOPY,
            };
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: valid sockaddr_xdp of the given size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sxdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        sys::cvt(ret, || {
            format!("bind AF_XDP ({mode:?}) to ifindex {ifindex} queue {queue}")
        })?;

        let free = (0..u64::from(frames))
            .map(|i| i * u64::from(frame_size))
            .rev()
            .collect();
        let mut s = Self {
            rx,
            fill,
            _comp: comp,
            umem,
            fd,
            frame_size: u64::from(frame_size),
            free,
            queue,
            bind_mode: mode,
            busy_poll_spins: cfg.busy_poll_spins,
            coalesce_us: cfg.coalesce_us,
            coalesce_max_us: cfg.coalesce_max_us.max(cfg.coalesce_us),
            sleep_us: cfg.coalesce_us,
            active: false,
            batch: cfg.batch.max(1),
            received: 0,
            bytes: 0,
            invalid: 0,
        };
        s.refill();
        Ok(s)
    }

    /// The socket's fd, for the XSKMAP.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// How the socket was bound.
    pub fn bind_mode(&self) -> XskBindMode {
        self.bind_mode
    }

    /// Moves free chunks into the fill ring, as many as it has room for.
    fn refill(&mut self) {
        let prod = self.fill.producer().load(Ordering::Relaxed);
        let cons = self.fill.consumer().load(Ordering::Acquire);
        // Saturating: a corrupt kernel index must not become a panic.
        let room = self.fill.size.saturating_sub(prod.wrapping_sub(cons));
        let n = room.min(u32::try_from(self.free.len()).unwrap_or(u32::MAX));
        for i in 0..n {
            let Some(addr) = self.free.pop() else { break };
            let slot = (prod.wrapping_add(i) & self.fill.mask) as usize;
            // SAFETY: slot < size; the fill ring's entries are u64 and we own those past `prod`.
            unsafe { self.fill.desc.cast::<u64>().add(slot).write(addr) };
        }
        self.fill
            .producer()
            .store(prod.wrapping_add(n), Ordering::Release);
    }

    /// Descriptors waiting in the RX ring.
    fn pending(&self) -> u32 {
        let cons = self.rx.consumer().load(Ordering::Relaxed);
        self.rx
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(cons)
    }

    /// Takes what the RX ring holds (up to one batch), hands it to `consumer`, recycles the chunks.
    fn drain(&mut self, consumer: &mut dyn FrameConsumer) -> usize {
        let cons = self.rx.consumer().load(Ordering::Relaxed);
        let prod = self.rx.producer().load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons).min(self.batch);
        if n == 0 {
            return 0;
        }
        let ts = sys::now_ns();
        let base = self.umem.as_ptr();
        let umem_len = self.umem.len() as u64;
        let desc = |i: u32| {
            let slot = (cons.wrapping_add(i) & self.rx.mask) as usize;
            // SAFETY: slot < size; entries between consumer and producer are ours to read.
            unsafe { self.rx.desc.cast::<XdpDesc>().add(slot).read() }
        };
        let frame_of = |d: XdpDesc| {
            let end = d.addr.saturating_add(u64::from(d.len));
            // SAFETY: an in-bounds range of the UMEM, written by the kernel before it
            // published `prod`; the chunk stays ours until this batch is recycled.
            (end <= umem_len).then(|| unsafe {
                std::slice::from_raw_parts(base.add(d.addr as usize), d.len as usize)
            })
        };
        // The kernel wrote the frames from another core: pull each one's headers into this
        // core's cache two frames ahead, and announce the next frame one ahead (its headers
        // are then here, so the consumer can look up what it will need).
        let pull = |i: u32| {
            if i < n {
                let addr = desc(i).addr;
                if addr < umem_len {
                    crate::prefetch(base.wrapping_add(addr as usize));
                }
            }
        };
        pull(1);
        for i in 0..n {
            let d = desc(i);
            pull(i + 2);
            if i + 1 < n
                && let Some(next) = frame_of(desc(i + 1))
            {
                consumer.upcoming(next);
            }
            if let Some(data) = frame_of(d) {
                consumer.frame(data, ts);
                self.bytes += u64::from(d.len);
            } else {
                self.invalid += 1;
            }
            self.free.push(d.addr & !(self.frame_size - 1));
        }
        self.rx
            .consumer()
            .store(cons.wrapping_add(n), Ordering::Release);
        self.received += u64::from(n);
        self.refill();
        if self.fill.needs_wakeup() {
            // The driver stopped for lack of buffers: a zero-length recvfrom restarts it
            // without blocking (need_wakeup protocol; only zero-copy drivers usually ask).
            // SAFETY: no buffer is passed; MSG_DONTWAIT never blocks.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
        consumer.batch_end();
        n as usize
    }

    fn xdp_statistics(&self) -> libc::xdp_statistics {
        // SAFETY: plain data, filled by getsockopt.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        if let Err(e) = sys::getsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            &mut st,
            "XDP_STATISTICS",
        ) {
            tracing::warn!(error = %e, queue = self.queue, "cannot read AF_XDP statistics");
        }
        st
    }
}

/// The next coalescing sleep after one that ended with `waiting` frames in the ring: each
/// wakeup should carry about one batch. Fewer than a quarter of a batch doubles the sleep (the
/// link is slower than the sleep assumed), a full batch or more halves it (frames are piling
/// up: keep the ring far from full); within `[min_us, max_us]`.
fn next_sleep_us(sleep_us: u32, waiting: u32, batch: u32, min_us: u32, max_us: u32) -> u32 {
    let next = if waiting >= batch {
        sleep_us / 2
    } else if waiting < batch / 4 {
        sleep_us.saturating_mul(2)
    } else {
        sleep_us
    };
    next.clamp(min_us, max_us.max(min_us))
}

impl CaptureBackend for XskSocket {
    fn recv_batch(
        &mut self,
        timeout_ms: i32,
        consumer: &mut dyn FrameConsumer,
    ) -> Result<usize, CaptureError> {
        // Busy-poll first: at high rates the next frame is microseconds away and a syscall costs more.
        for _ in 0..=self.busy_poll_spins {
            if self.pending() > 0 {
                break;
            }
            std::hint::spin_loop();
        }
        let coalesce = std::time::Duration::from_micros(u64::from(self.sleep_us));
        let mut slept = false;
        if self.pending() == 0 && self.active && self.sleep_us > 0 {
            // Traffic was flowing a moment ago: one timed sleep usually returns to a batch,
            // and costs one wakeup where poll() would wake for the first frame and then sleep.
            std::thread::sleep(coalesce);
            slept = true;
        }
        if self.pending() == 0 {
            self.active = false;
            self.sleep_us = self.coalesce_us;
            // Idle: sleep in poll(), which also kicks the driver when it asked for a wakeup
            // (need_wakeup on the fill ring) because it ran out of buffers.
            if !sys::poll_in(self.fd.as_raw_fd(), timeout_ms)? {
                return Ok(0);
            }
        }
        // Interrupt moderation in software: woken for a handful of frames, wait a little so the
        // next wakeup carries a batch. Bounded by the ring: at rates that fill half a batch in
        // less than this, the sleep is skipped.
        if !slept && self.sleep_us > 0 && self.pending() < self.batch / 2 {
            std::thread::sleep(coalesce);
            slept = true;
        }
        let waiting = self.pending();
        if slept {
            self.sleep_us = next_sleep_us(
                self.sleep_us,
                waiting,
                self.batch,
                self.coalesce_us,
                self.coalesce_max_us,
            );
        }
        let n = self.drain(consumer);
        self.active = n > 0;
        Ok(n)
    }

    fn stats(&mut self) -> CaptureStats {
        let st = self.xdp_statistics();
        CaptureStats {
            received: self.received,
            bytes: self.bytes,
            dropped: st.rx_ring_full + st.rx_dropped,
            kernel_drops: st.rx_invalid_descs + self.invalid,
            filtered: 0,
        }
    }

    fn describe(&self) -> String {
        format!(
            "af_xdp queue {} ({:?} bind, need_wakeup)",
            self.queue, self.bind_mode
        )
    }
}

#[cfg(test)]
mod tests {
    use super::next_sleep_us;

    #[test]
    fn coalescing_sleep_adapts_to_the_rate_within_its_bounds() {
        // A slow link: the sleep doubles until the cap.
        let mut s = 500;
        for _ in 0..10 {
            s = next_sleep_us(s, 10, 1024, 500, 10_000);
        }
        assert_eq!(s, 10_000);
        // A full batch waiting: halve, down to the floor.
        for _ in 0..10 {
            s = next_sleep_us(s, 4096, 1024, 500, 10_000);
        }
        assert_eq!(s, 500);
        // A quarter to a whole batch: keep it.
        assert_eq!(next_sleep_us(2000, 300, 1024, 500, 10_000), 2000);
        // No cap configured (or below the floor): fixed.
        assert_eq!(next_sleep_us(500, 0, 1024, 500, 0), 500);
        assert_eq!(next_sleep_us(500, 5000, 1024, 500, 0), 500);
    }
}
