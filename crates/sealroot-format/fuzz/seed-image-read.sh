#!/bin/sh
# Seeds corpus/image_read with the images of the C composefs conformance vectors, made by
# `sealroot mkcomposefs --from-file` (the images are byte-identical to C mkcomposefs; see
# tests/vectors.rs). Vectors whose image is over 64 KiB are skipped: libFuzzer mutates small
# inputs far faster, and the small vectors already cover every structure the writer makes.
#
#   ./seed-image-read.sh && cargo +nightly fuzz run image_read -- -max_total_time=600
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
vectors=${VECTORS:-$repo/../shared/vectors/composefs-c}
out=$here/corpus/image_read
mkdir -p "$out"
cargo build --quiet --manifest-path "$repo/Cargo.toml" -p sealroot
sealroot=${CARGO_TARGET_DIR:-$repo/target}/debug/sealroot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for sum in "$vectors"/*.sha256; do
    name=$(basename "$sum" .sha256)
    dump=$vectors/$name
    case $name in
    *.gz) gzip -dc "$dump" >"$tmp/dump" ;;
    *) cp "$dump" "$tmp/dump" ;;
    esac
    # special_v1.dump is a git symlink checked out as a file naming its target.
    if [ "$(wc -c <"$tmp/dump")" -lt 256 ] && grep -qx '[^/]*\.dump' "$tmp/dump"; then
        cp "$vectors/$(cat "$tmp/dump")" "$tmp/dump"
    fi
    flags=
    if [ -f "$vectors/$name.version" ]; then
        v=$(cat "$vectors/$name.version")
        flags="--min-version=$v --max-version=$v"
    fi
    # shellcheck disable=SC2086
    "$sealroot" mkcomposefs --from-file $flags "$tmp/dump" "$tmp/image"
    if [ "$(wc -c <"$tmp/image")" -le 65536 ]; then
        cp "$tmp/image" "$out/vector-$name.img"
    fi
done
ls -l "$out"
