//! The store: the one event model and everything that keeps events durably, exactly once.
//!
//! It owns the [`Event`] type every other crate produces or reads (DESIGN.md §3), its binary
//! segment encoding (redb segments, one per writer thread), the flusher that moves sealed
//! segments into SQL, and the `Repository` trait with its SQLite, PostgreSQL and MySQL
//! implementations and their migrations. The segment and SQL layers land with the store issue;
//! the event model is here from the start so producers can be written against it.

mod address;
mod event;
pub mod rfc5424;

pub use address::{FieldAddresses, SRC_IP_FIELDS, parse_address};
pub use event::{Event, EventError, MAX_FIELD_BYTES, MAX_FIELDS, MAX_RAW_BYTES, Severity};
