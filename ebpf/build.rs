//! Compiles `src/xdp_capture.c` with clang when it is installed; otherwise (or when clang fails)
//! embeds the committed `prebuilt/xdp_capture.o`, so building the workspace never needs clang.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Kept identical to `scripts/build-ebpf.sh` (the prebuilt object's recipe).
const CLANG_ARGS: &[&str] = &[
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-I/usr/include/x86_64-linux-gnu",
    "-fdebug-compilation-dir=.",
    "-c",
    "xdp_capture.c",
    "-o",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=src/xdp_capture.c");
    println!("cargo:rerun-if-changed=prebuilt/xdp_capture.o");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=DECNET_EBPF_PREBUILT");
    let out = out_dir.join("xdp_capture.o");
    let source = if std::env::var_os("DECNET_EBPF_PREBUILT").is_some() {
        copy_prebuilt(&manifest, &out)
    } else {
        match compile(&manifest, &out) {
            Ok(()) => "clang",
            Err(reason) => {
                // Not a warning when clang is simply absent: that is the supported appliance build.
                if !reason.starts_with("not found") {
                    println!(
                        "cargo:warning=xdp_capture.c not compiled ({reason}); using the prebuilt object"
                    );
                }
                copy_prebuilt(&manifest, &out)
            }
        }
    };
    println!("cargo:rustc-env=DECNET_XDP_CAPTURE_FROM={source}");
}

fn compile(manifest: &Path, out: &Path) -> Result<(), String> {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let status = Command::new(&clang)
        .current_dir(manifest.join("src"))
        .args(CLANG_ARGS)
        .arg(out)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{clang} exited with {s}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("not found: {clang}")),
        Err(e) => Err(format!("{clang}: {e}")),
    }
}

fn copy_prebuilt(manifest: &Path, out: &Path) -> &'static str {
    let prebuilt = manifest.join("prebuilt/xdp_capture.o");
    if let Err(e) = std::fs::copy(&prebuilt, out) {
        // A build script has no caller to return to: failing the build loudly is the only option.
        println!("cargo:warning=cannot copy {}: {e}", prebuilt.display());
        std::process::exit(1);
    }
    "prebuilt"
}
