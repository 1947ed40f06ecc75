#!/usr/bin/env bash
# Build every fuzz target once, replay the kept crash inputs, then fuzz each
# target for a bounded time on a scratch copy of its committed seed corpus.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60 (0: only replay the kept regression
# inputs); TARGETs default to every target.
# Environment:
#   FUZZ_SANITIZER   none (default) or address: passed to `cargo fuzz build -s`.
#                    The product forbids unsafe code and C dependencies are not
#                    instrumented anyway; without ASan targets run 3-4x faster.
#   FUZZ_JOBS        targets fuzzed at once (default 1; each uses one core)
#   FUZZ_ALLOW       comma-separated invariant names to skip (see README.md)
#   FUZZ_KEEP_CORPUS if set, the grown corpora are left in this directory
#                    (never in fuzz/corpus: CI runs do not modify the repository)
#   CARGO_TARGET_DIR defaults to fuzz/target (other flags than the main build)
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc accept the
# -Z flags cargo-fuzz passes. Exits non-zero if a target fails to build, a
# kept regression input fails, or fuzzing finds a crash, a failed invariant,
# a timeout or an out-of-memory; the failing input is left under
# fuzz/artifacts/<target>/ and its libFuzzer log under fuzz/artifacts/logs/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${1:-60}"
[[ $# -gt 0 ]] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
sanitizer="${FUZZ_SANITIZER:-none}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$CARGO_TARGET_DIR/$triple/release"

now() { date +%s; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    t0=$(now)
    cargo install cargo-fuzz --locked
    echo "   installed in $(($(now) - t0))s"
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Clippy's lints run inside the one instrumented build (as in tests/run.sh):
# clippy-driver as the compiler of this workspace's own crate, the targets
# (RUSTC_WORKSPACE_WRAPPER, as `cargo clippy` itself sets it); the lint
# levels in Cargo.toml make every warning an error. A separate `cargo clippy` would check the whole
# dependency tree again and rebuild aws-lc and libFuzzer in a target dir of
# its own (sharing this one, its other flags would rebuild them here). The
# crates under test are linted by the main workspace's build.
clippy_driver="$(rustc --print sysroot)/bin/clippy-driver"
if [[ ! -x "$clippy_driver" ]]; then
    echo "clippy is missing: rustup component add clippy" >&2
    exit 1
fi

echo "== building fuzz targets, with clippy's lints as errors (sanitizer: $sanitizer; release profile with debug assertions, see Cargo.toml)"
t0=$(now)
# 16 codegen units: a much shorter cold build on few cores, for a few
# percent of fuzzing speed (cargo-fuzz defaults to 1).
RUSTC_WORKSPACE_WRAPPER="$clippy_driver" cargo fuzz build --release --sanitizer "$sanitizer" --codegen-units 16
build_s=$(($(now) - t0))
echo "   built in ${build_s}s"

# Per-target libFuzzer options: inputs long enough to reach the length limits.
extra_args() {
    case "$1" in
        path_normalize) echo "-max_len=9216" ;;
        bearer) echo "-max_len=9216" ;;
        config_load) echo "-max_len=8192" ;;
        jwks) echo "-max_len=32768" ;;
        discovery) echo "-max_len=16384" ;;
        *) echo "" ;;
    esac
}

work="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p artifacts/logs
jobs="${FUZZ_JOBS:-1}"

# Replay one target's kept regressions, then fuzz it. Writes its summary line
# to $work/<target>.summary and its result (ok, regression, crash) to
# $work/<target>.result.
fuzz_one() {
    local target="$1" bin="$bin_dir/$1" status=ok
    local log="artifacts/logs/$target.log"
    mkdir -p "artifacts/$target"
    if [[ ! -x "$bin" ]]; then
        echo "!! $target: no binary at $bin"
        echo "not-built" >"$work/$target.result"
        return
    fi

    # 1. Kept crash inputs: each must now pass.
    local regressions=0 inputs=()
    if [[ -d "regressions/$target" ]]; then
        mapfile -t inputs < <(find "regressions/$target" -type f ! -name '*.md' | sort)
        regressions=${#inputs[@]}
        if [[ $regressions -gt 0 ]] && ! "$bin" -runs=1 "${inputs[@]}" >"$log.regressions" 2>&1; then
            echo "!! $target: a kept regression input fails (see $log.regressions)"
            grep -m1 -A6 "panicked at\|ERROR: " "$log.regressions" || tail -n 30 "$log.regressions"
            status=regression
        fi
    fi

    # 2. Fuzz on a scratch copy of the seed corpus (libFuzzer reads
    #    -max_total_time=0 as "forever": 0 seconds means replay only).
    if [[ $seconds -eq 0 ]]; then
        printf '%-16s %-10s %6s %12s %9s %7s %16s %s\n' "$target" "$status" - - - - - "$regressions" >"$work/$target.summary"
        echo "$status" >"$work/$target.result"
        return
    fi
    local corpus="$work/$target"
    mkdir -p "$corpus"
    if [[ -d "corpus/$target" ]]; then
        cp -R "corpus/$target/." "$corpus/"
    fi
    local seeds t0 took runs rate cov grown
    seeds=$(find "$corpus" -type f | wc -l)
    t0=$(now)
    # shellcheck disable=SC2046
    if ! "$bin" "$corpus" \
        -max_total_time="$seconds" \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" \
        $(extra_args "$target") >"$log" 2>&1; then
        status=crash
        echo "!! $target: fuzzing failed (input under artifacts/$target/, log $log)"
        grep -m1 -B2 -A25 "panicked at\|ERROR: \|==ERROR" "$log" || tail -n 40 "$log"
    fi
    took=$(($(now) - t0))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | sed 's/cov: //')
    grown=$(find "$corpus" -type f | wc -l)
    printf '%-16s %-10s %6ss %12s %9s %7s %6s -> %-6s %s\n' \
        "$target" "$status" "$took" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$seeds" "$grown" "$regressions" \
        >"$work/$target.summary"
    if [[ -n "${FUZZ_KEEP_CORPUS:-}" ]]; then
        mkdir -p "$FUZZ_KEEP_CORPUS/$target"
        cp -R "$corpus/." "$FUZZ_KEEP_CORPUS/$target/"
    fi
    echo "$status" >"$work/$target.result"
}

echo "== fuzzing ${#targets[@]} targets, ${seconds}s each, $jobs at a time"
t0=$(now)
for target in "${targets[@]}"; do
    while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do
        wait -n || true
    done
    fuzz_one "$target" &
done
wait
fuzz_s=$(($(now) - t0))

failed=()
echo
echo "== summary (build ${build_s}s, fuzzing ${fuzz_s}s: ${seconds}s per target, $jobs at a time, sanitizer $sanitizer)"
printf '%-16s %-10s %7s %12s %9s %7s %16s %s\n' target result time execs exec/s cov "corpus" regressions
for target in "${targets[@]}"; do
    cat "$work/$target.summary" 2>/dev/null || printf '%-16s %s\n' "$target" "not run"
    result="$(cat "$work/$target.result" 2>/dev/null || echo missing)"
    [[ $result == ok ]] || failed+=("$target ($result)")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo
    echo "FAILED: ${failed[*]}"
    exit 1
fi
