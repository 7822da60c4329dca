//! Request counters and the Prometheus text exposition at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{ApiError, AppState, extract::Viewer};

#[derive(Debug, Default)]
pub struct WebMetrics {
    pub requests: AtomicU64,
    pub errors_4xx: AtomicU64,
    pub errors_5xx: AtomicU64,
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub stream_clients: AtomicU64,
    pub stream_lagged: AtomicU64,
    pub events_broadcast: AtomicU64,
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    state.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let response = next.run(req).await;
    let status = response.status();
    if status.is_client_error() {
        state.metrics.errors_4xx.fetch_add(1, Ordering::Relaxed);
    } else if status.is_server_error() {
        state.metrics.errors_5xx.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// Prometheus text format; a scraper authenticates like any viewer (bearer token).
pub async fn metrics(State(state): State<AppState>, _who: Viewer) -> Result<Response, ApiError> {
    let m = &state.metrics;
    let stats = state.repo.stats().await?;
    let mut out = String::new();
    let mut put = |name: &str, kind: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP decnet_{name} {help}\n# TYPE decnet_{name} {kind}\ndecnet_{name} {value}\n"
        ));
    };
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    put(
        "http_requests_total",
        "counter",
        "HTTP requests served.",
        get(&m.requests),
    );
    put(
        "http_client_errors_total",
        "counter",
        "Responses with a 4xx status.",
        get(&m.errors_4xx),
    );
    put(
        "http_server_errors_total",
        "counter",
        "Responses with a 5xx status.",
        get(&m.errors_5xx),
    );
    put(
        "logins_total",
        "counter",
        "Successful logins.",
        get(&m.logins_ok),
    );
    put(
        "login_failures_total",
        "counter",
        "Failed logins.",
        get(&m.logins_failed),
    );
    put(
        "login_throttled_total",
        "counter",
        "Logins refused by the rate limiter.",
        get(&m.logins_throttled),
    );
    put(
        "stream_clients",
        "gauge",
        "Open live-stream connections.",
        get(&m.stream_clients),
    );
    put(
        "stream_lagged_total",
        "counter",
        "Stream clients dropped for falling behind.",
        get(&m.stream_lagged),
    );
    put(
        "stream_events_total",
        "counter",
        "Events broadcast to the live stream.",
        get(&m.events_broadcast),
    );
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    put(
        "events",
        "gauge",
        "Events in the database.",
        n(stats.total_events),
    );
    put(
        "attacker_ips",
        "gauge",
        "Distinct source addresses in events.",
        n(stats.unique_attackers),
    );
    put("bounties", "gauge", "Captured bounties.", n(stats.bounties));
    put(
        "uptime_seconds",
        "gauge",
        "Seconds since the web layer started.",
        state.started.elapsed().as_secs(),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
