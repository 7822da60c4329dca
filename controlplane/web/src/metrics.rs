//! Request counters and the Prometheus text exposition at `/metrics`.

use std::{
    fmt::Write as _,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{ApiError, AppState, extract::Viewer};

/// Counters of another part of the process (intake, store, sniffer) shown at `/metrics`. A
/// source appends sample lines (`name{labels} value`, no `#` lines); the endpoint groups them
/// into families and types each (`*_total` counter, else gauge), so sources that share a
/// family name (`decnet_component_errors_total`) stay valid exposition.
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut String);
}

/// Sources registered after the web layer started (the sniffer opens its capture later).
#[derive(Default, Clone)]
pub struct MetricsSources(Arc<RwLock<Vec<Arc<dyn MetricsSource>>>>);

impl std::fmt::Debug for MetricsSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map_or(0, |v| v.len());
        write!(f, "MetricsSources({n})")
    }
}

impl MetricsSources {
    pub fn add(&self, source: Arc<dyn MetricsSource>) {
        if let Ok(mut v) = self.0.write() {
            v.push(source);
        }
    }

    /// Every source's samples, grouped by family with a `# TYPE` line each.
    pub fn render(&self, out: &mut String) {
        let mut raw = String::new();
        if let Ok(v) = self.0.read() {
            for s in v.iter() {
                s.render(&mut raw);
            }
        }
        group_families(&raw, out);
    }
}

/// Groups sample lines by metric name (first-seen order) under one `# TYPE` line per family.
fn group_families(raw: &str, out: &mut String) {
    let mut families: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in raw.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        match families.iter_mut().find(|(n, _)| *n == name) {
            Some((_, lines)) => lines.push(line),
            None => families.push((name, vec![line])),
        }
    }
    for (name, lines) in families {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
}

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
    let (stats, bounties) = tokio::try_join!(
        crate::routes::event_stats(&state),
        crate::routes::bounty_total(&state),
    )?;
    let count = |key: &str| stats[key].as_i64().unwrap_or(0);
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
        n(count("total_events")),
    );
    put(
        "attacker_ips",
        "gauge",
        "Distinct source addresses in events.",
        n(count("unique_attackers")),
    );
    put("bounties", "gauge", "Captured bounties.", n(bounties));
    put(
        "uptime_seconds",
        "gauge",
        "Seconds since the web layer started.",
        state.started.elapsed().as_secs(),
    );
    state.config.metrics.render(&mut out);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str);
    impl MetricsSource for Fixed {
        fn render(&self, out: &mut String) {
            out.push_str(self.0);
        }
    }

    #[test]
    fn sources_are_grouped_into_typed_families() {
        let sources = MetricsSources::default();
        sources.add(Arc::new(Fixed(
            "decnet_component_errors_total{component=\"a\"} 1\ndecnet_flows_active{component=\"sniffer\"} 7\n",
        )));
        sources.add(Arc::new(Fixed(
            "# stray comment\ndecnet_component_errors_total{component=\"b\",reason=\"x\"} 2\n",
        )));
        let mut out = String::new();
        sources.render(&mut out);
        assert_eq!(
            out,
            "# TYPE decnet_component_errors_total counter\n\
             decnet_component_errors_total{component=\"a\"} 1\n\
             decnet_component_errors_total{component=\"b\",reason=\"x\"} 2\n\
             # TYPE decnet_flows_active gauge\n\
             decnet_flows_active{component=\"sniffer\"} 7\n"
        );
    }
}
