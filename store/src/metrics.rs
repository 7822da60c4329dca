//! Counters for every stage events pass through, named after Vector's component spec
//! (`component_received_events_total`, `component_discarded_events_total`, …) so dashboards
//! and alerts can be written once for every stage.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

/// One monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The store's stages: segment writers and the flusher.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Events handed to the writers.
    pub received: Counter,
    /// Events refused because the writers' queue was full and the caller chose not to wait.
    pub discarded_queue_full: Counter,
    /// Events appended to a segment (durable or not yet).
    pub written: Counter,
    /// Events made durable.
    pub durable: Counter,
    pub segments_sealed: Counter,
    pub segment_errors: Counter,
    /// Events inserted into SQL (duplicates from a replayed segment are not counted twice).
    pub flushed: Counter,
    pub segments_flushed: Counter,
    pub flush_errors: Counter,
    /// Segment entries that did not decode (kept aside, never silently skipped).
    pub undecodable: Counter,
}

impl StoreMetrics {
    /// Prometheus text exposition of these counters.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, &Counter); 10] = [
            (
                "component_received_events_total",
                "segment_writer",
                "",
                &self.received,
            ),
            (
                "component_discarded_events_total",
                "segment_writer",
                "queue_full",
                &self.discarded_queue_full,
            ),
            (
                "component_sent_events_total",
                "segment_writer",
                "",
                &self.written,
            ),
            (
                "segment_durable_events_total",
                "segment_writer",
                "",
                &self.durable,
            ),
            (
                "segments_sealed_total",
                "segment_writer",
                "",
                &self.segments_sealed,
            ),
            (
                "component_errors_total",
                "segment_writer",
                "io",
                &self.segment_errors,
            ),
            ("component_sent_events_total", "flusher", "", &self.flushed),
            (
                "segments_flushed_total",
                "flusher",
                "",
                &self.segments_flushed,
            ),
            (
                "component_errors_total",
                "flusher",
                "sql",
                &self.flush_errors,
            ),
            (
                "component_errors_total",
                "flusher",
                "undecodable",
                &self.undecodable,
            ),
        ];
        for (name, component, reason, counter) in rows {
            let _ = write!(out, "decnet_{name}{{component=\"{component}\"");
            if !reason.is_empty() {
                let _ = write!(out, ",reason=\"{reason}\"");
            }
            let _ = writeln!(out, "}} {}", counter.get());
        }
    }
}
