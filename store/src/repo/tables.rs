//! Users, state, bounties, attackers and the fleet's deckies.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{
    RepoError, SqlRepository, now_ns, q,
    sql::{Arg, Sql, clean_text, clip_chars},
};

/// A dashboard account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub uuid: String,
    pub username: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: String,
    pub must_change_password: bool,
    pub created_ns: i64,
}

/// A bounty to record: credentials, fingerprints, artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBounty {
    pub ts_ns: i64,
    pub decky: String,
    pub service: String,
    pub attacker_ip: String,
    pub bounty_type: String,
    /// JSON text.
    pub payload: String,
}

/// A stored bounty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounty {
    pub id: i64,
    pub ts_ns: i64,
    pub decky: String,
    pub service: String,
    pub attacker_ip: String,
    pub bounty_type: String,
    pub payload: String,
}

/// What picking probe targets needs of an attacker (no command or fingerprint lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackerSeen {
    pub uuid: String,
    pub ip: String,
    pub last_seen_ns: i64,
    pub service_count: i64,
}

/// One attacker's aggregate row (maintained by the profiler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attacker {
    pub uuid: String,
    pub ip: String,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub event_count: i64,
    pub service_count: i64,
    pub decky_count: i64,
    /// JSON arrays/objects as text.
    pub services: String,
    pub deckies: String,
    pub fingerprints: String,
    pub commands: String,
    pub traversal_path: String,
    pub is_traversal: bool,
    pub bounty_count: i64,
    pub credential_count: i64,
    pub score: i64,
}

/// The fleet engine's record of one decky (the single source of truth for the fleet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeckyRecord {
    pub name: String,
    /// JSON of the planned decky.
    pub spec: String,
    pub state: String,
    pub last_error: Option<String>,
    pub updated_ns: i64,
}

const ROLES: [&str; 2] = ["admin", "viewer"];

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        uuid: r.try_get("uuid")?,
        username: r.try_get("username")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
        must_change_password: r.try_get::<i64, _>("must_change_password")? != 0,
        created_ns: r.try_get("created_ns")?,
    })
}

const USER_COLUMNS: &str = "uuid, username, password_hash, role, must_change_password, created_ns";

/// The `attackers` table's columns, in the order rows are written (shared with the profiler's
/// upserts in `intel.rs`).
pub(super) const ATTACKER_COLS: [&str; 17] = [
    "uuid",
    "ip",
    "first_seen_ns",
    "last_seen_ns",
    "event_count",
    "service_count",
    "decky_count",
    "services",
    "deckies",
    "fingerprints",
    "commands",
    "traversal_path",
    "is_traversal",
    "bounty_count",
    "credential_count",
    "score",
    "updated_ns",
];

impl SqlRepository {
    /// Create a user; the username must be free and the role `admin` or `viewer`.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        must_change_password: bool,
    ) -> Result<User, RepoError> {
        if !ROLES.contains(&role) {
            return Err(RepoError::Invalid(format!(
                "role {role:?} is not admin or viewer"
            )));
        }
        if username.is_empty() || username.chars().count() > 64 {
            return Err(RepoError::Invalid(
                "username must be 1 to 64 characters".to_owned(),
            ));
        }
        if self.user_by_name(username).await?.is_some() {
            return Err(RepoError::Invalid(format!(
                "user {username:?} already exists"
            )));
        }
        let user = User {
            uuid: uuid::Uuid::new_v4().to_string(),
            username: clean_text(username),
            password_hash: password_hash.to_owned(),
            role: role.to_owned(),
            must_change_password,
            created_ns: now_ns(),
        };
        let mut sql = Sql::new(
            self.backend,
            &format!("INSERT INTO users ({USER_COLUMNS}) VALUES ("),
        );
        sql.bind(Arg::Text(user.uuid.clone())).push(", ");
        sql.bind(Arg::Text(user.username.clone())).push(", ");
        sql.bind(Arg::Text(user.password_hash.clone())).push(", ");
        sql.bind(Arg::Text(user.role.clone())).push(", ");
        sql.bind(Arg::I64(i64::from(must_change_password)))
            .push(", ");
        sql.bind(Arg::I64(user.created_ns)).push(")");
        sql.query()
            .execute(&self.pool)
            .await
            .map_err(q("creating a user"))?;
        Ok(user)
    }

    async fn user_where(&self, col: &str, value: &str) -> Result<Option<User>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            &format!("SELECT {USER_COLUMNS} FROM users WHERE {col} = "),
        );
        sql.bind(Arg::Text(clean_text(value)));
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading a user"))?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(q("reading a user"))
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, RepoError> {
        self.user_where("username", username).await
    }

    pub async fn user_by_uuid(&self, uuid: &str) -> Result<Option<User>, RepoError> {
        self.user_where("uuid", uuid).await
    }

    pub async fn list_users(&self) -> Result<Vec<User>, RepoError> {
        let text = format!("SELECT {USER_COLUMNS} FROM users ORDER BY username");
        let rows = sqlx::query(sqlx::AssertSqlSafe(text))
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing users"))?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()
            .map_err(q("listing users"))
    }

    async fn update_user(&self, uuid: &str, sets: &[(&str, Arg)]) -> Result<bool, RepoError> {
        let mut sql = Sql::new(self.backend, "UPDATE users SET ");
        for (i, (col, arg)) in sets.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push(col).push(" = ").bind(arg.clone());
        }
        sql.push(" WHERE uuid = ").bind(Arg::Text(uuid.to_owned()));
        let done = sql
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("updating a user"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Set a user's password hash and whether it must be changed at next login.
    pub async fn set_user_password(
        &self,
        uuid: &str,
        password_hash: &str,
        must_change: bool,
    ) -> Result<bool, RepoError> {
        self.update_user(
            uuid,
            &[
                ("password_hash", Arg::Text(password_hash.to_owned())),
                ("must_change_password", Arg::I64(i64::from(must_change))),
            ],
        )
        .await
    }

    pub async fn set_user_role(&self, uuid: &str, role: &str) -> Result<bool, RepoError> {
        if !ROLES.contains(&role) {
            return Err(RepoError::Invalid(format!(
                "role {role:?} is not admin or viewer"
            )));
        }
        self.update_user(uuid, &[("role", Arg::Text(role.to_owned()))])
            .await
    }

    pub async fn delete_user(&self, uuid: &str) -> Result<bool, RepoError> {
        let mut sql = Sql::new(self.backend, "DELETE FROM users WHERE uuid = ");
        sql.bind(Arg::Text(uuid.to_owned()));
        let done = sql
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("deleting a user"))?;
        Ok(done.rows_affected() > 0)
    }

    /// A stored JSON state value.
    pub async fn state(&self, key: &str) -> Result<Option<serde_json::Value>, RepoError> {
        let mut sql = Sql::new(self.backend, "SELECT value FROM state WHERE state_key = ");
        sql.bind(Arg::Text(key.to_owned()));
        let text: Option<String> = sql
            .scalar()
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading state"))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Store a JSON state value (insert or replace).
    pub async fn set_state(&self, key: &str, value: &serde_json::Value) -> Result<(), RepoError> {
        let mut sql = Sql::new(
            self.backend,
            "INSERT INTO state (state_key, value) VALUES (",
        );
        sql.bind(Arg::Text(key.to_owned())).push(", ");
        sql.bind(Arg::Text(clean_text(&value.to_string())))
            .push(")");
        sql.push(&self.backend.upsert("state_key", &["value"]));
        sql.query()
            .execute(&self.pool)
            .await
            .map_err(q("writing state"))?;
        Ok(())
    }

    /// Record a bounty unless the same (type, attacker, payload) exists; the unique key does the
    /// deduplication, so concurrent writers cannot both insert. Returns whether it was new.
    pub async fn add_bounty(&self, b: &NewBounty) -> Result<bool, RepoError> {
        let key = bounty_dedup_key(b);
        let mut sql = Sql::new(self.backend, self.backend.insert_ignore());
        sql.push(" bounties (ts_ns, decky, service, attacker_ip, bounty_type, payload, dedup_key) VALUES (");
        sql.bind(Arg::I64(b.ts_ns)).push(", ");
        sql.bind(Arg::Text(clip_chars(&b.decky, 255))).push(", ");
        sql.bind(Arg::Text(clip_chars(&b.service, 255))).push(", ");
        sql.bind(Arg::Text(clip_chars(&b.attacker_ip, 45)))
            .push(", ");
        sql.bind(Arg::Text(clip_chars(&b.bounty_type, 255)))
            .push(", ");
        sql.bind(Arg::Text(clean_text(&b.payload))).push(", ");
        sql.bind(Arg::Text(key)).push(")");
        sql.push(self.backend.on_conflict_ignore());
        let done = sql
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("recording a bounty"))?;
        Ok(done.rows_affected() > 0)
    }

    fn bounty_filter(sql: &mut Sql, bounty_type: Option<&str>, ip: Option<&str>) {
        let mut first = true;
        for (col, value) in [("bounty_type", bounty_type), ("attacker_ip", ip)] {
            if let Some(v) = value {
                sql.push(if first { " WHERE " } else { " AND " });
                sql.push(col).push(" = ").bind(Arg::Text(v.to_owned()));
                first = false;
            }
        }
    }

    /// Bounties, newest first, optionally of one type and/or one attacker.
    pub async fn bounties(
        &self,
        bounty_type: Option<&str>,
        ip: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Bounty>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            "SELECT id, ts_ns, decky, service, attacker_ip, bounty_type, payload FROM bounties",
        );
        Self::bounty_filter(&mut sql, bounty_type, ip);
        sql.push(" ORDER BY id DESC LIMIT ")
            .bind(Arg::I64(limit.clamp(0, 10_000)));
        sql.push(" OFFSET ").bind(Arg::I64(offset.max(0)));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing bounties"))?;
        rows.iter()
            .map(|r| {
                Ok(Bounty {
                    id: r.try_get("id")?,
                    ts_ns: r.try_get("ts_ns")?,
                    decky: r.try_get("decky")?,
                    service: r.try_get("service")?,
                    attacker_ip: r.try_get("attacker_ip")?,
                    bounty_type: r.try_get("bounty_type")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("listing bounties"))
    }

    pub async fn count_bounties(
        &self,
        bounty_type: Option<&str>,
        ip: Option<&str>,
    ) -> Result<i64, RepoError> {
        let mut sql = Sql::new(self.backend, "SELECT COUNT(*) FROM bounties");
        Self::bounty_filter(&mut sql, bounty_type, ip);
        sql.scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(q("counting bounties"))
    }

    /// `(lowest, highest)` bounty id, 0 when there is none: two index lookups. Bounties are
    /// only added (higher ids) or deleted oldest first (retention, purge), so a count is
    /// unchanged as long as both are.
    pub async fn bounty_id_range(&self) -> Result<(i64, i64), RepoError> {
        // Two subqueries: SQLite uses the index for a lone MIN or MAX, not for both at once.
        let (low, high): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT (SELECT MIN(id) FROM bounties), (SELECT MAX(id) FROM bounties)")
                .fetch_one(&self.pool)
                .await
                .map_err(q("reading the bounty id range"))?;
        Ok((low.unwrap_or(0), high.unwrap_or(0)))
    }

    /// Insert or replace the aggregate row of `a.ip`; its uuid is kept when the row exists.
    /// Returns the attacker's uuid.
    pub async fn upsert_attacker(&self, a: &Attacker) -> Result<String, RepoError> {
        let existing = self.attacker_by_ip(&a.ip).await?.map(|e| e.uuid);
        let uuid = existing.unwrap_or_else(|| {
            if a.uuid.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                a.uuid.clone()
            }
        });
        let cols = ATTACKER_COLS;
        let args = [
            Arg::Text(uuid.clone()),
            Arg::Text(clip_chars(&a.ip, 45)),
            Arg::I64(a.first_seen_ns),
            Arg::I64(a.last_seen_ns),
            Arg::I64(a.event_count),
            Arg::I64(a.service_count),
            Arg::I64(a.decky_count),
            Arg::Text(clean_text(&a.services)),
            Arg::Text(clean_text(&a.deckies)),
            Arg::Text(clean_text(&a.fingerprints)),
            Arg::Text(clean_text(&a.commands)),
            Arg::Text(clean_text(&a.traversal_path)),
            Arg::I64(i64::from(a.is_traversal)),
            Arg::I64(a.bounty_count),
            Arg::I64(a.credential_count),
            Arg::I64(a.score),
            Arg::I64(now_ns()),
        ];
        let mut sql = Sql::new(
            self.backend,
            &format!("INSERT INTO attackers ({}) VALUES (", cols.join(", ")),
        );
        for (i, arg) in args.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(arg);
        }
        sql.push(")");
        sql.push(&self.backend.upsert("ip", &cols[2..]));
        sql.query()
            .execute(&self.pool)
            .await
            .map_err(q("upserting an attacker"))?;
        Ok(uuid)
    }

    async fn attacker_where(&self, col: &str, value: &str) -> Result<Option<Attacker>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            &format!("SELECT * FROM attackers WHERE {col} = "),
        );
        sql.bind(Arg::Text(value.to_owned()));
        let row = sql
            .query()
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading an attacker"))?;
        row.as_ref()
            .map(attacker_from_row)
            .transpose()
            .map_err(q("reading an attacker"))
    }

    pub async fn attacker_by_ip(&self, ip: &str) -> Result<Option<Attacker>, RepoError> {
        self.attacker_where("ip", ip).await
    }

    pub async fn attacker_by_uuid(&self, uuid: &str) -> Result<Option<Attacker>, RepoError> {
        self.attacker_where("uuid", uuid).await
    }

    /// Attackers sorted by `sort` (`last_seen`, `first_seen`, `events`, `score`), newest/highest
    /// first, optionally filtered by an IP substring or a service they touched.
    pub async fn attackers(
        &self,
        search: Option<&str>,
        service: Option<&str>,
        sort: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Attacker>, RepoError> {
        self.attackers_selecting("*", search, service, sort, limit, offset)
            .await
    }

    /// [`Self::attackers`] without their command lists (`commands` is empty): what a listing
    /// shows, without reading up to ~200 KiB of attacker text per row it does not show.
    pub async fn attacker_summaries(
        &self,
        search: Option<&str>,
        service: Option<&str>,
        sort: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Attacker>, RepoError> {
        let columns: Vec<&str> = ATTACKER_COLS
            .iter()
            .map(|c| {
                if *c == "commands" {
                    "'' AS commands"
                } else {
                    c
                }
            })
            .collect();
        self.attackers_selecting(&columns.join(", "), search, service, sort, limit, offset)
            .await
    }

    async fn attackers_selecting(
        &self,
        columns: &str,
        search: Option<&str>,
        service: Option<&str>,
        sort: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Attacker>, RepoError> {
        let order = match sort {
            "first_seen" => "first_seen_ns DESC",
            "events" => "event_count DESC",
            "score" => "score DESC",
            "last_seen" | "" => "last_seen_ns DESC",
            other => {
                return Err(RepoError::Invalid(format!(
                    "sort {other:?} is not last_seen, first_seen, events or score"
                )));
            }
        };
        let mut sql = Sql::new(self.backend, &format!("SELECT {columns} FROM attackers"));
        self.attacker_filter(&mut sql, search, service);
        sql.push(&format!(" ORDER BY {order}, uuid LIMIT "));
        sql.bind(Arg::I64(limit.clamp(0, 10_000)));
        sql.push(" OFFSET ").bind(Arg::I64(offset.max(0)));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing attackers"))?;
        rows.iter()
            .map(attacker_from_row)
            .collect::<Result<_, _>>()
            .map_err(q("listing attackers"))
    }

    /// Attackers last seen at or after `since_ns`, newest first (then by uuid), `limit` at a
    /// time, resuming after `after` (the last row of the previous page): keyset paging, so a
    /// walk over every attacker reads each row once where OFFSET paging re-read every earlier
    /// page, and only the columns a probe target needs.
    pub async fn attackers_seen_since(
        &self,
        since_ns: i64,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<AttackerSeen>, RepoError> {
        let mut sql = Sql::new(
            self.backend,
            "SELECT uuid, ip, last_seen_ns, service_count FROM attackers WHERE last_seen_ns >= ",
        );
        sql.bind(Arg::I64(since_ns));
        if let Some((ts, uuid)) = after {
            sql.push(" AND (last_seen_ns < ").bind(Arg::I64(ts));
            sql.push(" OR (last_seen_ns = ").bind(Arg::I64(ts));
            sql.push(" AND uuid > ").bind(Arg::Text(uuid.to_owned()));
            sql.push("))");
        }
        sql.push(" ORDER BY last_seen_ns DESC, uuid LIMIT ")
            .bind(Arg::I64(limit.clamp(0, 10_000)));
        let rows = sql
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(q("listing recent attackers"))?;
        rows.iter()
            .map(|r| {
                Ok(AttackerSeen {
                    uuid: r.try_get("uuid")?,
                    ip: r.try_get("ip")?,
                    last_seen_ns: r.try_get("last_seen_ns")?,
                    service_count: r.try_get("service_count")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("listing recent attackers"))
    }

    fn attacker_filter(&self, sql: &mut Sql, search: Option<&str>, service: Option<&str>) {
        let mut first = true;
        let op = self.backend.ilike();
        for (col, value) in [("ip", search), ("services", service)] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                sql.push(if first { " WHERE " } else { " AND " });
                let pattern = format!("%{}%", clean_text(v).replace(['%', '_', '!'], ""));
                sql.push(&format!("{col} {op} ")).bind(Arg::Text(pattern));
                first = false;
            }
        }
    }

    pub async fn count_attackers(
        &self,
        search: Option<&str>,
        service: Option<&str>,
    ) -> Result<i64, RepoError> {
        let mut sql = Sql::new(self.backend, "SELECT COUNT(*) FROM attackers");
        self.attacker_filter(&mut sql, search, service);
        sql.scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(q("counting attackers"))
    }

    /// Record the desired and observed state of one decky.
    pub async fn upsert_decky(&self, d: &DeckyRecord) -> Result<(), RepoError> {
        let mut sql = Sql::new(
            self.backend,
            "INSERT INTO deckies (name, spec, state, last_error, updated_ns) VALUES (",
        );
        sql.bind(Arg::Text(d.name.clone())).push(", ");
        sql.bind(Arg::Text(d.spec.clone())).push(", ");
        sql.bind(Arg::Text(d.state.clone())).push(", ");
        sql.bind(Arg::OptText(d.last_error.clone())).push(", ");
        sql.bind(Arg::I64(now_ns())).push(")");
        sql.push(
            &self
                .backend
                .upsert("name", &["spec", "state", "last_error", "updated_ns"]),
        );
        sql.query()
            .execute(&self.pool)
            .await
            .map_err(q("recording a decky"))?;
        Ok(())
    }

    pub async fn deckies(&self) -> Result<Vec<DeckyRecord>, RepoError> {
        let rows = sqlx::query(
            "SELECT name, spec, state, last_error, updated_ns FROM deckies ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("listing deckies"))?;
        rows.iter()
            .map(|r| {
                Ok(DeckyRecord {
                    name: r.try_get("name")?,
                    spec: r.try_get("spec")?,
                    state: r.try_get("state")?,
                    last_error: r.try_get("last_error")?,
                    updated_ns: r.try_get("updated_ns")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(q("listing deckies"))
    }

    pub async fn delete_decky(&self, name: &str) -> Result<bool, RepoError> {
        let mut sql = Sql::new(self.backend, "DELETE FROM deckies WHERE name = ");
        sql.bind(Arg::Text(name.to_owned()));
        let done = sql
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("deleting a decky"))?;
        Ok(done.rows_affected() > 0)
    }
}

/// The unique key that deduplicates bounties: (type, attacker, payload), hashed so it fits an
/// indexable column whatever the payload's size.
pub fn bounty_dedup_key(b: &NewBounty) -> String {
    let mut h = Sha256::new();
    for part in [&b.bounty_type, &b.attacker_ip, &b.payload] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

pub(crate) fn attacker_from_row(r: &sqlx::any::AnyRow) -> Result<Attacker, sqlx::Error> {
    Ok(Attacker {
        uuid: r.try_get("uuid")?,
        ip: r.try_get("ip")?,
        first_seen_ns: r.try_get("first_seen_ns")?,
        last_seen_ns: r.try_get("last_seen_ns")?,
        event_count: r.try_get("event_count")?,
        service_count: r.try_get("service_count")?,
        decky_count: r.try_get("decky_count")?,
        services: r.try_get("services")?,
        deckies: r.try_get("deckies")?,
        fingerprints: r.try_get("fingerprints")?,
        commands: r.try_get("commands")?,
        traversal_path: r.try_get("traversal_path")?,
        is_traversal: r.try_get::<i64, _>("is_traversal")? != 0,
        bounty_count: r.try_get("bounty_count")?,
        credential_count: r.try_get("credential_count")?,
        score: r.try_get("score")?,
    })
}
