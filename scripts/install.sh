#!/usr/bin/env bash
# Builds sealroot and installs it: the binary, the C tools' names as links to it (with
# --c-tool-links), man pages and shell completions made from its own command definitions.
# Usage: scripts/install.sh [--prefix PREFIX] [--destdir DIR] [--c-tool-links]
#   PREFIX defaults to /usr/local; DESTDIR (for packaging) to nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

prefix=/usr/local destdir="" links=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --destdir) destdir="$2"; shift 2 ;;
        --c-tool-links) links=1; shift ;;
        *) echo "usage: $0 [--prefix PREFIX] [--destdir DIR] [--c-tool-links]" >&2; exit 2 ;;
    esac
done

cargo build --release --quiet -p sealroot
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/sealroot"
root="$destdir$prefix"
install -D -m 0755 "$bin" "$root/bin/sealroot"
if [ "$links" = 1 ]; then
    # The same binary answers to the C composefs tools' names.
    for tool in mkcomposefs composefs-info; do
        ln -sf sealroot "$root/bin/$tool"
    done
    install -d "$root/sbin"
    ln -sf ../bin/sealroot "$root/sbin/mount.composefs"
fi
man="$root/share/man/man1"
"$bin" man "$man"
gzip -9nf "$man"/sealroot*.1
install -d "$root/share/bash-completion/completions" "$root/share/zsh/site-functions" \
    "$root/share/fish/vendor_completions.d"
"$bin" completions bash > "$root/share/bash-completion/completions/sealroot"
"$bin" completions zsh > "$root/share/zsh/site-functions/_sealroot"
"$bin" completions fish > "$root/share/fish/vendor_completions.d/sealroot.fish"
echo "installed sealroot into $root (binary, man pages, bash/zsh/fish completions)"
