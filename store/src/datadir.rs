//! The one directory all appliance state lives under (`--data-dir` / `DECNET_DATA_DIR`,
//! default `/var/lib/decnet`): the SQLite file, segments, pcaps, quarantine and secrets.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Where state lives when nothing else is said.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/decnet";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "data directory {path}: {source}; create it or choose another with --data-dir / DECNET_DATA_DIR"
    )]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "data directory {path} is not writable ({source}); fix its permissions or choose another with --data-dir"
    )]
    NotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another `decnet {role}` already runs on data directory {path} (lock {lock} is held); stop it first"
    )]
    Locked {
        role: String,
        path: PathBuf,
        lock: PathBuf,
    },
}

/// An opened data directory with its sub-directories created (mode 0700: events, captured
/// files and secrets are for the appliance's operators only).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

const SUBDIRS: [&str; 4] = ["segments", "quarantine", "pcaps", "secrets"];

impl DataDir {
    /// Create (if needed) and check `root` and its sub-directories.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        for dir in std::iter::once(root.to_owned()).chain(SUBDIRS.iter().map(|s| root.join(s))) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| DataDirError::Create {
                    path: dir.clone(),
                    source,
                })?;
        }
        let probe = root.join(".write-probe");
        let written = File::create(&probe)
            .and_then(|mut f| f.write_all(b"ok"))
            .and_then(|()| fs::remove_file(&probe));
        written.map_err(|source| DataDirError::NotWritable {
            path: root.to_owned(),
            source,
        })?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn segments(&self) -> PathBuf {
        self.root.join("segments")
    }

    pub fn quarantine(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    pub fn pcaps(&self) -> PathBuf {
        self.root.join("pcaps")
    }

    pub fn secrets(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// The embedded SQLite database URL.
    pub fn sqlite_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.root.join("decnet.db").display()
        )
    }

    /// Hold the lock of worker `role` for as long as the returned guard lives; a second process
    /// of the same role on the same directory is refused with a clear error.
    pub fn lock(&self, role: &str) -> Result<RoleLock, DataDirError> {
        let lock = self.root.join(format!(".{role}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|source| DataDirError::NotWritable {
                path: lock.clone(),
                source,
            })?;
        let _ = file.set_permissions(fs::Permissions::from_mode(0o600));
        // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc != 0 {
            return Err(DataDirError::Locked {
                role: role.to_owned(),
                path: self.root.clone(),
                lock,
            });
        }
        Ok(RoleLock { _file: file })
    }
}

/// Make every file this process creates from now on private to its owner (0600/0700): the
/// database, segments, captured files and secrets hold attacker data and credentials.
pub fn private_umask() {
    // SAFETY: umask only swaps the process's file-mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Held role lock; released when dropped (or when the process dies, even by `kill -9`).
#[derive(Debug)]
pub struct RoleLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn creates_private_subdirectories_and_locks_roles() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let dir = DataDir::open(&root).unwrap();
        let mode = fs::metadata(dir.segments()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let held = dir.lock("collect").unwrap();
        let err = dir.lock("collect").unwrap_err().to_string();
        assert!(err.contains("another `decnet collect`"), "{err}");
        drop(held);
        dir.lock("collect").unwrap();
    }

    #[test]
    fn unusable_directory_is_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        let err = DataDir::open(&file.join("sub")).unwrap_err().to_string();
        assert!(err.contains("plain-file/sub"), "{err}");
        assert!(err.contains("--data-dir"), "{err}");
    }
}
