//! The committed `prebuilt/xdp_capture.o` must be what `scripts/build-ebpf.sh` makes of the
//! current source, or builds without clang would ship a stale program.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

fn clang() -> String {
    std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned())
}

fn clang_version() -> Option<String> {
    let out = Command::new(clang()).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_owned)
}

/// Section names of an ELF64 little-endian object, in order.
fn section_names(elf: &[u8]) -> Vec<String> {
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([elf[o], elf[o + 1]]));
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let shoff = u64_at(0x28);
    let shentsize = u16_at(0x3a);
    let shnum = u16_at(0x3c);
    let shstrndx = u16_at(0x3e);
    let strtab = u64_at(shoff + shstrndx * shentsize + 0x18);
    (0..shnum)
        .map(|i| {
            let name = strtab + u32_at(shoff + i * shentsize);
            let end = elf[name..].iter().position(|&b| b == 0).unwrap() + name;
            String::from_utf8_lossy(&elf[name..end]).into_owned()
        })
        .collect()
}

#[test]
fn prebuilt_object_matches_fresh_build() {
    let manifest = &std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    );
    let prebuilt = std::fs::read(manifest.join("prebuilt/xdp_capture.o")).unwrap();
    let Some(version) = clang_version() else {
        eprintln!(
            "SKIPPED: clang not installed; cannot check prebuilt/xdp_capture.o against the source"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fresh_path = dir.path().join("xdp_capture.o");
    // Same recipe as scripts/build-ebpf.sh, into a temp file so the tree stays untouched.
    let st = Command::new(clang())
        .current_dir(manifest.join("src"))
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-fdebug-compilation-dir=.",
            "-c",
            "xdp_capture.c",
            "-o",
        ])
        .arg(&fresh_path)
        .status()
        .unwrap();
    assert!(st.success(), "clang failed on xdp_capture.c");
    let fresh = std::fs::read(&fresh_path).unwrap();
    // The object records the compiler in `.comment`; only the same compiler is byte-reproducible.
    let same_compiler = prebuilt
        .windows(version.len())
        .any(|w| w == version.as_bytes());
    if same_compiler {
        assert!(
            fresh == prebuilt,
            "ebpf/prebuilt/xdp_capture.o is stale: run scripts/build-ebpf.sh and commit it"
        );
    } else {
        eprintln!("clang differs from the prebuilt's ({version}); comparing sections only");
        assert_eq!(section_names(&fresh), section_names(&prebuilt));
    }
    // Whatever was compiled, the crate embeds a BPF object with the program and its maps.
    let names = section_names(decnet_ebpf::XDP_CAPTURE);
    for s in ["xdp", ".maps", ".BTF", ".BTF.ext", "license"] {
        assert!(
            names.iter().any(|n| n == s),
            "section {s} missing: {names:?}"
        );
    }
}
