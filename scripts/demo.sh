#!/usr/bin/env bash
# A newcomer's first run: install what is needed, build, turn a directory into a composefs
# image with its file contents in an object store, mount it, and show that it matches; then
# commit the same directory into a repository, sign the commit, verify it (re-creating the
# image from the tree objects) and mount it only because the signature is good.
# Usage: scripts/demo.sh [SOURCE_DIR]   (default /usr/share/doc; needs root to mount)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

SEALROOT_NO_CFSCTL=1 bash scripts/install-deps.sh
cargo build --release --quiet -p sealroot
bin="$PWD/target/release/sealroot"

src="${1:-/usr/share/doc}"
# Not /tmp: erofs cannot mount an image file that lives on tmpfs.
work="$(mktemp -d /var/tmp/sealroot-demo.XXXXXX)"
trap 'rm -rf "$work"' EXIT

echo "== building an image of $src (objects into $work/objects)"
time "$bin" mkcomposefs --print-digest --digest-store="$work/objects" "$src" "$work/image.cfs"
ls -l "$work/image.cfs"
echo "== the first entries, as composefs-info ls shows them"
"$bin" composefs-info ls "$work/image.cfs" | head -n 8

echo "== a repository: commit, sign, verify"
export SEALROOT_REPO="$work/repo"
"$bin" init
commit=$("$bin" commit --ref demo -s "$src as a demo" --version 1 "$src")
"$bin" show demo
"$bin" key generate "$work/key"
"$bin" sign --key "$work/key" demo
"$bin" verify --keys "$work/key.pub" demo
image=$(basename "$(readlink "$SEALROOT_REPO/images/refs/demo")")
digest=$("$bin" composefs-info measure-file "$work/image.cfs")
[ "$image" = "$digest" ] && echo "the signed commit's image is the image mkcomposefs wrote ($digest)" \
    || { echo "DIFFERENT: commit $commit records $image, mkcomposefs wrote $digest"; exit 1; }

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
    "$1" mount --require-signature "$2/key.pub" demo "$2/mnt"
    echo "signed commit mounted over it: $(findmnt -n -o FSTYPE,OPTIONS "$2/mnt" | tail -n1)"
' sh "$bin" "$work" "$src"
