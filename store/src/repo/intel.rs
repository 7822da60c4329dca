//! What the intelligence workers write: sessions, attacker rows with their behaviour, the
//! profiler's per-attacker streaming state and its cursor — all in one transaction, so a
//! crash leaves either the whole batch or none of it (restart-safe, never double-counted).

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::{
    Attacker, NewBounty, RepoError, SqlRepository, now_ns, q,
    sql::{Arg, Sql, clean_owned, clip_chars, clip_owned},
    tables::{ATTACKER_COLS, bounty_dedup_key},
};

/// Rows per multi-row statement: at most 17 parameters each, well under every backend's limit.
const ROWS_PER_STATEMENT: usize = 200;

/// One session: a conversation of one attacker IP with one service of one decky, ended by an
/// inactivity gap. In an [`IntelCommit`], `commands` or `credentials` given as an empty string
/// keeps the stored list (unchanged since it was last written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    /// Stable id derived from (ip, decky, service, start), so a replay upserts the same row.
    pub id: String,
    pub attacker_ip: String,
    pub decky: String,
    pub service: String,
    pub dst_port: Option<i64>,
    pub start_ns: i64,
    pub end_ns: i64,
    pub event_count: i64,
    /// Sniffer flows (`tcp_flow_timing`) of this conversation.
    pub flow_count: i64,
    /// JSON array of commands in order.
    pub commands: String,
    /// JSON array of credentials in order.
    pub credentials: String,
    pub auth_success: bool,
    pub closed: bool,
}

/// The `attacker_behavior` row of one attacker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviorRow {
    pub os_guess: Option<String>,
    pub hop_distance: Option<i64>,
    /// JSON object.
    pub tcp_fingerprint: String,
    pub retransmit_count: i64,
    pub behavior_class: String,
    pub beacon_interval_s: Option<f64>,
    pub beacon_jitter_pct: Option<f64>,
    /// JSON arrays/objects.
    pub tool_guesses: String,
    pub timing_stats: String,
    pub phase_sequence: String,
}

/// Everything the profiler knows of one attacker after a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackerUpdate {
    /// The row; its `commands` and `fingerprints` given as empty strings keep the stored
    /// lists (unchanged since they were last written).
    pub attacker: Attacker,
    pub behavior: BehaviorRow,
    /// Strong-fingerprint key linking IPs of one actor (see `decnet-intel`).
    pub identity_key: Option<String>,
    /// The profiler's serialized streaming state for this IP (JSON).
    pub state: String,
}

/// One batch of profiler output, committed atomically with the cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntelCommit {
    pub attackers: Vec<AttackerUpdate>,
    pub sessions: Vec<SessionRow>,
    pub bounties: Vec<NewBounty>,
    /// `(state key, last event id)` to persist in the same transaction.
    pub cursor: Option<(String, i64)>,
}

/// What the profiler saved of one attacker: its streaming state and its row's lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedAttacker {
    pub ip: String,
    /// The profiler's state (JSON).
    pub state: String,
    /// The attacker row's commands and fingerprints (JSON arrays).
    pub commands: String,
    pub fingerprints: String,
}

impl SavedAttacker {
    fn of(r: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            ip: r.try_get("ip")?,
            state: r.try_get("state")?,
            commands: r.try_get("commands")?,
            fingerprints: r.try_get("fingerprints")?,
        })
    }
}

/// IPs that share an identity key: one actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityGroup {
    pub identity_key: String,
    pub ips: Vec<String>,
}

const BEHAVIOR_COLS: [&str; 12] = [
    "attacker_uuid",
    "os_guess",
    "hop_distance",
    "tcp_fingerprint",
    "retransmit_count",
    "behavior_class",
    "beacon_interval_s",
    "beacon_jitter_pct",
    "tool_guesses",
    "timing_stats",
    "phase_sequence",
    "updated_ns",
];

const SESSION_COLS: [&str; 14] = [
    "id",
    "attacker_ip",
    "decky",
    "service",
    "dst_port",
    "start_ns",
    "end_ns",
    "event_count",
    "flow_count",
    "commands",
    "credentials",
    "auth_success",
    "closed",
    "updated_ns",
];

/// One table's upsert: `cols` inserted, `updated` (less `key`) rewritten on a key conflict,
/// except a column of `kept` given as an empty string, which keeps its stored value.
pub(super) struct Upsert {
    pub(super) table: &'static str,
    pub(super) cols: &'static [&'static str],
    pub(super) key: &'static str,
    pub(super) updated: &'static [&'static str],
    pub(super) kept: &'static [&'static str],
    pub(super) what: &'static str,
}

impl Upsert {
    /// The statement's `ON CONFLICT …` / `ON DUPLICATE KEY …` suffix on `backend`.
    pub(super) fn suffix(&self, backend: super::Backend) -> String {
        let updated: Vec<&str> = self
            .updated
            .iter()
            .copied()
            .filter(|c| *c != self.key)
            .collect();
        backend.upsert_keeping(self.table, self.key, &updated, self.kept)
    }
}

pub(super) const BOUNTY_COLS: [&str; 7] = [
    "ts_ns",
    "decky",
    "service",
    "attacker_ip",
    "bounty_type",
    "payload",
    "dedup_key",
];

/// The uuid of an existing row is kept (it is not among the updated columns).
pub(super) const ATTACKERS: Upsert = Upsert {
    table: "attackers",
    cols: &ATTACKER_COLS,
    key: "ip",
    updated: ATTACKER_COLS.split_at(1).1,
    kept: &["fingerprints", "commands"],
    what: "upserting attackers",
};

pub(super) const BEHAVIOR: Upsert = Upsert {
    table: "attacker_behavior",
    cols: &BEHAVIOR_COLS,
    key: "attacker_uuid",
    updated: &BEHAVIOR_COLS,
    kept: &[],
    what: "upserting attacker behaviour",
};

pub(super) const STATE: Upsert = Upsert {
    table: "attacker_state",
    cols: &["ip", "identity_key", "state", "updated_ns"],
    key: "ip",
    updated: &["identity_key", "state", "updated_ns"],
    kept: &[],
    what: "saving profiler state",
};

/// A session's id is derived from its IP, decky and service: rewriting those columns would
/// only make SQLite rewrite the `sessions_ip` index entry each time.
pub(super) const SESSIONS: Upsert = Upsert {
    table: "sessions",
    cols: &SESSION_COLS,
    key: "id",
    updated: SESSION_COLS.split_at(4).1,
    kept: &["commands", "credentials"],
    what: "upserting sessions",
};

pub(super) const CURSOR: Upsert = Upsert {
    table: "state",
    cols: &["state_key", "value"],
    key: "state_key",
    updated: &["value"],
    kept: &[],
    what: "saving the profiler cursor",
};

/// One batch's rows per table as bound values, the same for every backend.
pub(super) struct IntelRows {
    pub(super) bounties: Vec<Vec<Arg>>,
    pub(super) attackers: Vec<Vec<Arg>>,
    /// Each attacker's (clipped) IP, and its behaviour row without the leading uuid.
    pub(super) behavior: Vec<(Arg, Vec<Arg>)>,
    pub(super) state: Vec<Vec<Arg>>,
    pub(super) sessions: Vec<Vec<Arg>>,
    pub(super) cursor: Option<Vec<Arg>>,
}

impl IntelRows {
    /// The rows of `c`, its strings moved into them (copied only to clean or clip them).
    fn of(c: IntelCommit, now: i64) -> Self {
        let bounties = c
            .bounties
            .into_iter()
            .map(|b| {
                let key = bounty_dedup_key(&b);
                vec![
                    Arg::I64(b.ts_ns),
                    Arg::Text(clip_owned(b.decky, 255)),
                    Arg::Text(clip_owned(b.service, 255)),
                    Arg::Text(clip_owned(b.attacker_ip, 45)),
                    Arg::Text(clip_owned(b.bounty_type, 255)),
                    Arg::Text(clean_owned(b.payload)),
                    Arg::Text(key),
                ]
            })
            .collect();
        let mut attackers = Vec::with_capacity(c.attackers.len());
        let mut behavior = Vec::with_capacity(c.attackers.len());
        let mut state = Vec::with_capacity(c.attackers.len());
        for u in c.attackers {
            let a = u.attacker;
            let ip = clip_owned(a.ip, 45);
            attackers.push(vec![
                Arg::Text(a.uuid),
                Arg::Text(ip.clone()),
                Arg::I64(a.first_seen_ns),
                Arg::I64(a.last_seen_ns),
                Arg::I64(a.event_count),
                Arg::I64(a.service_count),
                Arg::I64(a.decky_count),
                Arg::Text(clean_owned(a.services)),
                Arg::Text(clean_owned(a.deckies)),
                Arg::Text(clean_owned(a.fingerprints)),
                Arg::Text(clean_owned(a.commands)),
                Arg::Text(clean_owned(a.traversal_path)),
                Arg::I64(i64::from(a.is_traversal)),
                Arg::I64(a.bounty_count),
                Arg::I64(a.credential_count),
                Arg::I64(a.score),
                Arg::I64(now),
            ]);
            let b = u.behavior;
            behavior.push((
                Arg::Text(ip.clone()),
                vec![
                    Arg::OptText(b.os_guess.map(|s| clip_owned(s, 255))),
                    Arg::OptI64(b.hop_distance),
                    Arg::Text(clean_owned(b.tcp_fingerprint)),
                    Arg::I64(b.retransmit_count),
                    Arg::Text(clip_owned(b.behavior_class, 255)),
                    Arg::OptF64(b.beacon_interval_s),
                    Arg::OptF64(b.beacon_jitter_pct),
                    Arg::Text(clean_owned(b.tool_guesses)),
                    Arg::Text(clean_owned(b.timing_stats)),
                    Arg::Text(clean_owned(b.phase_sequence)),
                    Arg::I64(now),
                ],
            ));
            state.push(vec![
                Arg::Text(ip),
                Arg::OptText(u.identity_key.map(|s| clip_owned(s, 64))),
                Arg::Text(clean_owned(u.state)),
                Arg::I64(now),
            ]);
        }
        let sessions = c
            .sessions
            .into_iter()
            .map(|s| {
                vec![
                    Arg::Text(clip_owned(s.id, 64)),
                    Arg::Text(clip_owned(s.attacker_ip, 45)),
                    Arg::Text(clip_owned(s.decky, 255)),
                    Arg::Text(clip_owned(s.service, 255)),
                    Arg::OptI64(s.dst_port),
                    Arg::I64(s.start_ns),
                    Arg::I64(s.end_ns),
                    Arg::I64(s.event_count),
                    Arg::I64(s.flow_count),
                    Arg::Text(clean_owned(s.commands)),
                    Arg::Text(clean_owned(s.credentials)),
                    Arg::I64(i64::from(s.auth_success)),
                    Arg::I64(i64::from(s.closed)),
                    Arg::I64(now),
                ]
            })
            .collect();
        let cursor = c
            .cursor
            .map(|(key, id)| vec![Arg::Text(key), Arg::Text(id.to_string())]);
        Self {
            bounties,
            attackers,
            behavior,
            state,
            sessions,
            cursor,
        }
    }
}

impl SqlRepository {
    /// Multi-row `INSERT … ON CONFLICT (key) DO UPDATE` of `rows` (keys unique within `rows`).
    async fn upsert_rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        u: &Upsert,
        rows: Vec<Vec<Arg>>,
    ) -> Result<(), RepoError> {
        let mut rows = rows.into_iter().peekable();
        let suffix = u.suffix(self.backend);
        while rows.peek().is_some() {
            let mut sql = Sql::new(
                self.backend,
                &format!("INSERT INTO {} ({}) VALUES ", u.table, u.cols.join(", ")),
            );
            for (i, row) in rows.by_ref().take(ROWS_PER_STATEMENT).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind_list(row);
            }
            sql.push(&suffix);
            sql.query().execute(&mut **tx).await.map_err(q(u.what))?;
        }
        Ok(())
    }

    /// Write one profiler batch — bounties (deduplicated by their unique key), attacker rows,
    /// behaviour, streaming state, sessions and the cursor — in one transaction.
    ///
    /// On SQLite the rows are written through the native handle on the calling thread
    /// (see [`super::sqlite_intel`]): callers that must not block a runtime thread for the
    /// batch's duration run it on a blocking thread.
    pub async fn commit_intel(&self, c: &IntelCommit) -> Result<(), RepoError> {
        self.commit_intel_owned(c.clone()).await
    }

    /// [`Self::commit_intel`] taking the batch by value: its strings move into the statement
    /// arguments instead of being copied.
    pub async fn commit_intel_owned(&self, c: IntelCommit) -> Result<(), RepoError> {
        let rows = IntelRows::of(c, now_ns());
        let Some(native) = &self.sqlite_intel else {
            return self.commit_intel_any(rows).await;
        };
        // IMMEDIATE: the write lock up front, waiting out (busy timeout) a writer on another
        // connection, instead of failing when a deferred transaction upgrades.
        let mut tx = native
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(q("starting an intelligence batch"))?;
        let written = {
            let mut handle = tx
                .lock_handle()
                .await
                .map_err(q("locking the SQLite connection"))?;
            // SAFETY: the handle lock keeps sqlx's worker off this connection until it drops,
            // and the transaction begun above is open on it.
            unsafe { super::sqlite_intel::write(handle.as_raw_handle(), &rows) }
        };
        // On an error the transaction is dropped here, which rolls it back.
        written?;
        tx.commit()
            .await
            .map_err(q("committing an intelligence batch"))
    }

    async fn commit_intel_any(&self, rows: IntelRows) -> Result<(), RepoError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(q("starting an intelligence batch"))?;

        let mut bounties = rows.bounties.into_iter().peekable();
        while bounties.peek().is_some() {
            let mut sql = Sql::new(self.backend, self.backend.insert_ignore());
            sql.push(&format!(" bounties ({}) VALUES ", BOUNTY_COLS.join(", ")));
            for (i, row) in bounties.by_ref().take(ROWS_PER_STATEMENT).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind_list(row);
            }
            sql.push(self.backend.on_conflict_ignore());
            sql.query()
                .execute(&mut *tx)
                .await
                .map_err(q("recording bounties"))?;
        }

        self.upsert_rows(&mut tx, &ATTACKERS, rows.attackers)
            .await?;

        // The behaviour row hangs off the stored uuid, which predates this batch for known IPs.
        let mut uuids = std::collections::HashMap::new();
        for chunk in rows.behavior.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::new(self.backend, "SELECT ip, uuid FROM attackers WHERE ip IN (");
            sql.bind_list(chunk.iter().map(|(ip, _)| ip.clone()));
            for row in sql
                .query()
                .fetch_all(&mut *tx)
                .await
                .map_err(q("reading attacker uuids"))?
            {
                let ip: String = row.try_get("ip").map_err(q("reading attacker uuids"))?;
                let uuid: String = row.try_get("uuid").map_err(q("reading attacker uuids"))?;
                uuids.insert(ip, uuid);
            }
        }
        let mut behavior_rows = Vec::with_capacity(rows.behavior.len());
        for (ip, row) in rows.behavior {
            let uuid = match &ip {
                Arg::Text(ip) => uuids.get(ip),
                _ => None,
            };
            let Some(uuid) = uuid else {
                return Err(RepoError::Invalid(format!(
                    "attacker {ip:?} vanished inside its own transaction"
                )));
            };
            let mut full = Vec::with_capacity(row.len() + 1);
            full.push(Arg::Text(uuid.clone()));
            full.extend(row);
            behavior_rows.push(full);
        }
        self.upsert_rows(&mut tx, &BEHAVIOR, behavior_rows).await?;
        self.upsert_rows(&mut tx, &STATE, rows.state).await?;
        self.upsert_rows(&mut tx, &SESSIONS, rows.sessions).await?;
        if let Some(cursor) = rows.cursor {
            self.upsert_rows(&mut tx, &CURSOR, vec![cursor]).await?;
        }
        tx.commit()
            .await
            .map_err(q("committing an intelligence batch"))
    }

    /// The profiler's saved state of each of `ips` that has one, with the lists its attacker
    /// row holds (the state leaves them out: they are written only when they change).
    pub async fn attacker_states(&self, ips: &[String]) -> Result<Vec<SavedAttacker>, RepoError> {
        let mut out = Vec::new();
        for chunk in ips.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::new(
                self.backend,
                "SELECT s.ip, s.state, a.commands, a.fingerprints FROM attacker_state s \
                 JOIN attackers a ON a.ip = s.ip WHERE s.ip IN (",
            );
            sql.bind_list(chunk.iter().map(|ip| Arg::Text(clip_chars(ip, 45))));
            let rows = sql
                .query()
                .fetch_all(&self.pool)
                .await
                .map_err(q("loading profiler state"))?;
            for r in &rows {
                out.push(SavedAttacker::of(r).map_err(q("loading profiler state"))?);
            }
        }
        Ok(out)
    }

    /// IPs with a session not yet closed (at most `limit`), each with the latest `end_ns` of
    /// those sessions, so a restarted profiler can keep closing them as time moves on.
    pub async fn open_session_ends(&self, limit: i64) -> Result<Vec<(String, i64)>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            "SELECT attacker_ip, MAX(end_ns) AS end_ns FROM sessions WHERE closed = 0 \
             GROUP BY attacker_ip ORDER BY attacker_ip LIMIT ",
        );
        sql.bind(Arg::I64(limit.clamp(0, 10_000_000)));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing IPs with open sessions"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("attacker_ip")?, r.try_get("end_ns")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("listing IPs with open sessions"))
    }

    /// The sessions not yet closed of each of `ips` (what a restored profiler state continues).
    pub async fn open_sessions_of(&self, ips: &[String]) -> Result<Vec<SessionRow>, RepoError> {
        let mut out = Vec::new();
        for chunk in ips.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::new(
                self.backend,
                &format!(
                    "SELECT {} FROM sessions WHERE closed = 0 AND attacker_ip IN (",
                    SESSION_COLS.join(", ")
                ),
            );
            sql.bind_list(chunk.iter().map(|ip| Arg::Text(clip_chars(ip, 45))));
            let rows = sql
                .query()
                .fetch_all(&self.pool)
                .await
                .map_err(q("loading open sessions"))?;
            for r in &rows {
                out.push(session_from_row(r).map_err(q("loading open sessions"))?);
            }
        }
        Ok(out)
    }

    /// Sessions, oldest first, optionally of one attacker IP.
    pub async fn sessions(
        &self,
        ip: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<SessionRow>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            &format!("SELECT {} FROM sessions", SESSION_COLS.join(", ")),
        );
        if let Some(ip) = ip {
            sql.push(" WHERE attacker_ip = ")
                .bind(Arg::Text(ip.to_owned()));
        }
        sql.push(" ORDER BY start_ns, id LIMIT ")
            .bind(Arg::I64(limit.clamp(0, 10_000)));
        sql.push(" OFFSET ").bind(Arg::I64(offset.max(0)));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing sessions"))?;
        rows.iter()
            .map(session_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("listing sessions"))
    }

    /// One session of the attacker at `ip`, by its id (what a session's pcap export needs,
    /// however many sessions the attacker has).
    pub async fn session(&self, ip: &str, id: &str) -> Result<Option<SessionRow>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            &format!(
                "SELECT {} FROM sessions WHERE attacker_ip = ",
                SESSION_COLS.join(", ")
            ),
        );
        sql.bind(Arg::Text(ip.to_owned()));
        sql.push(" AND id = ").bind(Arg::Text(id.to_owned()));
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading a session"))?;
        row.as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(q("reading a session"))
    }

    /// The behaviour row of an attacker.
    pub async fn behavior(&self, attacker_uuid: &str) -> Result<Option<BehaviorRow>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            &format!(
                "SELECT {} FROM attacker_behavior WHERE attacker_uuid = ",
                BEHAVIOR_COLS.join(", ")
            ),
        );
        sql.bind(Arg::Text(attacker_uuid.to_owned()));
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading attacker behaviour"))?;
        row.map(|r| {
            Ok(BehaviorRow {
                os_guess: r.try_get("os_guess")?,
                hop_distance: r.try_get("hop_distance")?,
                tcp_fingerprint: r.try_get("tcp_fingerprint")?,
                retransmit_count: r.try_get("retransmit_count")?,
                behavior_class: r.try_get("behavior_class")?,
                beacon_interval_s: r.try_get("beacon_interval_s")?,
                beacon_jitter_pct: r.try_get("beacon_jitter_pct")?,
                tool_guesses: r.try_get("tool_guesses")?,
                timing_stats: r.try_get("timing_stats")?,
                phase_sequence: r.try_get("phase_sequence")?,
            })
        })
        .transpose()
        .map_err(q("reading attacker behaviour"))
    }

    /// Identity keys shared by at least two IPs, each with its IPs sorted.
    pub async fn identity_groups(&self) -> Result<Vec<IdentityGroup>, RepoError> {
        let rows = sqlx::query(
            "SELECT identity_key, ip FROM attacker_state WHERE identity_key IN \
             (SELECT identity_key FROM attacker_state WHERE identity_key IS NOT NULL \
              GROUP BY identity_key HAVING COUNT(*) > 1) ORDER BY identity_key, ip",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("listing identity groups"))?;
        let mut groups: Vec<IdentityGroup> = Vec::new();
        for r in &rows {
            let key: String = r
                .try_get("identity_key")
                .map_err(q("listing identity groups"))?;
            let ip: String = r.try_get("ip").map_err(q("listing identity groups"))?;
            match groups.last_mut() {
                Some(g) if g.identity_key == key => g.ips.push(ip),
                _ => groups.push(IdentityGroup {
                    identity_key: key,
                    ips: vec![ip],
                }),
            }
        }
        Ok(groups)
    }
}

fn session_from_row(r: &sqlx::any::AnyRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: r.try_get("id")?,
        attacker_ip: r.try_get("attacker_ip")?,
        decky: r.try_get("decky")?,
        service: r.try_get("service")?,
        dst_port: r.try_get("dst_port")?,
        start_ns: r.try_get("start_ns")?,
        end_ns: r.try_get("end_ns")?,
        event_count: r.try_get("event_count")?,
        flow_count: r.try_get("flow_count")?,
        commands: r.try_get("commands")?,
        credentials: r.try_get("credentials")?,
        auth_success: r.try_get::<i64, _>("auth_success")? != 0,
        closed: r.try_get::<i64, _>("closed")? != 0,
    })
}
