//! The correlator's outputs: JSON (`stats` plus `traversals[]`, as the original) and
//! RFC 5424 `traversal_detected` lines.

use decnet_store::{Event, Severity, rfc5424};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Profiler, Traversal};

/// Totals of one correlation run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub events: u64,
    pub events_without_attacker: u64,
    pub attackers: usize,
    pub traversals: usize,
    pub identities: usize,
}

pub fn stats(p: &Profiler) -> Stats {
    Stats {
        events: p.events_seen,
        events_without_attacker: p.events_skipped,
        attackers: p.attackers().filter(|a| a.event_count > 0).count(),
        traversals: p.traversals().len(),
        identities: p.identities().len(),
    }
}

/// RFC 3339 UTC text of a nanosecond timestamp.
pub fn time(ts_ns: i64) -> String {
    rfc5424::timestamp(ts_ns)
}

fn traversal_json(t: &Traversal) -> Value {
    json!({
        "attacker_ip": t.attacker_ip,
        "deckies": t.deckies,
        "path": t.path,
        "decky_count": t.decky_count,
        "hop_count": t.hop_count,
        "first_seen": time(t.first_seen_ns),
        "last_seen": time(t.last_seen_ns),
        "duration_s": t.duration_s,
    })
}

/// The whole run as JSON, with each attacker's profile.
pub fn to_json(p: &Profiler) -> Value {
    let mut attackers: Vec<_> = p.attackers().filter(|a| a.event_count > 0).collect();
    attackers.sort_by(|a, b| (a.first_seen_ns, &a.ip).cmp(&(b.first_seen_ns, &b.ip)));
    let attackers: Vec<Value> = attackers
        .iter()
        .map(|a| {
            let c = a.classification();
            json!({
                "ip": a.ip,
                "first_seen": time(a.first_seen_ns),
                "last_seen": time(a.last_seen_ns),
                "event_count": a.event_count,
                "services": a.services,
                "deckies": a.deckies.iter().map(|h| &h.decky).collect::<Vec<_>>(),
                "behavior_class": c.class,
                "beacon_interval_s": c.beacon_interval_s,
                "beacon_jitter_pct": c.beacon_jitter_pct,
                "tool_guesses": a.tool_guesses(),
                "os_guess": a.os_guess(),
                "score": a.score(),
                "credential_count": a.credential_count,
                "command_count": a.command_count,
                "identity_key": a.identity_key(),
            })
        })
        .collect();
    json!({
        "stats": stats(p),
        "traversals": p.traversals().iter().map(traversal_json).collect::<Vec<_>>(),
        "identities": p.identities().into_iter().map(|(k, ips)| json!({"identity_key": k, "ips": ips})).collect::<Vec<_>>(),
        "attackers": attackers,
    })
}

/// One RFC 5424 line per traversal (`correlator`/`decnet-correlator`/`traversal_detected`,
/// severity WARNING), fields as the original.
pub fn to_syslog(t: &Traversal, now_ns: i64) -> Vec<u8> {
    let mut e = Event::new(
        now_ns,
        "decnet-correlator",
        "correlator",
        "traversal_detected",
        Severity::Warning,
    );
    e.src_ip = t.attacker_ip.parse().ok();
    let fields = [
        ("attacker_ip", t.attacker_ip.clone()),
        ("decky_count", t.decky_count.to_string()),
        ("deckies", t.deckies.join(",")),
        ("first_seen", time(t.first_seen_ns)),
        ("last_seen", time(t.last_seen_ns)),
        ("hop_count", t.hop_count.to_string()),
        ("duration_s", format!("{:.3}", t.duration_s)),
    ];
    for (k, v) in &fields {
        // Keys are constant and valid; a value is clipped by the event itself.
        let _ = e.push_field(k, v);
    }
    rfc5424::format(&e)
}
