#!/usr/bin/env bash
# Makes the raw seeds of every fuzz target and folds them into the committed corpora
# (crates/*/fuzz/corpus/TARGET/) with `scripts/fuzz.sh --minimize`, which keeps the smallest
# set of inputs with the same coverage (and whatever earlier runs found). Run it when a target
# is added or a format changes, then commit the corpus; CI only reads the committed one.
#
# The seeds come from the C composefs conformance vectors (tests/vectors/composefs-c, or
# $VECTORS), the dumpfile test data, and a scratch repository made with the sealroot CLI:
# objects, commits, signatures (ed25519 and PKCS#7, with a throw-away key made by openssl),
# keys, meta.json and the digest cache. Needs no root; takes under a minute after the builds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
vectors=${VECTORS:-$repo_root/tests/vectors/composefs-c}
target_dir=${SEALROOT_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}
work=${SEALROOT_FUZZ_WORK:-$target_dir/runs}
[ -d "$vectors" ] || { echo "fuzz-seeds.sh: no vectors at $vectors (set VECTORS)" >&2; exit 1; }

cargo build --quiet -p sealroot
sealroot=${CARGO_TARGET_DIR:-$PWD/target}/debug/sealroot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Seeds of target $1 go to $(seeds $1), emptied first.
seeds() { echo "$work/$1/seeds"; }
for source in crates/*/fuzz/fuzz_targets/*.rs; do
    rm -rf "$(seeds "$(basename "$source" .rs)")"
    mkdir -p "$(seeds "$(basename "$source" .rs)")"
done

# Dumpfiles and their images: every vector (decompressed; the C project's symlink
# special_v1.dump may be checked out as a file naming its target), at most 64 KiB each, as
# libFuzzer mutates small inputs far faster; the small vectors cover every structure.
for dump in "$vectors"/*.dump "$vectors"/*.dump.gz crates/sealroot-format/tests/data/dumpfile/*; do
    name=$(basename "$dump")
    case $name in
    *.gz) gzip -dc "$dump" >"$tmp/dump" ;;
    *) cp "$dump" "$tmp/dump" ;;
    esac
    if [ "$(wc -c <"$tmp/dump")" -lt 256 ] && grep -qx '[^/]*\.dump' "$tmp/dump"; then
        cp "$vectors/$(cat "$tmp/dump")" "$tmp/dump"
    fi
    [ "$(wc -c <"$tmp/dump")" -le 65536 ] || continue
    cp "$tmp/dump" "$(seeds dumpfile_parse)/$name"
    flags=()
    if [ -f "$vectors/$name.version" ]; then
        v=$(cat "$vectors/$name.version")
        flags=(--min-version="$v" --max-version="$v")
    fi
    if "$sealroot" mkcomposefs --from-file "${flags[@]}" "$tmp/dump" "$tmp/image" 2>/dev/null &&
        [ "$(wc -c <"$tmp/image")" -le 65536 ]; then
        cp "$tmp/image" "$(seeds image_read)/$name.img"
    fi
done

# A repository: a flat tree, and a nested one with every kind of entry, committed twice (the
# second time with hard links shared, a body, a version and metadata).
export SEALROOT_REPO=$tmp/repo
"$sealroot" init >/dev/null
"$sealroot" init --repo "$tmp/repo512" --algorithm sha512 >/dev/null
mkdir -p "$tmp/flat" "$tmp/tree/a/b" "$tmp/tree/c"
echo one >"$tmp/flat/one"
printf 'x%.0s' $(seq 100) >"$tmp/flat/big"
echo hello >"$tmp/tree/a/f"
ln -s f "$tmp/tree/a/l"
ln "$tmp/tree/a/f" "$tmp/tree/h"
mkfifo "$tmp/tree/c/fifo"
echo deep >"$tmp/tree/a/b/g"
setfattr -n user.fuzz -v 'a=b c' "$tmp/tree/a/f" 2>/dev/null || true
# Files older than the cache's racy window, so that the cache keeps their digests.
sleep 3
"$sealroot" commit --ref os/flat --timestamp 1 "$tmp/flat" >/dev/null
"$sealroot" commit --ref os/tree --timestamp 2 -s first "$tmp/tree" >/dev/null
"$sealroot" commit --ref os/tree --hardlinks --timestamp 3 -s subject -b 'a body' \
    --version 1.0 -m k=v -m other=x "$tmp/tree" >/dev/null
commit_of() { basename "$(readlink "$tmp/repo/commits/refs/$1")"; }
object() { echo "$tmp/repo/objects/${1:0:2}/${1:2}"; }
for ref in os/flat os/tree; do
    c=$(commit_of "$ref")
    cp "$(object "$c")" "$(seeds objects_parse)/commit-${ref#os/}"
done
for o in "$tmp"/repo/objects/*/*; do
    case $(head -n 1 "$o" | tr -d '\0') in
    "sealroot-dirtree 1" | "sealroot-dirmeta 1") cp "$o" "$(seeds objects_parse)/" ;;
    esac
done

# objects_assemble: the flat commit's root objects, then the nested tree's objects children
# first, each digest written @N (N: its index), then the nested root dirtree and dirmeta.
field() { sed -n "s/^$1 //p" "$(object "$2")"; }
order=()
declare -A index
add() {
    [ -n "${index[$1]:-}" ] && [ "${2:-}" != again ] && return
    index[$1]=${#order[@]}
    order+=("$1")
}
visit() {
    local kind name sub meta
    while read -r kind name sub meta; do
        if [ "$kind" = d ]; then
            add "$meta"
            visit "$sub"
        fi
    done < <(tail -n +2 "$(object "$1")")
    add "$1"
}
flat=$(commit_of os/flat) tree=$(commit_of os/tree)
add "$(field tree "$flat")"
add "$(field dirmeta "$flat")"
visit "$(field tree "$tree")"
order=("${order[@]:0:${#order[@]}-1}")
add "$(field tree "$tree")" again
add "$(field dirmeta "$tree")" again
out=$(seeds objects_assemble)/nested
: >"$out"
for i in "${!order[@]}"; do
    [ "$i" -eq 0 ] || printf '\0\0' >>"$out"
    text=$(cat "$(object "${order[$i]}")"; echo .)
    for j in $(seq 0 $((i - 1))); do text=${text//${order[$j]}/@$j}; done
    printf '%s' "${text%.}" >>"$out"
done
[ "${#order[@]}" -le 10 ] || { echo "fuzz-seeds.sh: objects_assemble seed has ${#order[@]} objects, the target takes 10" >&2; exit 1; }

# Signatures, keys and keyrings.
tree_commit=$(commit_of os/tree)
"$sealroot" key generate "$tmp/key" >/dev/null
"$sealroot" key generate "$tmp/key2" >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/rsa.pem" -out "$tmp/cert.pem" \
    -days 3650 -subj /CN=sealroot-fuzz 2>/dev/null
openssl x509 -in "$tmp/cert.pem" -outform DER -out "$tmp/cert.der"
"$sealroot" sign "$tree_commit" --key "$tmp/key" --fsverity-key "$tmp/rsa.pem" \
    --fsverity-cert "$tmp/cert.pem" >/dev/null
"$sealroot" sign "$tree_commit" --key "$tmp/key2" >/dev/null
sig=$tmp/repo/commits/$tree_commit.sig
cp "$sig" "$(seeds signature_file)/two-signatures.sig"
cp "$tmp/key" "$(seeds signature_file)/secret-key"
cat "$tmp/key.pub" "$tmp/key2.pub" >"$(seeds signature_file)/public-keys"
d=$(seeds pkcs7)
cp "$tmp/repo/commits/$tree_commit.p7s" "$d/signature.p7s"
cp "$tmp/cert.pem" "$d/cert.pem"
cp "$tmp/rsa.pem" "$d/rsa.pem"
{ cat "$tmp/cert.der"; printf '\0\0\0\0'; cat "$tmp/repo/commits/$tree_commit.p7s"; } >"$d/cert-and-signature"
d=$(seeds keyring)
join() { local first=1; for f in "$@"; do [ $first = 1 ] || printf '\0\0'; first=0; cat "$f"; done; }
: >"$tmp/empty"
printf '# trusted keys\n\n' >"$tmp/comment"
printf '.hidden, not read\n' >"$tmp/hidden"
join "$sig" "$tmp/empty" "$tmp/key.pub" >"$d/trusted-file"
join "$sig" "$tmp/key2.pub" "$tmp/comment" "$tmp/key.pub" "$tmp/hidden" "$tmp/key2.pub" >"$d/revoked-and-directory"
join "$sig" "$tmp/key.pub" "$tmp/key.pub" >"$d/all-revoked"

# The repository's own files and names.
cp "$tmp/repo/meta.json" "$(seeds repo_config)/sealroot-sha256.json"
cp "$tmp/repo512/meta.json" "$(seeds repo_config)/sealroot-sha512.json"
# What `cfsctl init` writes: no sealroot section.
cat >"$(seeds repo_config)/cfsctl.json" <<'EOF'
{
  "version": 1,
  "algorithm": "fsverity-sha512-12",
  "features": {
    "compatible": [],
    "read-only-compatible": [
      "v1_erofs"
    ],
    "incompatible": []
  },
  "erofs_formats": {
    "default": 1
  }
}
EOF
cp "$tmp/repo/cache/devino" "$(seeds digest_cache)/devino"
head -c -32 "$tmp/repo/cache/devino" >"$(seeds digest_cache)/devino-unsealed"
d=$(seeds repo_names)
image=$(basename "$(readlink "$tmp/repo/images/refs/os/tree")")
for name in os/stable "oci/app:latest" "$tree_commit" "sha256:$tree_commit" "$image" \
    "${image:0:2}/${image:2}" "sha512:$(printf '%0128d' 7)" "$(printf '%0128d' 0)"; do
    printf '%s' "$name" >"$d/$(printf '%s' "$name" | sha256sum | cut -c1-16)"
done
d=$(seeds mount_options)
for opts in "basedir=/composefs/objects,digest=$image,ro" \
    'basedir=/a:/b,upperdir=/u,workdir=/w,tryverity,rw' 'basedir=/x\,y,noverity,verity' \
    'basedir=/o,idmap=/proc/1/ns/user' 'digest=zz,ro=1,,'; do
    printf '%s' "$opts" >"$d/$(printf '%s' "$opts" | sha256sum | cut -c1-16)"
done

# Fold them in, minimised, with what earlier runs found.
scripts/fuzz.sh --minimize
du -sh --apparent-size crates/*/fuzz/corpus
