//! `mirror` capture mode: copies both directions of a decoy-facing interface into an internal veth
//! pair with tc (`clsact` + `mirred egress mirror`), so capture can own the veth (AF_XDP takes
//! frames away from the stack) while the decoy interface keeps working normally.
//!
//! Uses the `ip` and `tc` commands: every failure names the command and its stderr.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::CaptureError;

/// tc filter priority of our mirror filters; fixed so cleanup deletes ours and nothing else.
const PREF: &str = "49152";

fn run(prog: &str, args: &[&str]) -> Result<(), CaptureError> {
    let cmd = format!("{prog} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| CaptureError::Command {
            cmd: cmd.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CaptureError::Command {
            cmd,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The veth pair and tc state of one mirror; removed on [`Mirror::remove`] or drop.
#[derive(Debug)]
pub struct Mirror {
    decoy_if: String,
    /// The end tc mirrors into (transmit side).
    tx_end: String,
    /// The end capture attaches to (frames sent on `tx_end` arrive here).
    capture_end: String,
    created_qdisc: bool,
    filters: Vec<&'static str>,
    veth: bool,
    removed: bool,
}

impl Mirror {
    /// Creates the veth pair and mirrors ingress and egress of `decoy_if` into it.
    pub fn create(decoy_if: &str) -> Result<Self, CaptureError> {
        super::sys::ifindex(decoy_if)?;
        // IFNAMSIZ is 16: "dnm" + 8 hex digits + "c" fits; pid and a counter keep names unique.
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let id = (std::process::id() << 8) ^ SEQ.fetch_add(1, Ordering::Relaxed);
        let tx_end = format!("dnm{id:08x}t");
        let capture_end = format!("dnm{id:08x}c");
        let mut m = Self {
            decoy_if: decoy_if.to_owned(),
            tx_end,
            capture_end,
            created_qdisc: false,
            filters: Vec::new(),
            veth: false,
            removed: false,
        };
        // On any error `m` drops here and removes whatever was already set up.
        m.setup()?;
        tracing::info!(decoy_if, capture_end = %m.capture_end, "mirror set up");
        Ok(m)
    }

    fn setup(&mut self) -> Result<(), CaptureError> {
        run(
            "ip",
            &[
                "link",
                "add",
                &self.tx_end,
                "type",
                "veth",
                "peer",
                "name",
                &self.capture_end,
            ],
        )?;
        self.veth = true;
        for end in [&self.tx_end, &self.capture_end] {
            // No addresses and no IPv6 on the pair: the capture sees only mirrored frames.
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{end}/disable_ipv6"), "1");
            run("ip", &["link", "set", end, "up"])?;
        }
        match run("tc", &["qdisc", "add", "dev", &self.decoy_if, "clsact"]) {
            Ok(()) => self.created_qdisc = true,
            // An existing clsact (someone else's filters) is shared, and left in place afterwards.
            Err(CaptureError::Command { detail, .. }) if detail.contains("File exists") => {}
            Err(e) => return Err(e),
        }
        for dir in ["ingress", "egress"] {
            let mirred = [
                "action",
                "mirred",
                "egress",
                "mirror",
                "dev",
                self.tx_end.as_str(),
            ];
            let base = [
                "filter",
                "add",
                "dev",
                self.decoy_if.as_str(),
                dir,
                "pref",
                PREF,
                "protocol",
                "all",
            ];
            // matchall is the natural classifier; kernels built without it still have u32.
            let matchall: Vec<&str> = base
                .iter()
                .copied()
                .chain(["matchall"])
                .chain(mirred)
                .collect();
            let u32_all: Vec<&str> = base
                .iter()
                .copied()
                .chain(["u32", "match", "u32", "0", "0"])
                .chain(mirred)
                .collect();
            if let Err(first) = run("tc", &matchall) {
                run("tc", &u32_all).map_err(|e| CaptureError::Command {
                    cmd: format!("tc filter add ... {dir} (matchall, then u32)"),
                    detail: format!("{first}; {e}"),
                })?;
            }
            self.filters.push(dir);
        }
        Ok(())
    }

    /// The interface capture should attach to.
    pub fn capture_interface(&self) -> &str {
        &self.capture_end
    }

    /// The veth end tc mirrors into.
    pub fn tx_interface(&self) -> &str {
        &self.tx_end
    }

    /// Removes the tc filters (and the qdisc if we added it) and the veth pair. Idempotent; all
    /// steps are attempted and every failure is reported.
    pub fn remove(&mut self) -> Result<(), CaptureError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let mut errors = Vec::new();
        if self.created_qdisc {
            // Deleting clsact deletes its filters too.
            if let Err(e) = run("tc", &["qdisc", "del", "dev", &self.decoy_if, "clsact"]) {
                errors.push(e.to_string());
            }
        } else {
            for dir in self.filters.drain(..) {
                if let Err(e) = run(
                    "tc",
                    &["filter", "del", "dev", &self.decoy_if, dir, "pref", PREF],
                ) {
                    errors.push(e.to_string());
                }
            }
        }
        if self.veth {
            // Deleting one end deletes the pair.
            if let Err(e) = run("ip", &["link", "del", &self.tx_end]) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            tracing::info!(decoy_if = %self.decoy_if, "mirror removed");
            Ok(())
        } else {
            Err(CaptureError::Command {
                cmd: "mirror cleanup".into(),
                detail: errors.join("; "),
            })
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::error!(error = %e, "mirror cleanup incomplete");
        }
    }
}
