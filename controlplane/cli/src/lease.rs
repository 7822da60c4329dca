//! The repository lease of a worker role (DESIGN §5): a second `decnet collect` against the same
//! database — even from another host — is refused, and a worker that loses its lease (paused
//! past its expiry, someone else took over) stops instead of writing beside the new holder.

use std::{sync::Arc, time::Duration};

use decnet_store::repo::SqlRepository;
use tokio::sync::Notify;

use crate::failure::Failure;

/// How long a lease lasts without renewal, and how often it is renewed.
const TTL: Duration = Duration::from_secs(30);
const RENEW_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct WorkerLease {
    role: &'static str,
    holder: String,
    repo: SqlRepository,
    renewal: tokio::task::JoinHandle<()>,
    /// Notified when the lease is lost.
    pub lost: Arc<Notify>,
}

fn ttl_ns() -> i64 {
    i64::try_from(TTL.as_nanos()).unwrap_or(i64::MAX)
}

impl WorkerLease {
    /// Take the lease for `role` as the worker of `data_dir` on this host. The holder name is
    /// host + data directory, not the process: the data directory's own lock already keeps a
    /// second process off it, so a worker restarted after `kill -9` takes its lease straight
    /// back instead of waiting for it to expire.
    pub fn acquire(
        rt: &tokio::runtime::Runtime,
        repo: &SqlRepository,
        role: &'static str,
        data_dir: &std::path::Path,
    ) -> Result<Self, Failure> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        let holder = format!("{host}:{}", dir.display());
        match rt.block_on(repo.acquire_lease(role, &holder, ttl_ns())) {
            Ok(Ok(())) => {}
            Ok(Err(held)) => {
                return Err(Failure::runtime(format!(
                    "another `decnet {role}` ({}) holds this database's {role} lease; stop it first (a dead holder's lease expires within {} s)",
                    held.holder,
                    TTL.as_secs()
                )));
            }
            Err(e) => return Err(Failure::runtime(e.to_string())),
        }
        let lost = Arc::new(Notify::new());
        let renewal = {
            let (repo, holder, lost) = (repo.clone(), holder.clone(), Arc::clone(&lost));
            rt.spawn(async move {
                let mut tick = tokio::time::interval(RENEW_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match repo.acquire_lease(role, &holder, ttl_ns()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(held)) => {
                            tracing::error!(holder = %held.holder, "{role} lease lost to another process; stopping");
                            lost.notify_one();
                            return;
                        }
                        // The database is unreachable: keep trying; the pipeline keeps
                        // events in segments meanwhile.
                        Err(e) => tracing::warn!(error = %e, "renewing the {role} lease failed"),
                    }
                }
            })
        };
        Ok(Self {
            role,
            holder,
            repo: repo.clone(),
            renewal,
            lost,
        })
    }

    pub fn release(self, rt: &tokio::runtime::Runtime) {
        self.renewal.abort();
        if let Err(e) = rt.block_on(self.repo.release_lease(self.role, &self.holder)) {
            tracing::warn!(error = %e, "releasing the {} lease failed; it expires by itself", self.role);
        }
    }
}
