#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain: builds every fuzz target
# (crates/*/fuzz/fuzz_targets/TARGET.rs) and runs each for SECONDS (default 30), starting from
# its committed seed corpus crates/*/fuzz/corpus/TARGET/. A crash (a panic), a timeout (one
# input running over SEALROOT_FUZZ_TIMEOUT seconds, default 10) or running out of memory
# (SEALROOT_FUZZ_RSS_MB, default 2048) fails the run, naming the target and its reproducer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      run (all targets, or those named)
#   scripts/fuzz.sh --minimize [TARGET...]     fold what runs found into the committed corpus
#
# The build passes rustc what `cargo fuzz build --sanitizer none` passes (SanitizerCoverage
# through -Cpasses=sancov-module and -Cllvm-args, all stable flags), so neither nightly nor
# cargo-fuzz is needed; libfuzzer-sys compiles libFuzzer itself with the C++ compiler.
# Everything a run writes (new corpus entries, reproducers, logs) goes to
# $SEALROOT_FUZZ_WORK, by default target/fuzz/runs/TARGET/ beside the build, never into the
# repository. --minimize merges the committed corpus, the runs' corpora and any raw seeds in
# runs/TARGET/seeds/ (scripts/fuzz-seeds.sh makes them) into the smallest set of inputs with
# the same coverage, and writes it back to crates/*/fuzz/corpus/TARGET/.
# Targets run SEALROOT_FUZZ_JOBS at a time (default: one per CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

mode=run seconds=30
if [ "${1:-}" = --minimize ]; then
    mode=minimize
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
[ "$seconds" -gt 0 ] || { echo "fuzz.sh: SECONDS must be positive" >&2; exit 2; }
host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${SEALROOT_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}
work=${SEALROOT_FUZZ_WORK:-$target_dir/runs}
bin_dir=$target_dir/$host/release
jobs=${SEALROOT_FUZZ_JOBS:-$(nproc)}

# The fuzz crate of every target; a target's name is its file's, and must be unique (all are
# built into one directory).
declare -A crate_of
for source in crates/*/fuzz/fuzz_targets/*.rs; do
    t=$(basename "$source" .rs)
    [ -z "${crate_of[$t]:-}" ] || { echo "fuzz.sh: two targets named $t" >&2; exit 2; }
    crate_of[$t]=${source%/fuzz_targets/*}
done
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(printf '%s\n' "${!crate_of[@]}" | sort)
for t in "${targets[@]}"; do
    [ -n "${crate_of[$t]:-}" ] || { echo "fuzz.sh: no fuzz target $t" >&2; exit 2; }
done

command -v c++ >/dev/null || { echo "fuzz.sh: libFuzzer needs a C++ compiler (scripts/install-deps.sh installs g++)" >&2; exit 1; }
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth"
flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing"
# Debug assertions and overflow checks on, as cargo-fuzz has them by default.
flags+=" -Cdebug-assertions -Coverflow-checks -Ccodegen-units=1"
# Scratch files of the targets (keyring writes key files for every input): on tmpfs when
# there is one, which makes keyring twenty times faster than on disk.
scratch=$(mktemp -d "${SEALROOT_FUZZ_TMP:-/dev/shm}/sealroot-fuzz.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
start=$SECONDS
for crate in $(printf '%s\n' "${crate_of[@]}" | sort -u); do
    # --target: the flags then skip build scripts and proc macros, as with cargo fuzz.
    RUSTFLAGS="$flags ${RUSTFLAGS:-}" CARGO_TARGET_DIR=$target_dir cargo build --quiet \
        --manifest-path "$crate/Cargo.toml" --release --target "$host" --bins \
        --config 'profile.release.debug="line-tables-only"'
done
echo "fuzz: built ${#crate_of[@]} targets in $((SECONDS - start)) s"

# Runs target $1 for $seconds; writes its verdict to $work/$1/result.
run_one() {
    local t=$1 out=$work/$1 crate=${crate_of[$1]}
    local seeds=$crate/corpus/$t
    rm -rf "$out/artifacts" "$out/result"
    mkdir -p "$out/corpus" "$out/artifacts" "$scratch/$t"
    local args=(-max_total_time="$seconds" -timeout="${SEALROOT_FUZZ_TIMEOUT:-10}"
        -rss_limit_mb="${SEALROOT_FUZZ_RSS_MB:-2048}" -artifact_prefix="$out/artifacts/"
        -print_final_stats=1)
    if [ ! -d "$seeds" ]; then
        echo "fuzz $t: FAILED: no committed corpus $seeds" >"$out/result"
        return
    fi
    # The first directory gets the new entries; the committed corpus is only read.
    if TMPDIR=$scratch/$t "$bin_dir/$t" "${args[@]}" "$out/corpus" "$seeds" >"$out/log" 2>&1; then
        local runs cov
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log")
        cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$out/log" | tail -n 1)
        echo "fuzz $t: ok, ${runs:-?} runs in ${seconds} s, $cov" >"$out/result"
        return
    fi
    local repro
    repro=$(find "$out/artifacts" -type f | head -n 1)
    {
        echo "fuzz $t: FAILED ($crate/fuzz_targets/$t.rs)"
        sed -n '/panicked at\|ERROR: libFuzzer\|==ERROR/,$p' "$out/log" | grep -v '^0x' | head -n 60
        if [ -n "$repro" ]; then
            echo "fuzz $t: reproducer $repro"
            echo "fuzz $t: replay with $bin_dir/$t $repro"
            # CI's checkout is gone after the run: a small reproducer is printed whole.
            if [ "$(wc -c <"$repro")" -le 4096 ]; then
                echo "fuzz $t: reproducer as base64: $(base64 -w 0 "$repro")"
            fi
        else
            echo "fuzz $t: no reproducer written; the whole log is $out/log"
        fi
    } >"$out/result"
}

# Merges the committed corpus of $1 with the raw seeds and the inputs runs found (those of at
# most SEALROOT_FUZZ_KEEP_BYTES, default 1024, which keeps the committed corpora small) into
# the smallest corpus of the same coverage, and puts it in place of the committed one.
minimize_one() {
    local t=$1 out=$work/$1 seeds=${crate_of[$1]}/corpus/$1
    local merged=$out/merged small=$out/small
    rm -rf "$merged" "$small"
    mkdir -p "$merged" "$small" "$seeds" "$out/corpus" "$out/seeds" "$scratch/$t"
    find "$out/corpus" -type f -size -"$((${SEALROOT_FUZZ_KEEP_BYTES:-1024} + 1))"c \
        -exec cp -t "$small" {} +
    TMPDIR=$scratch/$t "$bin_dir/$t" -merge=1 -timeout="${SEALROOT_FUZZ_TIMEOUT:-10}" \
        "$merged" "$seeds" "$out/seeds" "$small" >"$out/merge.log" 2>&1 ||
        { echo "fuzz $t: merge failed, see $out/merge.log" >&2; return 1; }
    rm -rf "$seeds"
    mv "$merged" "$seeds"
    echo "fuzz $t: corpus $(find "$seeds" -type f | wc -l) files, $(cat "$seeds"/* | wc -c) bytes"
}

if [ "$mode" = minimize ]; then
    for t in "${targets[@]}"; do minimize_one "$t"; done
    exit 0
fi
echo "fuzz: ${#targets[@]} targets, $seconds s each, $jobs at a time; runs in $work"
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    run_one "$t" &
done
wait
passed=0 failed=0
for t in "${targets[@]}"; do
    [ -f "$work/$t/result" ] || echo "fuzz $t: FAILED: the run stopped before its verdict" >"$work/$t/result"
    cat "$work/$t/result"
    if grep -q "^fuzz $t: ok" "$work/$t/result"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "fuzz: $((SECONDS - start)) s with the build"
echo "fuzz: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
