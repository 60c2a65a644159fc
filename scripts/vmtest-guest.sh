# The checks scripts/vmtest.sh runs inside the VM, as /test.sh under busybox sh, on a real
# kernel with fs-verity: the disk /dev/vda is an empty ext4 made with `-O verity`. Every check
# prints PASS or FAIL; the last line is the verdict the harness reads: `N passed, M failed`.
# shellcheck disable=SC2015 # pass and fail always succeed: `A && pass || fail` is an if-else.

PASS=0
FAIL=0
pass() { PASS=$((PASS + 1)); echo "PASS: $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
# check DESCRIPTION CMD...: passes when CMD succeeds; shows CMD's output when it does not.
check() {
    d=$1; shift
    if "$@" >/tmp/out 2>&1; then pass "$d"; else fail "$d"; sed 's/^/    /' /tmp/out; fi
}
# check_eio DESCRIPTION FILE: passes when reading FILE fails with EIO (overlayfs checks the
# object's digest when the file is opened).
check_eio() {
    if cat "$2" >/dev/null 2>/tmp/err; then
        fail "$1 (read succeeded)"
    elif grep -qE 'I/O error|Input/output error' /tmp/err; then
        pass "$1 ($(cat /tmp/err))"
    else
        fail "$1 (wrong error: $(cat /tmp/err))"
    fi
}
# The fs-verity digest userspace computes (fsverity-utils, composefs parameters).
digest() { fsverity digest --hash-alg=sha256 --block-size=4096 --compact "$1"; }
# The digest store path of a source file.
object() { d=$(digest "$1"); echo "/data/objects/$(echo "$d" | cut -c1-2)/$(echo "$d" | cut -c3-)"; }
mnt() { sealroot mount.composefs -o "$1" /data/img.cfs /mnt; }
# measured_as_named ALG DIR: passes when every object under DIR (a repository's objects/) has
# fs-verity with ALG, measured by the kernel as the object's name.
measured_as_named() {
    bad=0
    total=0
    for o in $(find "$2" -type f); do
        total=$((total + 1))
        n=$(basename "$(dirname "$o")")$(basename "$o")
        [ "$(fsverity measure "$o" 2>/dev/null | cut -d' ' -f1)" = "$1:$n" ] || bad=$((bad + 1))
    done
    [ "$bad" = 0 ] && [ "$total" -gt 4 ] \
        && pass "all $total repository objects (files, tree objects, commit, image) have $1 fs-verity = their name" \
        || fail "$bad of $total repository objects lack the right $1 fs-verity"
}

echo "--- kernel $(uname -r)"
mkdir -p /data /mnt /src/dir/sub
check "ext4 (-O verity) disk mounted at /data" mount -t ext4 /dev/vda /data

echo "--- a source tree: files over 64 bytes, an inline file, an empty one, a symlink, dirs"
seq 1 40 | tr '\n' ' ' >/src/hello.txt                 # 111 bytes
cp /src/hello.txt /src/dir/same-as-hello.txt            # same content: one object for both
head -c 1048579 /dev/urandom >/src/big.bin              # two Merkle tree levels, odd size
seq 1 20000 >/src/dir/seq.txt
head -c 4096 /dev/zero >/src/dir/sub/block.bin          # exactly one block
printf 'tiny\n' >/src/inline.txt                        # 5 bytes: inline in the image
: >/src/empty
ln -s dir/seq.txt /src/link
FILES="hello.txt dir/same-as-hello.txt big.bin dir/seq.txt dir/sub/block.bin inline.txt empty"

echo "--- mkcomposefs with a digest store on ext4"
if sealroot mkcomposefs --digest-store=/data/objects --print-digest /src /data/img.cfs >/tmp/digest 2>/tmp/err; then
    D=$(cat /tmp/digest)
    pass "mkcomposefs --digest-store --print-digest: $D"
else
    fail "mkcomposefs: $(cat /tmp/err)"
fi
n=$(find /data/objects -type f | wc -l)
[ "$n" = 4 ] && pass "4 objects stored (duplicates shared, small files inline)" || fail "$n objects, 4 expected"
for o in $(find /data/objects -type f | sort); do
    name=$(basename "$(dirname "$o")")$(basename "$o")
    k=$(fsverity measure "$o" 2>&1 | cut -d' ' -f1)
    [ "$k" = "sha256:$name" ] && pass "object $(echo "$name" | cut -c1-12)…: fs-verity enabled by sealroot, kernel digest = name" \
        || fail "object $o: fsverity measure says '$k'"
    m=$(sealroot composefs-info measure-file "$o" 2>&1)
    [ "$m" = "$name" ] && pass "composefs-info measure-file = kernel measurement" || fail "measure-file $o: '$m'"
done
for f in $FILES; do
    case $f in inline.txt | empty) continue ;; esac
    [ -f "$(object "/src/$f")" ] && pass "$f stored under its fsverity-utils digest" || fail "$f: no object $(object "/src/$f")"
done
# A 1 KiB-block verity file: the kernel's digest differs from the 4 KiB one userspace would
# compute, so measure-file printing the former shows it asks the kernel.
cp /src/hello.txt /data/k1
fsverity enable --block-size=1024 /data/k1
k=$(fsverity measure /data/k1 | cut -d' ' -f1)
m=$(sealroot composefs-info measure-file /data/k1 2>&1)
[ "$k" = "sha256:$m" ] && [ "$m" != "$(digest /data/k1)" ] \
    && pass "measure-file prints the kernel's measurement (1 KiB blocks: $m)" || fail "measure-file /data/k1: '$m', kernel '$k'"

echo "--- the image: digest, fs-verity, mount with verity required"
[ "$(sealroot composefs-info measure-file /data/img.cfs)" = "$D" ] && pass "image digest (userspace) = --print-digest" || fail "image digest"
check "fsverity enable /data/img.cfs" fsverity enable /data/img.cfs
[ "$(fsverity measure /data/img.cfs | cut -d' ' -f1)" = "sha256:$D" ] && pass "kernel measures the image as --print-digest" \
    || fail "image measured as $(fsverity measure /data/img.cfs)"
check "mount.composefs -o basedir=/data/objects,digest=$D" mnt "basedir=/data/objects,digest=$D"
grep ' /mnt overlay ' /proc/mounts | grep -q 'verity=require' && pass "overlay mounted with verity=require" \
    || fail "no verity=require in: $(grep ' /mnt ' /proc/mounts)"
for f in $FILES; do check "read back $f" cmp "/src/$f" "/mnt/$f"; done
[ "$(readlink /mnt/link)" = dir/seq.txt ] && pass "symlink link -> dir/seq.txt" || fail "symlink: $(readlink /mnt/link)"
[ -d /mnt/dir/sub ] && pass "directory dir/sub" || fail "no directory dir/sub"
umount /mnt

echo "--- refusals and tampering"
case $D in *0) W=${D%?}1 ;; *) W=${D%?}0 ;; esac
if mnt "basedir=/data/objects,digest=$W" 2>/tmp/err; then
    fail "mount with a wrong digest= succeeded"; umount /mnt
else
    pass "wrong digest= refused: $(tail -n1 /tmp/err)"
fi
grep -q ' /mnt ' /proc/mounts && fail "something is mounted at /mnt" || pass "nothing left mounted after the refusal"
# hello.txt's object becomes another verity file; seq.txt's a copy without fs-verity.
OH=$(object /src/hello.txt)
OS=$(object /src/dir/seq.txt)
seq 100 140 | tr '\n' ' ' >/data/evil && fsverity enable /data/evil && mv -f /data/evil "$OH"
cp "$OS" /data/plain && mv -f /data/plain "$OS"
[ -n "$(fsverity measure "$OH" 2>/dev/null)" ] && ! fsverity measure "$OS" >/dev/null 2>&1 \
    && pass "objects replaced: one with another verity digest, one without fs-verity" || fail "tampering set-up"
check "mount.composefs with verity" mnt "basedir=/data/objects,digest=$D,verity"
check_eio "object with a different fs-verity digest reads as EIO" /mnt/hello.txt
check_eio "same object under another name reads as EIO" /mnt/dir/same-as-hello.txt
check_eio "object without fs-verity reads as EIO" /mnt/dir/seq.txt
check "untouched object still reads (big.bin)" cmp /src/big.bin /mnt/big.bin
umount /mnt
check "mount.composefs with noverity" mnt "basedir=/data/objects,digest=$D,noverity"
check "object without fs-verity reads fine with noverity" cmp /src/dir/seq.txt /mnt/dir/seq.txt
cmp -s /src/hello.txt /mnt/hello.txt && fail "noverity read the original content?" \
    || pass "with noverity the substituted object goes unnoticed (what verity prevents)"
umount /mnt

echo "--- a repository on fs-verity: commit, sign, verify, mount --require-signature"
export SEALROOT_REPO=/data/repo
check "sealroot init --require-verity" sealroot init --require-verity
if C=$(sealroot commit --ref os -s "in the VM" /src 2>/tmp/err); then pass "commit $C"; else fail "commit: $(cat /tmp/err)"; fi
measured_as_named sha256 /data/repo/objects
check "sealroot key generate" sealroot key generate /tmp/k
check "sealroot sign" sealroot sign --key /tmp/k os
check "sealroot verify (signature, then the image re-created from the tree objects)" sealroot verify --keys /tmp/k.pub os
sealroot fsck >/tmp/out 2>&1 && grep -q "no problems found" /tmp/out && grep -qE "[1-9][0-9]* with fs-verity" /tmp/out \
    && pass "fsck clean, objects measured by the kernel: $(head -n1 /tmp/out)" || { fail "fsck"; sed 's/^/    /' /tmp/out; }
check "mount --require-signature" sealroot mount --require-signature /tmp/k.pub os /mnt
grep ' /mnt overlay ' /proc/mounts | grep -q 'verity=require' && pass "the signed commit is mounted with verity=require" \
    || fail "no verity=require in: $(grep ' /mnt ' /proc/mounts)"
for f in $FILES; do check "read back $f from the signed commit" cmp "/src/$f" "/mnt/$f"; done
umount /mnt
# (not $d: check() uses that name)
BIGD=$(digest /src/big.bin)
RO=/data/repo/objects/$(echo "$BIGD" | cut -c1-2)/$(echo "$BIGD" | cut -c3-)
head -c 1048579 /dev/urandom >/data/evil2 && fsverity enable /data/evil2 && mv -f /data/evil2 "$RO"
check "mount --require-signature with a file object replaced (signature and image are intact)" \
    sealroot mount --require-signature /tmp/k.pub os /mnt
check_eio "the replaced file object reads as EIO under the signed commit" /mnt/big.bin
check "an untouched file still reads" cmp /src/dir/seq.txt /mnt/dir/seq.txt
umount /mnt
sealroot fsck >/tmp/out 2>&1 && fail "fsck clean after a replaced object" \
    || { grep -q "$BIGD" /tmp/out && pass "fsck names the replaced object $(echo "$BIGD" | cut -c1-12)… and the ref" \
        || fail "fsck: $(cat /tmp/out)"; }
unset SEALROOT_REPO

echo "--- a sha512 repository on fs-verity: sha512 metacopy digests under verity=require"
export SEALROOT_REPO=/data/repo512
check "sealroot init --require-verity --algorithm sha512" sealroot init --require-verity --algorithm sha512
if C=$(sealroot commit --ref os -s "sha512 in the VM" /src 2>/tmp/err); then pass "commit $C"; else fail "commit: $(cat /tmp/err)"; fi
[ ${#C} = 128 ] && pass "the commit id is a sha512 digest" || fail "commit id '$C'"
measured_as_named sha512 /data/repo512/objects
check "sealroot key generate" sealroot key generate /tmp/k512
check "sealroot sign (sha512 commit)" sealroot sign --key /tmp/k512 os
check "sealroot verify (sha512: signature, then the image re-created)" sealroot verify --keys /tmp/k512.pub os
sealroot fsck >/tmp/out 2>&1 && grep -q "no problems found" /tmp/out \
    && pass "fsck clean: $(head -n1 /tmp/out)" || { fail "fsck"; sed 's/^/    /' /tmp/out; }
check "mount --require-signature (sha512)" sealroot mount --require-signature /tmp/k512.pub os /mnt
grep ' /mnt overlay ' /proc/mounts | grep -q 'verity=require' && pass "the sha512 commit is mounted with verity=require" \
    || fail "no verity=require in: $(grep ' /mnt ' /proc/mounts)"
for f in $FILES; do check "read back $f from the sha512 commit" cmp "/src/$f" "/mnt/$f"; done
umount /mnt
BIGD=$(fsverity digest --hash-alg=sha512 --block-size=4096 --compact /src/big.bin)
RO=/data/repo512/objects/$(echo "$BIGD" | cut -c1-2)/$(echo "$BIGD" | cut -c3-)
head -c 1048579 /dev/urandom >/data/evil3 && fsverity enable --hash-alg=sha512 /data/evil3 && mv -f /data/evil3 "$RO"
check "mount --require-signature with a sha512 file object replaced" \
    sealroot mount --require-signature /tmp/k512.pub os /mnt
check_eio "the replaced object reads as EIO: overlayfs checked its sha512 digest" /mnt/big.bin
check "an untouched file still reads" cmp /src/dir/seq.txt /mnt/dir/seq.txt
umount /mnt
sealroot fsck >/tmp/out 2>&1 && fail "fsck clean after a replaced object" \
    || { grep -q "$BIGD" /tmp/out && pass "fsck names the replaced sha512 object" \
        || fail "fsck: $(cat /tmp/out)"; }
unset SEALROOT_REPO

echo "--- kernel fs-verity built-in signatures (PKCS#7 by sealroot fsverity sign)"
if [ ! -e /proc/sys/fs/verity/require_signatures ]; then
    fail "this kernel has no CONFIG_FS_VERITY_BUILTIN_SIGNATURES"
elif KID=$(keyctl padd asymmetric '' %keyring:.fs-verity </keys/cert.der 2>/tmp/err); then
    pass "certificate loaded into the .fs-verity keyring (key $KID)"
    cp /src/big.bin /data/s1
    check "sealroot fsverity sign" sealroot fsverity sign /data/s1 /tmp/s1.sig --key /keys/key.pem --cert /keys/cert.pem
    fsverity sign /data/s1 /tmp/s1.c.sig --key /keys/key.pem --cert /keys/cert.pem >/dev/null 2>&1 \
        && cmp -s /tmp/s1.sig /tmp/s1.c.sig && pass "byte-identical to fsverity sign" || fail "differs from fsverity sign"
    check "the kernel accepts our signature: sealroot fsverity enable --signature" \
        sealroot fsverity enable /data/s1 --signature /tmp/s1.sig
    check "the signed file reads" cmp /src/big.bin /data/s1
    cp /src/dir/seq.txt /data/s2
    if sealroot fsverity enable /data/s2 --signature /tmp/s1.sig 2>/tmp/err; then
        fail "the kernel accepted a signature of another file"
    else
        pass "the kernel refuses a signature of another file: $(tail -n1 /tmp/err)"
    fi
    # The repository flow: the image's kernel signature made on the build side (sign
    # --fsverity-key), the image re-created on a device that has only the commit, its
    # signatures and the tree and file objects, and enabled with that signature.
    export SEALROOT_REPO=/data/repo
    check "sign --fsverity-key: the image's kernel signature beside the commit" \
        sealroot sign --fsverity-key /keys/key.pem --fsverity-cert /keys/cert.pem os
    check "verify --fsverity-cert: that signature checked in userspace" \
        sealroot verify --keys /tmp/k.pub --fsverity-cert /keys/cert.pem os
    IMG=$(basename "$(readlink /data/repo/images/refs/os)")
    CID=$(basename "$(readlink /data/repo/commits/refs/os)")
    for R2 in /data/repo2 /data/repo3; do
        SEALROOT_REPO=$R2 sealroot init >/dev/null
        (cd /data/repo/objects && find . -type f) | while read -r o; do
            n=$(echo "$o" | tr -d './')
            [ "$n" = "$IMG" ] && continue
            mkdir -p "$R2/objects/$(dirname "$o")" && cp "/data/repo/objects/$o" "$R2/objects/$o"
        done
        mkdir -p "$R2/commits/refs"
        ln -s "../objects/$(echo "$CID" | cut -c1-2)/$(echo "$CID" | cut -c3-)" "$R2/commits/$CID"
        ln -s "../$CID" "$R2/commits/refs/os"
        cp "/data/repo/commits/$CID.sig" "/data/repo/commits/$CID.p7s" "$R2/commits/"
    done
    cp /tmp/s1.sig "/data/repo3/commits/$CID.p7s"   # a good signature, of another file
    export SEALROOT_REPO=/data/repo2
    check "derive --kernel-signature on a second repository: the kernel accepts the image's signature" \
        sealroot derive --kernel-signature os
    IO=/data/repo2/objects/$(echo "$IMG" | cut -c1-2)/$(echo "$IMG" | cut -c3-)
    [ "$(fsverity measure "$IO" 2>/dev/null | cut -d' ' -f1)" = "sha256:$IMG" ] \
        && pass "the re-created image has fs-verity (signed) = the signed commit's digest" || fail "image $IO: $(fsverity measure "$IO" 2>&1)"
    check "verify in the second repository" sealroot verify --keys /tmp/k.pub os
    export SEALROOT_REPO=/data/repo3
    if sealroot derive --kernel-signature os 2>/tmp/err; then
        fail "derive accepted a kernel signature of another file"
    else
        pass "derive with another file's signature: the kernel refuses it: $(tail -n1 /tmp/err)"
    fi
    unset SEALROOT_REPO
    echo 1 >/proc/sys/fs/verity/require_signatures
    cp /src/hello.txt /data/s3
    if sealroot fsverity enable /data/s3 2>/tmp/err; then
        fail "unsigned fs-verity enabled with require_signatures=1"
    else
        pass "with require_signatures=1 an unsigned enable is refused: $(tail -n1 /tmp/err)"
    fi
    echo 0 >/proc/sys/fs/verity/require_signatures
else
    fail "keyctl padd into .fs-verity: $(cat /tmp/err)"
fi

echo "--- kernel messages"
dmesg | grep -iE 'overlayfs|erofs|verity' | sed 's/^/    /'
umount /data
echo "$PASS passed, $FAIL failed"
