//! Loading and attaching `decnet_ebpf::XDP_CAPTURE` with aya, filling its maps, reading its counters.

use std::net::IpAddr;

use aya::Ebpf;
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use decnet_ebpf::{config, counters, maps};

use super::filter::CaptureFilter;
use super::{CaptureError, XdpAttach};

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// In the driver (native XDP).
    Native,
    /// In the generic (SKB) path, after the driver built an skb.
    Generic,
}

/// Per-CPU counters of the program, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Frames the program ran on.
    pub seen: u64,
    /// Frames redirected into an AF_XDP socket.
    pub redirected: u64,
    /// Frames the filter did not want (passed to the stack).
    pub passed: u64,
    /// Wanted frames with no socket on their queue (passed to the stack, not captured).
    pub dropped: u64,
}

/// The loaded, attached program; dropping it detaches it (aya holds a bpf_link).
#[derive(Debug)]
pub struct XdpProgram {
    ebpf: Ebpf,
    mode: AttachedMode,
    interface: String,
}

fn err(what: &str, e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Xdp(format!("{what}: {e}"))
}

impl XdpProgram {
    /// Loads the embedded object and attaches it to `interface`, native first unless told otherwise.
    pub fn attach(
        interface: &str,
        want: XdpAttach,
        filter: &CaptureFilter,
    ) -> Result<Self, CaptureError> {
        super::sys::raise_memlock();
        let mut ebpf = Ebpf::load(decnet_ebpf::XDP_CAPTURE).map_err(|e| err("load object", e))?;
        Self::configure(&mut ebpf, filter)?;
        let prog: &mut Xdp = ebpf
            .program_mut(decnet_ebpf::PROGRAM)
            .ok_or_else(|| {
                CaptureError::Xdp(format!(
                    "program {} missing from object",
                    decnet_ebpf::PROGRAM
                ))
            })?
            .try_into()
            .map_err(|e| err("program type", e))?;
        prog.load()
            .map_err(|e| err("verifier rejected the program", e))?;
        let tries: &[(XdpMode, AttachedMode)] = match want {
            XdpAttach::Auto => &[
                (XdpMode::Driver, AttachedMode::Native),
                (XdpMode::Skb, AttachedMode::Generic),
            ],
            XdpAttach::Native => &[(XdpMode::Driver, AttachedMode::Native)],
            XdpAttach::Generic => &[(XdpMode::Skb, AttachedMode::Generic)],
        };
        let mut reasons = Vec::new();
        for &(flag, mode) in tries {
            match prog.attach(interface, flag) {
                Ok(_link) => {
                    // The link is owned by the program (and so by `ebpf`): it detaches on drop.
                    tracing::info!(interface, ?mode, "XDP program attached");
                    return Ok(Self {
                        ebpf,
                        mode,
                        interface: interface.to_owned(),
                    });
                }
                Err(e) => {
                    tracing::info!(interface, ?mode, error = %e, "XDP attach failed");
                    reasons.push(format!("{mode:?}: {e}"));
                }
            }
        }
        Err(CaptureError::Xdp(format!(
            "cannot attach to {interface}: {}",
            reasons.join("; ")
        )))
    }

    fn configure(ebpf: &mut Ebpf, filter: &CaptureFilter) -> Result<(), CaptureError> {
        let mut flags = 0;
        if filter.is_all() {
            flags |= config::CAPTURE_ALL;
        } else {
            let mut v4: LpmTrie<&mut MapData, [u8; 4], u8> = LpmTrie::try_from(
                ebpf.map_mut(maps::FILTER_V4)
                    .ok_or_else(|| CaptureError::Xdp("map filter_v4 missing".into()))?,
            )
            .map_err(|e| err("filter_v4", e))?;
            for p in filter.prefixes.iter().filter(|p| p.addr().is_ipv4()) {
                if let IpAddr::V4(a) = p.network() {
                    v4.insert(&Key::new(u32::from(p.prefix_len()), a.octets()), 1, 0)
                        .map_err(|e| err("insert filter_v4", e))?;
                }
            }
            let mut v6: LpmTrie<&mut MapData, [u8; 16], u8> = LpmTrie::try_from(
                ebpf.map_mut(maps::FILTER_V6)
                    .ok_or_else(|| CaptureError::Xdp("map filter_v6 missing".into()))?,
            )
            .map_err(|e| err("filter_v6", e))?;
            for p in &filter.prefixes {
                if let IpAddr::V6(a) = p.network() {
                    v6.insert(&Key::new(u32::from(p.prefix_len()), a.octets()), 1, 0)
                        .map_err(|e| err("insert filter_v6", e))?;
                }
            }
            if !filter.ports.is_empty() {
                flags |= config::PORTS;
                let mut ports: HashMap<&mut MapData, u16, u8> = HashMap::try_from(
                    ebpf.map_mut(maps::PORTS)
                        .ok_or_else(|| CaptureError::Xdp("map ports missing".into()))?,
                )
                .map_err(|e| err("ports", e))?;
                for &p in &filter.ports {
                    ports.insert(p, 1, 0).map_err(|e| err("insert ports", e))?;
                }
            }
        }
        let mut cfg: Array<&mut MapData, u32> = Array::try_from(
            ebpf.map_mut(maps::CONFIG)
                .ok_or_else(|| CaptureError::Xdp("map config missing".into()))?,
        )
        .map_err(|e| err("config", e))?;
        cfg.set(0, flags, 0).map_err(|e| err("set config", e))
    }

    /// Points RX queue `queue` at the AF_XDP socket `fd`.
    pub fn register_socket(
        &mut self,
        queue: u32,
        fd: std::os::fd::RawFd,
    ) -> Result<(), CaptureError> {
        let mut xsks: XskMap<&mut MapData> = XskMap::try_from(
            self.ebpf
                .map_mut(maps::XSKS)
                .ok_or_else(|| CaptureError::Xdp("map xsks missing".into()))?,
        )
        .map_err(|e| err("xsks", e))?;
        xsks.set(queue, fd, 0)
            .map_err(|e| err(&format!("xsks[{queue}]"), e))
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, CaptureError> {
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(maps::COUNTERS)
                .ok_or_else(|| CaptureError::Xdp("map counters missing".into()))?,
        )
        .map_err(|e| err("counters", e))?;
        let sum = |i: u32| -> Result<u64, CaptureError> {
            Ok(arr
                .get(&i, 0)
                .map_err(|e| err("read counters", e))?
                .iter()
                .sum())
        };
        Ok(XdpCounters {
            seen: sum(counters::SEEN)?,
            redirected: sum(counters::REDIRECTED)?,
            passed: sum(counters::PASSED)?,
            dropped: sum(counters::DROPPED)?,
        })
    }
}
