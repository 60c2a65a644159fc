#!/usr/bin/env bash
# Signed commits on a real tree: sign, verify (signatures + re-creating the image from the tree
# objects alone), verify --no-derive (signatures only), against building the image from scratch
# with mkcomposefs --print-digest (ours, and cfsctl's if installed), measured in the same run.
# Also checks that the signed commit's image digest equals the digest mkcomposefs prints for the
# same tree.
# Usage: scripts/bench-trust.sh [SOURCE_DIR] [RUNS]   (default /usr, 5 runs; 3 for mkcomposefs)
# Needs: hyperfine, jq and GNU time (apt-get install hyperfine jq time); cfsctl is optional
# (cargo install composefs-ctl --version 0.9.4 --locked).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
src="${1:-/usr}"
runs="${2:-5}"
build_runs=$((runs < 3 ? runs : 3))

for tool in hyperfine jq; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine jq time" >&2; exit 1; }
done
cfsctl="$(command -v cfsctl || echo "$HOME/.cargo/bin/cfsctl")"
[ -x "$cfsctl" ] || { echo "note: no cfsctl, timing sealroot's mkcomposefs only" >&2; cfsctl=; }

cargo build --release --quiet -p sealroot
target="${CARGO_TARGET_DIR:-$PWD/target}"
sealroot="$target/release/sealroot"
# The scratch repository sits in /var/tmp, on the same filesystem as /usr here, as in
# bench-repo.sh. SOURCE is committed as it is (no bind mount: that was for cfsctl's create-image,
# not used here), so the commit's image and mkcomposefs's image are of the same directory.
work="$(mktemp -d /var/tmp/sealroot-bench-trust.XXXXXX)"
trap 'rm -rf "$work"' EXIT
repo="$work/repo"
key="$work/K"
ln -s "$sealroot" "$work/mkcomposefs"
ours="$work/mkcomposefs"
theirs=
if [ -n "$cfsctl" ]; then
    # cfsctl answers to the name mkcomposefs; give it a directory of its own.
    mkdir "$work/cfs"; ln -s "$cfsctl" "$work/cfs/mkcomposefs"
    theirs="$work/cfs/mkcomposefs"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "source: $src ($(du -sh --apparent-size "$src" 2>/dev/null | cut -f1), $(find "$src" -xdev | wc -l) entries)"
echo "sealroot $(git rev-parse --short HEAD)${cfsctl:+, cfsctl $("$cfsctl" --version 2>/dev/null | awk '{ print $NF }')}; repository $repo ($(df --output=source "$work" | tail -n1), source on $(df --output=source "$src" | tail -n1))"

# Median, min, mean user and mean system time (seconds) of one command of a hyperfine JSON export.
hstat() { jq -r --arg n "$2" '.results[] | select(.command == $n) | "\(.median) \(.min) \(.user) \(.system)"' "$1"; }
fmt() { awk '{ printf "median %.1f ms, min %.1f ms (user %.1f, sys %.1f)", $1 * 1e3, $2 * 1e3, $3 * 1e3, $4 * 1e3 }'; }

echo
echo "== setup: sealroot commit --ref os $src (once, empty repository)"
"$sealroot" init --repo "$repo" >/dev/null
sync
/usr/bin/time -f '%e %U %S %M' -o "$work/commit.time" \
    "$sealroot" commit --repo "$repo" --json --ref os "$src" >"$work/commit.json"
read -r c_wall c_user c_sys c_kb <"$work/commit.time"
echo "commit: $c_wall s (user $c_user s, sys $c_sys s, peak $((c_kb / 1024)) MiB)"
jq -c '{commit, image, tree_objects, tree_objects_added, objects_added, bytes_added}' "$work/commit.json"
"$sealroot" key generate "$key" >/dev/null 2>&1

# The correctness check: the commit's image digest against what mkcomposefs prints for the same
# tree (this also warms the page cache for the timed builds).
signed="$("$sealroot" show --repo "$repo" --json os | jq -r .image)"
check() {
    local a b=
    a=$("$ours" --print-digest-only "$src")
    [ -z "$theirs" ] || b=$("$theirs" --print-digest-only "$src")
    echo "$1: commit image $signed; sealroot mkcomposefs $a${b:+; cfsctl mkcomposefs $b}"
    if [ "$a" = "$signed" ] && { [ -z "$b" ] || [ "$b" = "$signed" ]; }; then
        echo "  -> identical"
    else
        echo "  -> !!! DIFFERENT: the signed digest is not the digest of the image mkcomposefs writes for $src !!!"
        mismatch=1
    fi
}
mismatch=0
check "digest check (before the timed runs)"

echo
echo "== sign, verify (+ re-derive), verify --no-derive: $runs runs each"
# Signing again with the same key rewrites the same (deterministic) signature: the commit keeps one.
hyperfine --warmup 1 --runs "$runs" -N --export-json "$work/trust.json" \
    -n sign "$sealroot sign --repo $repo --key $key os" \
    -n verify "$sealroot verify --repo $repo --keys $key.pub os" \
    -n verify-no-derive "$sealroot verify --repo $repo --no-derive --keys $key.pub os"

echo
echo "== building the image from scratch: mkcomposefs --print-digest $src IMG, $build_runs runs each"
set -- -n sealroot-mkcomposefs "$ours --print-digest $src $work/a.img"
[ -z "$theirs" ] || set -- "$@" -n cfsctl-mkcomposefs "$theirs --print-digest $src $work/b.img"
hyperfine --warmup 1 --runs "$build_runs" -N --export-json "$work/build.json" "$@"

echo
echo "== peak memory (maximum resident set size)"
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ { printf "%d MiB", $2 / 1024 }'; }
if [ -x /usr/bin/time ]; then
    echo "verify: $(rss "$sealroot" verify --repo "$repo" --keys "$key.pub" os)"
    echo "verify --no-derive: $(rss "$sealroot" verify --repo "$repo" --no-derive --keys "$key.pub" os)"
    echo "sealroot mkcomposefs --print-digest: $(rss "$ours" --print-digest "$src" "$work/m.img")"
else
    echo "(no /usr/bin/time: skipped)"
fi

echo
check "digest check (after the timed runs; a difference from before means $src changed)"
"$sealroot" verify --repo "$repo" --keys "$key.pub" os | sed 's/^/  /'

echo
echo "== summary (load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "commit (once): $c_wall s; tree objects: $(jq .tree_objects "$work/commit.json")"
for n in sign verify verify-no-derive; do echo "$n: $(hstat "$work/trust.json" $n | fmt)"; done
for n in sealroot-mkcomposefs cfsctl-mkcomposefs; do
    s=$(hstat "$work/build.json" $n)
    if [ -n "$s" ]; then echo "$n: $(echo "$s" | fmt)"; fi
done
v=$(hstat "$work/trust.json" verify | cut -d' ' -f1)
for n in sealroot-mkcomposefs cfsctl-mkcomposefs; do
    s=$(hstat "$work/build.json" $n | cut -d' ' -f1)
    [ -z "$s" ] || echo "ratio $n / verify+derive (medians): $(awk -v a="$s" -v b="$v" 'BEGIN { printf "%.1fx", a / b }')"
done
[ "$mismatch" = 0 ] || { echo "!!! DIGEST MISMATCH: see the digest checks above !!!"; exit 2; }
