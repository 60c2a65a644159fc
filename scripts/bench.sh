#!/usr/bin/env bash
# Benchmarks of sealroot mkcomposefs against the composefs-rs peer (cfsctl, which writes the same
# bytes as C mkcomposefs), measured in the same run on the same warm tree.
# Usage: scripts/bench.sh [SOURCE_DIR] [RUNS]   (default /usr, 5 runs)
# Needs: hyperfine and GNU time (apt-get install hyperfine time), and cfsctl
# (cargo install composefs-ctl --version 0.9.4 --locked). Results go to stdout; copy them into
# BENCHMARKS.md with the machine description printed at the top.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
src="${1:-/usr}"
runs="${2:-5}"

for tool in hyperfine /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine time" >&2; exit 1; }
done
cfsctl="$(command -v cfsctl || echo "$HOME/.cargo/bin/cfsctl")"
[ -x "$cfsctl" ] || { echo "missing cfsctl: cargo install composefs-ctl --version 0.9.4 --locked" >&2; exit 1; }

cargo build --release --quiet -p sealroot
work="$(mktemp -d /var/tmp/sealroot-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
ln -s "$PWD/target/release/sealroot" "$work/mkcomposefs"
ln -s "$cfsctl" "$work/cfs-mkcomposefs"
ours="$work/mkcomposefs"
# cfsctl answers to the name mkcomposefs; give it a directory of its own.
mkdir "$work/cfs"; ln -s "$cfsctl" "$work/cfs/mkcomposefs"
theirs="$work/cfs/mkcomposefs"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
echo "source: $src ($(du -sh --apparent-size "$src" 2>/dev/null | cut -f1), $(find "$src" -xdev | wc -l) entries)"
echo "sealroot $(git rev-parse --short HEAD), cfsctl $("$cfsctl" --version 2>/dev/null || echo 0.9.4)"

# Warm the page cache and check the two agree on the image.
a=$("$ours" --print-digest-only "$src")
b=$("$theirs" --print-digest-only "$src")
echo "image digest: sealroot $a, cfsctl $b $( [ "$a" = "$b" ] && echo '(identical)' || echo '(DIFFERENT)')"

echo
echo "== mkcomposefs --print-digest SRC IMG (warm cache)"
hyperfine --warmup 1 --runs "$runs" -N \
    -n sealroot "$ours --print-digest $src $work/a.img" \
    -n cfsctl "$theirs --print-digest $src $work/b.img"

echo
echo "== mkcomposefs --digest-store=DIR SRC IMG into an empty store"
hyperfine --runs "$((runs < 3 ? runs : 3))" \
    --prepare "rm -rf $work/store-a $work/store-b; sync" \
    -n sealroot "$ours --digest-store=$work/store-a $src $work/a.img" \
    -n cfsctl "$theirs --digest-store=$work/store-b $src $work/b.img"

echo
echo "== peak memory (maximum resident set size)"
for name in sealroot cfsctl; do
    bin=$ours; [ "$name" = cfsctl ] && bin=$theirs
    kb=$(/usr/bin/time -f '%M' "$bin" --print-digest "$src" "$work/m.img" 2>&1 >/dev/null | tail -n1)
    echo "$name --print-digest: $((kb / 1024)) MiB"
done
