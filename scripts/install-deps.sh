#!/usr/bin/env bash
# Installs what sealroot needs to build and test on Debian 12: the kernel-facing tools used as
# oracles by the tests (fsverity-utils, erofs-utils, attr, acl; openssl makes the keys and
# certificates of the PKCS#7 tests; e2fsprogs makes the small filesystem of the full-disk test;
# g++ builds libFuzzer for scripts/fuzz.sh; systemd-boot brings bootctl, on Debian 12 not in the
# systemd package, whose parser must read sealroot's boot entries), a Rust toolchain if none,
# and the cargo tools the tests use.
# Safe to run again: it only installs what is missing.
set -euo pipefail

need=()
for pkg in fsverity erofs-utils attr acl util-linux openssl e2fsprogs g++ systemd-boot; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        echo "cargo is in ~/.cargo/bin: add it to PATH (source ~/.cargo/env)" >&2
    else
        echo "installing Rust with Debian's rustup is not available on Debian 12; install rustup from your distribution or rustup.rs" >&2
        exit 1
    fi
fi
# composefs-rs's cfsctl: a second, independent oracle the tests compare against (image bytes,
# repository interop). Building it takes a few minutes the first time; tests that need it say
# SKIPPED when it is missing, so SEALROOT_NO_CFSCTL=1 skips this step.
if [ -z "${SEALROOT_NO_CFSCTL:-}" ] && ! command -v cfsctl >/dev/null 2>&1 \
    && [ ! -x "$HOME/.cargo/bin/cfsctl" ]; then
    echo "installing cfsctl (composefs-ctl 0.9.4) as a test oracle"
    cargo install --quiet composefs-ctl --version 0.9.4 --locked
fi
# cargo-deny: scripts/test.sh checks the dependency tree's licences, bans and sources with it
# (deny.toml) and says SKIPPED when it is missing. Building it takes about 4 minutes, so only
# with SEALROOT_INSTALL_DENY=1, as CI sets it.
if [ "${SEALROOT_INSTALL_DENY:-0}" = 1 ] && ! command -v cargo-deny >/dev/null 2>&1 \
    && [ ! -x "$HOME/.cargo/bin/cargo-deny" ]; then
    echo "installing cargo-deny 0.20.2"
    cargo install --quiet cargo-deny --version 0.20.2 --locked
fi
echo "sealroot: build dependencies are installed"
