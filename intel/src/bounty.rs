//! Bounty extraction: credentials, fingerprints and artifacts out of one event, pure.
//!
//! Parity with the original's ingester rules (reference §3.2) plus the credential shapes it
//! missed: MySQL scrambles, VNC challenge/response, Redis `AUTH <password>` (user `default`),
//! PostgreSQL `user`, LDAP bind DNs, SSH public keys. Payloads are JSON objects with sorted
//! keys, so the same credential always hashes to the same dedup key.

use decnet_store::{Event, repo::NewBounty};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub const CREDENTIAL: &str = "credential";
pub const FINGERPRINT: &str = "fingerprint";
pub const ARTIFACT: &str = "artifact";

/// A credential as the session and identity logic see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Which shape it came in (`password`, `mysql_native_password`, `vnc_des_challenge`, …).
    pub shape: &'static str,
    pub username: String,
    /// Password, hash/response or key fingerprint.
    pub secret: String,
}

const USER_KEYS: [&str; 6] = ["username", "user", "login", "bind_dn", "dn", "account"];
const PASSWORD_KEYS: [&str; 3] = ["password", "passwd", "pass"];
const KEY_FP_KEYS: [&str; 3] = ["key_fingerprint", "pubkey_fingerprint", "public_key_sha256"];

fn first<'a>(e: &'a Event, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| e.field(k))
        .filter(|v| !v.is_empty())
}

/// The credential an event carries, if any.
pub fn credential(e: &Event) -> Option<Credential> {
    let user = first(e, &USER_KEYS);
    // MySQL never sends the password: the scramble and the client's response to it are what
    // an offline cracker needs.
    if let (Some(resp), Some(scramble)) = (e.field("auth_response_hex"), e.field("scramble_hex"))
        && !resp.is_empty()
    {
        return Some(Credential {
            shape: "mysql_native_password",
            username: user.unwrap_or("").to_owned(),
            secret: format!("{scramble}${resp}"),
        });
    }
    // VNC: DES challenge/response, crackable offline the same way.
    if let (Some(ch), Some(resp)) = (e.field("challenge"), e.field("response"))
        && !resp.is_empty()
    {
        return Some(Credential {
            shape: "vnc_des_challenge",
            username: user.unwrap_or("").to_owned(),
            secret: format!("{ch}${resp}"),
        });
    }
    if let Some(pass) = first(e, &PASSWORD_KEYS) {
        let (shape, username) = match user {
            Some(u) => ("password", u),
            // Redis `AUTH <password>` authenticates the implicit `default` user.
            None if e.service == "redis" => ("password", "default"),
            None => ("password_only", ""),
        };
        return Some(Credential {
            shape,
            username: username.to_owned(),
            secret: pass.to_owned(),
        });
    }
    if let (Some(u), Some(fp)) = (user, first(e, &KEY_FP_KEYS)) {
        return Some(Credential {
            shape: "public_key",
            username: u.to_owned(),
            secret: fp.to_owned(),
        });
    }
    None
}

/// Whether an event reports a successful authentication.
pub fn is_success(e: &Event) -> bool {
    matches!(
        e.field("success").or_else(|| e.field("status")),
        Some("true" | "1" | "yes" | "success" | "ok" | "accepted")
    )
}

/// The User-Agent in an HTTP event: a `user_agent` field, or inside `headers` (a JSON object,
/// a JSON list of pairs, or raw header lines).
pub fn user_agent(e: &Event) -> Option<String> {
    if let Some(ua) = e.field("user_agent").filter(|v| !v.is_empty()) {
        return Some(ua.to_owned());
    }
    let headers = e.field("headers")?;
    match serde_json::from_str::<Value>(headers) {
        Ok(Value::Object(map)) => map.iter().find_map(|(k, v)| {
            k.eq_ignore_ascii_case("user-agent")
                .then(|| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        }),
        Ok(Value::Array(pairs)) => pairs.iter().find_map(|p| {
            let k = p.get(0)?.as_str()?;
            k.eq_ignore_ascii_case("user-agent")
                .then(|| p.get(1)?.as_str().map(str::to_owned))
                .flatten()
        }),
        _ => headers.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("user-agent")
                .then(|| v.trim().to_owned())
        }),
    }
}

/// The SSH client banner of an event, under any of the names producers use.
pub fn ssh_banner(e: &Event) -> Option<&str> {
    ["client_banner", "client_version", "banner", "software"]
        .iter()
        .find_map(|k| e.field(k))
        .filter(|v| v.starts_with("SSH-"))
}

fn obj(e: &Event, base: Value, keys: &[&str]) -> Value {
    let mut map = match base {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for k in keys {
        if let Some(v) = e.field(k).filter(|v| !v.is_empty()) {
            map.insert((*k).to_owned(), Value::String(v.to_owned()));
        }
    }
    Value::Object(map)
}

// The commonest payloads, serialized straight to text with their keys in the sorted order a
// `json!` object (a `BTreeMap`) gives them, so the text — and the dedup key hashed from it —
// is the same as before, without a `Value` tree of copied strings per event.

#[derive(Serialize)]
struct CredentialPayload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mechanism: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<&'a str>,
    secret: &'a str,
    shape: &'a str,
    username: &'a str,
}

#[derive(Serialize)]
struct FingerprintPayload<'a> {
    #[serde(rename = "fingerprint_type")]
    t: &'a str,
    value: &'a str,
}

fn json_text<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Every bounty in `e`, attributed to `attacker_ip`.
pub fn extract(e: &Event, attacker_ip: &str) -> Vec<NewBounty> {
    let mut out = Vec::new();
    let cred = credential(e);
    let ua = user_agent(e);
    payloads(e, cred.as_ref(), ua.as_deref(), |bounty_type, payload| {
        out.push(NewBounty {
            ts_ns: e.ts_ns,
            decky: e.decky.clone(),
            service: e.service.clone(),
            attacker_ip: attacker_ip.to_owned(),
            bounty_type: bounty_type.to_owned(),
            payload,
        });
    });
    out
}

/// The `(type, payload)` of every bounty in `e`, given its [`credential`] and [`user_agent`]
/// (the profiler already has both, and builds a [`NewBounty`] only for payloads it has not
/// seen from this attacker).
pub fn payloads(
    e: &Event,
    cred: Option<&Credential>,
    ua: Option<&str>,
    mut sink: impl FnMut(&'static str, String),
) {
    let mut push =
        |bounty_type: &'static str, payload: Value| sink(bounty_type, payload.to_string());
    let fp = |t: &str| json!({ "fingerprint_type": t });

    match (e.service.as_str(), e.kind.as_str()) {
        ("sniffer", "tls_client_hello") => {
            if e.field("ja3").is_some() || e.field("ja4").is_some() {
                push(
                    FINGERPRINT,
                    obj(
                        e,
                        fp("ja3"),
                        &[
                            "ja3",
                            "ja4",
                            "tls_version",
                            "sni",
                            "alpn",
                            "dst_port",
                            "raw_ciphers",
                            "raw_extensions",
                        ],
                    ),
                );
            }
            if e.field("ja4l_rtt_ms").is_some() {
                push(
                    FINGERPRINT,
                    obj(e, fp("ja4l"), &["ja4l_rtt_ms", "ja4l_client_ttl"]),
                );
            }
            if ["session_ticket", "psk", "early_data_0rtt"]
                .iter()
                .any(|k| matches!(e.field(k), Some("true" | "1")))
            {
                push(
                    FINGERPRINT,
                    obj(
                        e,
                        fp("tls_resumption"),
                        &["session_ticket", "psk", "early_data_0rtt", "session_id"],
                    ),
                );
            }
        }
        ("sniffer", "tls_session") => {
            push(
                FINGERPRINT,
                obj(
                    e,
                    fp("ja3"),
                    &["ja3", "ja3s", "ja4", "ja4s", "tls_version", "sni"],
                ),
            );
        }
        ("sniffer", "tls_certificate") => push(
            FINGERPRINT,
            obj(
                e,
                fp("tls_certificate"),
                &[
                    "subject_cn",
                    "issuer",
                    "self_signed",
                    "not_before",
                    "not_after",
                    "sans",
                ],
            ),
        ),
        ("sniffer", "tcp_syn_fingerprint") => push(
            FINGERPRINT,
            obj(
                e,
                fp("tcp_syn"),
                &[
                    "initial_ttl",
                    "window",
                    "mss",
                    "wscale",
                    "options_sig",
                    "has_sack",
                    "has_timestamps",
                    "os_guess",
                ],
            ),
        ),
        ("prober", "jarm_fingerprint") => push(
            FINGERPRINT,
            obj(e, fp("jarm"), &["jarm_hash", "target_port"]),
        ),
        ("prober", "hassh_fingerprint") => push(
            FINGERPRINT,
            obj(
                e,
                fp("hassh_server"),
                &[
                    "hassh_server",
                    "hash",
                    "ssh_banner",
                    "kex_algorithms",
                    "encryption_s2c",
                    "mac_s2c",
                    "compression_s2c",
                ],
            ),
        ),
        ("prober", "tcpfp_fingerprint") => push(
            FINGERPRINT,
            obj(
                e,
                fp("tcpfp"),
                &[
                    "tcpfp_hash",
                    "hash",
                    "raw",
                    "ttl",
                    "window",
                    "df",
                    "mss",
                    "wscale",
                    "sack",
                    "ts",
                    "options_order",
                ],
            ),
        ),
        _ => {}
    }
    if e.service == "sniffer" || e.service == "prober" {
        return;
    }

    if let Some(c) = cred {
        let extra = |k| e.field(k).filter(|v| !v.is_empty());
        sink(
            CREDENTIAL,
            json_text(&CredentialPayload {
                database: extra("database"),
                mechanism: extra("mechanism"),
                plugin: extra("plugin"),
                secret: &c.secret,
                shape: c.shape,
                username: &c.username,
            }),
        );
    }
    let mut fingerprint =
        |t: &str, value: &str| sink(FINGERPRINT, json_text(&FingerprintPayload { t, value }));
    if let Some(ua) = ua {
        fingerprint("http_useragent", ua);
    }
    if let Some(h) = e.field("hassh").filter(|v| !v.is_empty()) {
        fingerprint("hassh", h);
    }
    if let Some(b) = ssh_banner(e) {
        fingerprint("ssh_client_version", b);
    } else if let Some(v) = e.field("client_version").filter(|v| !v.is_empty()) {
        let t = if e.service == "vnc" {
            "vnc_client_version"
        } else {
            "client_version"
        };
        fingerprint(t, v);
    }
    let mut push =
        |bounty_type: &'static str, payload: Value| sink(bounty_type, payload.to_string());
    if let Some(sha) = e.field("sha256").filter(|v| !v.is_empty()) {
        push(
            ARTIFACT,
            obj(
                e,
                json!({ "artifact_type": "file", "sha256": sha, "event": e.kind }),
                &["path", "filename", "size", "stored_as"],
            ),
        );
    }
    if e.kind == "url_fetch"
        && let Some(url) = e.field("url").filter(|v| !v.is_empty())
    {
        push(ARTIFACT, json!({ "artifact_type": "url", "url": url }));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use decnet_store::Severity;

    use super::*;

    fn payloads_of(e: &Event) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let cred = credential(e);
        let ua = user_agent(e);
        payloads(e, cred.as_ref(), ua.as_deref(), |t, p| out.push((t, p)));
        out
    }

    #[test]
    fn typed_payloads_are_the_text_json_objects_gave() {
        let mut e = Event::new(1, "decky-a", "mysql", "auth_attempt", Severity::Info);
        for (k, v) in [
            ("username", "r\"oot"),
            ("password", "p\\w ✓"),
            ("plugin", "mysql_native_password"),
            ("database", "prod"),
            ("user_agent", "curl/8"),
            ("hassh", "abc"),
            ("client_version", "SSH-2.0-Go"),
        ] {
            e.push_field(k, v).unwrap();
        }
        let fp = |t: &str, v: &str| json!({ "fingerprint_type": t, "value": v }).to_string();
        assert_eq!(
            payloads_of(&e),
            [
                (
                    CREDENTIAL,
                    json!({
                        "shape": "password", "username": "r\"oot", "secret": "p\\w ✓",
                        "plugin": "mysql_native_password", "database": "prod",
                    })
                    .to_string()
                ),
                (FINGERPRINT, fp("http_useragent", "curl/8")),
                (FINGERPRINT, fp("hassh", "abc")),
                (FINGERPRINT, fp("ssh_client_version", "SSH-2.0-Go")),
            ]
        );

        let mut plain = Event::new(1, "decky-a", "vnc", "auth_attempt", Severity::Info);
        plain.push_field("password", "x").unwrap();
        plain.push_field("client_version", "RFB 003.008").unwrap();
        assert_eq!(
            payloads_of(&plain),
            [
                (
                    CREDENTIAL,
                    json!({ "shape": "password_only", "username": "", "secret": "x" }).to_string()
                ),
                (FINGERPRINT, fp("vnc_client_version", "RFB 003.008")),
            ]
        );
    }
}
