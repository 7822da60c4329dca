//! The store: the one event model and everything that keeps events durably, exactly once.
//!
//! It owns the [`Event`] type every other crate produces or reads (DESIGN.md §3) and its
//! compact binary encoding ([`codec`]); [`segment`] files (redb, one per writer thread) where
//! events become durable within a short window; the [`pipeline`] of writer threads and the
//! flusher that moves sealed segments into SQL exactly once; the [`repo::Repository`] trait
//! with its SQLite, PostgreSQL and MySQL/MariaDB implementation and versioned migrations; and
//! the [`datadir`] every piece of state lives under.

mod address;
pub mod block;
pub mod codec;
pub mod datadir;
mod draft;
mod event;
pub mod metrics;
pub mod pipeline;
pub mod repo;
pub mod rfc5424;
pub mod segment;

pub use address::{FieldAddresses, SRC_IP_FIELDS, parse_address};
pub use draft::EventDraft;
pub use event::{Event, EventError, MAX_FIELD_BYTES, MAX_FIELDS, MAX_RAW_BYTES, Severity};
