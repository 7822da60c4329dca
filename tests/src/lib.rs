//! End-to-end tests that cross crates.
//!
//! The tests in `tests/` drive the real `decnet` binary (and, as later issues land, real
//! network namespaces, Docker and a browser) and check what a user would see. This library
//! is empty; it exists so the tests have a package to live in.
