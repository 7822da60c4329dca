//! The fleet model: what a fleet of decoy hosts is, and how a request becomes a concrete plan.
//!
//! This crate owns the service catalogue (the plugin contract and one file per service), the
//! archetypes, distros and OS-family personas (sysctl profiles, vendor MAC prefixes, hostname
//! styles), the INI configuration format, the planner that assigns addresses, services,
//! distros, hostnames and MACs, and the composer that renders a plan as a hardened
//! docker-compose document. It does no I/O beyond what callers hand it, so every rule is
//! tested directly; the fleet engine (Docker) and the CLI build on it.

pub mod archetype;
pub mod catalog;
pub mod compose;
pub mod config;
pub mod distro;
pub mod error;
pub mod hostname;
pub mod ini;
pub mod mac;
pub mod mutate;
pub mod os;
pub mod plan;
pub mod spec;

pub use error::{ErrorKind, FleetError, Location};

/// Repository part of every locally built image tag (`fleet/ssh:latest`, `fleet/base:latest`).
pub const IMAGE_NAMESPACE: &str = "fleet";
