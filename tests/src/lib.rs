//! End-to-end tests that cross crates.
//!
//! The tests in `tests/` drive the real `decnet` binary (and, as later issues land, real
//! network namespaces, Docker and a browser) and check what a user would see. This library
//! holds what those tests share.

use std::{path::PathBuf, process::Command, sync::OnceLock};

/// Path of a freshly built binary of this workspace.
///
/// Cargo builds another package's binaries for our tests only as a side effect, so a stale
/// `decnet` could be tested; this builds it (once per test process) with the same cargo,
/// profile and target directory, and returns its path. Panics with cargo's output on failure:
/// a test cannot run without the binary.
#[allow(clippy::panic)] // test support: a missing binary must fail the test loudly
pub fn workspace_bin(name: &'static str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let out = Command::new(cargo)
            .args(["build", "--quiet", "--bins", "--manifest-path"])
            .arg(&manifest)
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        // The test executable lives in <target>/<profile>/deps/; binaries one level up.
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .ok_or("test executable has no parent directory")?;
        Ok(dir.to_path_buf())
    });
    match built {
        Ok(dir) => dir.join(name),
        Err(e) => panic!("building the workspace binaries failed:\n{e}"),
    }
}
