#!/usr/bin/env python3
"""Resident memory of the real portcullis process under attacker-chosen keys
(issue 7, item 3): after 1,000,000 distinct valid tokens, and after 1,000,000
distinct client addresses on a rate-limited route.

    python3 tests/bench/memory.py [--count N] [--out DIR]

Needs what run.sh installs (nginx, wrk, taskset) and a release build of
portcullis (`cargo build --release -p portcullis`). Runs twice: with the
default caps (token cache 100,000 entries, 100,000 keys per rate limit) and
with both caps raised to the count, so the figures show what the caps bound
and what a full cache costs. Everything on loopback, stops by itself; about
5 minutes for a million keys.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (shared process, port and wrk helpers)

SECRET = "memory-benchmark-secret-" + "x" * 16  # HS256 wants >= 32 bytes


def hs256_tokens(path: Path, count: int) -> int:
    """Write `count` distinct valid HS256 tokens with the benchmark's claims."""
    key = SECRET.encode()
    header = bench.b64u(b'{"alg":"HS256","typ":"JWT"}')
    now = int(time.time())
    length = 0
    with open(path, "w") as f:
        for i in range(count):
            c = bench.claims(i, now)
            signing_input = header + "." + bench.b64u(json.dumps(c, separators=(",", ":")).encode())
            sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
            token = signing_input + "." + bench.b64u(sig)
            length = len(token)
            f.write(token + "\n")
    return length


def metric(admin_port: int, name: str, labels: str = "") -> float | None:
    _, _, body = bench.get(admin_port, "/metrics")
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def send(port: int, path: str, mode: str, tokens: Path, count: int, work: Path) -> dict:
    """Drive wrk until `count` requests have been answered; chunks of at most
    30 s, each continuing the previous one's sequence."""
    sent, non2xx, errors, started = 0, 0, 0, time.monotonic()
    rate = 10_000.0
    while sent < count:
        seconds = max(1, min(30, round((count - sent) / rate)))
        # Past the count, requests repeat tokens (cache hits) and client
        # addresses (known keys): no new key beyond `count`.
        env = dict(os.environ, BENCH_TOKEN_MODE=mode, BENCH_TOKENS=str(tokens), BENCH_OFFSET=str(sent),
                   BENCH_CLIENTS=str(count))
        argv = ["taskset", "-c", bench.LOAD_CORE, "wrk", "-t1", "-c64", f"-d{seconds}s", "--timeout", "5s",
                "-s", str(HERE / "wrk.lua"), f"http://127.0.0.1:{port}{path}"]
        out = bench.subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
        m = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.M)
        if out.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed (rc {out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
        r = json.loads(m.group(1))
        sent += r["requests"]
        non2xx += r["non2xx"]
        errors += r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
        rate = max(1000.0, r["requests"] / max(r["duration_us"] / 1e6, 0.001))
        bench.log(f"      {sent:>9,} requests ({rate:,.0f}/s)")
    return {"requests": sent, "non2xx": non2xx, "socket_errors": errors, "seconds": time.monotonic() - started}


def one_run(args, label: str, caps: int | None, work: Path, procs: bench.Processes, ports: dict, tokens: Path) -> dict:
    values = {
        "LISTEN_PORT": ports["portcullis"],
        "ADMIN_PORT": ports["admin"],
        "UPSTREAM_PORT": ports["upstream"],
        "ISSUER": bench.ISSUER,
        "AUDIENCE": bench.AUDIENCE,
        "TOKEN_CACHE": f"token_cache:\n  max_entries: {caps}" if caps else "# token_cache: defaults",
        "MAX_KEYS": f"    max_keys: {caps}" if caps else "    # max_keys: default",
    }
    conf = work / f"portcullis-{label}.yaml"
    conf.write_text(bench.fill("portcullis-memory.yaml", values))
    name = f"portcullis-{label}"
    os.environ["BENCH_HS256_SECRET"] = SECRET
    proc = procs.start(name, bench.PROXY_CORE, [args.portcullis, "run", "-c", str(conf)])
    if not bench.wait_port(ports["portcullis"], proc):
        raise SystemExit(f"portcullis did not start:\n{procs.log_tail(name)}")
    time.sleep(1)
    row = {"caps": caps or "defaults", "rss_idle_kib": bench.rss_kib(proc.pid)}

    bench.log(f"    {args.count:,} distinct valid tokens -> /api/hello")
    row["tokens"] = send(ports["portcullis"], "/api/hello", "stream", tokens, args.count, work)
    row["rss_after_tokens_kib"] = bench.rss_kib(proc.pid)
    row["token_cache_entries"] = metric(ports["admin"], "portcullis_token_cache_entries")

    bench.log(f"    {args.count:,} distinct client addresses -> /login")
    row["clients"] = send(ports["portcullis"], "/login", "clients", tokens, args.count, work)
    row["rss_after_clients_kib"] = bench.rss_kib(proc.pid)
    row["rate_limit_keys"] = metric(ports["admin"], "portcullis_rate_limit_keys", '{limit="per-client"}')
    row["rate_limit_overflow"] = metric(ports["admin"], "portcullis_rate_limit_overflow_total", '{limit="per-client"}')
    row["alive"] = procs.alive(name)

    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    return row


def mib(kib: int) -> str:
    return f"{kib / 1024:,.1f}"


def report(meta: dict, rows: list[dict]) -> str:
    lines = [
        "## Resident memory of portcullis under distinct keys",
        "",
        f"{meta['count']:,} distinct valid HS256 tokens ({meta['token_chars']} characters, the claims of the "
        f"throughput benchmark) to a protected route, then {meta['count']:,} distinct client addresses "
        "(X-Forwarded-For from a trusted proxy) to a rate-limited public route; one portcullis process, "
        "one worker thread. VmRSS in MiB.",
        "",
        "| caps (cache / keys) | idle | after tokens | cache entries | after clients | keys tracked | overflow (429) | answers |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        caps = "defaults (100,000 / 100,000)" if r["caps"] == "defaults" else f"{r['caps']:,} / {r['caps']:,}"
        # Every token is valid: all 200. A client address beyond the key cap
        # shares the overflow bucket, whose quota soon answers 429: expected.
        overflow = int(r["rate_limit_overflow"] or 0)
        bad = r["tokens"]["non2xx"] + max(0, r["clients"]["non2xx"] - overflow)
        errs = r["tokens"]["socket_errors"] + r["clients"]["socket_errors"]
        answers = "as expected" if bad == 0 and errs == 0 else f"⚠ {bad} unexpected non-2xx, {errs} socket errors"
        lines.append(
            f"| {caps} | {mib(r['rss_idle_kib'])} | {mib(r['rss_after_tokens_kib'])} | "
            f"{int(r['token_cache_entries'] or 0):,} | {mib(r['rss_after_clients_kib'])} | "
            f"{int(r['rate_limit_keys'] or 0):,} | {overflow:,} | {answers} |"
        )
    lines += ["", f"Machine: {meta['cpu']}, {meta['kernel']}; commit {meta['portcullis_commit']}; {meta['date']}."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="distinct tokens and client addresses (default 1,000,000)")
    ap.add_argument("--portcullis", default=str(bench.ROOT / "target/release/portcullis"))
    ap.add_argument("--out", help="directory for memory.md / memory.json (default: a new temporary directory)")
    args = ap.parse_args()
    if not os.access(args.portcullis, os.X_OK):
        ap.error(f"{args.portcullis} is not built (cargo build --release -p portcullis)")
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            ap.error(f"{tool} is missing (tests/bench/run.sh installs it)")

    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="portcullis-memory-results-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="portcullis-memory-"))
    work.chmod(0o755)
    (work / "nginx-tmp").mkdir()
    (work / "www").mkdir()
    procs = bench.Processes(work, os.environ.get("BENCH_PIDFILE"))
    signal.signal(signal.SIGTERM, lambda signum, _f: (_ for _ in ()).throw(SystemExit(128 + signum)))
    try:
        bench.log(f"==> {args.count:,} HS256 tokens")
        started = time.monotonic()
        tokens = work / "tokens.txt"
        token_chars = hs256_tokens(tokens, args.count)
        bench.log(f"    signed in {time.monotonic() - started:.1f}s")

        ports = {name: bench.free_port() for name in ["upstream", "upstream-grpc", "jwks", "portcullis", "admin"]}
        values = {
            "DIR": work,
            "UPSTREAM_PORT": ports["upstream"],
            # The upstream's h2c server (bench.py's grpc scenario), unused here.
            "GRPC_PORT": ports["upstream-grpc"],
            "JWKS_PORT": ports["jwks"],
            "USER_LINE": "user root root;" if os.geteuid() == 0 else "# not root: workers keep our user",
        }
        conf = work / "nginx-upstream.conf"
        conf.write_text(bench.fill("nginx-upstream.conf", values))
        up = procs.start("upstream", bench.LOAD_CORE, ["nginx", "-p", str(work), "-c", str(conf), "-g", "daemon off;"])
        if not bench.wait_port(ports["upstream"], up):
            raise SystemExit("upstream nginx did not start:\n" + procs.log_tail("upstream"))

        rows = []
        for label, caps in (("defaults", None), ("raised", args.count)):
            bench.log(f"==> portcullis, caps: {caps or 'defaults'}")
            rows.append(one_run(args, label, caps, work, procs, ports, tokens))

        meta = bench.machine_meta(argparse.Namespace(duration=0, warmup=0, connections=64, quick=False))
        meta.update(count=args.count, token_chars=token_chars)
        text = report(meta, rows)
        (out_dir / "memory.md").write_text(text + "\n")
        (out_dir / "memory.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=2) + "\n")
        print(text)
        print(f"\nResults written to {out_dir}/memory.md and memory.json")
        return 0 if all(r["alive"] for r in rows) else 1
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
