//! schemathesis (property-based API testing from the OpenAPI document) against a fresh
//! `decnet api`: every schema-valid request must be accepted, every invalid one refused with a
//! documented status, no 5xx, every response as documented. The work is done by
//! `scripts/schemathesis.sh`; this test builds the binary, runs the script and fails with its
//! output. Without schemathesis (and no way to install it) the test fails under CI (`CI` set)
//! and is skipped loudly elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{path::PathBuf, process::Command};

/// The script's exit code for "schemathesis is not available".
const UNAVAILABLE: i32 = 77;

#[test]
fn openapi_document_survives_schemathesis() {
    let decnet = decnet_e2e::workspace_bin("decnet");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/schemathesis.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&decnet)
        .env("ST_MAX_EXAMPLES", "50")
        .output()
        .expect("run scripts/schemathesis.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        Some(UNAVAILABLE) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "\n*** SKIPPED: schemathesis is not installed and could not be installed ***\n\
                 *** (needs python3-venv and PyPI; or set SCHEMATHESIS=/path/to/schemathesis) ***\n{stderr}"
            );
        }
        code => panic!(
            "schemathesis.sh exited with {code:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}
