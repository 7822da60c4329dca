//! Decoy protocol emulators.
//!
//! This crate owns the fake services an attacker talks to: one sans-IO state machine per
//! protocol ([`session::Session`]: bytes in → bytes out plus events, tested byte-for-byte), a
//! shared tokio runtime ([`runtime`]) that wraps them with bounded connections per source,
//! idle and total timeouts and byte caps, and the event emitter ([`emitter`]) that writes each
//! event as one RFC 5424 message to a unix datagram socket, a UDP collector or stdout. They
//! are compiled into one static `decky` binary that runs one service per container
//! (`decky serve <slug>`, persona from the environment). The fleet side of each service
//! (ports, persona keys, container fragment) is described in the `decnet-fleet` catalogue.

pub mod emitter;
pub mod memory;
pub mod persona;
pub mod protocols;
pub mod runtime;
pub mod session;
pub mod shell;
#[cfg(feature = "tls")]
pub mod tls;
