//! The OpenAPI 3.1 document, generated from one route table (kept beside the router; a test
//! checks every table entry is routed and authenticated as stated).

use axum::Json;
use serde_json::{Map, Value, json};

use crate::auth::{MAX_PASSWORD, MIN_PASSWORD};

/// `(method, path under /api/v1, role, summary)`; role is `none`, `token` (any valid token,
/// even before the forced password change), `viewer` or `admin`.
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    (
        "post",
        "/auth/login",
        "none",
        "Log in; returns a bearer token",
    ),
    (
        "post",
        "/auth/change-password",
        "token",
        "Change own password (clears the forced change)",
    ),
    (
        "post",
        "/auth/logout",
        "token",
        "Revoke the presented token",
    ),
    ("get", "/auth/me", "token", "The current user"),
    (
        "post",
        "/auth/ticket",
        "viewer",
        "A single-use 30 s ticket for the live stream",
    ),
    (
        "get",
        "/logs",
        "viewer",
        "Events matching the search grammar, newest first",
    ),
    (
        "get",
        "/logs/histogram",
        "viewer",
        "Event counts per interval",
    ),
    (
        "get",
        "/bounty",
        "viewer",
        "Captured credentials, fingerprints and artifacts",
    ),
    ("get", "/stats", "viewer", "Dashboard totals"),
    ("get", "/deckies", "viewer", "The fleet"),
    (
        "post",
        "/deckies/deploy",
        "admin",
        "Deploy from INI (fleet engine)",
    ),
    (
        "post",
        "/deckies/{name}/mutate",
        "admin",
        "Mutate a decky now (fleet engine)",
    ),
    (
        "put",
        "/deckies/{name}/mutate-interval",
        "admin",
        "Set a decky's mutation interval",
    ),
    ("get", "/attackers", "viewer", "Attacker profiles"),
    (
        "get",
        "/attackers/{uuid}",
        "viewer",
        "One attacker with timeline and bounties",
    ),
    (
        "get",
        "/attackers/{uuid}/commands",
        "viewer",
        "Commands an attacker ran",
    ),
    (
        "get",
        "/attackers/{uuid}/artifacts",
        "viewer",
        "Files an attacker left",
    ),
    (
        "get",
        "/attackers/{uuid}/sessions",
        "viewer",
        "An attacker's sessions",
    ),
    (
        "get",
        "/attackers/{uuid}/pcap",
        "viewer",
        "An attacker's retained packets as pcapng (?session= narrows to one session)",
    ),
    (
        "get",
        "/artifacts/{decky}/{stored_as}",
        "admin",
        "Download a captured file",
    ),
    (
        "get",
        "/config",
        "viewer",
        "Settings (admins also get users)",
    ),
    (
        "put",
        "/config/deployment-limit",
        "admin",
        "Set the deployment limit",
    ),
    (
        "put",
        "/config/global-mutation-interval",
        "admin",
        "Set the global mutation interval",
    ),
    ("post", "/config/users", "admin", "Create a user"),
    ("delete", "/config/users/{uuid}", "admin", "Delete a user"),
    (
        "put",
        "/config/users/{uuid}/role",
        "admin",
        "Change a user's role",
    ),
    (
        "put",
        "/config/users/{uuid}/reset-password",
        "admin",
        "Reset a user's password",
    ),
    (
        "delete",
        "/config/reinit",
        "admin",
        "Purge events, bounties and attackers (developer mode)",
    ),
    ("get", "/health", "viewer", "Component health"),
    (
        "get",
        "/stream",
        "ticket",
        "Server-sent events: logs, stats, lagged",
    ),
    ("get", "/openapi.json", "none", "This document"),
];

/// Unicode `White_Space` as Rust's `char::is_whitespace` sees it, as a regex class body.
const WS: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The log search grammar's limits as a pattern: at most [`crate::routes::MAX_SEARCH_WORDS`]
/// whitespace-separated words (quotes only ever merge words, so the parser sees no more).
fn search_schema() -> Value {
    let words = crate::routes::MAX_SEARCH_WORDS - 1;
    let chars = crate::routes::MAX_SEARCH_WORD_CHARS;
    json!({"type": "string", "maxLength": crate::routes::MAX_SEARCH_CHARS,
           "pattern": format!("^[{WS}]*(?:[^{WS}]{{1,{chars}}}[{WS}]+){{0,{words}}}(?:[^{WS}]{{1,{chars}}}[{WS}]*)?$"),
           "description": format!("Search grammar: `key:value` tokens and words (each at most {chars} characters), all must match")})
}

/// A time bound: Unix seconds or RFC 3339; empty means unbounded.
fn time_schema() -> Value {
    json!({"type": "string",
           "anyOf": [{"pattern": "^(?:-?[0-9]{1,10})?$"}, {"format": "date-time"}],
           "description": "Unix seconds or RFC 3339 date-time"})
}

const INTERVAL_PATTERN: &str = decnet_fleet::mutate::INTERVAL_PATTERN;

fn query(name: &str, schema: Value) -> Value {
    let mut p = json!({"name": name, "in": "query", "required": false});
    p["schema"] = schema;
    p
}

fn int(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn text(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max})
}

fn page_params(max: i64) -> Vec<Value> {
    vec![
        query("limit", int(1, max)),
        query("offset", int(0, 1_000_000_000)),
    ]
}

/// A closed JSON object: exactly these properties, the `required` ones present.
fn object(props: Value, required: &[&str]) -> Value {
    let mut o = json!({"type": "object", "required": required, "additionalProperties": false});
    o["properties"] = props;
    o
}

fn path_schema(name: &str) -> Value {
    match name {
        // routes::check_decky_name
        "name" => json!({"type": "string", "pattern": "^[a-z0-9-]{1,64}$"}),
        // routes::check_uuid
        "uuid" => json!({"type": "string", "pattern": "^[0-9A-Fa-f-]{1,64}$"}),
        // routes::safe_segment
        "decky" => json!({"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"}),
        "stored_as" => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$"})
        }
        _ => json!({"type": "string"}),
    }
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": path_schema(name)}))
        .collect()
}

/// What one operation takes beyond its path: query parameters, the JSON body (always
/// required when there is one: the handlers insist on `Content-Type: application/json`),
/// and the statuses it answers besides the ones its role implies.
struct Shape {
    query: Vec<Value>,
    body: Option<Value>,
    statuses: &'static [u16],
}

fn shape(method: &str, path: &str) -> Shape {
    let pw = || text(MIN_PASSWORD, MAX_PASSWORD);
    let (query, body, statuses): (Vec<Value>, Option<Value>, &'static [u16]) = match (method, path)
    {
        ("post", "/auth/login") => (
            vec![],
            Some(object(
                json!({"username": text(1, 64), "password": text(1, MAX_PASSWORD)}),
                &["username", "password"],
            )),
            &[200, 401, 429, 503],
        ),
        ("post", "/auth/change-password") => (
            vec![],
            Some(object(
                json!({"old_password": text(1, MAX_PASSWORD), "new_password": pw()}),
                &["old_password", "new_password"],
            )),
            &[200, 503],
        ),
        ("post", "/auth/logout") => (vec![], None, &[204]),
        ("get", "/logs") => {
            let mut q = page_params(1000);
            q.extend([
                query("search", search_schema()),
                query("start_time", time_schema()),
                query("end_time", time_schema()),
            ]);
            (q, None, &[200, 400, 503])
        }
        ("get", "/logs/histogram") => (
            vec![
                query("interval_minutes", int(1, 10_080)),
                query("search", search_schema()),
                query("start_time", time_schema()),
                query("end_time", time_schema()),
            ],
            None,
            &[200, 400, 503],
        ),
        ("get", "/bounty") => {
            let mut q = page_params(1000);
            q.extend([
                query("bounty_type", text(0, 64)),
                query("search", text(0, 64)),
            ]);
            (q, None, &[200, 400])
        }
        ("post", "/deckies/deploy") => (
            vec![],
            Some(object(
                json!({"ini_content": {"type": "string", "maxLength": 512 * 1024,
                        "description": "INI text with at least one [section]; at most 512 KiB"}}),
                &["ini_content"],
            )),
            &[200, 409, 500, 501],
        ),
        ("post", "/deckies/{name}/mutate") => (vec![], None, &[200, 404, 409, 500, 501]),
        ("put", "/deckies/{name}/mutate-interval") => (
            vec![],
            Some(object(
                json!({"mutate_interval": {"type": ["string", "null"], "pattern": INTERVAL_PATTERN,
                        "description": "the decky's own interval, e.g. 30m; null follows the global interval"}}),
                &[],
            )),
            &[200, 404, 409, 500, 501],
        ),
        ("get", "/attackers") => {
            let mut q = page_params(1000);
            q.extend([
                query("search", text(0, 64)),
                query("service", text(0, 64)),
                query(
                    "sort_by",
                    json!({"type": "string", "enum": ["recent", "last_seen", "active", "events",
                                                      "first_seen", "score", "traversals"]}),
                ),
            ]);
            (q, None, &[200, 400])
        }
        ("get", "/attackers/{uuid}/commands") => {
            let mut q = page_params(200);
            q.push(query("service", json!({"type": "string"})));
            (q, None, &[200, 404])
        }
        ("get", "/attackers/{uuid}/pcap") => (
            vec![query("session", text(1, 128))],
            None,
            &[200, 400, 404, 500, 503],
        ),
        ("get", p) if p.starts_with("/attackers/{uuid}") => (vec![], None, &[200, 404]),
        ("get", "/artifacts/{decky}/{stored_as}") => (vec![], None, &[200, 404]),
        ("put", "/config/deployment-limit") => (
            vec![],
            Some(object(
                json!({"deployment_limit": int(1, 500)}),
                &["deployment_limit"],
            )),
            &[200],
        ),
        ("put", "/config/global-mutation-interval") => (
            vec![],
            Some(object(
                json!({"global_mutation_interval": {"type": "string", "pattern": INTERVAL_PATTERN}}),
                &["global_mutation_interval"],
            )),
            &[200],
        ),
        ("post", "/config/users") => (
            vec![],
            Some(object(
                json!({
                    // routes::check_username: no control characters (Unicode Cc).
                    "username": {"type": "string", "minLength": 1, "maxLength": 64,
                                 "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
                    "password": pw(),
                    "role": {"type": "string", "enum": ["admin", "viewer"]},
                }),
                &["username", "password", "role"],
            )),
            &[201, 409],
        ),
        ("delete", "/config/users/{uuid}") => (vec![], None, &[204, 404, 409]),
        ("put", "/config/users/{uuid}/role") => (
            vec![],
            Some(object(
                json!({"role": {"type": "string", "enum": ["admin", "viewer"]}}),
                &["role"],
            )),
            &[200, 404, 409],
        ),
        ("put", "/config/users/{uuid}/reset-password") => (
            vec![],
            Some(object(json!({"new_password": pw()}), &["new_password"])),
            &[200, 404, 409],
        ),
        ("delete", "/config/reinit") => (vec![], None, &[204]),
        ("get", "/health") => (vec![], None, &[200, 503]),
        ("get", "/stream") => (
            vec![
                json!({"name": "ticket", "in": "query", "required": true,
                       "schema": {"type": "string"},
                       "description": "Single-use ticket from POST /api/v1/auth/ticket"}),
                query("lastEventId", int(i64::MIN, i64::MAX)),
                query("search", search_schema()),
            ],
            None,
            &[200, 400, 401, 403],
        ),
        _ => (vec![], None, &[200]),
    };
    Shape {
        query,
        body,
        statuses,
    }
}

/// The operation id of `(method, path)`.
fn operation_id(method: &str, path: &str) -> String {
    format!("{method}{}", path.replace(['/', '{', '}', '-', '.'], "_"))
}

/// A created user's uuid feeds the per-user routes (schemathesis' stateful phase follows these).
fn user_links() -> Value {
    let mut links = Map::new();
    for (method, path, _, _) in ROUTES {
        if path.starts_with("/config/users/{uuid}") {
            links.insert(
                operation_id(method, path),
                json!({"operationId": operation_id(method, path),
                       "parameters": {"uuid": "$response.body#/uuid"}}),
            );
        }
    }
    Value::Object(links)
}

fn description(status: u16) -> &'static str {
    match status {
        200 => "success",
        201 => "created",
        204 => "done, no content",
        400 => "the request is malformed or a value is out of range",
        401 => "no valid token (or wrong credentials)",
        403 => "the role does not allow this, or the password must be changed first",
        404 => "no such resource",
        409 => "conflicts with the current state",
        413 => "the request body is too large",
        429 => "too many failed logins; see Retry-After",
        500 => "the server failed",
        501 => "not available yet on this appliance",
        503 => "a component is unhealthy, or too many such requests at once; see Retry-After",
        _ => "see the error",
    }
}

pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, role, summary) in ROUTES {
        let Shape {
            query,
            body,
            statuses,
        } = shape(method, path);
        let mut codes: Vec<u16> = statuses.to_vec();
        if matches!(*role, "token" | "viewer" | "admin") {
            codes.push(401);
        }
        if matches!(*role, "viewer" | "admin") {
            codes.push(403);
        }
        if body.is_some() {
            codes.extend([400, 413]);
        }
        if path.contains('{') {
            codes.push(400);
        }
        codes.sort_unstable();
        codes.dedup();
        let mut responses = Map::new();
        for code in codes {
            let r = if code == 201 && *path == "/config/users" {
                json!({"description": description(code), "links": user_links()})
            } else if code == 200 && *path == "/attackers/{uuid}/pcap" {
                json!({"description": "the packets, pcapng (no packets when none are retained)",
                       "content": {crate::routes::PCAPNG_TYPE: {"schema": {"type": "string", "format": "binary"}}}})
            } else if code < 300 {
                json!({"description": description(code)})
            } else {
                json!({"description": description(code),
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
            };
            responses.insert(code.to_string(), r);
        }
        let mut parameters = path_params(path);
        parameters.extend(query);
        let mut op = json!({
            "summary": summary,
            "operationId": operation_id(method, path),
            "x-role": role,
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(schema) = body {
            op["requestBody"] = json!({"required": true,
                "content": {"application/json": {"schema": schema}}});
        }
        if matches!(*role, "token" | "viewer" | "admin") {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths
            .entry(format!("/api/v1{path}"))
            .or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "DECNET-rs management API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}
            }}
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
