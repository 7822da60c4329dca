//! AF_PACKET `TPACKET_V3` backend: a block-based mmap'd RX ring, the kernel's fallback path when
//! XDP is unavailable (no driver support, another program attached, old kernel).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{Ordering, fence};

use super::filter::CaptureFilter;
use super::sys::{self, Mmap};
use super::{CaptureBackend, CaptureError, CaptureStats, FrameConsumer, PacketRingConfig};

/// One TPACKET_V3 socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    // Field order matters: the ring is unmapped before the socket closes.
    ring: Mmap,
    fd: OwnedFd,
    _promisc: Option<OwnedFd>,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    filter: CaptureFilter,
    received: u64,
    bytes: u64,
    filtered: u64,
    drops: u64,
    kernel_packets: u64,
}

impl PacketSocket {
    /// Opens the ring on `interface`. With `fanout_group`, the socket joins that
    /// `PACKET_FANOUT_HASH` group: the kernel spreads flows over the group's sockets (one thread
    /// each). A socket briefly sees every frame between its bind and joining the group, so a
    /// fanout capture may duplicate a few frames at start-up.
    pub fn open(
        interface: &str,
        cfg: &PacketRingConfig,
        filter: CaptureFilter,
        promiscuous: bool,
        fanout_group: Option<u16>,
    ) -> Result<Self, CaptureError> {
        let ifindex = sys::ifindex(interface)?;
        // Protocol 0 until bind: an unbound ETH_P_ALL socket would queue every interface's frames.
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        sys::setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION V3",
        )?;
        // AF_XDP sees only received frames; ignore our own transmissions so both backends agree.
        let one: libc::c_int = 1;
        if let Err(e) = sys::setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "PACKET_IGNORE_OUTGOING",
        ) {
            tracing::debug!(error = %e, "kernel lacks PACKET_IGNORE_OUTGOING; outgoing frames are captured too");
        }
        let block_size = cfg.block_size.max(4096).next_power_of_two();
        let block_count = cfg.block_count.max(2);
        let frame_size: u32 = 2048;
        let as_u32 = |v: usize| {
            u32::try_from(v).map_err(|_| CaptureError::Config("TPACKET ring too large".into()))
        };
        let req = libc::tpacket_req3 {
            tp_block_size: as_u32(block_size)?,
            tp_block_nr: as_u32(block_count)?,
            tp_frame_size: frame_size,
            tp_frame_nr: as_u32(block_size * block_count / frame_size as usize)?,
            tp_retire_blk_tov: cfg.block_timeout_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        sys::setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        let ring = Mmap::new(
            block_size * block_count,
            Some(fd.as_raw_fd()),
            0,
            false,
            "TPACKET_V3 ring",
        )?;
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = i32::try_from(ifindex)
            .map_err(|_| CaptureError::Config("ifindex out of range".into()))?;
        // SAFETY: `sll` is a valid sockaddr_ll of the given size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        sys::cvt(ret, || format!("bind AF_PACKET to {interface}"))?;
        if let Some(group) = fanout_group {
            // Hash on the flow (defragmenting first, so fragments of one datagram stay together).
            let arg: u32 = u32::from(group)
                | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) << 16);
            sys::setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &arg,
                "PACKET_FANOUT",
            )?;
        }
        let promisc = if promiscuous {
            Some(sys::promisc_guard(ifindex)?)
        } else {
            None
        };
        tracing::info!(
            interface,
            block_size,
            block_count,
            timeout_ms = cfg.block_timeout_ms,
            "AF_PACKET TPACKET_V3 ring ready"
        );
        Ok(Self {
            ring,
            fd,
            _promisc: promisc,
            block_size,
            block_count,
            next_block: 0,
            filter,
            received: 0,
            bytes: 0,
            filtered: 0,
            drops: 0,
            kernel_packets: 0,
        })
    }

    fn block_status(block: *mut u8) -> u32 {
        // block_status is the first u32 of the v1 block header (after version and offset_to_priv).
        let off = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
        // SAFETY: `block` is inside the ring and block headers are 8-byte aligned.
        let v = unsafe { std::ptr::read_volatile(block.add(off).cast::<u32>()) };
        fence(Ordering::Acquire);
        v
    }

    /// Walks one user-owned block, then hands it back to the kernel.
    fn drain_block(&mut self, block: *mut u8, consumer: &mut dyn FrameConsumer) -> usize {
        let block_size = self.block_size;
        let off = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
        // SAFETY: the block belongs to user space (TP_STATUS_USER) until we write the status back.
        let bh = unsafe { std::ptr::read_unaligned(block.add(off).cast::<libc::tpacket_hdr_v1>()) };
        // Offsets come from the kernel, but a bad one must end the walk, not read out of the block.
        let header_at = |pos: usize| {
            (pos + size_of::<libc::tpacket3_hdr>() <= block_size).then(|| {
                // SAFETY: bounds checked; the kernel aligns packet headers to 16 bytes.
                unsafe { std::ptr::read_unaligned(block.add(pos).cast::<libc::tpacket3_hdr>()) }
            })
        };
        let after = |pos: usize, h: &libc::tpacket3_hdr| {
            let next = pos + h.tp_next_offset as usize;
            (h.tp_next_offset != 0 && next < block_size).then_some(next)
        };
        let frame_at = |pos: usize, h: &libc::tpacket3_hdr| {
            let start = pos + usize::from(h.tp_mac);
            let len = h.tp_snaplen as usize;
            // SAFETY: an in-bounds slice of the user-owned block.
            (start + len <= block_size)
                .then(|| unsafe { std::slice::from_raw_parts(block.add(start), len) })
        };
        let mut at = Some(bh.offset_to_first_pkt as usize);
        let mut n = 0;
        for _ in 0..bh.num_pkts {
            let Some(pos) = at else { break };
            let Some(h) = header_at(pos) else { break };
            let next = after(pos, &h);
            // The kernel wrote the frames from another core: pull the headers of the frame
            // after next into this core's cache, and announce the next one (pulled one frame
            // ago), while this one is analysed.
            if let Some(next) = next
                && let Some(nh) = header_at(next)
            {
                if let Some(later) = after(next, &nh) {
                    crate::prefetch(block.wrapping_add(later));
                }
                if let Some(data) = frame_at(next, &nh) {
                    consumer.upcoming(data);
                }
            }
            if let Some(data) = frame_at(pos, &h) {
                if self.filter.matches(data) {
                    let ts = u64::from(h.tp_sec) * 1_000_000_000 + u64::from(h.tp_nsec);
                    consumer.frame(data, ts);
                    self.received += 1;
                    self.bytes += data.len() as u64;
                    n += 1;
                } else {
                    self.filtered += 1;
                }
            }
            at = next;
        }
        fence(Ordering::Release);
        // SAFETY: returning the block: status back to TP_STATUS_KERNEL (0).
        unsafe { std::ptr::write_volatile(block.add(off).cast::<u32>(), libc::TP_STATUS_KERNEL) };
        self.next_block = (self.next_block + 1) % self.block_count;
        n
    }
}

impl CaptureBackend for PacketSocket {
    fn recv_batch(
        &mut self,
        timeout_ms: i32,
        consumer: &mut dyn FrameConsumer,
    ) -> Result<usize, CaptureError> {
        let mut total = 0;
        let mut blocks = 0;
        let mut waited = false;
        loop {
            // SAFETY: next_block < block_count, so the block lies inside the ring.
            let block = unsafe { self.ring.as_ptr().add(self.next_block * self.block_size) };
            if Self::block_status(block) & libc::TP_STATUS_USER != 0 {
                total += self.drain_block(block, consumer);
                blocks += 1;
                // At most one ring's worth per call, so a flood (even one the filter discards
                // entirely) cannot keep the caller from seeing its stop flag.
                if blocks >= self.block_count {
                    break;
                }
                continue;
            }
            if blocks > 0 || waited {
                break;
            }
            waited = true;
            if !sys::poll_in(self.fd.as_raw_fd(), timeout_ms)? {
                break;
            }
        }
        if total > 0 {
            consumer.batch_end();
        }
        Ok(total)
    }

    fn stats(&mut self) -> CaptureStats {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        // PACKET_STATISTICS resets the kernel's counters on every read: accumulate.
        match sys::getsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut st,
            "PACKET_STATISTICS",
        ) {
            Ok(_) => {
                self.drops += u64::from(st.tp_drops);
                self.kernel_packets += u64::from(st.tp_packets);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read AF_PACKET statistics"),
        }
        CaptureStats {
            received: self.received,
            bytes: self.bytes,
            dropped: self.drops,
            kernel_drops: 0,
            filtered: self.filtered,
        }
    }

    fn describe(&self) -> String {
        format!(
            "af_packet tpacket_v3 ({} x {} KiB blocks)",
            self.block_count,
            self.block_size / 1024
        )
    }
}
