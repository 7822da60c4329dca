//! Decoy protocol emulators.
//!
//! This crate owns the fake services an attacker talks to: one sans-IO state machine per
//! protocol (ssh, telnet, http/https, ftp, smtp, imap, pop3, redis, mysql, …) that maps bytes
//! in to bytes out plus events, a shared tokio runtime that wraps them with bounded
//! connections, timeouts and byte caps, and the RFC 5424 event emitter. They are compiled into
//! one static `decky` binary that runs one service per container (`decky serve <slug>`). The
//! fleet side of each service (ports, persona keys, container fragment) is described in the
//! `decnet-fleet` catalogue; the emulators themselves land with the decoy-services issues.
