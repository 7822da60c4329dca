//! The REST routes under `/api/v1` (parity with the original's 25 plus logout, ticket, me,
//! attacker sessions). Every handler names the role it needs through its extractor.

use std::{net::SocketAddr, sync::atomic::Ordering};

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use decnet_store::repo::{EventQuery, StoredEvent, User};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json, value::RawValue};

use crate::{
    ApiError, AppState,
    auth::{self, AUDIENCE, Claims, ISSUER, MAX_PASSWORD, MIN_PASSWORD},
    error::{ApiJson, ApiPath, ApiQuery},
    extract::{AcceptsGzip, Admin, AnyUser, Viewer},
    gate, now_secs, openapi, stream,
};

pub fn api() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/change-password", post(change_password))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/ticket", post(ticket))
        .route("/logs", get(logs))
        .route("/logs/histogram", get(histogram))
        .route("/bounty", get(bounty))
        .route("/stats", get(stats))
        .route("/deckies", get(deckies))
        .route("/deckies/deploy", post(deploy))
        .route("/deckies/{name}/mutate", post(mutate))
        .route("/deckies/{name}/mutate-interval", put(mutate_interval))
        .route("/attackers", get(attackers))
        .route("/attackers/{uuid}", get(attacker))
        .route("/attackers/{uuid}/commands", get(attacker_commands))
        .route("/attackers/{uuid}/artifacts", get(attacker_artifacts))
        .route("/attackers/{uuid}/sessions", get(attacker_sessions))
        .route("/attackers/{uuid}/pcap", get(attacker_pcap))
        .route("/artifacts/{decky}/{stored_as}", get(artifact))
        .route("/config", get(config))
        .route("/config/deployment-limit", put(deployment_limit))
        .route(
            "/config/global-mutation-interval",
            put(global_mutation_interval),
        )
        .route("/config/users", post(create_user))
        .route("/config/users/{uuid}", delete(delete_user))
        .route("/config/users/{uuid}/role", put(set_role))
        .route("/config/users/{uuid}/reset-password", put(reset_password))
        .route("/config/reinit", delete(reinit))
        .route("/health", get(health))
        .route("/stream", get(stream::stream))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::NotFound("no such API route".into()) })
}

/// argon2 costs tens of milliseconds of CPU: run it off the async workers, through the gate.
pub(crate) async fn hash_blocking(password: String) -> Result<String, ApiError> {
    let _place = gate::PASSWORDS.enter().await?;
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)
}

/// Verify off the async workers, through the gate; with no hash (unknown user) a dummy hash
/// is checked so an unknown username costs the same time as a wrong password (no user
/// enumeration by timing).
async fn verify_blocking(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let _place = gate::PASSWORDS.enter().await?;
    Ok(tokio::task::spawn_blocking(move || match hash {
        Some(h) => auth::verify_password(&password, &h),
        None => {
            let dummy =
                DUMMY.get_or_init(|| auth::hash_password("no such user").unwrap_or_default());
            let _ = auth::verify_password(&password, dummy);
            false
        }
    })
    .await
    .unwrap_or(false))
}

/// The login limiter's key for an address: an IPv6 /64 counts as one (a single host can pick
/// a new address in its /64 for every attempt).
pub(crate) fn login_ip_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

fn user_json(u: &User) -> Value {
    json!({
        "uuid": u.uuid, "username": u.username, "role": u.role,
        "must_change_password": u.must_change_password, "created_ns": u.created_ns,
    })
}

/// An event as the API shows it (fields as an ordered object, raw as lossy text).
pub fn event_json(r: &StoredEvent) -> Value {
    let e = &r.event;
    let mut fields = serde_json::Map::new();
    for (k, v) in e.fields() {
        fields
            .entry(k.clone())
            .or_insert_with(|| Value::String(v.clone()));
    }
    json!({
        "id": r.id,
        "ts_ns": e.ts_ns,
        "timestamp": rfc3339(e.ts_ns),
        "decky": e.decky, "service": e.service, "event_type": e.kind,
        "severity": e.severity,
        "attacker_ip": e.src_ip.map(|i| i.to_string()),
        "src_port": e.src_port,
        "dst_ip": e.dst_ip.map(|i| i.to_string()), "dst_port": e.dst_port,
        "fields": fields,
        "raw": String::from_utf8_lossy(e.raw()),
        "truncated": e.truncated,
    })
}

fn rfc3339(ts_ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn check_len(what: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::bad(format!(
            "{what} must be {min} to {max} characters (got {n})"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------- auth

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<Value>, ApiError> {
    check_len("username", &body.username, 1, 64)?;
    check_len("password", &body.password, 1, MAX_PASSWORD)?;
    let ip_key = login_ip_key(peer.ip());
    let throttled = |wait| {
        state
            .metrics
            .logins_throttled
            .fetch_add(1, Ordering::Relaxed);
        ApiError::TooManyRequests { retry_after: wait }
    };
    // Counted before the check, so attempts sent at once cannot all pass the limit.
    state.ip_limiter.attempt(&ip_key).map_err(throttled)?;
    let user = state.repo.user_by_name(&body.username).await?;
    // Per account when the name finds one: spellings the database's collation takes for the
    // same name (case, and on MariaDB accents and trailing spaces) share one count.
    let user_key = user
        .as_ref()
        .map_or_else(|| body.username.to_lowercase(), |u| u.uuid.clone());
    state.user_limiter.attempt(&user_key).map_err(throttled)?;
    let ok = verify_blocking(
        body.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let Some(user) = user.filter(|_| ok) else {
        state.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(peer = %peer.ip(), username = %body.username, "failed login");
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    state.ip_limiter.clear(&ip_key);
    state.user_limiter.clear(&user_key);
    state.metrics.logins_ok.fetch_add(1, Ordering::Relaxed);
    let now = now_secs();
    let ttl = i64::try_from(state.config.token_ttl.as_secs()).unwrap_or(3600);
    let claims = Claims {
        sub: user.uuid.clone(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        iat: now,
        exp: now + ttl,
        jti: auth::random_id(),
    };
    Ok(Json(json!({
        "access_token": state.key.sign(&claims),
        "token_type": "bearer",
        "expires_in": ttl,
        "must_change_password": user.must_change_password,
        "role": user.role,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    old_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    who: AnyUser,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<Json<Value>, ApiError> {
    check_len(
        "new_password",
        &body.new_password,
        MIN_PASSWORD,
        MAX_PASSWORD,
    )?;
    check_len("old_password", &body.old_password, 1, MAX_PASSWORD)?;
    // The old password first: "must differ" is only news to someone who knows it.
    let same = body.old_password == body.new_password;
    if !verify_blocking(body.old_password, Some(who.user.password_hash.clone())).await? {
        return Err(ApiError::Unauthorized("the old password is wrong".into()));
    }
    if same {
        return Err(ApiError::bad(
            "the new password must differ from the old one",
        ));
    }
    let hash = hash_blocking(body.new_password).await?;
    let changed = state
        .repo
        .set_user_password(&who.user.uuid, &hash, false)
        .await;
    state.users.forget_all();
    changed?;
    Ok(Json(json!({"message": "password changed"})))
}

async fn logout(State(state): State<AppState>, who: AnyUser) -> Result<StatusCode, ApiError> {
    let map = state
        .revoked
        .revoke(&who.claims.jti, who.claims.exp, now_secs());
    state.persist_revoked(map).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(who: AnyUser) -> Json<Value> {
    Json(user_json(&who.user))
}

async fn ticket(State(state): State<AppState>, Viewer(who): Viewer) -> Json<Value> {
    Json(json!({
        "ticket": state.tickets.issue(&who.user.uuid),
        "expires_in": auth::TICKET_TTL.as_secs(),
    }))
}

// ---------------------------------------------------------------- events

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsParams {
    limit: Option<i64>,
    offset: Option<i64>,
    #[serde(default)]
    search: String,
    /// RFC 3339 or Unix seconds.
    start_time: Option<String>,
    end_time: Option<String>,
    interval_minutes: Option<i64>,
}

/// Unix seconds (`-?[0-9]{1,10}`) or RFC 3339, clamped to what nanoseconds in an i64 can
/// hold; empty means unbounded. The OpenAPI document states the same grammar.
fn parse_time(what: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let digits = v.strip_prefix('-').unwrap_or(v);
    if (1..=10).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = v
            .parse()
            .map_err(|_| ApiError::bad(format!("{what} is out of range")))?;
        return Ok(Some(secs.saturating_mul(1_000_000_000)));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::bad(format!("{what} must be RFC 3339 or Unix seconds")))?;
    // Nanoseconds in an i64 span 1677..2262; a bound beyond that is the same as the limit.
    let ns = t
        .unix_timestamp_nanos()
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    Ok(Some(i64::try_from(ns).unwrap_or(i64::MAX)))
}

fn page(limit: Option<i64>, offset: Option<i64>, max: i64) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(50);
    let offset = offset.unwrap_or(0);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad(format!("limit must be 1 to {max}")));
    }
    if !(0..=1_000_000_000).contains(&offset) {
        return Err(ApiError::bad("offset must be 0 to 1000000000"));
    }
    Ok((limit, offset))
}

/// Longest search accepted from the API, in characters (4 bytes each at worst stays within
/// the repository's 1024-byte cap).
pub(crate) const MAX_SEARCH_CHARS: usize = 256;
/// Most whitespace-separated words in a search (the repository's token cap).
pub(crate) const MAX_SEARCH_WORDS: usize = 16;
/// Longest search word.
pub(crate) const MAX_SEARCH_WORD_CHARS: usize = 64;

/// The search limits, checked up front so every refusal is one the OpenAPI document states.
pub(crate) fn check_search(search: &str) -> Result<(), ApiError> {
    check_len("search", search, 0, MAX_SEARCH_CHARS)?;
    let words = search
        .split(char::is_whitespace)
        .filter(|w| !w.is_empty())
        .count();
    if words > MAX_SEARCH_WORDS {
        return Err(ApiError::bad(format!(
            "search has {words} words; at most {MAX_SEARCH_WORDS} are accepted"
        )));
    }
    // Each word is a substring match over every field of every event: its cost grows with
    // its length (a 256-character word against long attacker-written fields cost tens of
    // millions of comparisons per row).
    if let Some(long) = search
        .split(char::is_whitespace)
        .find(|w| w.chars().count() > MAX_SEARCH_WORD_CHARS)
    {
        let start: String = long.chars().take(16).collect();
        return Err(ApiError::bad(format!(
            "search word {start:?}… is longer than {MAX_SEARCH_WORD_CHARS} characters"
        )));
    }
    Ok(())
}

fn event_query(p: &LogsParams) -> Result<EventQuery, ApiError> {
    check_search(&p.search)?;
    Ok(EventQuery {
        search: p.search.clone(),
        start_ns: parse_time("start_time", p.start_time.as_deref())?,
        end_ns: parse_time("end_time", p.end_time.as_deref())?,
    })
}

async fn logs(
    State(state): State<AppState>,
    _who: Viewer,
    gzip: AcceptsGzip,
    ApiQuery(p): ApiQuery<LogsParams>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(p.limit, p.offset, 1000)?;
    let query = event_query(&p)?;
    let key = format!("logs {limit} {offset} {query:?}");
    let body = state
        .responses
        .get(key, || async {
            let _place = gate::EVENT_QUERIES.enter().await?;
            let (rows, total) =
                tokio::try_join!(state.repo.events(&query, limit, offset), async {
                    let generation = state.repo.max_event_id().await?;
                    let key = format!("count {query:?}");
                    state
                        .queries
                        .get(key, generation, || async {
                            Ok(json!(state.repo.count_events(&query).await?))
                        })
                        .await
                })?;
            let data: Vec<Value> = rows.iter().map(event_json).collect();
            Ok(json!({"total": total, "limit": limit, "offset": offset, "data": data}))
        })
        .await?;
    Ok(body.respond(gzip))
}

async fn histogram(
    State(state): State<AppState>,
    _who: Viewer,
    gzip: AcceptsGzip,
    ApiQuery(p): ApiQuery<LogsParams>,
) -> Result<Response, ApiError> {
    let minutes = p.interval_minutes.unwrap_or(15);
    if !(1..=10_080).contains(&minutes) {
        return Err(ApiError::bad("interval_minutes must be 1 to 10080"));
    }
    let query = event_query(&p)?;
    let key = format!("histogram {minutes} {query:?}");
    let body = state
        .responses
        .get(key.clone(), || async {
            let _place = gate::EVENT_QUERIES.enter().await?;
            let generation = state.repo.max_event_id().await?;
            Ok(state
                .queries
                .get(key, generation, || async {
                    let buckets = state.repo.histogram(&query, minutes * 60).await?;
                    Ok(Value::Array(
                        buckets
                            .iter()
                            .map(|b| json!({"time": rfc3339(b.start_ns), "ts_ns": b.start_ns, "count": b.count}))
                            .collect(),
                    ))
                })
                .await?)
        })
        .await?;
    Ok(body.respond(gzip))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BountyParams {
    limit: Option<i64>,
    offset: Option<i64>,
    bounty_type: Option<String>,
    /// Attacker IP.
    search: Option<String>,
}

async fn bounty(
    State(state): State<AppState>,
    _who: Viewer,
    ApiQuery(p): ApiQuery<BountyParams>,
) -> Result<Json<Value>, ApiError> {
    let (limit, offset) = page(p.limit, p.offset, 1000)?;
    check_len("bounty_type", p.bounty_type.as_deref().unwrap_or(""), 0, 64)?;
    check_len("search", p.search.as_deref().unwrap_or(""), 0, 64)?;
    let kind = p.bounty_type.as_deref().filter(|s| !s.is_empty());
    let ip = p.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (rows, total) = tokio::try_join!(
        state.repo.bounties(kind, ip, limit, offset),
        state.repo.count_bounties(kind, ip)
    )?;
    let data: Vec<Value> = rows
        .iter()
        .map(|b| {
            let payload = serde_json::from_str::<Value>(&b.payload)
                .unwrap_or_else(|_| Value::String(b.payload.clone()));
            json!({"id": b.id, "ts_ns": b.ts_ns, "timestamp": rfc3339(b.ts_ns), "decky": b.decky,
                   "service": b.service, "attacker_ip": b.attacker_ip,
                   "bounty_type": b.bounty_type, "payload": payload})
        })
        .collect();
    Ok(Json(
        json!({"total": total, "limit": limit, "offset": offset, "data": data}),
    ))
}

/// The event counts (`Stats` as JSON), shared by `/stats`, `/metrics` and the live feed until
/// the next event, and then brought up to date from the new rows alone (`EventTally`).
pub(crate) async fn event_stats(state: &AppState) -> Result<Value, decnet_store::repo::RepoError> {
    let range = state.repo.event_id_range().await?;
    state
        .queries
        .get("stats".into(), range.1, || async {
            let stats = state.tally.lock().await.refresh(&state.repo, range).await?;
            Ok(serde_json::to_value(stats).unwrap_or(Value::Null))
        })
        .await
}

/// All bounties, counted again only when the id range moved, and at least once a minute: a
/// count scans the table (tens of milliseconds of every core on PostgreSQL, with its parallel
/// workers, at 300k rows), which at every refresh showed in the latency of every other request.
pub(crate) async fn bounty_total(state: &AppState) -> Result<i64, decnet_store::repo::RepoError> {
    let (oldest, newest) = state.repo.bounty_id_range().await?;
    // New bounties raise the highest id. Retention deletes by time, which takes the lowest id
    // with it in nearly every case; the minute bounds the staleness of the rest.
    let minute = crate::now_secs() / 60;
    let total = state
        .queries
        .get(
            format!("bounties from {oldest} in minute {minute}"),
            newest,
            || async { Ok(json!(state.repo.count_bounties(None, None).await?)) },
        )
        .await?;
    Ok(total.as_i64().unwrap_or(0))
}

async fn stats(
    State(state): State<AppState>,
    _who: Viewer,
    gzip: AcceptsGzip,
) -> Result<Response, ApiError> {
    let body = state
        .responses
        .get("stats".into(), || async {
            let (s, bounties, deckies) = tokio::try_join!(
                event_stats(&state),
                bounty_total(&state),
                state.repo.deckies(),
            )?;
            let active = deckies.iter().filter(|d| d.state == "running").count();
            Ok(json!({
                "total_logs": s["total_events"],
                "unique_attackers": s["unique_attackers"],
                "deckies_seen": s["deckies_seen"],
                "bounties": bounties,
                "active_deckies": active,
                "deployed_deckies": deckies.len(),
            }))
        })
        .await?;
    Ok(body.respond(gzip))
}

// ---------------------------------------------------------------- fleet

async fn deckies(State(state): State<AppState>, _who: Viewer) -> Result<Json<Value>, ApiError> {
    let rows = state.repo.deckies().await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|d| {
            let spec = serde_json::from_str::<Value>(&d.spec).unwrap_or(Value::Null);
            let mut v = decky_summary(&spec);
            if let Value::Object(m) = &mut v {
                m.insert("name".into(), json!(d.name));
                m.insert("state".into(), json!(d.state));
                m.insert("last_error".into(), json!(d.last_error));
                m.insert("updated_ns".into(), json!(d.updated_ns));
                m.insert("spec".into(), spec);
            }
            v
        })
        .collect();
    Ok(Json(Value::Array(data)))
}

/// What the dashboard shows of a decky, read from the fleet engine's record (its desired
/// containers and mutation state): address, MAC, hostname, services and mutation schedule.
fn decky_summary(spec: &Value) -> Value {
    let base = &spec["base"];
    let lan = base["networks"]
        .as_object()
        .and_then(|n| n.values().next())
        .cloned()
        .unwrap_or(Value::Null);
    let services: Vec<Value> = spec["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["labels"]["fleet.service"].as_str())
                .map(|s| json!(s))
                .collect()
        })
        .unwrap_or_default();
    let m = &spec["mutation"];
    json!({
        "ip": lan["ipv4_address"], "mac": lan["mac_address"], "hostname": base["hostname"],
        "services": services,
        "mutable": m.is_object(),
        "mutate_interval_minutes": m["interval_minutes"],
        "last_mutated_ns": m["last_mutated_ns"], "mutations": m["mutations"],
    })
}

fn fleet_pending() -> ApiError {
    ApiError::NotImplemented(
        "this server has no fleet engine attached (`decnet api`/`decnet serve` attach it); use `decnet deploy` or `decnet mutate`"
            .into(),
    )
}

fn check_decky_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::bad("decky name must match ^[a-z0-9-]{1,64}$"));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    ini_content: String,
}

async fn deploy(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<DeployBody>,
) -> Result<Json<Value>, ApiError> {
    if body.ini_content.len() > 512 * 1024 {
        return Err(ApiError::bad("ini_content is larger than 512 KiB"));
    }
    if !body
        .ini_content
        .lines()
        .any(|l| l.trim_start().starts_with('['))
    {
        return Err(ApiError::Conflict("the INI has no [section]".into()));
    }
    let Some(fleet) = state.config.fleet.clone() else {
        return Err(fleet_pending());
    };
    fleet
        .deploy(body.ini_content)
        .await
        .map(Json)
        .map_err(fleet_error)
}

fn fleet_error(e: crate::FleetFailure) -> ApiError {
    match e {
        crate::FleetFailure::Invalid(m) => ApiError::bad(m),
        crate::FleetFailure::Busy(m) => ApiError::Conflict(m),
        crate::FleetFailure::Failed(m) => ApiError::Internal(m),
        crate::FleetFailure::NotFound(m) => ApiError::NotFound(m),
    }
}

/// A decky the fleet knows, by name (404 otherwise).
async fn known_decky(state: &AppState, name: &str) -> Result<(), ApiError> {
    check_decky_name(name)?;
    if state.repo.deckies().await?.iter().any(|d| d.name == name) {
        Ok(())
    } else {
        Err(ApiError::NotFound("no decky with that name".into()))
    }
}

async fn mutate(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    known_decky(&state, &name).await?;
    let Some(fleet) = state.config.fleet.clone() else {
        return Err(fleet_pending());
    };
    fleet.mutate(name).await.map(Json).map_err(fleet_error)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntervalBody {
    mutate_interval: Option<String>,
}

fn check_interval(v: &str) -> Result<u32, ApiError> {
    decnet_fleet::mutate::interval_minutes(v).map_err(|e| ApiError::bad(e.to_string()))
}

async fn mutate_interval(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<IntervalBody>,
) -> Result<Json<Value>, ApiError> {
    check_decky_name(&name)?;
    let minutes = body
        .mutate_interval
        .as_deref()
        .map(check_interval)
        .transpose()?;
    known_decky(&state, &name).await?;
    let Some(fleet) = state.config.fleet.clone() else {
        return Err(fleet_pending());
    };
    fleet
        .set_mutate_interval(name, minutes)
        .await
        .map(Json)
        .map_err(fleet_error)
}

// ---------------------------------------------------------------- attackers

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttackersParams {
    limit: Option<i64>,
    offset: Option<i64>,
    search: Option<String>,
    sort_by: Option<String>,
    service: Option<String>,
}

fn attacker_json(a: &decnet_store::repo::Attacker) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    json!({
        "uuid": a.uuid, "ip": a.ip,
        "first_seen_ns": a.first_seen_ns, "last_seen_ns": a.last_seen_ns,
        "first_seen": rfc3339(a.first_seen_ns), "last_seen": rfc3339(a.last_seen_ns),
        "event_count": a.event_count, "service_count": a.service_count,
        "decky_count": a.decky_count, "services": parse(&a.services),
        "deckies": parse(&a.deckies), "fingerprints": parse(&a.fingerprints),
        "traversal_path": parse(&a.traversal_path), "is_traversal": a.is_traversal,
        "bounty_count": a.bounty_count, "credential_count": a.credential_count,
        "score": a.score,
    })
}

async fn attackers(
    State(state): State<AppState>,
    _who: Viewer,
    gzip: AcceptsGzip,
    ApiQuery(p): ApiQuery<AttackersParams>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(p.limit, p.offset, 1000)?;
    // The original's sort names, mapped onto the repository's.
    let sort = match p.sort_by.as_deref().unwrap_or("recent") {
        "recent" | "last_seen" => "last_seen",
        "active" | "events" => "events",
        "first_seen" => "first_seen",
        "score" | "traversals" => "score",
        other => {
            return Err(ApiError::bad(format!(
                "sort_by {other:?} is not recent, active, traversals, first_seen or score"
            )));
        }
    };
    check_len("search", p.search.as_deref().unwrap_or(""), 0, 64)?;
    check_len("service", p.service.as_deref().unwrap_or(""), 0, 64)?;
    let search = p.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let service = p.service.as_deref().filter(|s| !s.is_empty());
    let key = format!("attackers {limit} {offset} {sort} {search:?} {service:?}");
    let body = state
        .responses
        .get(key, || async {
            let (rows, total) = tokio::try_join!(
                state
                    .repo
                    .attacker_summaries(search, service, sort, limit, offset),
                state.repo.count_attackers(search, service)
            )?;
            let data: Vec<Value> = rows.iter().map(attacker_json).collect();
            Ok(json!({"total": total, "limit": limit, "offset": offset, "data": data}))
        })
        .await?;
    Ok(body.respond(gzip))
}

fn check_uuid(v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(ApiError::bad("not a uuid"));
    }
    Ok(())
}

async fn find_attacker(
    state: &AppState,
    uuid: &str,
) -> Result<decnet_store::repo::Attacker, ApiError> {
    check_uuid(uuid)?;
    state
        .repo
        .attacker_by_uuid(uuid)
        .await?
        .ok_or_else(|| ApiError::NotFound("no attacker with that uuid".into()))
}

async fn attacker(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let a = find_attacker(&state, &uuid).await?;
    let query = EventQuery {
        search: format!("attacker:{}", a.ip),
        ..EventQuery::default()
    };
    let timeline: Vec<Value> = state
        .repo
        .events(&query, 200, 0)
        .await?
        .iter()
        .map(event_json)
        .collect();
    let bounties: Vec<Value> = state
        .repo
        .bounties(None, Some(&a.ip), 200, 0)
        .await?
        .iter()
        .map(|b| json!({"id": b.id, "ts_ns": b.ts_ns, "timestamp": rfc3339(b.ts_ns),
                        "decky": b.decky, "service": b.service, "bounty_type": b.bounty_type,
                        "payload": serde_json::from_str::<Value>(&b.payload).unwrap_or(Value::Null)}))
        .collect();
    let mut v = attacker_json(&a);
    if let Value::Object(m) = &mut v {
        m.insert("timeline".into(), Value::Array(timeline));
        m.insert("bounties".into(), Value::Array(bounties));
    }
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandsParams {
    limit: Option<i64>,
    offset: Option<i64>,
    service: Option<String>,
}

async fn attacker_commands(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<CommandsParams>,
) -> Result<Json<Value>, ApiError> {
    let (limit, offset) = page(p.limit, p.offset, 200)?;
    let a = find_attacker(&state, &uuid).await?;
    let all: Vec<Value> = match serde_json::from_str::<Value>(&a.commands) {
        Ok(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let filtered: Vec<Value> = all
        .into_iter()
        .filter(|c| {
            p.service
                .as_deref()
                .filter(|s| !s.is_empty())
                .is_none_or(|s| c.get("service").and_then(Value::as_str) == Some(s))
        })
        .collect();
    let total = filtered.len();
    let data: Vec<Value> = filtered
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(0))
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    Ok(Json(
        json!({"total": total, "limit": limit, "offset": offset, "data": data}),
    ))
}

async fn attacker_artifacts(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let a = find_attacker(&state, &uuid).await?;
    let query = EventQuery {
        search: format!("attacker:{} event:file_captured", a.ip),
        ..EventQuery::default()
    };
    let data: Vec<Value> = state
        .repo
        .events(&query, 500, 0)
        .await?
        .iter()
        .map(event_json)
        .collect();
    Ok(Json(Value::Array(data)))
}

async fn attacker_sessions(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Response, ApiError> {
    let attacker = find_attacker(&state, &uuid).await?;
    let rows = state.repo.sessions(Some(&attacker.ip), 1000, 0).await?;
    // The stored command and credential lists (up to ~90 KiB of attacker text a session)
    // go out as they are: parsed into `Value`s, a thousand sessions took gigabytes.
    let data: Vec<SessionOut<'_>> = rows
        .iter()
        .map(|r| SessionOut {
            id: &r.id,
            decky: &r.decky,
            service: &r.service,
            dst_port: r.dst_port,
            start_ns: r.start_ns,
            end_ns: r.end_ns,
            start: rfc3339(r.start_ns),
            end: rfc3339(r.end_ns),
            event_count: r.event_count,
            flow_count: r.flow_count,
            commands: serde_json::from_str(&r.commands).ok(),
            credentials: serde_json::from_str(&r.credentials).ok(),
            auth_success: r.auth_success,
            closed: r.closed,
        })
        .collect();
    let body = serde_json::to_vec(&SessionsOut {
        total: data.len(),
        data,
    })
    .map_err(|e| ApiError::Internal(format!("session list: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Serialize)]
struct SessionsOut<'a> {
    total: usize,
    data: Vec<SessionOut<'a>>,
}

/// One session as `/attackers/{uuid}/sessions` lists it.
#[derive(Serialize)]
struct SessionOut<'a> {
    id: &'a str,
    decky: &'a str,
    service: &'a str,
    dst_port: Option<i64>,
    start_ns: i64,
    end_ns: i64,
    start: String,
    end: String,
    event_count: i64,
    flow_count: i64,
    /// The stored JSON as it is (`null` if it does not parse).
    commands: Option<&'a RawValue>,
    credentials: Option<&'a RawValue>,
    auth_success: bool,
    closed: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PcapParams {
    /// A session id from `/attackers/{uuid}/sessions`: only its time range is exported.
    session: Option<String>,
}

/// The pcapng media type Wireshark registers.
pub(crate) const PCAPNG_TYPE: &str = "application/x-pcapng";

/// Bytes handed to the response body at a time.
const PCAP_CHUNK: usize = 64 * 1024;

/// An `io::Write` that hands full chunks to the response body; a client that went away ends
/// the export with `BrokenPipe`.
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
    buf: Vec<u8>,
    /// The runtime, to wait for the client with a deadline from the export's blocking thread.
    rt: tokio::runtime::Handle,
}

/// How long an export waits for its client to take the next chunk: a client that stops
/// reading once held its blocking thread (and an export place) for ever.
const PCAP_STALL: std::time::Duration = std::time::Duration::from_secs(60);

impl ChunkSender {
    fn send_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(PCAP_CHUNK),
        ));
        match self
            .rt
            .block_on(tokio::time::timeout(PCAP_STALL, self.tx.send(Ok(chunk))))
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
        }
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PCAP_CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buf()
    }
}

/// The attacker's retained packets (from or to its address) as a pcapng download, streamed
/// while the segments are read; `?session=ID` narrows it to that session's time range. With
/// nothing retained the answer is still 200: a valid pcapng holding no packets.
async fn attacker_pcap(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<PcapParams>,
) -> Result<Response, ApiError> {
    let place = gate::EXPORTS.enter().await?;
    let a = find_attacker(&state, &uuid).await?;
    let ip: std::net::IpAddr = a.ip.parse().map_err(|_| {
        ApiError::NotFound("the attacker's address is not an IP address: no packet matches".into())
    })?;
    let (from, to, label) = match p.session.as_deref() {
        None => (0, i64::MAX, String::new()),
        Some(id) => {
            check_len("session", id, 1, 128)?;
            let s = state.repo.session(&a.ip, id).await?.ok_or_else(|| {
                ApiError::NotFound("no session with that id for this attacker".into())
            })?;
            let safe: String = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect();
            (s.start_ns, s.end_ns, format!("-session-{safe}"))
        }
    };
    let dir = state.config.pcaps_dir.clone();
    // Fail before the 200 goes out when the directory itself cannot be listed.
    let listed = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || decnet_dataplane::retention::segments(&dir))
            .await
            .map_err(|e| ApiError::Internal(format!("pcap export task: {e}")))?
    };
    if let Err(e) = listed {
        tracing::error!(error = %e, "pcap export cannot list the retention directory");
        return Err(ApiError::Internal(
            "the packet retention directory cannot be read; see the appliance log".into(),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // The export's place is held until it ends, however it ends.
        let _place = place;
        let mut out = ChunkSender {
            tx,
            buf: Vec::with_capacity(PCAP_CHUNK),
            rt,
        };
        match decnet_dataplane::retention::export_pcapng(&dir, ip, from, to, &mut out) {
            Ok(s) => tracing::debug!(%ip, packets = s.packets, "pcap export done"),
            Err(e) => {
                tracing::warn!(%ip, error = %e, "pcap export stopped");
                // Cut the body short so the client sees an error, not a truncated success.
                let failed = out.tx.send(Err(std::io::Error::other(e.to_string())));
                let _ = out.rt.block_on(tokio::time::timeout(PCAP_STALL, failed));
            }
        }
    });
    let body = axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|item| (item, rx))
    }));
    let file = format!("attacker-{}{label}.pcapng", a.ip.replace(':', "_"));
    Ok((
        [
            (header::CONTENT_TYPE, PCAPNG_TYPE.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn safe_segment(v: &str, max: usize) -> bool {
    !v.is_empty()
        && v.len() <= max
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn artifact(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath((decky, stored_as)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    if !safe_segment(&decky, 128) || !safe_segment(&stored_as, 255) {
        return Err(ApiError::bad("invalid decky or artifact name"));
    }
    let base = &state.config.artifacts_dir;
    let path = base.join(&decky).join(&stored_as);
    // Belt and braces beyond the character check: the resolved path must stay under base.
    let (Ok(real), Ok(real_base)) = (
        tokio::fs::canonicalize(&path).await,
        tokio::fs::canonicalize(base).await,
    ) else {
        return Err(ApiError::NotFound("no such artifact".into()));
    };
    if !real.starts_with(&real_base) {
        return Err(ApiError::NotFound("no such artifact".into()));
    }
    let bytes = tokio::fs::read(&real)
        .await
        .map_err(|_| ApiError::NotFound("no such artifact".into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{stored_as}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

// ---------------------------------------------------------------- config and users

const LIMIT_KEY: &str = "deployment_limit";
const INTERVAL_KEY: &str = crate::GLOBAL_MUTATION_INTERVAL_KEY;

async fn config(
    State(state): State<AppState>,
    Viewer(who): Viewer,
) -> Result<Json<Value>, ApiError> {
    let limit = state
        .repo
        .state(LIMIT_KEY)
        .await?
        .unwrap_or_else(|| json!(10));
    let interval = state
        .repo
        .state(INTERVAL_KEY)
        .await?
        .unwrap_or_else(|| json!("30m"));
    let mut v = json!({"role": who.user.role, "deployment_limit": limit,
                       "global_mutation_interval": interval});
    if who.user.role == "admin" {
        let users: Vec<Value> = state
            .repo
            .list_users()
            .await?
            .iter()
            .map(user_json)
            .collect();
        if let Value::Object(m) = &mut v {
            m.insert("users".into(), Value::Array(users));
            m.insert("developer_mode".into(), json!(state.config.developer));
        }
    }
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    deployment_limit: serde_json::Number,
}

/// A JSON number that is an integer; `110.0` is one as far as JSON (and JSON Schema's
/// `integer`) is concerned, so it counts.
fn json_integer(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
            .map(|f| f as i64)
    })
}

async fn deployment_limit(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<LimitBody>,
) -> Result<Json<Value>, ApiError> {
    let limit = json_integer(&body.deployment_limit)
        .filter(|n| (1..=500).contains(n))
        .ok_or_else(|| ApiError::bad("deployment_limit must be an integer from 1 to 500"))?;
    state.repo.set_state(LIMIT_KEY, &json!(limit)).await?;
    Ok(Json(json!({"deployment_limit": limit})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalIntervalBody {
    global_mutation_interval: String,
}

async fn global_mutation_interval(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<GlobalIntervalBody>,
) -> Result<Json<Value>, ApiError> {
    check_interval(&body.global_mutation_interval)?;
    state
        .repo
        .set_state(INTERVAL_KEY, &json!(body.global_mutation_interval))
        .await?;
    Ok(Json(
        json!({"global_mutation_interval": body.global_mutation_interval}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: String,
    role: String,
}

fn check_role(role: &str) -> Result<(), ApiError> {
    if role != "admin" && role != "viewer" {
        return Err(ApiError::bad("role must be admin or viewer"));
    }
    Ok(())
}

fn check_username(name: &str) -> Result<(), ApiError> {
    check_len("username", name, 1, 64)?;
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "username must not contain control characters",
        ));
    }
    Ok(())
}

async fn create_user(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_username(&body.username)?;
    check_len("password", &body.password, MIN_PASSWORD, MAX_PASSWORD)?;
    check_role(&body.role)?;
    if state.repo.user_by_name(&body.username).await?.is_some() {
        return Err(ApiError::Conflict("that username is taken".into()));
    }
    let hash = hash_blocking(body.password).await?;
    let user = state
        .repo
        .create_user(&body.username, &hash, &body.role, true)
        .await;
    state.users.forget_all();
    let user = user?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

async fn target_user(state: &AppState, uuid: &str) -> Result<User, ApiError> {
    check_uuid(uuid)?;
    state
        .repo
        .user_by_uuid(uuid)
        .await?
        .ok_or_else(|| ApiError::NotFound("no user with that uuid".into()))
}

async fn delete_user(
    State(state): State<AppState>,
    Admin(who): Admin,
    ApiPath(uuid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let target = target_user(&state, &uuid).await?;
    if target.uuid == who.user.uuid {
        return Err(ApiError::Conflict("you cannot delete yourself".into()));
    }
    let deleted = state.repo.delete_user(&target.uuid).await;
    state.users.forget_all();
    deleted?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

async fn set_role(
    State(state): State<AppState>,
    Admin(who): Admin,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<Value>, ApiError> {
    check_role(&body.role)?;
    let target = target_user(&state, &uuid).await?;
    if target.uuid == who.user.uuid {
        return Err(ApiError::Conflict("you cannot change your own role".into()));
    }
    let changed = state.repo.set_user_role(&target.uuid, &body.role).await;
    state.users.forget_all();
    changed?;
    Ok(Json(json!({"uuid": target.uuid, "role": body.role})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    new_password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    Admin(who): Admin,
    ApiPath(uuid): ApiPath<String>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<Json<Value>, ApiError> {
    check_len(
        "new_password",
        &body.new_password,
        MIN_PASSWORD,
        MAX_PASSWORD,
    )?;
    let target = target_user(&state, &uuid).await?;
    if target.uuid == who.user.uuid {
        // An admin resetting their own password would lock themselves behind the forced
        // change; their own password goes through change-password.
        return Err(ApiError::Conflict(
            "use POST /api/v1/auth/change-password for your own password".into(),
        ));
    }
    let hash = hash_blocking(body.new_password).await?;
    let changed = state
        .repo
        .set_user_password(&target.uuid, &hash, true)
        .await;
    state.users.forget_all();
    changed?;
    Ok(Json(
        json!({"uuid": target.uuid, "must_change_password": true}),
    ))
}

async fn reinit(State(state): State<AppState>, _who: Admin) -> Result<StatusCode, ApiError> {
    if !state.config.developer {
        return Err(ApiError::Forbidden(
            "reinit needs developer mode (DECNET_DEVELOPER=true)".into(),
        ));
    }
    let purged = state.repo.purge().await;
    state.queries.clear();
    state.responses.clear();
    state.users.forget_all();
    purged?;
    Ok(StatusCode::NO_CONTENT)
}

async fn health(State(state): State<AppState>, _who: Viewer) -> Response {
    let db = state.repo.max_event_id().await;
    let feeder = state.live.cursor() >= 0;
    let db_ok = db.is_ok();
    let status = if !db_ok {
        "unhealthy"
    } else if feeder {
        "healthy"
    } else {
        "degraded"
    };
    let body = json!({
        "status": status,
        "components": {
            "database": {"status": if db_ok { "ok" } else { "failing" },
                         "backend": state.repo.backend().name()},
            "live_feed": {"status": if feeder { "ok" } else { "not running" },
                          "cursor": state.live.cursor()},
        },
        "uptime_seconds": state.started.elapsed().as_secs(),
    });
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
