#!/usr/bin/env bash
# Regenerates ebpf/prebuilt/xdp_capture.o, the object builds fall back to when clang is absent.
# Run it after any change to ebpf/src/xdp_capture.c and commit the result: the test
# `prebuilt_object_matches_fresh_build` (cargo test -p decnet-ebpf) fails until you do.
# Needs: clang (Debian clang 14) and libbpf-dev (bpf/bpf_helpers.h).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here/ebpf/src"
# Same flags as ebpf/build.rs. Run from ebpf/src with a relative source path and a fixed debug
# compilation dir, so the object (DWARF included) does not depend on where the tree lives.
"${CLANG:-clang}" -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -fdebug-compilation-dir=. \
    -c xdp_capture.c -o "$here/ebpf/prebuilt/xdp_capture.o"
echo "wrote ebpf/prebuilt/xdp_capture.o ($(stat -c %s "$here/ebpf/prebuilt/xdp_capture.o") bytes) with $("${CLANG:-clang}" --version | head -1)"
