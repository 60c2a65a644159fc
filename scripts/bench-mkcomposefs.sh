#!/usr/bin/env bash
# sealroot mkcomposefs against C mkcomposefs: both build an image of the same directory with
# --print-digest, one after the other in the same run. Checks that both print the same digest
# and write byte-identical images, then prints each one's median wall time, CPU time and peak
# memory, and the ratios.
#
# Usage: scripts/bench-mkcomposefs.sh [SOURCE_DIR] [RUNS]   (default /usr, 5 runs)
# Needs: hyperfine, jq and GNU time (apt-get install hyperfine jq time), and a C build of
# composefs: MKCOMPOSEFS_C=/path/to/mkcomposefs (its release 1.0.8 is what sealroot follows).
# Without MKCOMPOSEFS_C it says so and exits 0 (nothing to compare with).
#
# The page cache is warmed by one run of each before the timed ones (caches are not dropped:
# this measures the CPU work, not the disk). On a busy machine the wall times vary: compare
# the ratio, which both commands' runs share, and the CPU times.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
src="${1:-/usr}"
runs="${2:-5}"

c="${MKCOMPOSEFS_C:-}"
if [ -z "$c" ]; then
    echo "SKIPPED: set MKCOMPOSEFS_C to a C mkcomposefs (composefs 1.0.8) to compare with" >&2
    exit 0
fi
[ -x "$c" ] || { echo "MKCOMPOSEFS_C=$c is not an executable" >&2; exit 1; }
for tool in hyperfine jq; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine jq time" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time: apt-get install time" >&2; exit 1; }

cargo build --release --quiet -p sealroot
target="${CARGO_TARGET_DIR:-$PWD/target}"
sealroot="$target/release/sealroot"
work="$(mktemp -d /var/tmp/sealroot-bench-mkcomposefs.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "source: $src ($(du -sh --apparent-size "$src" 2>/dev/null | cut -f1), $(find "$src" -xdev | wc -l) entries)"
echo "sealroot $(git rev-parse --short HEAD); C: $c"

# Correctness first (this also warms the page cache): same digest, same bytes.
d_ours=$("$sealroot" mkcomposefs --print-digest "$src" "$work/ours.img")
d_c=$("$c" --print-digest "$src" "$work/c.img")
echo "digest: sealroot $d_ours, C $d_c"
if [ "$d_ours" != "$d_c" ] || ! cmp -s "$work/ours.img" "$work/c.img"; then
    echo "!!! the images differ (or $src changed between the two builds) !!!"
    exit 2
fi
echo "  -> identical images"

echo
echo "== mkcomposefs --print-digest $src IMG: $runs runs each"
hyperfine --warmup 1 --runs "$runs" -N --export-json "$work/build.json" \
    -n sealroot "$sealroot mkcomposefs --print-digest $src $work/a.img" \
    -n C "$c --print-digest $src $work/b.img"

echo
echo "== peak memory (maximum resident set size, median of 3)"
rss() {
    for _ in 1 2 3; do
        /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null
        cat "$work/rss"
    done | sort -n | sed -n 2p
}
m_ours=$(rss "$sealroot" mkcomposefs --print-digest "$src" "$work/m.img")
m_c=$(rss "$c" --print-digest "$src" "$work/n.img")

echo
echo "== summary (load: $(cut -d' ' -f1-3 /proc/loadavg))"
hstat() { jq -r --arg n "$1" '.results[] | select(.command == $n) | "\(.median) \(.user) \(.system)"' "$work/build.json"; }
read -r w_ours u_ours s_ours <<<"$(hstat sealroot)"
read -r w_c u_c s_c <<<"$(hstat C)"
awk -v n=sealroot -v w="$w_ours" -v u="$u_ours" -v s="$s_ours" -v m="$m_ours" \
    'BEGIN { printf "%-9s median wall %.2f s, mean cpu %.2f s (user %.2f, sys %.2f), peak %d MiB\n", n, w, u + s, u, s, m / 1024 }'
awk -v n=C -v w="$w_c" -v u="$u_c" -v s="$s_c" -v m="$m_c" \
    'BEGIN { printf "%-9s median wall %.2f s, mean cpu %.2f s (user %.2f, sys %.2f), peak %d MiB\n", n, w, u + s, u, s, m / 1024 }'
awk -v a="$w_ours" -v b="$w_c" -v ma="$m_ours" -v mb="$m_c" \
    'BEGIN { printf "ratio sealroot/C: wall %.2f, peak memory %.2f\n", a / b, ma / mb }'
