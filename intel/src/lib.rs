//! Intelligence: what a defender reads, made from raw events.
//!
//! This crate owns the meaning of events: which carry credentials, fingerprints and artifacts
//! ([`bounty`]); how they group into sessions, attackers, traversals and actors spanning
//! several IPs ([`engine`], a pure state machine with no I/O); the behaviour rules — timing
//! classes, C2 guess, tool and OS guesses, kill-chain phases and the 0–100 threat score
//! ([`profile`]); and the two workers around it: the continuous profiler that follows the
//! event table with a cursor persisted in the same transaction as its results ([`worker`]),
//! and the one-shot correlator's output formats ([`report`]). It reads and writes only
//! through `decnet-store`'s repository; the CLI verbs `decnet profiler` and
//! `decnet correlate` are thin wrappers.

pub mod bounty;
pub mod engine;
pub mod profile;
pub mod report;
pub mod worker;

pub use engine::{AttackerState, Changes, Config, Profiler, Traversal};

/// An intelligence failure, naming the bad input.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    #[error("saved profiler state is unusable: {0}")]
    BadState(String),
    #[error(transparent)]
    Repo(#[from] decnet_store::repo::RepoError),
}
