//! Worker leases: one `decnet collect` (or profiler, …) per store, even across hosts sharing a
//! PostgreSQL or MySQL database. A lease expires unless renewed, so a dead holder never blocks
//! its successor for longer than the lease time.

use super::{
    RepoError, SqlRepository, now_ns, q,
    sql::{Arg, Sql},
};

/// Who holds a lease that could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHeld {
    pub holder: String,
    pub expires_ns: i64,
}

impl SqlRepository {
    /// Take or renew the lease of `role` for `holder` until `ttl_ns` from now. `Err(held)` names
    /// the other live holder.
    pub async fn acquire_lease(
        &self,
        role: &str,
        holder: &str,
        ttl_ns: i64,
    ) -> Result<Result<(), LeaseHeld>, RepoError> {
        let now = now_ns();
        let expires = now.saturating_add(ttl_ns);
        let mut insert = Sql::new(self.backend, self.backend.insert_ignore());
        insert.push(" leases (role, holder, expires_ns) VALUES (");
        insert.bind(Arg::Text(role.to_owned())).push(", ");
        insert.bind(Arg::Text(holder.to_owned())).push(", ");
        insert.bind(Arg::I64(expires)).push(")");
        insert.push(self.backend.on_conflict_ignore());
        let inserted = insert
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("taking a lease"))?
            .rows_affected();
        if inserted > 0 {
            return Ok(Ok(()));
        }
        let mut update = Sql::new(self.backend, "UPDATE leases SET holder = ");
        update.bind(Arg::Text(holder.to_owned()));
        update.push(", expires_ns = ").bind(Arg::I64(expires));
        update
            .push(" WHERE role = ")
            .bind(Arg::Text(role.to_owned()));
        update
            .push(" AND (holder = ")
            .bind(Arg::Text(holder.to_owned()));
        update
            .push(" OR expires_ns < ")
            .bind(Arg::I64(now))
            .push(")");
        let updated = update
            .query()
            .execute(&self.pool)
            .await
            .map_err(q("renewing a lease"))?
            .rows_affected();
        if updated > 0 {
            return Ok(Ok(()));
        }
        let mut read = Sql::new(
            self.backend,
            "SELECT holder, expires_ns FROM leases WHERE role = ",
        );
        read.bind(Arg::Text(role.to_owned()));
        let row: Option<(String, i64)> = read
            .query_as()
            .fetch_optional(&self.pool)
            .await
            .map_err(q("reading a lease"))?;
        Ok(Err(row.map_or(
            LeaseHeld {
                holder: String::from("unknown"),
                expires_ns: expires,
            },
            |(holder, expires_ns)| LeaseHeld { holder, expires_ns },
        )))
    }

    /// Give the lease back (only if `holder` still has it).
    pub async fn release_lease(&self, role: &str, holder: &str) -> Result<(), RepoError> {
        let mut sql = Sql::new(self.backend, "DELETE FROM leases WHERE role = ");
        sql.bind(Arg::Text(role.to_owned()));
        sql.push(" AND holder = ")
            .bind(Arg::Text(holder.to_owned()));
        sql.query()
            .execute(&self.pool)
            .await
            .map_err(q("releasing a lease"))?;
        Ok(())
    }
}
