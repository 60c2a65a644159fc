#!/usr/bin/env bash
# Dumpfile parsing speed: `mkcomposefs --from-file` on one directory of N entries, listed in
# random order and in sorted order, ours against C mkcomposefs, measured in the same run.
# Usage: scripts/bench-dumpfile.sh [ENTRIES] [RUNS]   (default 300000 entries, 5 runs)
# C mkcomposefs is taken from $CFS_MKCOMPOSEFS (default /opt/composefs-c/bin/mkcomposefs);
# without it, the script says so and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
entries="${1:-300000}"
runs="${2:-5}"
c_mkcomposefs="${CFS_MKCOMPOSEFS:-/opt/composefs-c/bin/mkcomposefs}"
if [ ! -x "$c_mkcomposefs" ]; then
    echo "SKIPPED: bench-dumpfile: no C mkcomposefs at $c_mkcomposefs (set CFS_MKCOMPOSEFS)" >&2
    exit 0
fi
command -v hyperfine >/dev/null || { echo "missing hyperfine: apt-get install hyperfine" >&2; exit 1; }
cargo build --release --quiet -p sealroot
ours="${CARGO_TARGET_DIR:-$PWD/target}/release/sealroot"
work="$(mktemp -d /var/tmp/sealroot-bench-dumpfile.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# One root and $entries empty files in it, named f000001..., in a fixed pseudo-random order
# (shuf with a constant random source, so every run parses the same file).
{
    echo "/ 4096 40755 2 0 0 0 1700000000.0 - - -"
    seq -f 'f%06g' 1 "$entries" | shuf --random-source=<(yes) \
        | sed 's|^|/|; s|$| 0 100644 1 0 0 0 1700000000.0 - - -|'
} >"$work/random.dump"
{ head -n1 "$work/random.dump"; tail -n +2 "$work/random.dump" | LC_ALL=C sort; } >"$work/sorted.dump"

echo "machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg); $entries entries; sealroot $(git rev-parse --short HEAD)"
for order in random sorted; do
    # Both must write the same image before their times mean anything.
    "$ours" mkcomposefs --from-file "$work/$order.dump" "$work/ours.img"
    "$c_mkcomposefs" --from-file "$work/$order.dump" "$work/c.img"
    cmp "$work/ours.img" "$work/c.img"
    hyperfine --warmup 1 --runs "$runs" -N \
        -n "sealroot ($order)" "$ours mkcomposefs --from-file $work/$order.dump $work/ours.img" \
        -n "C ($order)" "$c_mkcomposefs --from-file $work/$order.dump $work/c.img"
done
