//! Batched datagram receive (`recvmmsg`): one system call brings up to [`BATCH`] messages, which
//! is where a datagram listener spends its time at high rates.

use std::{
    os::fd::AsRawFd,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use decnet_store::{codec::EncodedBatch, pipeline::BATCH_EVENTS};

use super::Ingest;

/// Messages per system call; the events of one call go to the writers as one batch.
const BATCH: usize = 32;
const _: () = assert!(BATCH <= BATCH_EVENTS);
/// Room per message: the largest datagram (a longer one is reported truncated and refused).
const SLOT: usize = 64 * 1024;
/// Kernel receive buffer asked for, so bursts wait in the kernel rather than being dropped.
/// Linux doubles it and charges each datagram's whole buffer (about 1.3 KiB for a 400-byte
/// message over loopback), so 64 MiB holds roughly 100,000 such datagrams: about a second of
/// a burst above what the writers take. The memory is the kernel's, bounded by this value,
/// and used only while datagrams wait; past it the kernel drops and counts them (Udp
/// `RcvbufErrors`).
const RECEIVE_BUFFER: libc::c_int = 64 * 1024 * 1024;

/// Ask for a large kernel receive buffer (root may exceed `rmem_max`); best effort.
pub(crate) fn grow_receive_buffer(sock: &impl AsRawFd) {
    let size = RECEIVE_BUFFER;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                std::ptr::from_ref(&size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Receive datagrams until `stop` is set (checked at least every read timeout of the socket).
pub(crate) fn receive_loop(sock: &impl AsRawFd, ingest: &mut Ingest, stop: &AtomicBool) {
    grow_receive_buffer(sock);
    let mut buffers = vec![0u8; BATCH * SLOT];
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut iovecs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    // Events of one or more system calls, handed on once the socket has nothing more waiting
    // or another full call would not fit: under a flood the queue's places then hold full
    // batches, so it buffers as many events as it did with one event per place.
    let mut batch = EncodedBatch::default();
    while !stop.load(Ordering::Relaxed) {
        for (i, (iov, hdr)) in iovecs.iter_mut().zip(headers.iter_mut()).enumerate() {
            iov.iov_base = buffers[i * SLOT..].as_mut_ptr().cast();
            iov.iov_len = SLOT;
            // SAFETY: as above, a zeroed msghdr is valid; we then point it at our iovec.
            hdr.msg_hdr = unsafe { std::mem::zeroed() };
            hdr.msg_hdr.msg_iov = std::ptr::from_mut(iov);
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_len = 0;
        }
        // With events pending, only take what is already there: they must not wait for more.
        let flags = if batch.is_empty() {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_WAITFORONE | libc::MSG_DONTWAIT
        };
        // SAFETY: every header points at a distinct SLOT-byte region of `buffers`, which
        // outlives the call; the kernel writes at most `iov_len` bytes into each.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if !ingest.send_batch(std::mem::take(&mut batch)) {
                return;
            }
            match err.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => {}
                _ => {
                    ingest.metrics.socket_errors.inc();
                    tracing::warn!(error = %err, "datagram receive failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            continue;
        }
        let received = usize::try_from(n).unwrap_or(0).min(BATCH);
        let bytes: usize = headers
            .iter()
            .take(received)
            .map(|h| (h.msg_len as usize).min(SLOT))
            .sum();
        if batch.is_empty() {
            // An encoding is the message's raw bytes plus its parsed fields: about twice its
            // size; room for two calls' worth.
            batch = EncodedBatch::with_capacity(BATCH_EVENTS, 4 * bytes + 128 * received);
        }
        for (i, hdr) in headers.iter().take(received).enumerate() {
            let len = (hdr.msg_len as usize).min(SLOT);
            if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                ingest.metrics.received_messages.inc();
                ingest.metrics.parse_errors.inc();
                continue;
            }
            ingest.message_into(&buffers[i * SLOT..i * SLOT + len], &mut batch);
        }
        if (received < BATCH || batch.len() + BATCH > BATCH_EVENTS)
            && !ingest.send_batch(std::mem::take(&mut batch))
        {
            return;
        }
    }
    ingest.send_batch(batch);
}
