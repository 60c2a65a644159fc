#!/usr/bin/env bash
# Real fs-verity, under qemu. The host kernel may have none, so the checks of
# scripts/vmtest-guest.sh run in a VM booted with Debian 12's 6.12 kernel (from its security
# updates): sealroot's digest store enables fs-verity on real ext4, mount.composefs requires it,
# tampered objects read as EIO. Software emulation (TCG, no KVM needed): about 10 s a boot.
#
# Everything but the initramfs is cached under target/vmtest/ (the kernel .deb, vmlinuz, the
# decompressed modules; cargo keeps the binary), so a second run is quick. When the kernel cannot
# be had (no network, no package) it prints SKIPPED and succeeds. The last line is
# `vmtest: N passed, M failed` (with `, 1 skipped` when skipped); the exit status is 0 only when
# nothing failed. SEALROOT_VMTEST_TIMEOUT bounds the VM's run (seconds, default 240).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export PATH=$PATH:/usr/sbin:/sbin
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
VM=$TARGET/vmtest
TIMEOUT=${SEALROOT_VMTEST_TIMEOUT:-240}
# With their dependencies. fs-verity, sha256/sha512 and virtio-pci are built into the kernel;
# erofs reads its image file directly (no loop device).
MODULES="virtio_blk ext4 erofs overlay"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
start=$SECONDS
skip() { echo "SKIPPED: vmtest: $*"; echo "vmtest: 0 passed, 0 failed, 1 skipped"; exit 0; }
die() { echo "vmtest: $*" >&2; echo "vmtest: 0 passed, 1 failed"; exit 1; }
mkdir -p "$VM"
exec 9>"$VM/lock"
flock 9 # one run at a time in this tree

echo "== vmtest: host packages"
need=()
for p in qemu-system-x86 busybox-static kmod cpio e2fsprogs fsverity xz-utils zstd keyutils openssl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    { $SUDO apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
        >"$VM/apt.log" 2>&1 || skip "cannot install ${need[*]} (see $VM/apt.log)"
fi

echo "== vmtest: kernel"
latest_deb() { find "$VM" -maxdepth 1 -name 'linux-image-6.12.*-amd64_*.deb' | sort -V | tail -n1; }
latest_name() {
    apt-cache search --names-only '^linux-image-6\.12\..*deb12-amd64$' | cut -d' ' -f1 | sort -V | tail -n1
}
deb=$(latest_deb)
if [ -z "$deb" ]; then
    name=$(latest_name)
    [ -n "$name" ] || { $SUDO apt-get update -qq >/dev/null 2>&1 || true; name=$(latest_name); }
    [ -n "$name" ] || skip "no linux-image-6.12.*+deb12-amd64 package in the apt lists"
    # Into a directory of its own first, so that an interrupted download is never taken as the
    # cached kernel.
    rm -rf "$VM/download"
    mkdir "$VM/download"
    (cd "$VM/download" && apt-get download -o APT::Sandbox::User="$(id -un)" "$name") >"$VM/apt.log" 2>&1 ||
        skip "cannot download $name (see $VM/apt.log)"
    mv "$VM"/download/*.deb "$VM/"
    rmdir "$VM/download"
    deb=$(latest_deb)
fi
K=$VM/kernel
stamp="$(basename "$deb") $MODULES"
if [ "$(cat "$K/stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$K" "$VM/deb"
    mkdir -p "$K/modules"
    dpkg-deb -x "$deb" "$VM/deb"
    kv=$(ls "$VM/deb/lib/modules")
    cp "$VM/deb/boot/vmlinuz-$kv" "$K/vmlinuz"
    depmod -b "$VM/deb" "$kv"
    # Decompressed (busybox insmod cannot read .ko.xz), in the order insmod needs them.
    for m in $MODULES; do
        modprobe -d "$VM/deb" -S "$kv" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
    done | while read -r path; do
        ko=$(basename "$path")
        ko=${ko%.xz}
        ko=${ko%.zst}
        [ -f "$K/modules/$ko" ] && continue
        case $path in
        *.xz) xz -dc "$path" >"$K/modules/$ko" ;;
        *.zst) zstd -qdc "$path" >"$K/modules/$ko" ;;
        *) cp "$path" "$K/modules/$ko" ;;
        esac
        echo "$ko" >>"$K/modules/load-order"
    done
    rm -rf "$VM/deb"
    echo "$stamp" >"$K/stamp"
fi
echo "$(basename "$deb"): modules $(tr '\n' ' ' <"$K/modules/load-order")"

echo "== vmtest: sealroot (release build)"
cargo build --release -p sealroot --quiet
BIN=$TARGET/release/sealroot

echo "== vmtest: initramfs and disk"
R=$VM/root
rm -rf "$R"
mkdir -p "$R"/{bin,usr/bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$R/bin/busybox"
for applet in $("$R/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$R/bin/$applet"
done
cp "$K"/modules/* "$R/lib/modules/"
strip --strip-debug -o "$R/usr/bin/sealroot" "$BIN" 2>/dev/null || cp "$BIN" "$R/usr/bin/sealroot"
cp /usr/bin/fsverity "$R/usr/bin/fsverity"
cp /usr/bin/keyctl "$R/usr/bin/keyctl"
# An RSA key and certificate for the kernel's fs-verity built-in signatures.
mkdir -p "$R/keys"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$R/keys/key.pem" -out "$R/keys/cert.pem" \
    -days 3650 -subj "/CN=sealroot vmtest" 2>/dev/null
openssl x509 -in "$R/keys/cert.pem" -outform der -out "$R/keys/cert.der"
for lib in $(ldd "$BIN" /usr/bin/fsverity /usr/bin/keyctl | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*\.so/ { print $1 }' | sort -u); do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done
cp scripts/vmtest-guest.sh "$R/test.sh"
cat >"$R/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
for m in $(cat /lib/modules/load-order); do insmod /lib/modules/$m || echo "insmod $m failed"; done
echo; echo "=== guest up at $(cut -d' ' -f1 /proc/uptime) s"
sh /test.sh 2>&1
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$VM/initramfs.gz"
rm -rf "$R"
rm -f "$VM/disk.img"
truncate -s 128M "$VM/disk.img"
mkfs.ext4 -q -F -b 4096 -O verity "$VM/disk.img"
echo "initramfs $(du -h "$VM/initramfs.gz" | cut -f1), prepared in $((SECONDS - start)) s"

echo "== vmtest: booting the VM (TCG, at most $TIMEOUT s)"
boot=$SECONDS
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 1024 \
    -nographic -no-reboot -nodefaults -serial stdio -kernel "$K/vmlinuz" -initrd "$VM/initramfs.gz" \
    -append "console=ttyS0 quiet loglevel=4 panic=-1" -drive file="$VM/disk.img",if=virtio,format=raw \
    </dev/null 2>&1 | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$VM/console.log"
qemu=${PIPESTATUS[0]}
set -e
echo "== vmtest: the VM ran $((SECONDS - boot)) s (qemu exit $qemu), $((SECONDS - start)) s in all"
[ "$qemu" != 124 ] || die "the VM did not finish within $TIMEOUT s: see $VM/console.log"
# qemu exits 0 whatever happened inside: the verdict is the guest's own last word.
verdict=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$VM/console.log" | tail -n1)
[ -n "$verdict" ] || die "the guest gave no verdict (crash?): see $VM/console.log"
read -r passed _ failed _ <<<"$verdict"
echo "vmtest: $passed passed, $failed failed"
[ "$failed" = 0 ]
