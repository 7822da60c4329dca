//! XDP programs of the capture path.
//!
//! This crate owns the kernel side of packet capture: the XDP program that redirects frames
//! of the capture interface into AF_XDP sockets by RX queue, its filter map (decoy subnets and
//! ports) and its per-CPU counters, together with the reproducible build of that program. The
//! compiled object is embedded here as bytes so the `dataplane` crate can load and attach it
//! with `aya` without any toolchain present on the appliance. The program and its build land
//! with the dataplane work; until then this crate exports nothing.
