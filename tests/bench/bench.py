#!/usr/bin/env python3
"""Side-by-side benchmark of portcullis against its peers (issue 7).

Started by run.sh, which installs the peers and builds the binaries first; see
README.md. Standard library only, except that token signing uses the
`cryptography` package when it can be imported (run.sh provides it in a
virtual environment) and falls back to slow pure-Python RSA otherwise.

Everything runs on loopback. Each proxy is pinned to core 0 with one worker
thread; wrk and the fixed upstream (nginx) share core 1.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

ISSUER = "https://idp.bench.example"
AUDIENCE = "bench-api"
KID = "bench-key-1"
SCOPE = "bench:read"
TOKEN_COUNT = 10_000

PROXY_CORE = "0"
LOAD_CORE = "1"

# name, label, path, wrk token mode
SCENARIOS = [
    ("public", "public route, no token", "/public/hello", "none"),
    ("one-token", "one valid token repeated", "/api/hello", "single"),
    ("10k-tokens", "10,000 distinct valid tokens rotating", "/api/hello", "rotate"),
    ("bad-signature", "invalid-signature flood (every token distinct, never repeated)", "/api/hello", "forge"),
    # The floor of answering locally: what an authenticating proxy's 401
    # costs without any crypto (bad-signature adds one RSA verification).
    ("no-token", "protected route without a token (answered 401 by the authenticating proxies)", "/api/hello", "none"),
]
PROTECTED = ["one-token", "10k-tokens", "bad-signature", "no-token"]
REJECTED = {"bad-signature", "no-token"}

# name, label, verifies tokens?
PROXIES = [
    ("nginx", "nginx passthrough", False),
    ("haproxy", "HAProxy passthrough", False),
    ("haproxy-jwt", "HAProxy jwt_verify", True),
    ("bare-pingora", "bare Pingora passthrough", False),
    ("portcullis", "portcullis", True),
]
LABEL = {name: label for name, label, _ in PROXIES}
ENFORCING = {name for name, _, enforcing in PROXIES if enforcing}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Keys and tokens


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def rsa_components(key_pem: Path) -> dict[str, int]:
    """n, e, d, p, q, dp, dq, qi from `openssl rsa -text`."""
    text = subprocess.run(
        ["openssl", "rsa", "-in", str(key_pem), "-text", "-noout"], check=True, capture_output=True, text=True
    ).stdout
    fields: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s*(\d+)?", line)
        if m and not line[0].isspace():
            current = m.group(1)
            if m.group(2):
                fields[current] = hex(int(m.group(2)))
                current = None
            else:
                fields[current] = ""
        elif current and line[:1].isspace():
            fields[current] += line.strip().replace(":", "")
    names = {
        "modulus": "n",
        "publicExponent": "e",
        "privateExponent": "d",
        "prime1": "p",
        "prime2": "q",
        "exponent1": "dp",
        "exponent2": "dq",
        "coefficient": "qi",
    }
    return {short: int(fields[long], 16) for long, short in names.items()}


class Signer:
    """RS256 signatures with the `cryptography` package, or pure Python."""

    DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

    def __init__(self, key_pem: Path):
        self.parts = rsa_components(key_pem)
        try:
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import padding

            key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
            self.sign = lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            self.backend = "cryptography"
        except ImportError:
            self.sign = self._sign_pure
            self.backend = "pure Python (slow: install the cryptography package)"

    def _sign_pure(self, data: bytes) -> bytes:
        k = self.parts
        size = (k["n"].bit_length() + 7) // 8
        t = self.DIGEST_INFO + hashlib.sha256(data).digest()
        em = b"\x00\x01" + b"\xff" * (size - 3 - len(t)) + b"\x00" + t
        m = int.from_bytes(em, "big")
        s1, s2 = pow(m, k["dp"], k["p"]), pow(m, k["dq"], k["q"])
        s = s2 + ((k["qi"] * (s1 - s2)) % k["p"]) * k["q"]
        return s.to_bytes(size, "big")

    def jwks(self) -> dict:
        n, e = self.parts["n"], self.parts["e"]
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": b64u(int_bytes(n)), "e": b64u(int_bytes(e))}]}

    def token(self, claims: dict) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": KID}
        signing_input = (
            b64u(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64u(json.dumps(claims, separators=(",", ":")).encode())
        )
        return signing_input + "." + b64u(self.sign(signing_input.encode()))


def claims(i: int, now: int, **overrides) -> dict:
    c = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"bench-user-{i:05d}",
        "email": f"bench-user-{i:05d}@example.com",
        "scope": f"openid profile {SCOPE}",
        "iat": now,
        "exp": now + 3600,
        "jti": hashlib.sha256(f"{now}-{i}".encode()).hexdigest()[:32],
    }
    c.update(overrides)
    return c


def forge(tokens: list[str], c: int) -> str:
    """Same forgery as forge() in wrk.lua: the header and payload of token
    c mod n with the (genuine, canonical) signature of another token."""
    n = len(tokens)
    a = c % n
    b = (a + 1 + (c // n) % (n - 1)) % n
    return tokens[a].rsplit(".", 1)[0] + "." + tokens[b].rsplit(".", 1)[1]


def tamper(token: str) -> str:
    """A token with one signature character changed (not the last one, whose
    low bits are padding: changing it could make the base64 non-canonical)."""
    pos = len(token) - 5
    return token[:pos] + ("B" if token[pos] == "A" else "A") + token[pos + 1:]


def make_tokens(work: Path) -> dict:
    key = work / "jwt-key.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(work / "jwt-public.pem")],
        check=True,
        capture_output=True,
    )
    signer = Signer(key)
    (work / "www").mkdir()
    (work / "www" / "jwks.json").write_text(json.dumps(signer.jwks()))
    started = time.monotonic()
    now = int(time.time())
    valid = [signer.token(claims(i, now)) for i in range(TOKEN_COUNT)]
    (work / "tokens-10k.txt").write_text("\n".join(valid) + "\n")
    single = signer.token(claims(99_999, now))
    (work / "token-single.txt").write_text(single + "\n")
    checks = {
        "valid": single,
        "bad signature": tamper(single),
        "another token's signature": forge(valid, 99_000_000),
        "no scope": signer.token(claims(90_001, now, scope="openid profile bench:write")),
        "scope as substring": signer.token(claims(90_002, now, scope="openid bench:readonly xbench:read")),
        "expired": signer.token(claims(90_003, now, iat=now - 7200, exp=now - 3600)),
        "wrong issuer": signer.token(claims(90_004, now, iss="https://evil.example")),
        "wrong audience": signer.token(claims(90_005, now, aud="other-api")),
    }
    log(f"    {TOKEN_COUNT + len(checks)} RS256 tokens signed in {time.monotonic() - started:.1f}s ({signer.backend}); "
        f"{len(single)} characters each")
    return {"single": single, "checks": checks, "backend": signer.backend, "length": len(single)}


# --------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Every process started here, each in its own process group, stopped on exit."""

    def __init__(self, work: Path, pidfile: str | None):
        self.work = work
        self.pidfile = pidfile
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, core: str, argv: list[str]) -> subprocess.Popen:
        logfile = open(self.work / f"{name}.log", "wb")
        proc = subprocess.Popen(
            ["taskset", "-c", core, *argv],
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.work,
        )
        self.procs[name] = proc
        if self.pidfile:
            with open(self.pidfile, "a") as f:
                f.write(f"{proc.pid}\n")
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            text = (self.work / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            try:  # the group too: nginx workers
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.wait(timeout=5)
        if self.pidfile:  # all gone: nothing left for run.sh's backstop
            open(self.pidfile, "w").close()


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def get(port: int, path: str, token: str | None = None, timeout: float = 5) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants (nginx: master + worker)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total


def fill(template: str, values: dict) -> str:
    text = (HERE / "conf" / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise SystemExit(f"{template}: unfilled placeholders {sorted(set(leftover))}")
    return text


# --------------------------------------------------------------------------
# Enforcement checks


def enforcement_checks(port: int, tokens: dict) -> list[dict]:
    t = tokens["checks"]
    cases = [
        ("public route, no token", "/public/hello", None, 200, None),
        ("no token", "/api/hello", None, 401, "bearer"),
        ("bad signature", "/api/hello", t["bad signature"], 401, "invalid_token"),
        ("another token's signature", "/api/hello", t["another token's signature"], 401, "invalid_token"),
        ("expired (exp 1 h ago)", "/api/hello", t["expired"], 401, "invalid_token"),
        ("wrong iss", "/api/hello", t["wrong issuer"], 401, "invalid_token"),
        ("wrong aud", "/api/hello", t["wrong audience"], 401, "invalid_token"),
        ("missing scope", "/api/hello", t["no scope"], 403, "insufficient_scope"),
        ("scope only as a substring", "/api/hello", t["scope as substring"], 403, "insufficient_scope"),
        ("valid token", "/api/hello", t["valid"], 200, None),
    ]
    results = []
    for name, path, token, want, challenge in cases:
        try:
            status, headers, _ = get(port, path, token)
            www = headers.get("www-authenticate", "")
            ok = status == want and (challenge is None or challenge in www.lower())
            got = f"{status}" + (f" ({www})" if www else "")
        except OSError as e:
            ok, got = False, f"error: {e}"
        results.append({"check": name, "want": want, "got": got, "ok": ok})
    return results


def passthrough_checks(port: int, tokens: dict) -> list[dict]:
    results = []
    for name, path, token in [
        ("public route", "/public/hello", None),
        ("protected path, token forwarded", "/api/hello", tokens["single"]),
    ]:
        try:
            status, _, _ = get(port, path, token)
            ok, got = status == 200, str(status)
        except OSError as e:
            ok, got = False, f"error: {e}"
        results.append({"check": name, "want": 200, "got": got, "ok": ok})
    return results


# --------------------------------------------------------------------------
# Load


def wrk(port: int, path: str, mode: str, work: Path, seconds: float, connections: int, offset: int = 0) -> dict:
    token_file = work / ("token-single.txt" if mode == "single" else "tokens-10k.txt")
    env = dict(os.environ, BENCH_TOKEN_MODE=mode, BENCH_TOKENS=str(token_file), BENCH_OFFSET=str(offset))
    argv = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--latency", "--timeout", "5s", "-s", str(HERE / "wrk.lua"), f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (rc {out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["socket_errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    return r


def answers(proxy: str, scenario: str, r: dict) -> tuple[str, bool]:
    """What the responses were, and whether that is what this proxy should answer."""
    expect_reject = proxy in ENFORCING and scenario in REJECTED
    if r["requests"] == 0:
        return "no responses", False
    if r["non2xx"] == 0:
        summary = "all 2xx"
    elif r["non2xx"] >= r["requests"]:
        summary = "all non-2xx"
    else:
        summary = f"{r['non2xx']} of {r['requests']} non-2xx"
    ok = (summary == "all non-2xx") if expect_reject else (summary == "all 2xx")
    if r["socket_errors"]:
        summary += f", {r['socket_errors']} socket errors"
        ok = False
    return summary, ok


# --------------------------------------------------------------------------
# Report


def fmt_rps(v: float) -> str:
    return f"{v:,.0f}"


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def build_report(meta: dict, results: dict, status: dict, rss: dict, checks: dict) -> tuple[str, dict]:
    lines = []
    lines.append(f"# portcullis benchmark — {meta['date']}")
    lines.append("")
    lines.append(
        f"{meta['cpu']} · {meta['cores']} cores · Linux {meta['kernel']} · each proxy 1 thread on core {PROXY_CORE}, "
        f"wrk (`-t1 -c{meta['connections']}`) and the upstream nginx on core {LOAD_CORE} · "
        f"{meta['duration']} s per run after {meta['warmup']} s warm-up"
        + (f", median of {meta['rounds']} interleaved rounds" if meta.get("rounds", 1) > 1 else "")
        + " · loopback"
    )
    lines.append(
        f"Peers: {meta['versions']['nginx']}, {meta['versions']['haproxy']}, {meta['versions']['wrk']}; "
        f"portcullis {meta['portcullis_commit']}; bare Pingora = pingora 0.9.1 passthrough. "
        f"Load average at start: {meta['loadavg_start']}."
    )
    if meta.get("quick"):
        lines.append("")
        lines.append("**Quick run: durations too short for representative numbers.**")
    if float(meta["loadavg_start"]) > 0.5:
        lines.append("")
        lines.append(f"**Load average {meta['loadavg_start']} at start: other work was running on this machine; "
                     "these numbers are not representative.**")
    lines.append("")
    lines.append("## Enforcement checks (before measuring)")
    lines.append("")
    for proxy, rows in checks.items():
        verdict = "enforces: measured" if all(r["ok"] for r in rows) else "FAILED: not measured"
        if proxy not in ENFORCING:
            verdict = "answers: measured" if all(r["ok"] for r in rows) else "FAILED: not measured"
        detail = "; ".join(f"{r['check']} → {r['got'].split(' (')[0]}{'' if r['ok'] else ' (want ' + str(r['want']) + ')'}" for r in rows)
        lines.append(f"- **{LABEL[proxy]}** — {verdict}. {detail}")
    lines.append("")
    lines.append("## Results")
    lines.append("")
    per_round = meta.get("rounds", 1) > 1
    lines.append("| proxy | scenario | req/s | p50 ms | p99 ms | answers |" + (" req/s by round |" if per_round else ""))
    lines.append("|---|---|---:|---:|---:|---|" + ("---|" if per_round else ""))
    for scenario, slabel, _, _ in SCENARIOS:
        for proxy, plabel, _ in PROXIES:
            if (proxy, scenario) in results:
                r = results[(proxy, scenario)]
                flag = "" if r["answers_ok"] else " ⚠"
                lines.append(
                    f"| {plabel} | {scenario} | {fmt_rps(r['rps'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
                    f"{r['answers']}{flag} |"
                    + (f" {' / '.join(fmt_rps(v) for v in r.get('rounds_rps', []))} |" if per_round else "")
                )
            elif proxy in status and scenario in meta["scenarios"]:
                lines.append(f"| {plabel} | {scenario} | {status[proxy]} | | | |")
    lines.append("")
    lines.append(
        "Passthrough proxies forward the token scenarios' requests untouched (the upstream answers 200); "
        "the authenticating ones answer the forged tokens 401 themselves."
    )

    def get_r(proxy, scenario):
        return results.get((proxy, scenario))

    ratios = []
    lines.append("")
    lines.append("## portcullis against the others")
    lines.append("")
    lines.append("| scenario | against | req/s ratio | p99 difference ms |")
    lines.append("|---|---|---:|---:|")
    pairs = [(s, "haproxy-jwt") for s in PROTECTED] + [(s, "bare-pingora") for s, *_ in SCENARIOS] + [("public", "nginx")]
    for scenario, other in pairs:
        p, o = get_r("portcullis", scenario), get_r(other, scenario)
        if p and o and o["rps"]:
            ratio = p["rps"] / o["rps"]
            diff = (p["p99_us"] - o["p99_us"]) / 1000
            ratios.append({"scenario": scenario, "against": other, "rps_ratio": ratio, "p99_diff_ms": diff})
            lines.append(f"| {scenario} | {LABEL[other]} | {ratio:.2f}× | {diff:+.2f} |")
        else:
            ratios.append({"scenario": scenario, "against": other, "rps_ratio": None, "p99_diff_ms": None})
            lines.append(f"| {scenario} | {LABEL[other]} | n/a | n/a |")

    def ratio_of(scenario, other):
        for r in ratios:
            if r["scenario"] == scenario and r["against"] == other:
                return r
        return None

    targets = []

    def target(name, value, threshold, passed, shown):
        targets.append({"target": name, "value": value, "threshold": threshold, "pass": passed})
        verdict = "n/a" if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"- {verdict} — {name}: {shown}")

    lines.append("")
    lines.append("## Targets")
    lines.append("")
    r = ratio_of("10k-tokens", "haproxy-jwt")
    v = r and r["rps_ratio"]
    target("10k-tokens req/s ≥ 1.5× HAProxy jwt_verify", v, 1.5, None if v is None else v >= 1.5,
           "n/a" if v is None else f"{v:.2f}×")
    r = ratio_of("10k-tokens", "bare-pingora")
    v = r and r["rps_ratio"]
    target("10k-tokens req/s ≥ 0.9× bare Pingora", v, 0.9, None if v is None else v >= 0.9,
           "n/a" if v is None else f"{v:.2f}×")
    r = ratio_of("bad-signature", "bare-pingora")
    v = r and r["rps_ratio"]
    target("bad-signature flood req/s ≥ 1.0× bare Pingora", v, 1.0, None if v is None else v >= 1.0,
           "n/a" if v is None else f"{v:.2f}×")
    for scenario, *_ in SCENARIOS:
        r = ratio_of(scenario, "bare-pingora")
        v = r and r["p99_diff_ms"]
        target(f"{scenario} p99 ≤ bare Pingora p99 + 0.5 ms", v, 0.5, None if v is None else v <= 0.5,
               "n/a" if v is None else f"{v:+.2f} ms")

    lines.append("")
    lines.append("## Memory")
    lines.append("")
    for proxy, plabel, _ in PROXIES:
        if proxy in rss:
            m = rss[proxy]
            parts = [f"{k.replace('_', ' ')}: {v / 1024:.1f} MiB" for k, v in m.items()]
            lines.append(f"- {plabel} resident memory (VmRSS, with children) — " + ", ".join(parts))
    lines.append("")

    data = {
        "meta": meta,
        "checks": checks,
        "results": [
            {"proxy": proxy, "scenario": scenario, **results[(proxy, scenario)]}
            for scenario, *_ in SCENARIOS
            for proxy, *_ in PROXIES
            if (proxy, scenario) in results
        ],
        "not_measured": status,
        "ratios": ratios,
        "targets": targets,
        "rss_kib": rss,
    }
    return "\n".join(lines), data


# --------------------------------------------------------------------------


def version(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        m = re.search(pattern, out.stdout + out.stderr)
        return m.group(0) if m else "unknown"
    except OSError:
        return "missing"


def machine_meta(args) -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        commit = commit + ("-dirty" if dirty else "") if commit else "unknown"
    except OSError:
        commit = "unknown"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[0],
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": getattr(args, "rounds", 1),
        "connections": args.connections,
        "quick": args.quick,
        "portcullis_commit": commit,
        "versions": {
            "nginx": version(["nginx", "-v"], r"nginx/[\d.]+"),
            "haproxy": version(["haproxy", "-v"], r"HAProxy version [\w.+~-]+"),
            "wrk": version(["wrk", "--version"], r"wrk [\w./~+-]+"),
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=15, help="seconds measured per proxy and scenario (default 15)")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of the same load before each measurement (default 3)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 s per run, 1 s warm-up")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every proxy and scenario this many times, interleaved; report the median (default 1)")
    ap.add_argument("--out", help="directory for results.md / results.json (default: a new temporary directory)")
    ap.add_argument("--proxies", help="comma-separated subset of: " + ",".join(p for p, *_ in PROXIES))
    ap.add_argument("--scenarios", help="comma-separated subset of: " + ",".join(s for s, *_ in SCENARIOS))
    ap.add_argument("--portcullis", default=str(ROOT / "target/release/portcullis"))
    ap.add_argument("--bare-pingora", default=str(ROOT / "target/release/bare-pingora"))
    ap.add_argument("--keep", action="store_true", help="keep the working directory (configs, logs, keys, tokens)")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup = 2, 1

    proxies = [p for p, *_ in PROXIES]
    if args.proxies:
        proxies = [p for p in proxies if p in args.proxies.split(",")]
        unknown = set(args.proxies.split(",")) - set(proxies)
        if unknown:
            ap.error(f"unknown proxies: {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if not args.scenarios or s[0] in args.scenarios.split(",")]
    if args.scenarios and len(scenarios) != len(set(args.scenarios.split(","))):
        ap.error("unknown scenario in --scenarios")
    for binary in [args.portcullis if "portcullis" in proxies else None, args.bare_pingora if "bare-pingora" in proxies else None]:
        if binary and not os.access(binary, os.X_OK):
            ap.error(f"{binary} is not built (run.sh builds it)")
    if (os.cpu_count() or 1) < 2:
        log("warning: fewer than 2 cores; proxy and load generator will share one")

    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="portcullis-bench-results-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    # nginx workers run as another user unless we are root: let them read.
    work.chmod(0o755)
    (work / "nginx-tmp").mkdir()
    procs = Processes(work, os.environ.get("BENCH_PIDFILE"))

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    meta = machine_meta(args)
    meta["proxies"] = proxies
    meta["scenarios"] = [s[0] for s in scenarios]
    try:
        return run(args, proxies, scenarios, work, out_dir, procs, meta)
    finally:
        procs.stop_all()
        if args.keep:
            log(f"working directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args, proxies, scenarios, work: Path, out_dir: Path, procs: Processes, meta: dict) -> int:
    log(f"==> keys and tokens (in {work})")
    tokens = make_tokens(work)
    meta["token_chars"] = tokens["length"]
    meta["signing"] = tokens["backend"]

    ports = {name: free_port() for name in ["upstream", "jwks", *proxies, "portcullis-admin"]}
    values = {
        "DIR": work,
        "UPSTREAM_PORT": ports["upstream"],
        "JWKS_PORT": ports["jwks"],
        "ISSUER": ISSUER,
        "AUDIENCE": AUDIENCE,
        "USER_LINE": "user root root;" if os.geteuid() == 0 else "# not root: workers keep our user",
    }

    log("==> fixed upstream (nginx, core 1)")
    conf = work / "nginx-upstream.conf"
    conf.write_text(fill("nginx-upstream.conf", values))
    up = procs.start("upstream", LOAD_CORE, ["nginx", "-p", str(work), "-e", str(work / "nginx-upstream.error.log"),
                                              "-c", str(conf), "-g", "daemon off;"])
    if not (wait_port(ports["upstream"], up) and wait_port(ports["jwks"], up)):
        raise SystemExit("upstream nginx did not start:\n" + procs.log_tail("upstream")
                         + (work / "nginx-upstream.error.log").read_text(errors="replace")[-2000:])
    status, _, body = get(ports["jwks"], "/jwks.json")
    assert status == 200 and KID in body, f"JWKS not served: {status}"

    status_of: dict[str, str] = {}
    pids: dict[str, int] = {}
    for proxy in proxies:
        port = ports[proxy]
        v = dict(values, LISTEN_PORT=port)
        log(f"==> {LABEL[proxy]} on 127.0.0.1:{port} (core {PROXY_CORE})")
        if proxy == "nginx":
            conf = work / "nginx-proxy.conf"
            conf.write_text(fill("nginx-proxy.conf", v))
            argv = ["nginx", "-p", str(work), "-e", str(work / "nginx-proxy.error.log"), "-c", str(conf), "-g", "daemon off;"]
        elif proxy in ("haproxy", "haproxy-jwt"):
            conf = work / f"{proxy}.cfg"
            conf.write_text(fill("haproxy-passthrough.cfg" if proxy == "haproxy" else "haproxy-jwt.cfg", v))
            check = subprocess.run(["haproxy", "-c", "-q", "-f", str(conf)], capture_output=True, text=True)
            if check.returncode != 0:
                status_of[proxy] = "not measured (config rejected)"
                log(f"    haproxy -c rejected {conf.name}:\n{check.stdout}{check.stderr}")
                continue
            argv = ["haproxy", "-db", "-f", str(conf)]
        elif proxy == "bare-pingora":
            argv = [args.bare_pingora, f"127.0.0.1:{port}", f"127.0.0.1:{ports['upstream']}", "1"]
        else:
            conf = work / "portcullis.yaml"
            conf.write_text(fill("portcullis.yaml", dict(v, ADMIN_PORT=ports["portcullis-admin"])))
            check = subprocess.run([args.portcullis, "check", "-c", str(conf)], capture_output=True, text=True)
            if check.returncode != 0:
                status_of[proxy] = "not measured (config rejected)"
                log(f"    portcullis check failed:\n{check.stdout}{check.stderr}")
                continue
            argv = [args.portcullis, "run", "-c", str(conf)]
        proc = procs.start(proxy, PROXY_CORE, argv)
        if not wait_port(port, proc):
            status_of[proxy] = "not measured (did not start)"
            log(f"    did not start:\n{procs.log_tail(proxy)}")
            continue
        if proxy == "portcullis":
            deadline = time.monotonic() + 20
            ready = None
            while time.monotonic() < deadline:
                try:
                    ready = get(ports["portcullis-admin"], "/readyz")
                    if ready[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            if not ready or ready[0] != 200:
                status_of[proxy] = "not measured (never ready)"
                log(f"    /readyz never answered 200: {ready}\n{procs.log_tail(proxy)}")
                continue
        pids[proxy] = proc.pid

    log("==> enforcement checks")
    checks: dict[str, list[dict]] = {}
    for proxy in proxies:
        if proxy not in pids:
            continue
        rows = enforcement_checks(ports[proxy], tokens) if proxy in ENFORCING else passthrough_checks(ports[proxy], tokens)
        checks[proxy] = rows
        failed = [r for r in rows if not r["ok"]]
        for r in rows:
            log(f"    {LABEL[proxy]:<26} {'ok  ' if r['ok'] else 'FAIL'} {r['check']}: want {r['want']}, got {r['got']}")
        if failed:
            status_of[proxy] = "not measured (enforcement check failed)" if proxy in ENFORCING else "not measured (check failed)"

    # Scenario by scenario, the proxies one after another, `--rounds` times
    # over: a machine whose speed drifts (a cloud VM's neighbours) shifts
    # every proxy alike instead of whichever ran last. Each (proxy, scenario)
    # reports the round with its median requests/s.
    measured = [p for p in proxies if p not in status_of and p in pids]
    rss: dict[str, dict[str, int]] = {p: {"idle_after_start": rss_kib(pids[p])} for p in measured}
    rounds_of: dict[tuple[str, str], list[dict]] = {}
    offsets: dict[tuple[str, str], int] = {}
    for round_no in range(1, args.rounds + 1):
        if args.rounds > 1:
            log(f"==> round {round_no} of {args.rounds}")
        for scenario, _, path, mode in scenarios:
            for proxy in measured:
                if proxy in status_of:
                    continue
                if not procs.alive(proxy):
                    status_of[proxy] = f"crashed before {scenario}"
                    log(f"    {proxy} is no longer running (exit {procs.procs[proxy].returncode}):\n{procs.log_tail(proxy)}")
                    continue
                key = (proxy, scenario)
                try:
                    # The measurement continues the warm-up's request sequence
                    # (and earlier rounds'): forged tokens are never replayed.
                    # With 10k tokens the warm-up goes on until every token has
                    # been sent once, so what is measured is the steady state
                    # of 10,000 active users.
                    sent = offsets.get(key, 0)
                    warmed, warmups = 0, 0
                    while args.warmup > 0 and warmups < 6 and (
                        warmups == 0 or (mode == "rotate" and sent < TOKEN_COUNT)
                    ):
                        n = wrk(ports[proxy], path, mode, work, args.warmup, args.connections, offset=sent)["requests"]
                        sent, warmed, warmups = sent + n, warmed + n, warmups + 1
                    r = wrk(ports[proxy], path, mode, work, args.duration, args.connections, offset=sent)
                    offsets[key] = sent + r["requests"]
                    r["warmup_requests"] = warmed
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    log(f"    {proxy} / {scenario}: {e}\n{procs.log_tail(proxy)}")
                    status_of.setdefault(proxy, f"wrk failed in {scenario}")
                    continue
                r["answers"], r["answers_ok"] = answers(proxy, scenario, r)
                rounds_of.setdefault(key, []).append(r)
                log(f"    {LABEL[proxy]:<26} {scenario:<14} {fmt_rps(r['rps']):>8} req/s  p50 {ms(r['p50_us'])} ms  "
                    f"p99 {ms(r['p99_us'])} ms  {r['answers']}{'' if r['answers_ok'] else '  <-- unexpected'}")
                if scenario == "10k-tokens" and round_no == 1:
                    rss[proxy]["after_10k_tokens"] = rss_kib(pids[proxy])

    results: dict[tuple[str, str], dict] = {}
    for key, runs in rounds_of.items():
        by_rps = sorted(runs, key=lambda r: r["rps"])
        median = dict(by_rps[(len(by_rps) - 1) // 2])
        median["rounds_rps"] = [r["rps"] for r in runs]
        median["answers_ok"] = all(r["answers_ok"] for r in runs)
        if not median["answers_ok"]:
            median["answers"] = next(r["answers"] for r in runs if not r["answers_ok"])
        results[key] = median
    for proxy in measured:
        if procs.alive(proxy):
            rss[proxy]["at_end"] = rss_kib(pids[proxy])
        else:
            status_of[proxy] = status_of.get(proxy, "crashed during the run")
            log(f"    {proxy} exited (code {procs.procs[proxy].returncode}):\n{procs.log_tail(proxy)}")

    if not procs.alive("upstream"):
        log("warning: the upstream nginx died during the run; results are invalid")

    report, data = build_report(meta, results, status_of, rss, checks)
    (out_dir / "results.md").write_text(report + "\n")
    (out_dir / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    print(report)
    print(f"\nResults written to {out_dir}/results.md and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
