#!/usr/bin/env bash
# A newcomer's first run: install what is needed, build, turn a directory into a composefs
# image with its file contents in an object store, mount it, and show that it matches.
# Usage: scripts/demo.sh [SOURCE_DIR]   (default /usr/share/doc; needs root to mount)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

SEALROOT_NO_CFSCTL=1 bash scripts/install-deps.sh
cargo build --release --quiet -p sealroot
bin="$PWD/target/release/sealroot"

src="${1:-/usr/share/doc}"
work="$(mktemp -d /tmp/sealroot-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "== building an image of $src (objects into $work/objects)"
time "$bin" mkcomposefs --print-digest --digest-store="$work/objects" "$src" "$work/image.cfs"
ls -l "$work/image.cfs"
echo "== the first entries, as composefs-info ls shows them"
"$bin" composefs-info ls "$work/image.cfs" | head -n 8

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIPPED: mounting needs root"
    exit 0
fi
mkdir -p "$work/mnt"
echo "== mounting it (private mount namespace) and comparing with the source"
unshare -m --propagation private -- sh -c '
    set -e
    "$1" mount.composefs -o basedir="$2/objects",ro "$2/image.cfs" "$2/mnt"
    findmnt -n -o FSTYPE,OPTIONS "$2/mnt"
    ls -la "$2/mnt" | head -n 8
    if diff -r --no-dereference "$3" "$2/mnt" >/dev/null; then
        echo "mounted tree is identical to $3"
    else
        echo "DIFFERENT from $3"; exit 1
    fi
' sh "$bin" "$work" "$src"
