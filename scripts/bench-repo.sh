#!/usr/bin/env bash
# Repository benchmarks on a real tree against composefs-rs's cfsctl (an insecure repository,
# i.e. no fs-verity required), measured in the same run: commit into an empty repository,
# re-commit of the unchanged tree, fsck, gc with nothing to collect.
# Usage: scripts/bench-repo.sh [SOURCE_DIR] [RUNS]   (default /usr, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
# cfsctl create-image wants a root filesystem (it looks for /usr in it): both tools commit a
# directory with SOURCE bind-mounted at usr/, in a mount namespace of this script's own.
if [ -z "${SEALROOT_BENCH_NS:-}" ]; then
    exec env SEALROOT_BENCH_NS=1 unshare -m --propagation private -- bash "$0" "$@"
fi
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
src="${1:-/usr}"
runs="${2:-3}"
cfsctl="$(command -v cfsctl || echo "$HOME/.cargo/bin/cfsctl")"
[ -x "$cfsctl" ] || { echo "missing cfsctl: cargo install composefs-ctl --version 0.9.4 --locked" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "missing hyperfine: apt-get install hyperfine" >&2; exit 1; }
cargo build --release --quiet -p sealroot
ours="$PWD/target/release/sealroot"
work="$(mktemp -d /var/tmp/sealroot-bench-repo.XXXXXX)"
trap 'umount "$work/root/usr" 2>/dev/null; rm -rf "$work"' EXIT
a="$work/ours" b="$work/theirs"
root="$work/root"
mkdir -p "$root/usr"
mount --bind "$src" "$root/usr"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "source: $src (bind-mounted at $root/usr); sealroot $(git rev-parse --short HEAD), cfsctl 0.9.4"

echo "== commit into an empty repository"
hyperfine --runs "$runs" \
    --prepare "rm -rf $a $b; $ours init --repo $a >/dev/null; $cfsctl --repo $b --insecure init --algorithm fsverity-sha256-12 >/dev/null; sync" \
    -n sealroot "$ours commit --repo $a --ref usr $root" \
    -n cfsctl "$cfsctl --repo $b --insecure create-image $root usr"

echo "== re-commit of the unchanged tree"
hyperfine --runs "$runs" --warmup 1 \
    -n sealroot "$ours commit --repo $a --ref usr $root" \
    -n cfsctl "$cfsctl --repo $b --insecure create-image $root usr"

echo "== fsck"
hyperfine --runs "$runs" --warmup 1 \
    -n sealroot "$ours fsck --repo $a" \
    -n cfsctl "$cfsctl --repo $b --insecure fsck"

echo "== gc with nothing to collect"
hyperfine --runs "$runs" --warmup 1 \
    -n sealroot "$ours gc --repo $a" \
    -n cfsctl "$cfsctl --repo $b --insecure gc"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
