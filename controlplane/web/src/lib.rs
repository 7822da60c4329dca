//! The appliance's management plane: the REST API under `/api/v1`, the SSE live stream, the
//! Prometheus `/metrics`, the OpenAPI document and the embedded dashboard, all on one axum
//! listener bound to the management address (never the decoy LAN).

pub mod auth;
mod cache;
pub mod error;
mod extract;
mod gate;
mod metrics;
pub mod openapi;
mod pages;
mod responses;
mod routes;
mod server;
mod stream;
mod users;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, extract::DefaultBodyLimit};
use decnet_store::repo::SqlRepository;
use tokio::sync::{broadcast, watch};

pub use error::ApiError;
pub use metrics::{MetricsSource, MetricsSources};
pub use server::HttpServer;
pub use stream::{Batch, Live, run_feeder};

/// Environment variable holding the first admin's password (else a random one is printed).
pub const ADMIN_PASSWORD_ENV: &str = "DECNET_ADMIN_PASSWORD";
/// Environment variable naming the first admin (default `admin`).
pub const ADMIN_USER_ENV: &str = "DECNET_ADMIN_USER";
/// Largest request body: the biggest legitimate one is a 512 KiB INI.
const BODY_LIMIT: usize = 640 * 1024;

/// How the web layer is configured.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Lifetime of an access token.
    pub token_ttl: Duration,
    /// Failed logins allowed per IP and per username in `login_window`.
    pub login_failures: usize,
    pub login_window: Duration,
    /// Where captured artifacts live (`DIR/<decky>/<stored_as>`).
    pub artifacts_dir: PathBuf,
    /// `DECNET_DEVELOPER`: enables destructive developer routes (reinit).
    pub developer: bool,
    /// Seconds between the live feeder's looks at newly flushed events.
    pub feed_interval: Duration,
    /// Who carries out `POST /deckies/deploy` (the CLI wires the fleet engine in; without it
    /// the route answers 501 and names `decnet deploy`).
    pub fleet: Option<Arc<dyn FleetControl>>,
    /// Counters of the rest of the process (intake, store, sniffer) appended to `/metrics`.
    pub metrics: MetricsSources,
    /// The sniffer's packet retention (`seg-*.pcap` segments and their indexes), read by the
    /// attacker pcap export.
    pub pcaps_dir: PathBuf,
    /// How long an answer of the heavy read routes (`/attackers`, `/logs`, `/stats`,
    /// `/logs/histogram`) and a user row behind a token are served from memory before being
    /// read again: the bound on how stale they can be (user changes made through the API
    /// apply at once regardless).
    pub cache_fresh: Duration,
}

/// Why a fleet change from the API did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FleetFailure {
    /// The request (INI, plan) is wrong; the message names what to change.
    #[error("{0}")]
    Invalid(String),
    /// Another fleet change holds the fleet, or Docker is not there.
    #[error("{0}")]
    Busy(String),
    /// The engine failed while deploying.
    #[error("{0}")]
    Failed(String),
    /// No decky of that name.
    #[error("{0}")]
    NotFound(String),
}

/// A boxed future of a fleet change's JSON report.
pub type FleetFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<serde_json::Value, FleetFailure>> + Send>,
>;

/// The repository state key of the fleet-wide mutation interval (`"30m"`), read by the
/// mutator for deckies without their own.
pub const GLOBAL_MUTATION_INTERVAL_KEY: &str = "global_mutation_interval";

/// The fleet engine as the API sees it; implemented at the binary edge, where the planner
/// and the engine live.
pub trait FleetControl: Send + Sync {
    /// Plan and deploy the fleet an INI text describes; the JSON report on success.
    fn deploy(&self, ini: String) -> FleetFuture;
    /// Re-roll one decky's services now; the mutation report.
    fn mutate(&self, decky: String) -> FleetFuture;
    /// Set one decky's own mutation interval in minutes (`Some(0)` never, `None` follows the
    /// global interval).
    fn set_mutate_interval(&self, decky: String, minutes: Option<u32>) -> FleetFuture;
}

impl std::fmt::Debug for dyn FleetControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetControl")
    }
}

impl WebConfig {
    /// Defaults; the pcaps directory is `pcaps` beside `artifacts_dir` (both live in the data
    /// directory).
    pub fn new(artifacts_dir: PathBuf) -> Self {
        Self {
            token_ttl: Duration::from_secs(8 * 3600),
            login_failures: 5,
            login_window: Duration::from_secs(300),
            developer: false,
            feed_interval: Duration::from_millis(250),
            cache_fresh: Duration::from_secs(1),
            fleet: None,
            metrics: MetricsSources::default(),
            pcaps_dir: artifacts_dir
                .parent()
                .map_or_else(|| PathBuf::from("pcaps"), |d| d.join("pcaps")),
            artifacts_dir,
        }
    }
}

/// Everything a request handler can reach (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub repo: SqlRepository,
    pub key: auth::JwtKey,
    /// Tokens already verified by `key`.
    pub verified: auth::VerifiedTokens,
    pub config: WebConfig,
    pub ip_limiter: auth::LoginLimiter,
    pub user_limiter: auth::LoginLimiter,
    pub revoked: auth::Revocations,
    pub tickets: auth::Tickets,
    pub live: Live,
    pub metrics: metrics::WebMetrics,
    pub started: Instant,
    /// Stats, totals and histograms until the next event.
    pub queries: cache::QueryCache,
    /// Serialized answers of the heavy read routes, for `config.cache_fresh`.
    pub responses: responses::ResponseCache,
    /// User rows behind tokens.
    pub users: users::UserCache,
    /// The event counts of `/stats`, `/metrics` and the live feed, updated from new rows only.
    pub tally: tokio::sync::Mutex<decnet_store::repo::EventTally>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// State key of the persisted revocation list.
const REVOKED_KEY: &str = "web_revoked_tokens";

impl AppState {
    /// Build the state: `secret` signs tokens; the revocation list is reloaded from the
    /// repository so a logout survives a restart.
    pub async fn new(
        repo: SqlRepository,
        secret: &[u8],
        config: WebConfig,
    ) -> Result<Self, ApiError> {
        let (tx, _) = broadcast::channel(stream::CHANNEL_BATCHES);
        let (stats_tx, _) = watch::channel(None);
        let state = Self(Arc::new(Inner {
            key: auth::JwtKey::new(secret),
            verified: auth::VerifiedTokens::default(),
            ip_limiter: auth::LoginLimiter::new(config.login_failures, config.login_window),
            user_limiter: auth::LoginLimiter::new(config.login_failures, config.login_window),
            revoked: auth::Revocations::default(),
            tickets: auth::Tickets::default(),
            live: Live::new(tx, stats_tx),
            metrics: metrics::WebMetrics::default(),
            started: Instant::now(),
            queries: cache::QueryCache::default(),
            responses: responses::ResponseCache::new(config.cache_fresh),
            users: users::UserCache::new(config.cache_fresh),
            tally: tokio::sync::Mutex::default(),
            repo,
            config,
        }));
        if let Some(Ok(map)) = state
            .repo
            .state(REVOKED_KEY)
            .await?
            .map(serde_json::from_value)
        {
            state.revoked.load(map);
        }
        Ok(state)
    }

    /// Create the first admin when there are no users. Returns the generated password when one
    /// was generated (the caller prints it once), `None` when users exist or the password came
    /// from the environment.
    pub async fn bootstrap_admin(
        &self,
        username: &str,
        password: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        if !self.repo.list_users().await?.is_empty() {
            return Ok(None);
        }
        let (password, generated) = match password.filter(|p| !p.is_empty()) {
            Some(p) => (p.to_owned(), false),
            None => (auth::random_password(), true),
        };
        let hash = routes::hash_blocking(password.clone()).await?;
        self.repo
            .create_user(username, &hash, "admin", true)
            .await?;
        tracing::info!(username, "created the first admin (must change password)");
        Ok(generated.then_some(password))
    }

    pub(crate) async fn persist_revoked(&self, map: std::collections::HashMap<String, i64>) {
        if let Ok(v) = serde_json::to_value(map)
            && let Err(e) = self.repo.set_state(REVOKED_KEY, &v).await
        {
            tracing::error!(error = %e, "cannot persist the token revocation list");
        }
    }
}

/// The whole HTTP surface: API, stream, metrics, OpenAPI and dashboard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", routes::api())
        .route("/metrics", axum::routing::get(metrics::metrics))
        .merge(pages::router())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Unix time in seconds.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
