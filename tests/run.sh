#!/usr/bin/env bash
# Every test of portcullis, in the order CI runs them. Installs what the tests
# need from package registries when it is missing (oidc-provider from npm;
# promtool, chromium, chromedriver, curl and Redis from Debian when running as
# root; grpcio from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "dependency audit (RustSec)"
python3 tests/audit.py

step "formatting"
cargo fmt --all -- --check
# fuzz/ is its own workspace (`--all` there would walk into this one through
# its path dependencies).
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "test dependencies"
if [ ! -f tests/idp/node_modules/oidc-provider/package.json ]; then
  npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
fi
# A Debian package for a command the tests run, installed when missing and
# running as root.
need() {
  local command="$1" package="$2" why="$3"
  command -v "$command" >/dev/null 2>&1 && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  else
    echo "$command is missing: install Debian's '$package' package ($why)" >&2
    exit 1
  fi
}
need promtool prometheus "the metrics test needs it"
need chromium chromium "the CORS browser test needs it"
need chromedriver chromium-driver "the browser sign-in test needs it"
need redis-server redis-server "the replica tests run private Redis servers"
need redis-cli redis-tools "the replica tests create a Redis Cluster"
need curl curl "the HTTP/2 and TLS tests run curl"
need openssl openssl "the TLS tests make certificates and handshakes with it"
# The gRPC tests run a real gRPC client and server: grpcio from PyPI.
if ! python3 -c 'import grpc' 2>/dev/null; then
  python3 -m pip install --quiet grpcio 2>/dev/null || python3 -m pip install --quiet --break-system-packages grpcio
fi

# Clippy's lints run inside the one real build: clippy-driver as the
# compiler of the workspace's own crates (RUSTC_WORKSPACE_WRAPPER, exactly
# what `cargo clippy` sets), and the lint levels in Cargo.toml's
# [workspace.lints] make every warning, clippy's included, an error. Same
# lints as `cargo clippy --workspace --all-targets -- -D warnings`, but the
# dependency tree is compiled once, not also checked in a separate
# metadata-only build (4m41s cold on 2 cores).
clippy_driver="$(rustc --print sysroot)/bin/clippy-driver"
if [ ! -x "$clippy_driver" ]; then
  echo "clippy is missing: rustup component add clippy" >&2
  exit 1
fi
linted() {
  RUSTC_WORKSPACE_WRAPPER="$clippy_driver" "$@"
}

step "build, with clippy's lints as errors"
linted cargo build --workspace --all-targets --locked
# The end-to-end tests run this binary instead of each asking Cargo for it.
export PORTCULLIS_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/portcullis"

step "unit, property and end-to-end tests"
# Same wrapper, same fingerprints: nextest reuses the build above.
linted cargo nextest run --workspace --locked --no-fail-fast

# Replays every input that once broke an invariant, then fuzzes each target
# for FUZZ_SECONDS (default 60; 0 replays only), as many at once as there
# are cores. Its own build: libFuzzer instrumentation, in fuzz/target, with
# clippy's lints as errors on the targets (the same wrapper as above).
export FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}"
step "fuzzing: kept regression inputs, then ${FUZZ_SECONDS:-60}s per target, $FUZZ_JOBS at a time"
bash fuzz/run.sh "${FUZZ_SECONDS:-60}"

step "done in $(( $(date +%s) - start ))s"
