#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, docs, cargo deny (deny.toml), then
# every test (the tests that mount run for real when this runs as root, each in its own mount
# namespace, and skip loudly otherwise). With SEALROOT_VMTEST=1, as CI sets it, the VM tests of
# scripts/vmtest.sh (real fs-verity under qemu) run last.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
# Licences, bans and sources of the dependency tree (deny.toml). Not advisories: their database
# is a git repository on GitHub, which CI cannot reach. cargo deny reads the manifest of every
# crate in Cargo.lock, and the builds above download only those they compile: fetch the rest
# first (deny.toml checks this one target). Its count line joins the totals below.
echo "== cargo deny check licenses bans sources"
if command -v cargo-deny >/dev/null 2>&1; then
    cargo fetch --quiet --target x86_64-unknown-linux-gnu
    cargo deny --offline check licenses bans sources
    echo "cargo-deny: 1 passed, 0 failed, 0 skipped" | tee -a "$results"
else
    echo "SKIPPED: cargo deny is not installed (scripts/install-deps.sh installs it)"
    echo "cargo-deny: 0 passed, 0 failed, 1 skipped" | tee -a "$results"
fi
echo "== cargo test"
cargo test --workspace --quiet 2>&1 | tee -a "$results"
if [ "${SEALROOT_VMTEST:-0}" = 1 ]; then
    # Real fs-verity, which this machine's kernel may lack: Debian's 6.12 kernel under qemu
    # (docs/vmtest.md). Its `vmtest: N passed, M failed` line joins the totals below.
    echo "== VM tests (scripts/vmtest.sh)"
    bash scripts/vmtest.sh 2>&1 | tee -a "$results"
fi
# One closing line with the totals, for humans and for CI.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^vmtest: [0-9]+ passed/ { p += $2; f += $4; i += $6 }
     /^cargo-deny: [0-9]+ passed/ { p += $2; f += $4; i += $6 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$results"
