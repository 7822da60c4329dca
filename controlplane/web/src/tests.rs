//! Router-level tests: every route's auth, role and validation behaviour on a real SQLite
//! repository, through `tower::ServiceExt::oneshot` (no socket).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{net::SocketAddr, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode},
};
use decnet_store::{
    Event, Severity,
    repo::{Attacker, Repository, SqlRepository},
};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{AppState, WebConfig, openapi::ROUTES, router, routes::login_ip_key};

const ADMIN_PW: &str = "first-admin-pw";
const NEW_PW: &str = "changed-admin-pw";

pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    pub(crate) state: AppState,
    app: Router,
}

/// An attacker row with `events` events and empty lists; tests override the fields they check.
fn attacker(ip: &str, events: i64) -> Attacker {
    Attacker {
        uuid: String::new(),
        ip: ip.into(),
        first_seen_ns: 1,
        last_seen_ns: 2,
        event_count: events,
        service_count: 1,
        decky_count: 1,
        services: "[]".into(),
        deckies: "[]".into(),
        fingerprints: "[]".into(),
        commands: "[]".into(),
        traversal_path: "[]".into(),
        is_traversal: false,
        bounty_count: 0,
        credential_count: 0,
        score: 1,
    }
}

pub(crate) async fn setup() -> Setup {
    setup_with(None).await
}

async fn setup_with(fleet: Option<std::sync::Arc<dyn crate::FleetControl>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let repo = SqlRepository::connect(&url).await.unwrap();
    let mut config = WebConfig::new(dir.path().join("artifacts"));
    config.feed_interval = Duration::from_millis(20);
    config.fleet = fleet;
    let state = AppState::new(repo, &[7u8; 32], config).await.unwrap();
    assert_eq!(
        state
            .bootstrap_admin("admin", Some(ADMIN_PW))
            .await
            .unwrap(),
        None
    );
    let app = router(state.clone());
    Setup {
        _dir: dir,
        state,
        app,
    }
}

async fn call_full(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    peer: [u8; 4],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((peer, 40000))));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, v)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (s, _, v) = call_full(app, method, uri, token, body, [127, 0, 0, 1]).await;
    (s, v)
}

async fn login(app: &Router, user: &str, pw: &str) -> (String, bool) {
    let (s, v) = call(
        app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": user, "password": pw})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["must_change_password"].as_bool().unwrap(),
    )
}

/// An admin whose password is changed, plus a viewer (changed too).
async fn admin_and_viewer(app: &Router) -> (String, String, String) {
    let (t, must) = login(app, "admin", ADMIN_PW).await;
    assert!(must);
    let (s, v) = call(
        app,
        "POST",
        "/api/v1/auth/change-password",
        Some(&t),
        Some(json!({"old_password": ADMIN_PW, "new_password": NEW_PW})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        app,
        "POST",
        "/api/v1/config/users",
        Some(&t),
        Some(json!({"username": "vera", "password": "viewer-temp-1", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let viewer_uuid = v["uuid"].as_str().unwrap().to_owned();
    let (vt, must) = login(app, "vera", "viewer-temp-1").await;
    assert!(must);
    let (s, _) = call(
        app,
        "POST",
        "/api/v1/auth/change-password",
        Some(&vt),
        Some(json!({"old_password": "viewer-temp-1", "new_password": "viewer-final-1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    (t, vt, viewer_uuid)
}

fn concrete(path: &str) -> String {
    path.replace("{uuid}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "web01")
        .replace("{decky}", "web01")
        .replace("{stored_as}", "x.bin")
}

fn event(ts_s: i64, decky: &str, ip: &str, kind: &str) -> Event {
    let mut e = Event::new(ts_s * 1_000_000_000, decky, "ssh", kind, Severity::Info);
    e.src_ip = Some(ip.parse().unwrap());
    e.push_field("username", "root").unwrap();
    e
}

#[tokio::test]
async fn first_start_generates_a_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let repo = SqlRepository::connect(&url).await.unwrap();
    let state = AppState::new(repo, &[1u8; 32], WebConfig::new(dir.path().into()))
        .await
        .unwrap();
    let pw = state.bootstrap_admin("admin", None).await.unwrap().unwrap();
    assert_eq!(pw.len(), 20);
    assert_eq!(state.bootstrap_admin("admin", None).await.unwrap(), None);
    let app = router(state);
    let (_, must) = login(&app, "admin", &pw).await;
    assert!(must);
}

#[tokio::test]
async fn anonymous_gets_401_on_every_protected_route() {
    let s = setup().await;
    for (method, path, role, _) in ROUTES {
        let (status, v) = call(
            &s.app,
            &method.to_uppercase(),
            &format!("/api/v1{}", concrete(path)),
            None,
            Some(json!({})),
        )
        .await;
        match *role {
            "token" | "viewer" | "admin" => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
                assert_eq!(v["error"]["code"], "unauthorized");
            }
            "ticket" => assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}"),
            _ => {}
        }
    }
    let (status, _) = call(&s.app, "GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&s.app, "GET", "/api/v1/stats", Some("garbage"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn must_change_password_gates_every_route_but_change_password() {
    let s = setup().await;
    let (t, must) = login(&s.app, "admin", ADMIN_PW).await;
    assert!(must);
    for (method, path, role, _) in ROUTES {
        if matches!(*role, "viewer" | "admin") {
            let (status, v) = call(
                &s.app,
                &method.to_uppercase(),
                &format!("/api/v1{}", concrete(path)),
                Some(&t),
                Some(json!({})),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {v}");
            assert_eq!(v["error"]["code"], "must_change_password");
        }
    }
    let (status, _) = call(&s.app, "GET", "/metrics", Some(&t), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Wrong old password, too short, same as old: refused.
    for body in [
        json!({"old_password": "nope-nope", "new_password": NEW_PW}),
        json!({"old_password": ADMIN_PW, "new_password": "short"}),
        json!({"old_password": ADMIN_PW, "new_password": ADMIN_PW}),
        json!({"old_password": ADMIN_PW}),
    ] {
        let (status, _) = call(
            &s.app,
            "POST",
            "/api/v1/auth/change-password",
            Some(&t),
            Some(body),
        )
        .await;
        assert!(status.is_client_error());
    }
    let (status, _) = call(
        &s.app,
        "POST",
        "/api/v1/auth/change-password",
        Some(&t),
        Some(json!({"old_password": ADMIN_PW, "new_password": NEW_PW})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = call(&s.app, "GET", "/api/v1/stats", Some(&t), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["total_logs"], 0);
}

#[tokio::test]
async fn role_matrix_viewer_and_admin() {
    let s = setup().await;
    let (admin, viewer, _) = admin_and_viewer(&s.app).await;
    for (method, path, role, _) in ROUTES {
        let uri = format!("/api/v1{}", concrete(path));
        let m = method.to_uppercase();
        if *path == "/auth/logout" || *path == "/config/reinit" {
            continue; // logout revokes the token; reinit is covered below
        }
        let (vs, vv) = call(&s.app, &m, &uri, Some(&viewer), Some(json!({}))).await;
        let (as_, av) = call(&s.app, &m, &uri, Some(&admin), Some(json!({}))).await;
        match *role {
            "admin" => assert_eq!(vs, StatusCode::FORBIDDEN, "viewer {m} {path}: {vv}"),
            "viewer" | "token" => assert!(
                vs != StatusCode::FORBIDDEN && vs != StatusCode::UNAUTHORIZED,
                "viewer {m} {path}: {vs} {vv}"
            ),
            _ => {}
        }
        if matches!(*role, "viewer" | "token" | "admin") {
            assert!(
                as_ != StatusCode::FORBIDDEN && as_ != StatusCode::UNAUTHORIZED,
                "admin {m} {path}: {as_} {av}"
            );
            // Every table entry is really routed (the fallback says "no such API route").
            assert_ne!(av["error"]["message"], "no such API route", "{m} {path}");
        }
    }
    let (status, v) = call(
        &s.app,
        "DELETE",
        "/api/v1/config/reinit",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, _) = call(&s.app, "GET", "/api/v1/no/such", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = call(&s.app, "GET", "/metrics", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v.as_str().unwrap().contains("decnet_http_requests_total"));
}

#[tokio::test]
async fn logout_revokes_the_token() {
    let s = setup().await;
    let (admin, _, _) = admin_and_viewer(&s.app).await;
    let (status, _) = call(&s.app, "POST", "/api/v1/auth/logout", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = call(&s.app, "GET", "/api/v1/stats", Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(v["error"]["message"].as_str().unwrap().contains("revoked"));
    // The list survives a restart (it is persisted in the repository).
    let again = AppState::new(s.state.repo.clone(), &[7u8; 32], s.state.config.clone())
        .await
        .unwrap();
    let (status, _) = call(&router(again), "GET", "/api/v1/stats", Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_is_rate_limited_per_ip_and_per_user() {
    let s = setup().await;
    let bad = json!({"username": "admin", "password": "guess"});
    for _ in 0..5 {
        let (st, _, _) = call_full(
            &s.app,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(bad.clone()),
            [10, 0, 0, 1],
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, headers, v) = call_full(
        &s.app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(bad.clone()),
        [10, 0, 0, 1],
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(headers.contains_key("retry-after"));
    // Per user: the right password from another address is refused too while throttled.
    let good = json!({"username": "admin", "password": ADMIN_PW});
    let (st, _, _) = call_full(
        &s.app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(good),
        [10, 0, 0, 2],
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    // Per IP: another username from the throttled address is refused.
    let other = json!({"username": "someone", "password": "x"});
    let (st, _, _) = call_full(
        &s.app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(other),
        [10, 0, 0, 1],
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
}

/// Attempts sent at once are counted before any password is checked: only the window's five
/// reach the check (all twenty did when only failures were counted, after the check), and an
/// IPv6 /64 counts as one address.
#[tokio::test]
async fn logins_sent_at_once_cannot_pass_the_limit() {
    let s = setup().await;
    let bad = json!({"username": "admin", "password": "guess"});
    let attempts = (0..20).map(|_| {
        call_full(
            &s.app,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(bad.clone()),
            [10, 0, 0, 9],
        )
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(st, _, _)| st)
        .collect();
    let checked = statuses
        .iter()
        .filter(|st| **st == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|st| **st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, throttled), (5, 15), "{statuses:?}");
    assert_eq!(
        login_ip_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
        "2001:db8:1:2::/64"
    );
    assert_eq!(
        login_ip_key("2001:db8:1:2:ffff::1".parse().unwrap()),
        login_ip_key("2001:db8:1:2::9".parse().unwrap())
    );
    assert_eq!(login_ip_key("::ffff:10.0.0.9".parse().unwrap()), "10.0.0.9");
}

/// The per-user count follows the account the name finds, not the spelling: failures against
/// `vera` do not lock out a different account `Vera` (a lower-cased key shared them), and on
/// databases whose collation folds spellings together they share one count.
#[tokio::test]
async fn login_failures_count_per_account() {
    let s = setup().await;
    let (admin, _, _) = admin_and_viewer(&s.app).await;
    let (st, v) = call(
        &s.app,
        "POST",
        "/api/v1/config/users",
        Some(&admin),
        Some(json!({"username": "Vera", "password": "other-temp-1", "role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    for i in 0..5u8 {
        let (st, _, _) = call_full(
            &s.app,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "vera", "password": "wrong"})),
            [10, 1, 0, i],
        )
        .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, _, _) = call_full(
        &s.app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "vera", "password": "viewer-final-1"})),
        [10, 1, 0, 9],
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "vera is throttled");
    let (st, _, v) = call_full(
        &s.app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "Vera", "password": "other-temp-1"})),
        [10, 1, 0, 10],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "Vera is another account: {v}");
}

#[tokio::test]
async fn bad_inputs_are_400_with_the_stable_shape() {
    let s = setup().await;
    let (admin, _, _) = admin_and_viewer(&s.app).await;
    let long = "x".repeat(600);
    for uri in [
        "/api/v1/logs?limit=0".to_owned(),
        "/api/v1/logs?limit=1001".to_owned(),
        "/api/v1/logs?offset=-1".to_owned(),
        "/api/v1/logs?limit=abc".to_owned(),
        "/api/v1/logs?unknown=1".to_owned(),
        format!("/api/v1/logs?search={long}"),
        "/api/v1/logs?start_time=yesterday".to_owned(),
        "/api/v1/logs?start_time=%201700000000".to_owned(),
        "/api/v1/logs?start_time=%2B1700000000".to_owned(),
        format!("/api/v1/logs?search={}", "w%20".repeat(17)),
        format!("/api/v1/logs/histogram?search={}", "x".repeat(257)),
        format!("/api/v1/logs?search=ok%20{}", "y".repeat(65)),
        "/api/v1/bounty?search=%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20%20".to_owned(),
        "/api/v1/logs/histogram?interval_minutes=0".to_owned(),
        "/api/v1/attackers?sort_by=evil".to_owned(),
        "/api/v1/attackers/not%20a%20uuid".to_owned(),
        "/api/v1/artifacts/web01/..".to_owned(),
        "/api/v1/artifacts/web01/.hidden".to_owned(),
    ] {
        let (st, v) = call(&s.app, "GET", &uri, Some(&admin), None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert_eq!(v["error"]["code"], "bad_request", "{uri}");
        assert!(v["error"]["message"].is_string());
    }
    for (m, uri, body) in [
        (
            "PUT",
            "/api/v1/config/deployment-limit",
            json!({"deployment_limit": 0}),
        ),
        (
            "PUT",
            "/api/v1/config/deployment-limit",
            json!({"deployment_limit": "10"}),
        ),
        (
            "PUT",
            "/api/v1/config/deployment-limit",
            json!({"deployment_limit": 10.5}),
        ),
        (
            "PUT",
            "/api/v1/config/global-mutation-interval",
            json!({"global_mutation_interval": "soon"}),
        ),
        (
            "POST",
            "/api/v1/config/users",
            json!({"username": "", "password": "longenough", "role": "viewer"}),
        ),
        (
            "POST",
            "/api/v1/config/users",
            json!({"username": "x", "password": "short", "role": "viewer"}),
        ),
        (
            "POST",
            "/api/v1/config/users",
            json!({"username": "x", "password": "longenough", "role": "root"}),
        ),
        ("POST", "/api/v1/deckies/BAD_NAME/mutate", json!({})),
        (
            "POST",
            "/api/v1/auth/login",
            json!({"username": "a", "password": "b", "extra": 1}),
        ),
    ] {
        let (st, v) = call(&s.app, m, uri, Some(&admin), Some(body)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{m} {uri}: {v}");
    }
    let (st, v) = call(
        &s.app,
        "POST",
        "/api/v1/deckies/deploy",
        Some(&admin),
        Some(json!({"ini_content": "no sections"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    // Mutating a decky the fleet does not know is a 404 (before "not implemented").
    let (st, v) = call(
        &s.app,
        "POST",
        "/api/v1/deckies/web01/mutate",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = call(
        &s.app,
        "PUT",
        "/api/v1/deckies/web01/mutate-interval",
        Some(&admin),
        Some(json!({"mutate_interval": "30m"})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // An admin's own password goes through change-password, not reset.
    let (_, me) = call(&s.app, "GET", "/api/v1/auth/me", Some(&admin), None).await;
    let (st, v) = call(
        &s.app,
        "PUT",
        &format!(
            "/api/v1/config/users/{}/reset-password",
            me["uuid"].as_str().unwrap()
        ),
        Some(&admin),
        Some(json!({"new_password": "whatever-long"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
}

/// A histogram answers with at most 10,000 buckets: more is a 400 that says what to change.
#[tokio::test]
async fn a_histogram_of_too_many_buckets_is_refused() {
    let s = setup().await;
    let (_, viewer, _) = admin_and_viewer(&s.app).await;
    let rows: Vec<(u64, Event)> = (0..10_001u64)
        .map(|i| {
            (
                i,
                event(1_700_000_000 + i as i64 * 60, "web01", "10.0.0.5", "probe"),
            )
        })
        .collect();
    s.state.repo.insert_segment(1, &rows).await.unwrap();
    let uri = "/api/v1/logs/histogram?interval_minutes=1";
    let (st, v) = call(&s.app, "GET", uri, Some(&viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer interval"),
        "{v}"
    );
    let uri = "/api/v1/logs/histogram?interval_minutes=2";
    let (st, v) = call(&s.app, "GET", uri, Some(&viewer), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 5_001);
}

#[tokio::test]
async fn logs_histogram_stats_attackers_and_bounties_read_the_repository() {
    let s = setup().await;
    let (admin, viewer, _) = admin_and_viewer(&s.app).await;
    let rows: Vec<(u64, Event)> = (0..30u64)
        .map(|i| {
            (
                i,
                event(
                    1_700_000_000 + i as i64 * 60,
                    if i % 2 == 0 { "web01" } else { "db01" },
                    "10.0.0.5",
                    "auth_attempt",
                ),
            )
        })
        .collect();
    s.state.repo.insert_segment(1, &rows).await.unwrap();
    let (st, v) = call(
        &s.app,
        "GET",
        "/api/v1/logs?limit=5&search=decky:web01",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 15);
    assert_eq!(v["data"].as_array().unwrap().len(), 5);
    assert_eq!(v["data"][0]["fields"]["username"], "root");
    assert_eq!(v["data"][0]["attacker_ip"], "10.0.0.5");
    let (st, v) = call(
        &s.app,
        "GET",
        "/api/v1/logs?start_time=1700000600&end_time=2023-11-14T22:33:20Z",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 10);
    let (st, v) = call(
        &s.app,
        "GET",
        "/api/v1/logs/histogram?interval_minutes=10",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let sum: i64 = v
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 30);
    let (_, v) = call(&s.app, "GET", "/api/v1/stats", Some(&viewer), None).await;
    assert_eq!(v["total_logs"], 30);
    assert_eq!(v["unique_attackers"], 1);
    let a = Attacker {
        decky_count: 2,
        services: "[\"ssh\"]".into(),
        deckies: "[\"web01\",\"db01\"]".into(),
        commands: "[{\"service\":\"ssh\",\"decky\":\"web01\",\"command\":\"uname -a\"},{\"service\":\"telnet\",\"command\":\"id\"}]".into(),
        traversal_path: "[\"web01\",\"db01\"]".into(),
        is_traversal: true,
        score: 5,
        ..attacker("10.0.0.5", 30)
    };
    let uuid = s.state.repo.upsert_attacker(&a).await.unwrap();
    let (st, v) = call(
        &s.app,
        "GET",
        "/api/v1/attackers?search=10.0&sort_by=active",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1);
    let (st, v) = call(
        &s.app,
        "GET",
        &format!("/api/v1/attackers/{uuid}"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["timeline"].as_array().unwrap().len(), 30);
    let (_, v) = call(
        &s.app,
        "GET",
        &format!("/api/v1/attackers/{uuid}/commands?service=ssh"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["data"][0]["command"], "uname -a");
    let (st, _) = call(
        &s.app,
        "GET",
        "/api/v1/attackers/00000000-0000-0000-0000-000000000000",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = call(
        &s.app,
        "GET",
        "/api/v1/bounty?bounty_type=credential",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 0);
}

#[tokio::test]
async fn read_answers_are_served_from_memory_for_at_most_cache_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let repo = SqlRepository::connect(&url).await.unwrap();
    let mut config = WebConfig::new(dir.path().join("artifacts"));
    config.cache_fresh = Duration::from_millis(1500);
    let state = AppState::new(repo, &[7u8; 32], config).await.unwrap();
    state
        .bootstrap_admin("admin", Some(ADMIN_PW))
        .await
        .unwrap();
    let app = router(state.clone());
    let (_, viewer, _) = admin_and_viewer(&app).await;
    let routes = [
        "/api/v1/stats",
        "/api/v1/logs",
        "/api/v1/logs/histogram",
        "/api/v1/attackers",
    ];
    let totals = |v: &[Value]| {
        let histogram: i64 = v[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum();
        [
            v[0]["total_logs"].as_i64().unwrap(),
            v[1]["total"].as_i64().unwrap(),
            histogram,
            v[3]["total"].as_i64().unwrap(),
        ]
    };
    let mut before = Vec::new();
    for r in routes {
        before.push(call(&app, "GET", r, Some(&viewer), None).await.1);
    }
    assert_eq!(totals(&before), [0, 0, 0, 0]);
    let rows: Vec<(u64, Event)> = (0..3u64)
        .map(|i| (i, event(1_700_000_000, "web01", "10.0.0.9", "auth_attempt")))
        .collect();
    state.repo.insert_segment(1, &rows).await.unwrap();
    let a = attacker("10.0.0.9", 3);
    state.repo.upsert_attacker(&a).await.unwrap();
    // Within the window the answers come from memory (the bound the docs state)...
    let mut cached = Vec::new();
    for r in routes {
        cached.push(call(&app, "GET", r, Some(&viewer), None).await.1);
    }
    assert_eq!(totals(&cached), [0, 0, 0, 0]);
    // ...and once it has passed, the next request reads the new rows.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut after = Vec::new();
    for r in routes {
        after.push(call(&app, "GET", r, Some(&viewer), None).await.1);
    }
    assert_eq!(totals(&after), [3, 3, 3, 1]);
}

#[tokio::test]
async fn user_management_rules() {
    let s = setup().await;
    let (admin, viewer, viewer_uuid) = admin_and_viewer(&s.app).await;
    let (_, me) = call(&s.app, "GET", "/api/v1/auth/me", Some(&admin), None).await;
    let admin_uuid = me["uuid"].as_str().unwrap().to_owned();
    let (st, _) = call(
        &s.app,
        "POST",
        "/api/v1/config/users",
        Some(&admin),
        Some(json!({"username": "vera", "password": "whatever-1", "role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = call(
        &s.app,
        "DELETE",
        &format!("/api/v1/config/users/{admin_uuid}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = call(
        &s.app,
        "PUT",
        &format!("/api/v1/config/users/{admin_uuid}/role"),
        Some(&admin),
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Promote the viewer: the change applies to its existing token at once.
    let (st, _) = call(
        &s.app,
        "PUT",
        &format!("/api/v1/config/users/{viewer_uuid}/role"),
        Some(&admin),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = call(&s.app, "GET", "/api/v1/config", Some(&viewer), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["role"], "admin");
    assert_eq!(v["users"].as_array().unwrap().len(), 2);
    // A reset forces a change again.
    let (st, _) = call(
        &s.app,
        "PUT",
        &format!("/api/v1/config/users/{viewer_uuid}/reset-password"),
        Some(&admin),
        Some(json!({"new_password": "temporary-2"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(&s.app, "GET", "/api/v1/stats", Some(&viewer), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call(
        &s.app,
        "DELETE",
        &format!("/api/v1/config/users/{viewer_uuid}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = call(&s.app, "GET", "/api/v1/auth/me", Some(&viewer), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Settings round trip.
    let (st, _) = call(
        &s.app,
        "PUT",
        "/api/v1/config/deployment-limit",
        Some(&admin),
        Some(json!({"deployment_limit": 42})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = call(&s.app, "GET", "/api/v1/config", Some(&admin), None).await;
    assert_eq!(v["deployment_limit"], 42);
}

async fn next_frame(body: &mut Body) -> String {
    let mut text = String::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("frame within 5 s")
            .expect("stream open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
            if text.ends_with("\n\n") {
                return text;
            }
        }
    }
}

async fn open_stream(s: &Setup, token: &str, last_event_id: Option<&str>) -> (StatusCode, Body) {
    let (_, t) = call(&s.app, "POST", "/api/v1/auth/ticket", Some(token), None).await;
    let ticket = t["ticket"].as_str().unwrap();
    let mut req = Request::get(format!("/api/v1/stream?ticket={ticket}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = s
        .app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    // The ticket is single use.
    let again = s
        .app
        .clone()
        .oneshot(
            Request::get(format!("/api/v1/stream?ticket={ticket}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    (status, resp.into_body())
}

#[tokio::test]
async fn stream_resumes_from_last_event_id_then_goes_live() {
    let s = setup().await;
    let (_, viewer, _) = admin_and_viewer(&s.app).await;
    let rows: Vec<(u64, Event)> = (0..5u64)
        .map(|i| {
            (
                i,
                event(1_700_000_000 + i as i64, "web01", "10.0.0.9", "connect"),
            )
        })
        .collect();
    s.state.repo.insert_segment(1, &rows).await.unwrap();
    let feeder = tokio::spawn(crate::run_feeder(s.state.clone()));
    while s.state.live.cursor() < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (st, mut body) = open_stream(&s, &viewer, Some("2")).await;
    assert_eq!(st, StatusCode::OK);
    let frame = next_frame(&mut body).await;
    assert!(frame.contains("event: logs"), "{frame}");
    assert!(frame.contains("id: 5"), "{frame}");
    let data: Value = serde_json::from_str(
        frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    let ids: Vec<i64> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![3, 4, 5]);
    // A newly flushed event arrives through the broadcast.
    s.state
        .repo
        .insert_segment(
            2,
            &[(0, event(1_700_000_100, "db01", "10.0.0.10", "login"))],
        )
        .await
        .unwrap();
    let mut frame = next_frame(&mut body).await;
    while !frame.contains("event: logs") {
        frame = next_frame(&mut body).await;
    }
    assert!(frame.contains("id: 6"), "{frame}");
    // The feeder's once-serialized events make one JSON array, as the backfill's do.
    let live: Value = serde_json::from_str(
        frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(live[0]["id"], 6, "{live}");
    assert_eq!(live[0]["attacker_ip"], "10.0.0.10", "{live}");
    feeder.abort();
}

#[tokio::test]
async fn stream_refuses_must_change_users_and_bad_resume_ids() {
    let s = setup().await;
    let (t, _) = login(&s.app, "admin", ADMIN_PW).await;
    let (st, v) = call(&s.app, "POST", "/api/v1/auth/ticket", Some(&t), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (admin, _, _) = admin_and_viewer(&s.app).await;
    let (_, tk) = call(&s.app, "POST", "/api/v1/auth/ticket", Some(&admin), None).await;
    let req = Request::get(format!(
        "/api/v1/stream?ticket={}",
        tk["ticket"].as_str().unwrap()
    ))
    .header("last-event-id", "abc")
    .body(Body::empty())
    .unwrap();
    assert_eq!(
        s.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn live_filter_matches_like_the_repository() {
    use decnet_store::repo::parse_search;
    let e = event(1, "web01", "10.0.0.5", "auth_attempt");
    let m = |q: &str| crate::stream::matches(&parse_search(q).unwrap(), &e);
    assert!(m("decky:web01 attacker:10.0.0.5"));
    assert!(m("username:root"));
    assert!(m("ROO"));
    assert!(!m("decky:db01"));
    assert!(!m("username:admin"));
}

#[tokio::test]
async fn dashboard_and_openapi_are_served() {
    let s = setup().await;
    let (st, _, v) = call_full(&s.app, "GET", "/", None, None, [127, 0, 0, 1]).await;
    assert_eq!(st, StatusCode::OK);
    let html = v.as_str().unwrap();
    assert!(html.contains("/assets/app.js"));
    // No external origins anywhere in the page or its assets.
    for uri in ["/", "/assets/app.js", "/assets/app.css"] {
        let (st, headers, v) = call_full(&s.app, "GET", uri, None, None, [127, 0, 0, 1]).await;
        assert_eq!(st, StatusCode::OK);
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let text = v
            .as_str()
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("https://") && !text.contains("http://"),
            "{uri}"
        );
        assert!(!text.to_lowercase().contains("honeypot"), "{uri}");
    }
    let (st, v) = call(&s.app, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["openapi"], "3.1.0");
    let paths = v["paths"].as_object().unwrap();
    for (method, path, _, _) in ROUTES {
        assert!(
            paths[&format!("/api/v1{path}")][*method].is_object(),
            "{method} {path}"
        );
    }
}

/// The dashboard script must at least parse: a syntax error leaves the page on "Loading…"
/// with no Rust test noticing. Runs where Node is installed (the CI machine has it).
#[test]
fn dashboard_script_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/assets/app.js");
    match std::process::Command::new("node")
        .arg("--check")
        .arg(path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("node not available ({e}); skipping the script syntax check"),
    }
}

/// An Ethernet/IPv4/UDP frame from `src` to `dst`.
fn udp_frame(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + 4];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&32u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f[38..40].copy_from_slice(&12u16.to_be_bytes());
    f
}

/// GET `uri` and return the status, headers and raw body.
async fn get_raw(
    app: &Router,
    uri: &str,
    token: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

/// `(ts_ns, frame)` of every packet of a pcap or pcapng.
fn pcap_records(bytes: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut r = decnet_dataplane::pcapfile::PcapReader::new(bytes).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push((rec.ts_ns, rec.data.to_vec()));
    }
    out
}

#[tokio::test]
async fn attacker_pcap_exports_retained_packets_per_attacker_and_session() {
    use decnet_dataplane::retention::{PcapRing, RetentionConfig};
    use decnet_store::repo::{IntelCommit, SessionRow};
    let s = setup().await;
    let (admin, viewer, _) = admin_and_viewer(&s.app).await;
    let a = Attacker {
        services: "[\"ssh\"]".into(),
        deckies: "[\"web01\"]".into(),
        ..attacker("192.0.2.7", 1)
    };
    let uuid = s.state.repo.upsert_attacker(&a).await.unwrap();
    let uri = format!("/api/v1/attackers/{uuid}/pcap");

    // Nothing retained yet (no pcaps directory at all): a valid pcapng without packets.
    let (st, h, body) = get_raw(&s.app, &uri, &viewer).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["content-type"], "application/x-pcapng");
    assert_eq!(&body[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
    assert!(pcap_records(&body).is_empty());

    let attacker = [192, 0, 2, 7];
    let decky = [10, 0, 0, 5];
    let other = [198, 51, 100, 9];
    let mut ring = PcapRing::new(RetentionConfig {
        dir: s.state.config.pcaps_dir.clone(),
        segment_bytes: 200,
        max_bytes: 1 << 20,
        queue: 0,
    })
    .unwrap();
    let frames = [
        (1_000, udp_frame(attacker, decky)),
        (1_500, udp_frame(other, decky)),
        (2_000, udp_frame(decky, attacker)),
        (3_000, udp_frame(attacker, decky)),
    ];
    for (ts, f) in &frames {
        ring.write(*ts, f).unwrap();
    }
    ring.seal().unwrap();

    let want: Vec<(i64, Vec<u8>)> = [0, 2, 3].iter().map(|&i| frames[i].clone()).collect();
    for token in [&viewer, &admin] {
        let (st, h, body) = get_raw(&s.app, &uri, token).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            h["content-disposition"],
            "attachment; filename=\"attacker-192.0.2.7.pcapng\""
        );
        assert_eq!(pcap_records(&body), want);
    }

    // A session narrows the export to its time range.
    let session = SessionRow {
        id: "s-42".into(),
        attacker_ip: "192.0.2.7".into(),
        decky: "web01".into(),
        service: "ssh".into(),
        dst_port: Some(22),
        start_ns: 1_500,
        end_ns: 2_500,
        event_count: 1,
        flow_count: 1,
        commands: "[]".into(),
        credentials: "[]".into(),
        auth_success: false,
        closed: true,
    };
    s.state
        .repo
        .commit_intel(&IntelCommit {
            sessions: vec![session],
            ..IntelCommit::default()
        })
        .await
        .unwrap();
    let (st, h, body) = get_raw(&s.app, &format!("{uri}?session=s-42"), &viewer).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"attacker-192.0.2.7-session-s-42.pcapng\""
    );
    assert_eq!(pcap_records(&body), vec![frames[2].clone()]);

    // Unknown session, unknown attacker, malformed uuid, unknown parameter.
    let (st, v) = call(
        &s.app,
        "GET",
        &format!("{uri}?session=nope"),
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
    let (st, v) = call(
        &s.app,
        "GET",
        "/api/v1/attackers/00000000-0000-0000-0000-000000000000/pcap",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, _) = call(
        &s.app,
        "GET",
        "/api/v1/attackers/x%20y/pcap",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = call(&s.app, "GET", &format!("{uri}?from=1"), Some(&viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Anonymous: 401 like every attacker route.
    let (st, _) = call(&s.app, "GET", &uri, None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_include_registered_sources() {
    struct Sniffer;
    impl crate::MetricsSource for Sniffer {
        fn render(&self, out: &mut String) {
            out.push_str("decnet_component_received_packets_total{component=\"sniffer\"} 12\n");
        }
    }
    let s = setup().await;
    let (_, viewer, _) = admin_and_viewer(&s.app).await;
    s.state.config.metrics.add(std::sync::Arc::new(Sniffer));
    let (st, v) = call(&s.app, "GET", "/metrics", Some(&viewer), None).await;
    assert_eq!(st, StatusCode::OK);
    let text = v.as_str().unwrap();
    assert!(
        text.contains(
            "# TYPE decnet_component_received_packets_total counter\ndecnet_component_received_packets_total{component=\"sniffer\"} 12\n"
        ),
        "{text}"
    );
    // Event counts are cached until the next event; bounties (added by the profiler without
    // new events) are counted again whenever one is added or removed.
    let rows: Vec<(u64, Event)> = (0..3u64)
        .map(|i| (i, event(1_700_000_000, "web01", "10.0.0.9", "auth_attempt")))
        .collect();
    s.state.repo.insert_segment(1, &rows).await.unwrap();
    for (n, user) in ["root", "admin"].iter().enumerate() {
        let bounty = decnet_store::repo::NewBounty {
            ts_ns: 1,
            decky: "web01".into(),
            service: "ssh".into(),
            attacker_ip: "10.0.0.9".into(),
            bounty_type: "credential".into(),
            payload: format!(r#"{{"username":"{user}","password":"x"}}"#),
        };
        assert!(s.state.repo.add_bounty(&bounty).await.unwrap());
        let (_, v) = call(&s.app, "GET", "/metrics", Some(&viewer), None).await;
        let text = v.as_str().unwrap();
        assert!(text.contains("\ndecnet_events 3\n"), "{text}");
        assert!(
            text.contains(&format!("\ndecnet_bounties {}\n", n + 1)),
            "{text}"
        );
    }
    // Retention removes the oldest bounties without adding one: the count follows.
    s.state.repo.delete_events_before(2).await.unwrap();
    let (_, v) = call(&s.app, "GET", "/metrics", Some(&viewer), None).await;
    let text = v.as_str().unwrap();
    assert!(text.contains("\ndecnet_bounties 0\n"), "{text}");
}

#[tokio::test]
async fn heavy_pages_go_gzipped_to_clients_that_take_gzip_and_plain_to_the_rest() {
    let s = setup().await;
    let (_, viewer, _) = admin_and_viewer(&s.app).await;
    let rows: Vec<(u64, Event)> = (0..40u64)
        .map(|i| (i, event(1_700_000_000, "web01", "10.0.0.9", "auth_attempt")))
        .collect();
    s.state.repo.insert_segment(1, &rows).await.unwrap();
    let get = |encoding: Option<&'static str>| {
        let mut req = Request::builder()
            .uri("/api/v1/logs")
            .header("authorization", format!("Bearer {viewer}"));
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let app = s.app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let headers = resp.headers().clone();
            (
                headers,
                resp.into_body().collect().await.unwrap().to_bytes(),
            )
        }
    };
    let (plain_headers, plain) = get(None).await;
    assert!(plain_headers.get("content-encoding").is_none());
    assert_eq!(plain_headers["vary"], "accept-encoding");
    let page: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(page["total"], 40);

    let (headers, zipped) = get(Some("gzip, deflate, br")).await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(
        zipped.len() < plain.len() / 2,
        "{} vs {}",
        zipped.len(),
        plain.len()
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);

    let (refused, body) = get(Some("gzip;q=0")).await;
    assert!(refused.get("content-encoding").is_none());
    assert_eq!(body, plain);
}

/// A fleet engine stand-in that records what the API asked of it and answers as told.
#[derive(Default)]
struct RecordingFleet {
    calls: std::sync::Mutex<Vec<String>>,
    /// Error to answer with instead of success.
    fail: std::sync::Mutex<Option<crate::FleetFailure>>,
}

impl RecordingFleet {
    fn answer(&self, call: String, ok: Value) -> crate::FleetFuture {
        self.calls.lock().unwrap().push(call);
        let out = match self.fail.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(ok),
        };
        Box::pin(std::future::ready(out))
    }
}

impl crate::FleetControl for RecordingFleet {
    fn deploy(&self, ini: String) -> crate::FleetFuture {
        self.answer(format!("deploy {}", ini.len()), json!({"deckies": 1}))
    }
    fn mutate(&self, decky: String) -> crate::FleetFuture {
        self.answer(
            format!("mutate {decky}"),
            json!({"decky": decky, "before": ["ssh"], "after": ["ftp"], "changed": true}),
        )
    }
    fn set_mutate_interval(&self, decky: String, minutes: Option<u32>) -> crate::FleetFuture {
        self.answer(
            format!("interval {decky} {minutes:?}"),
            json!({"name": decky, "mutate_interval_minutes": minutes}),
        )
    }
}

#[tokio::test]
async fn mutate_routes_reach_the_fleet_engine_for_admins_only() {
    let fleet = std::sync::Arc::new(RecordingFleet::default());
    let s = setup_with(Some(fleet.clone())).await;
    let (admin, viewer, _) = admin_and_viewer(&s.app).await;
    s.state
        .repo
        .upsert_decky(&decnet_store::repo::DeckyRecord {
            name: "web01".into(),
            spec: "{}".into(),
            state: "running".into(),
            last_error: None,
            updated_ns: 1,
        })
        .await
        .unwrap();
    let mutate = "/api/v1/deckies/web01/mutate";
    let interval = "/api/v1/deckies/web01/mutate-interval";
    let (st, _) = call(&s.app, "POST", mutate, Some(&viewer), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call(
        &s.app,
        "PUT",
        interval,
        Some(&viewer),
        Some(json!({"mutate_interval": "5m"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = call(&s.app, "POST", mutate, Some(&admin), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["after"], json!(["ftp"]));
    for (body, minutes) in [
        (json!({"mutate_interval": "2d"}), "Some(2880)"),
        (json!({"mutate_interval": "45m"}), "Some(45)"),
        (json!({"mutate_interval": "never"}), "Some(0)"),
        (json!({"mutate_interval": null}), "None"),
        (json!({}), "None"),
    ] {
        let (st, v) = call(&s.app, "PUT", interval, Some(&admin), Some(body.clone())).await;
        assert_eq!(st, StatusCode::OK, "{body}: {v}");
        assert_eq!(
            fleet.calls.lock().unwrap().last().unwrap(),
            &format!("interval web01 {minutes}")
        );
    }
    let before = fleet.calls.lock().unwrap().len();
    for bad in ["0m", "30", "30s", "1000000m", "", "Never", "0"] {
        let (st, v) = call(
            &s.app,
            "PUT",
            interval,
            Some(&admin),
            Some(json!({"mutate_interval": bad})),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
    }
    // Unknown deckies never reach the engine.
    let (st, _) = call(
        &s.app,
        "POST",
        "/api/v1/deckies/db01/mutate",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(fleet.calls.lock().unwrap().len(), before);
    // The engine's refusals keep their meaning.
    for (failure, want) in [
        (
            crate::FleetFailure::Busy("fleet busy".into()),
            StatusCode::CONFLICT,
        ),
        (
            crate::FleetFailure::NotFound("gone".into()),
            StatusCode::NOT_FOUND,
        ),
        (
            crate::FleetFailure::Failed("docker died".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ] {
        let message = failure.to_string();
        *fleet.fail.lock().unwrap() = Some(failure);
        let (st, v) = call(&s.app, "POST", mutate, Some(&admin), None).await;
        assert_eq!(st, want, "{v}");
        let said = v["error"]["message"].as_str().unwrap();
        assert!(said.ends_with(&message), "{v}");
    }
    assert_eq!(
        fleet
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("mutate web01"))
            .count(),
        4
    );
}

#[tokio::test]
async fn mutate_routes_without_a_fleet_engine_say_so() {
    let s = setup().await;
    let (admin, _, _) = admin_and_viewer(&s.app).await;
    s.state
        .repo
        .upsert_decky(&decnet_store::repo::DeckyRecord {
            name: "web01".into(),
            spec: "{}".into(),
            state: "running".into(),
            last_error: None,
            updated_ns: 1,
        })
        .await
        .unwrap();
    let (st, v) = call(
        &s.app,
        "POST",
        "/api/v1/deckies/web01/mutate",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_IMPLEMENTED, "{v}");
    assert!(v.to_string().contains("decnet mutate"), "{v}");
}
