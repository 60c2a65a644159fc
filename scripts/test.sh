#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, docs, then every test (the tests that
# mount run for real when this runs as root, each in its own mount namespace, and skip loudly
# otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== cargo test"
cargo test --workspace --quiet 2>&1 | tee target/test-output.txt
# One closing line with the totals, for humans and for CI.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' target/test-output.txt
