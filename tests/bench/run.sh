#!/usr/bin/env bash
# Side-by-side benchmark of portcullis, its peers and its own framework
# (issue 7). One command:
#
#   bash tests/bench/run.sh [--duration SECONDS] [--connections N] [--quick] [--out DIR]
#                           [--proxies a,b] [--scenarios a,b] [--keep] [--no-build]
#
# Installs nginx, haproxy, wrk, redis-server, ab and h2load from Debian
# packages when missing (as root), builds portcullis and bare-pingora in
# release mode, then hands over to bench.py, which starts everything on
# loopback, checks that each proxy answers as it should, measures and prints
# tables. See README.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

build=1
args=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exec python3 "$HERE/bench.py" --help ;;
    *) args+=("$arg") ;;
  esac
done

step() { printf '==> %s\n' "$*" >&2; }

# --- peers ------------------------------------------------------------------
missing=()
command -v nginx   >/dev/null 2>&1 || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v wrk     >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
# Each needed by one scenario only, which is reported as not measured
# without it: redis-server by limit-redis (bench.py starts a private one on
# loopback, without persistence), ab (apache2-utils) by https-handshake,
# h2load and nghttp (nghttp2-client) by grpc.
optional=()
skipped=()
command -v redis-server >/dev/null 2>&1 || { optional+=(redis-server); skipped+=(limit-redis); }
command -v ab >/dev/null 2>&1 || { optional+=(apache2-utils); skipped+=(https-handshake); }
{ command -v h2load && command -v nghttp; } >/dev/null 2>&1 || { optional+=(nghttp2-client); skipped+=(grpc); }
if ((${#missing[@]} + ${#optional[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing ${missing[*]} ${optional[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ${missing[@]+"${missing[@]}"} ${optional[@]+"${optional[@]}"} >/dev/null
  elif ((${#missing[@]})); then
    echo "missing: ${missing[*]}; install them (Debian: apt-get install ${missing[*]} ${optional[*]})" >&2
    exit 1
  else
    echo "warning: no ${optional[*]} (Debian: apt-get install ${optional[*]}): ${skipped[*]} will not be measured" >&2
  fi
fi
# (No `| head` or `| grep -q` here: with pipefail, SIGPIPE would end the script.)
haproxy_build=$(haproxy -vv 2>&1 || true)
haproxy_version=${haproxy_build%%$'\n'*}
case "$haproxy_version" in
  *"version 2.6."*) ;;
  *) echo "warning: the issue compares against HAProxy 2.6 (Debian 12); found: $haproxy_version" >&2 ;;
esac
if [[ "$haproxy_build" != *USE_OPENSSL=1* ]]; then
  echo "warning: this haproxy is built without OpenSSL: no jwt_verify, 'HAProxy jwt_verify' will not be measured" >&2
fi

# --- Python: token signing is ~50x faster with the cryptography package -------
python=python3
if ! python3 -c 'import cryptography' 2>/dev/null; then
  venv="$HERE/.venv"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
    step "cryptography into $venv (pip)"
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q cryptography; }; then
      echo "warning: no cryptography package; signing 10,000 tokens in pure Python takes about a minute" >&2
    fi
  fi
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
    python="$venv/bin/python"
  fi
fi

# --- builds -------------------------------------------------------------------
if ((build)); then
  step "cargo build --release -p portcullis"
  (cd "$ROOT" && cargo build --release --locked -p portcullis)
  step "cargo build --release (tests/bench/bare-pingora, sharing $ROOT/target)"
  CARGO_TARGET_DIR="$ROOT/target" cargo build --release --locked \
    --manifest-path "$HERE/bare-pingora/Cargo.toml"
fi

# --- run ------------------------------------------------------------------------
# bench.py stops what it starts; this trap is the backstop if it is killed.
BENCH_PIDFILE=$(mktemp "${TMPDIR:-/tmp}/portcullis-bench-pids.XXXXXX")
export BENCH_PIDFILE
bench_pid=
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.5; done
  fi
  # Every child was started in its own process group (pgid = pid).
  while read -r pgid; do
    [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
  done <"$BENCH_PIDFILE"
  rm -f "$BENCH_PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" "$HERE/bench.py" \
  --portcullis "$ROOT/target/release/portcullis" \
  --bare-pingora "$ROOT/target/release/bare-pingora" \
  ${args[@]+"${args[@]}"} &
bench_pid=$!
wait "$bench_pid"
