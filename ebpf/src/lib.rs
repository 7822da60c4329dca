//! XDP programs of the capture path.
//!
//! This crate owns the kernel side of packet capture: the XDP program `xdp_capture`
//! (`src/xdp_capture.c`) that redirects frames of the capture interface into AF_XDP sockets by
//! RX queue, its filter maps (decoy IPv4/IPv6 prefixes and an optional port set, or "capture
//! everything") and its per-CPU counters. The compiled object is embedded here as bytes so the
//! `dataplane` crate can load and attach it with `aya` without any toolchain on the appliance.
//!
//! `build.rs` compiles the C source with clang when present and otherwise embeds the committed
//! `prebuilt/xdp_capture.o` (regenerate it with `scripts/build-ebpf.sh`; a test checks it is
//! current). The names and layouts below are the ABI between the program and its loader.

/// 8-byte alignment is what the ELF parser in aya needs to read the object in place
/// (the same trick as aya's `include_bytes_aligned!`).
#[repr(C, align(32))]
struct Aligned<B: ?Sized> {
    bytes: B,
}

static ALIGNED: &Aligned<[u8]> = &Aligned {
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/xdp_capture.o")),
};

/// The XDP capture object (ELF, eBPF), aligned for `aya::Ebpf::load`.
pub static XDP_CAPTURE: &[u8] = &ALIGNED.bytes;

/// `"clang"` when this build compiled the C source, `"prebuilt"` when it embedded the committed object.
pub const XDP_CAPTURE_FROM: &str = env!("DECNET_XDP_CAPTURE_FROM");

/// Name of the XDP program in [`XDP_CAPTURE`].
pub const PROGRAM: &str = "xdp_capture";

/// Map names in [`XDP_CAPTURE`].
pub mod maps {
    /// `XSKMAP`: RX queue index → AF_XDP socket.
    pub const XSKS: &str = "xsks";
    /// `ARRAY[1]` of `u32` flags ([`super::config`]).
    pub const CONFIG: &str = "config";
    /// `LPM_TRIE`: key `{ prefixlen: u32, addr: [u8; 4] }`, value `u8`.
    pub const FILTER_V4: &str = "filter_v4";
    /// `LPM_TRIE`: key `{ prefixlen: u32, addr: [u8; 16] }`, value `u8`.
    pub const FILTER_V6: &str = "filter_v6";
    /// `HASH`: port (host byte order) `u16` → `u8`.
    pub const PORTS: &str = "ports";
    /// `PERCPU_ARRAY` of `u64`, indexed by [`super::counters`].
    pub const COUNTERS: &str = "counters";
}

/// Flags of `config[0]`.
pub mod config {
    /// Redirect every frame; the filter maps are ignored.
    pub const CAPTURE_ALL: u32 = 1;
    /// TCP/UDP frames must also carry a port of the `ports` set.
    pub const PORTS: u32 = 2;
}

/// Indices of the per-CPU `counters` map.
pub mod counters {
    /// Every frame the program ran on.
    pub const SEEN: u32 = 0;
    /// Frames handed to an AF_XDP socket.
    pub const REDIRECTED: u32 = 1;
    /// Frames that did not match the filter, left to the kernel stack.
    pub const PASSED: u32 = 2;
    /// Frames that matched but found no socket on their queue (left to the stack, not captured).
    pub const DROPPED: u32 = 3;
    /// Number of counters.
    pub const COUNT: u32 = 4;
}

/// Maximum RX queue index + 1 the `xsks` map holds.
pub const MAX_QUEUES: u32 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_an_aligned_bpf_elf() {
        assert_eq!(&XDP_CAPTURE[..4], b"\x7fELF");
        assert_eq!(XDP_CAPTURE.as_ptr() as usize % 8, 0);
        // e_machine = EM_BPF (247), little endian.
        assert_eq!(u16::from_le_bytes([XDP_CAPTURE[18], XDP_CAPTURE[19]]), 247);
    }
}
