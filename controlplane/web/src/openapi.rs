//! The OpenAPI 3.1 document, generated from one route table (kept beside the router; a test
//! checks every table entry is routed and authenticated as stated).

use axum::Json;
use serde_json::{Map, Value, json};

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

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                           "schema": {"type": "string", "maxLength": 255}})
        })
        .collect()
}

pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, role, summary) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "x-role": role,
            "parameters": path_params(path),
            "responses": {
                "200": {"description": "success"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
            }
        });
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
            }},
            "responses": {"Error": {"description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}
