#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, docs, cargo deny (deny.toml), then
# every test (the tests that mount run for real when this runs as root, each in its own mount
# namespace, and skip loudly otherwise). With SEALROOT_FUZZ=1, as CI sets it, every fuzz target
# then runs for 30 s (scripts/fuzz.sh). With SEALROOT_VMTEST=1, as CI sets it, the VM tests of
# scripts/vmtest.sh (real fs-verity under qemu) run last. A test that cannot run here (no root, a
# tool missing) says SKIPPED through sealroot_testkit::skip, which also writes the line to
# $SEALROOT_SKIP_LOG: the harness hides a passing test's output and counts it as passed, so the
# skips are listed and counted at the end. With SEALROOT_REQUIRE_ALL=1 (.ci/run) a skip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== the read side alone (what a boot-time reader links)"
cargo check --quiet -p sealroot-repo -p sealroot-core --no-default-features
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
results="$(mktemp)"
skips="$(mktemp)"
trap 'rm -f "$results" "$skips"' EXIT
# Licences, bans and sources of the dependency tree (deny.toml). Not advisories: their database
# is a git repository on GitHub, which CI cannot reach. cargo deny reads the manifest of every
# crate in Cargo.lock, and the builds above download only those they compile: fetch the rest
# first (deny.toml checks this one target). Its count line joins the totals below.
echo "== cargo deny check licenses bans sources"
if command -v cargo-deny >/dev/null 2>&1; then
    cargo fetch --quiet --target x86_64-unknown-linux-gnu
    cargo deny --offline check licenses bans sources
    echo "cargo-deny: 1 passed, 0 failed, 0 skipped" | tee -a "$results"
elif [ "${SEALROOT_REQUIRE_ALL:-0}" = 1 ]; then
    echo "cargo deny is not installed, and SEALROOT_REQUIRE_ALL=1 says it must run here" >&2
    exit 1
else
    echo "SKIPPED: cargo deny is not installed (scripts/install-deps.sh installs it)"
    echo "cargo-deny: 0 passed, 0 failed, 1 skipped" | tee -a "$results"
fi
echo "== cargo test"
SEALROOT_SKIP_LOG="$skips" cargo test --workspace --quiet 2>&1 | tee -a "$results"
if [ "${SEALROOT_FUZZ:-0}" = 1 ]; then
    # Coverage-guided fuzzing of every parser of outside data (scripts/fuzz.sh): each target
    # for SEALROOT_FUZZ_SECONDS (default 30) from its committed corpus; a crash fails. Its
    # `fuzz: N passed, M failed` line joins the totals below.
    echo "== fuzzing (scripts/fuzz.sh)"
    bash scripts/fuzz.sh "${SEALROOT_FUZZ_SECONDS:-30}" 2>&1 | tee -a "$results"
fi
if [ "${SEALROOT_VMTEST:-0}" = 1 ]; then
    # Real fs-verity, which this machine's kernel may lack: Debian's 6.12 kernel under qemu
    # (docs/vmtest.md). Its `vmtest: N passed, M failed` line joins the totals below.
    echo "== VM tests (scripts/vmtest.sh)"
    bash scripts/vmtest.sh 2>&1 | tee -a "$results"
fi
# The tests that skipped (wholly or in part), counted once each, by name: libtest counted them
# as passed.
if [ -s "$skips" ]; then
    echo "== skipped"
    sort -u "$skips"
fi
skipped="$(awk -F': ' '{ print $2 }' "$skips" | sort -u | wc -l)"
# One closing line with the totals, for humans and for CI.
awk -v skipped="$skipped" '/^test result:/ { p += $4; f += $6; i += $8 }
     /^vmtest: [0-9]+ passed/ { p += $2; f += $4; i += $6 }
     /^fuzz: [0-9]+ passed/ { p += $2; f += $4; i += $6 }
     /^cargo-deny: [0-9]+ passed/ { p += $2; f += $4; i += $6 }
     END { printf "%d passed, %d failed, %d skipped\n", p - skipped, f, i + skipped }' "$results"
