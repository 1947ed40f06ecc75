#!/usr/bin/env python3
"""Side-by-side benchmark of portcullis against its peers (issue 7).

Started by run.sh, which installs the peers and builds the binaries first; see
README.md. Standard library only, except that token signing uses the
`cryptography` package when it can be imported (run.sh provides it in a
virtual environment) and falls back to slow pure-Python RSA otherwise.

Everything runs on loopback. Each proxy is pinned to core 0 with one worker
thread; the load generator (wrk, or ab and h2load in their scenarios) and
the fixed upstream (nginx) share core 1, and so does the private
redis-server of the limit-redis scenario. With --threads N, portcullis and
bare Pingora run N worker threads on cores 0 to N-1 (with 2 on two cores,
both cores: the load generator and the upstream then share core 1 with
them); nginx and HAProxy keep one thread on core 0.

Eight scenarios measure portcullis features against portcullis's own
one-token scenario in the same run (the other proxies have no equivalent and
skip them): limit-local, limit-redis, revoked-list, session-cookie,
upstream-assertion, tls, api-key (an API key instead of the token) and
claims (a route with claim conditions the token meets) (see FEATURES).

Two put portcullis's failed-authentication budget (tokens.failed_auth_budget)
beside HAProxy jwt_verify, which has none, under forged-token floods (see
FLOODS): forged-one-client (one client, past its budget: portcullis answers
429 before verifying) and forged-many-clients (10,000 clients in turn via
X-Forwarded-For from a trusted proxy, none past its budget: every forgery is
verified and answered 401).

Three more put portcullis beside peers on what is not a token (see PEERS):
https-keepalive and https-handshake (nginx, HAProxy and portcullis
terminating TLS with the same certificate, keep-alive with wrk, a new
connection per request with ab), and grpc (gRPC calls over h2c with h2load,
through portcullis and straight to the upstream).
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
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

ISSUER = "https://idp.bench.example"
AUDIENCE = "bench-api"
KID = "bench-key-1"
SCOPE = "bench:read"
TOKEN_COUNT = 10_000

# session-cookie: portcullis's OpenID Connect client and its sign-in cookie.
CLIENT_ID = "bench-web"
SESSION_COOKIE = "__Host-portcullis"
CALLBACK = "/.portcullis/callback"
NAVIGATION = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
# upstream-assertion: the assertions' issuer, and a path whose answer (from
# the upstream nginx) is the assertion header it received.
ASSERTION_ISSUER = "https://portcullis.bench.example"
ASSERTION_PATH = "/api/bench-assertion"
# A session is renewed (re-sealed, Set-Cookie) on a request this long after
# its last renewal; wrk cannot take a renewed cookie, so every warm-up and
# measurement of session-cookie gets a fresh sign-in and must end sooner.
SESSION_RENEW_S = 60
# grpc: the method called (a path: /package.Service/Method); the request
# and the answer each carry one empty message, a 5-byte frame (not
# compressed, length 0), and the answer ends with grpc-status 0.
GRPC_PATH = "/bench.Echo/Unary"
GRPC_FRAME = b"\x00\x00\x00\x00\x00"
# The single token's index among the bench's subjects: its `sub` is
# bench-user-99999.
SINGLE_INDEX = 99_999
# claims: the single token's own resource on a route whose conditions
# (conf/portcullis-claims.yaml) it meets; OTHER_USER_PATH is another user's.
CLAIMS_PATH = f"/users/bench-user-{SINGLE_INDEX:05d}/hello"
OTHER_USER_PATH = "/users/bench-user-00001/hello"
# The floods: the failed-authentication budget of the portcullis processes
# that serve them (tokens.failed_auth_budget; burst = limit). In
# forged-many-clients FLOOD_CLIENTS clients take turns, so a client's next
# forgery comes FLOOD_CLIENTS requests after its last: at up to 100,000
# req/s (ten times what one core verifies) that is 0.1 s or more, and a
# budget that gives back 10 per second (600 per minute) is never exhausted,
# whatever the run's length. One client (forged-one-client) spends the 600
# within the first second of a warm-up and is then held at 429.
FLOOD_BUDGET = {"limit": 600, "per": "1m"}
FLOOD_CLIENTS = 10_000

PROXY_CORE = "0"
LOAD_CORE = "1"

# name, label, path, token mode (wrk.lua's; grpc sends the single token)
SCENARIOS = [
    ("public", "public route, no token", "/public/hello", "none"),
    ("one-token", "one valid token repeated", "/api/hello", "single"),
    # portcullis features, measured right after one-token (their baseline):
    # the same cached token, on a route with a per-subject limit that never
    # refuses (conf/portcullis-features.yaml), counted here or in Redis...
    ("limit-local", "one valid token, route with a local per-subject limit (never refuses)",
     "/limited-local/hello", "single"),
    ("limit-redis", "one valid token, route with the same limit in Redis (store: redis)",
     "/limited-redis/hello", "single"),
    # ...and the plain one-token request to a second portcullis process,
    # configured alike, whose denylist holds REVOCATIONS revocations of
    # other tokens (the denylist is process-wide: one-token must not see it).
    ("revoked-list", "one valid token while the denylist holds 1,000 revocations of other tokens",
     "/api/hello", "single"),
    # A browser session instead of the bearer token: the same token, as the
    # session's access token, sealed (AES-256-GCM) in the session cookie of
    # a route with browser_login: true (the first process; the sessions
    # section changes nothing for the other routes).
    ("session-cookie", "a signed-in browser: the session cookie of a browser_login route (its access token: the one token)",
     "/app/hello", "cookie"),
    # upstream_assertion and tls apply to every route: like revoked-list,
    # each runs on its own process, configured as the first plus that section.
    ("upstream-assertion", "one valid token, every forwarded request signed for the upstream (ES256 assertion)",
     "/api/hello", "single"),
    ("tls", "one valid token over HTTPS (TLS 1.3, keep-alive)", "/api/hello", "single"),
    # An API key instead of the token (api_keys applies to every route: a
    # process of its own), and a route with claim conditions (a process of
    # its own too: conditions make every cached identity keep the claims
    # they read).
    ("api-key", "one valid API key (Authorization: ApiKey) on one-token's route, on a process with api_keys",
     "/api/hello", "apikey"),
    ("claims", "one valid token, a route with three claim conditions it meets (its own path segment, email, scopes)",
     CLAIMS_PATH, "single"),
    ("10k-tokens", "10,000 distinct valid tokens rotating", "/api/hello", "rotate"),
    ("bad-signature", "invalid-signature flood (every token distinct, never repeated)", "/api/hello", "forge"),
    # The floor of answering locally: what an authenticating proxy's 401
    # costs without any crypto (bad-signature adds one RSA verification).
    ("no-token", "protected route without a token (answered 401 by the authenticating proxies)", "/api/hello", "none"),
    # The floods (FLOODS): bad-signature's forgeries against portcullis with
    # a failed-authentication budget, beside HAProxy jwt_verify (none)...
    ("forged-one-client", "invalid-signature flood from one client, past its failed-auth budget (portcullis: 429)",
     "/api/hello", "forge"),
    # ...and from FLOOD_CLIENTS clients in turn (X-Forwarded-For from a
    # trusted proxy), none of them past its budget.
    ("forged-many-clients", "invalid-signature flood from 10,000 clients in turn (X-Forwarded-For), none past its budget",
     "/api/hello", "forge-clients"),
    # The peer scenarios (PEERS): TLS termination side by side, on the
    # public route so that the three proxies do the same work (forward),
    # each on a process of its own with the bench's certificate...
    ("https-keepalive", "public route over HTTPS (TLS 1.3, keep-alive), each proxy terminating TLS",
     "/public/hello", "none"),
    ("https-handshake", "public route over HTTPS, a new connection (full TLS 1.3 handshake) for every request",
     "/public/hello", "none"),
    # ...and a gRPC unary call over HTTP/2 (h2c on both sides of portcullis)
    # with the single token, beside the same call straight to the upstream.
    ("grpc", "gRPC unary call over h2c (POST /bench.Echo/Unary), one valid token", GRPC_PATH, "single"),
]
PROTECTED = ["one-token", "10k-tokens", "bad-signature", "no-token"]
REJECTED = {"bad-signature", "no-token", "forged-one-client", "forged-many-clients"}
# portcullis only; reported against BASELINE in the "Feature cost" table.
FEATURES = ["limit-local", "limit-redis", "revoked-list", "session-cookie", "upstream-assertion", "tls",
            "api-key", "claims"]
# The feature scenarios measured on a second portcullis process of their own
# (the first process serves one-token and the others).
INSTANCE = {"revoked-list": "portcullis-revoked", "upstream-assertion": "portcullis-assertion",
            "tls": "portcullis-tls", "api-key": "portcullis-apikey", "claims": "portcullis-claims"}
# The forged-token floods and whom each measures: portcullis on a process of
# its own (FLOOD_INSTANCE: portcullis.yaml plus trusted_proxies and
# tokens.failed_auth_budget), HAProxy jwt_verify on its one process (no
# budget to configure; it ignores X-Forwarded-For). Compared by req/s ratio
# against FLOOD_TARGETS.
FLOODS = {"forged-one-client": ["haproxy-jwt", "portcullis"], "forged-many-clients": ["haproxy-jwt", "portcullis"]}
FLOOD_INSTANCE = {"forged-one-client": "portcullis-forged-one", "forged-many-clients": "portcullis-forged-many"}
FLOOD_TARGETS = {"forged-one-client": 2.0, "forged-many-clients": 1.1}
BASELINE = "one-token"
REVOCATIONS = 1_000
# What the issue allows the revocation check on the cached-token path.
REVOCATION_BUDGET = 0.02

# name, label, verifies tokens?
PROXIES = [
    ("nginx", "nginx passthrough", False),
    ("haproxy", "HAProxy passthrough", False),
    ("haproxy-jwt", "HAProxy jwt_verify", True),
    ("bare-pingora", "bare Pingora passthrough", False),
    ("portcullis", "portcullis", True),
]
# grpc's floor: h2load straight at the upstream, no proxy in between. A
# row of the report, not a proxy: nothing to start, always measured with grpc.
DIRECT = "direct"
ROWS = [*PROXIES, (DIRECT, "no proxy (straight to the upstream)", False)]
LABEL = {name: label for name, label, _ in ROWS}
ENFORCING = {name for name, _, enforcing in PROXIES if enforcing}

HTTPS = ["https-keepalive", "https-handshake"]
# The peer scenarios and whom each measures, every one on a process of its
# own (see target()): the TLS scenarios on nginx's, HAProxy's and
# portcullis's TLS listeners, grpc on portcullis's h2c process and on the
# upstream's h2c port.
PEERS = {
    "https-keepalive": ["nginx", "haproxy", "portcullis"],
    "https-handshake": ["nginx", "haproxy", "portcullis"],
    "grpc": ["portcullis", DIRECT],
}

# The peer scenarios' processes (named by their ports), as the report names them.
PEER_PROCESSES = {
    "nginx-tls": "nginx terminating TLS",
    "haproxy-tls": "HAProxy terminating TLS",
    "portcullis-tls": "portcullis terminating TLS",
    "portcullis-grpc": "portcullis, gRPC over h2c",
    "upstream-grpc": "no proxy: the upstream's h2c port",
}


def supports(proxy: str, scenario: str) -> bool:
    """Whether `proxy` (or DIRECT) is measured in `scenario`: the features
    are portcullis's, the peer scenarios and the floods name theirs, DIRECT
    is grpc's."""
    if scenario in PEERS:
        return proxy in PEERS[scenario]
    if scenario in FLOODS:
        return proxy in FLOODS[scenario]
    return proxy != DIRECT and (scenario not in FEATURES or proxy == "portcullis")


def target(proxy: str, scenario: str) -> tuple[str, str]:
    """The process that measures `proxy` in `scenario`, and the name of its
    port: revoked-list, upstream-assertion, tls, api-key and claims go to
    portcullis processes of their own, so do the floods (HAProxy jwt_verify
    to its one process), the HTTPS scenarios to each proxy's TLS process,
    grpc to portcullis's h2c process or, without a proxy, to the upstream's
    h2c port."""
    if scenario in HTTPS:
        name = f"{proxy}-tls"
    elif scenario in FLOODS:
        name = FLOOD_INSTANCE[scenario] if proxy == "portcullis" else proxy
    elif scenario == "grpc":
        if proxy == DIRECT:
            return "upstream", "upstream-grpc"
        name = "portcullis-grpc"
    else:
        name = INSTANCE.get(scenario, proxy)
    return name, name


def process_label(proxy: str, scenario: str) -> str:
    """How the report names the process measured for `proxy` in `scenario`."""
    return PEER_PROCESSES.get(target(proxy, scenario)[0], LABEL[proxy])


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


def flood_client(c: int, clients: int = FLOOD_CLIENTS) -> str:
    """The client address of request c in wrk.lua's forge-clients (and
    clients) mode: one of the first `clients` addresses of 10.0.0.0/8."""
    c %= clients
    return f"10.{c // 65536}.{(c // 256) % 256}.{c % 256}"


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
    single = signer.token(claims(SINGLE_INDEX, now))
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
        # claims: valid, with the scope, but without the e-mail a condition needs.
        "no email": signer.token({k: v for k, v in claims(90_006, now).items() if k != "email"}),
    }
    log(f"    {TOKEN_COUNT + len(checks)} RS256 tokens signed in {time.monotonic() - started:.1f}s ({signer.backend}); "
        f"{len(single)} characters each")
    return {"single": single, "valid": valid, "checks": checks, "backend": signer.backend, "length": len(single),
            "signer": signer}


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

    def start(self, name: str, core: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        logfile = open(self.work / f"{name}.log", "wb")
        proc = subprocess.Popen(
            ["taskset", "-c", core, *argv],
            env=env,
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


def client_tls() -> ssl.SSLContext:
    """The checks' TLS client: the bench's self-signed certificate is
    compared byte for byte (tls_peer) instead of verified against a CA."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def request(port: int, path: str, headers: dict | None = None, tls: bool = False,
            timeout: float = 5) -> tuple[int, list[tuple[str, str]], str]:
    """GET `path`; the status, every header (lower-case names, repeated ones
    kept: Set-Cookie) and the body."""
    if tls:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=client_tls())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], body
    finally:
        conn.close()


def get(port: int, path: str, token: str | None = None, timeout: float = 5, tls: bool = False) -> tuple[int, dict, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    status, pairs, body = request(port, path, headers, tls=tls, timeout=timeout)
    return status, dict(pairs), body


def post_json(port: int, path: str, body: dict, bearer: str, timeout: float = 5) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def samples(admin_port: int, **labels: str):
    """(name, labels, value) of each sample on /metrics whose labels include `labels`."""
    _, _, body = get(admin_port, "/metrics")
    for line in body.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            yield m.group(1), have, float(m.group(3))


def metric(admin_port: int, name: str, **labels: str) -> float:
    """Sum of the samples of `name` on /metrics whose labels include `labels`."""
    return sum(value for sample, _, value in samples(admin_port, **labels) if sample == name)


def histogram(admin_port: int, name: str, q: float, **labels: str) -> tuple[float, float, float] | None:
    """(count, mean, upper bound of the bucket holding quantile q) of the
    histogram `name` on /metrics, its series whose labels include `labels`
    summed; None when it has no observation."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for sample, have, value in samples(admin_port, **labels):
        suffix = sample[len(name):] if sample.startswith(name) else None
        if suffix == "_bucket":
            bound = float(have["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif suffix == "_sum":
            total += value
        elif suffix == "_count":
            count += value
    if not count:
        return None
    bound = next((b for b in sorted(buckets) if buckets[b] >= q * count), float("inf"))
    return count, total / count, bound


def redis_command(port: int, *args: str, timeout: float = 5) -> str:
    """One command to the bench's redis-server; the reply as text (simple,
    integer or bulk string; an error reply raises)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            data += chunk
        head, rest = data.split(b"\r\n", 1)
        kind, value = head[:1], head[1:].decode()
        if kind == b"-":
            raise OSError(f"redis: {value}")
        if kind in (b"+", b":"):
            return value
        if kind == b"$":
            size = int(value)
            if size < 0:
                return ""
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("redis closed the connection")
                rest += chunk
            return rest[:size].decode(errors="replace")
        raise OSError(f"unexpected redis reply {head!r}")


def redis_calls(port: int) -> int:
    """Scripts Redis has run (EVALSHA and EVAL), from INFO commandstats."""
    text = redis_command(port, "INFO", "commandstats")
    return sum(int(n) for n in re.findall(r"^cmdstat_eval(?:sha)?(?:_ro)?:calls=(\d+)", text, re.M))


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (nginx: master + worker)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process and its descendants
    have used so far: the difference over a run is what serving it cost."""
    ticks = 0
    for p in process_tree(pid):
        try:
            # After the command name in parentheses: state is field 3,
            # utime and stime fields 14 and 15.
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def steal_seconds(*cores: str) -> list[float]:
    """Time the hypervisor has given each of `cores` to someone else so far
    (the steal column of /proc/stat, read once): on a VM, what a run lost
    that no profile of the proxy shows. 0 where the kernel does not report
    it."""
    stolen = dict.fromkeys(cores, 0.0)
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields and fields[0].startswith("cpu") and fields[0][3:] in stolen:
                stolen[fields[0][3:]] = int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return [stolen[core] for core in cores]


# --profile: where a measured process's CPU goes, per request. perf samples
# the process at PROFILE_HZ for the whole measurement (no call graphs: the
# overhead stays near 1 %); each sample's symbol is put in one component.
PROFILE_HZ = 999
COMPONENTS = ["kernel", "crypto", "allocator", "own code", "HTTP stack", "libraries", "other"]
COMPONENT_NOTES = {
    "kernel": "system calls, loopback TCP, waking the peer",
    "crypto": "aws-lc, ring or OpenSSL: signatures, hashes, TLS ciphers and key exchange",
    "allocator": "mimalloc, or the C library's malloc/free",
    "own code": "portcullis's crates (portcullis, credentials, policy, config), bare Pingora's main, nginx's or HAProxy's binary",
    "HTTP stack": "Pingora, tokio, http, httparse, bytes",
    "libraries": "the other Rust crates (caches, maps, JSON, base64, arc-swap)",
    "other": "Rust's core/alloc/std (memcpy, drops), libc, vDSO",
}
OWN_CRATES = {"portcullis", "credentials", "policy", "config", "bare_pingora"}
STACK_CRATES = ("pingora", "tokio", "http", "httparse", "bytes", "h2", "mio", "futures")
CRYPTO_SYMBOL = re.compile(r"^(aws_lc|ring_core|bn_|BN_|EVP_|evp_|RSA_|rsa_|ec_|EC_|ecp_|__ecp_|p256|fe4?_|fiat_|"
                           r"sha\d|SHA\d|x25519|ed25519|aes|gcm_|chacha|poly1305)")
C_ALLOCATOR = {"malloc", "free", "cfree", "realloc", "calloc", "_int_malloc", "_int_free", "_int_realloc",
               "malloc_consolidate", "tcache_init", "__libc_malloc", "__libc_free"}


def component(dso: str, symbol: str) -> str:
    """The component a sampled symbol's time counts towards (COMPONENTS)."""
    if dso.startswith("[kernel") or dso == "[unknown]" and symbol.startswith("0xffff"):
        return "kernel"
    if dso.startswith("libcrypto") or dso.startswith("libssl") or CRYPTO_SYMBOL.match(symbol) \
            or "aws_lc_rs::" in symbol or "ring::" in symbol:
        return "crypto"
    if symbol.split("@")[0] in C_ALLOCATOR or symbol.startswith(("_mi_", "mi_", "__mi_", "mimalloc")):
        return "allocator"
    if dso in ("haproxy", "nginx"):
        return "own code"
    crate = re.search(r"([A-Za-z_][A-Za-z0-9_]*)::", symbol)
    if crate and crate.group(1) in OWN_CRATES:
        return "own code"
    if crate and crate.group(1).startswith(STACK_CRATES):
        return "HTTP stack"
    if crate and crate.group(1) not in ("core", "alloc", "std"):
        return "libraries"
    return "other"


def start_profile(pid: int, data: Path) -> subprocess.Popen | None:
    """perf sampling a process (and its children: nginx's workers) until
    stop_profile; None when perf is missing or cannot attach."""
    if not shutil.which("perf"):
        return None
    pids = ",".join(str(p) for p in process_tree(pid))
    proc = subprocess.Popen(["perf", "record", "-F", str(PROFILE_HZ), "-p", pids, "-o", str(data)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    time.sleep(0.3)  # attached before the load starts
    return proc if proc.poll() is None else None


def stop_profile(proc: subprocess.Popen, data: Path, requests: int) -> dict | None:
    """Stop perf and read its samples back: microseconds of the process's
    CPU per request, by component, and the largest symbols."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "-F", "sample,dso,sym"],
                            capture_output=True, text=True, timeout=120)
    if report.returncode != 0 or not requests:
        return None
    per_component = dict.fromkeys(COMPONENTS, 0)
    symbols: list[tuple[int, str, str]] = []
    for line in report.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$", line)
        if not m:
            continue
        samples, dso, symbol = int(m.group(1)), m.group(2), m.group(4)
        part = component(dso, symbol)
        per_component[part] += samples
        symbols.append((samples, part, symbol))
    us = 1e6 / PROFILE_HZ / requests
    symbols.sort(reverse=True)
    return {
        "hz": PROFILE_HZ,
        "samples": sum(per_component.values()),
        "us_per_request": {part: n * us for part, n in per_component.items()},
        "top_symbols": [{"symbol": sym[:120], "component": part, "us_per_request": n * us}
                        for n, part, sym in symbols[:12]],
    }


def fill(template: str, values: dict) -> str:
    text = (HERE / "conf" / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    leftover = re.findall(r"@[A-Z_]+@", text)
    if leftover:
        raise SystemExit(f"{template}: unfilled placeholders {sorted(set(leftover))}")
    return text


def portcullis_config(values: dict, features: bool, redis_port: int | None, key_prefix: str,
                      sections: str = "") -> str:
    """conf/portcullis.yaml, with conf/portcullis-features.yaml merged in when
    a feature scenario is measured: its sections before portcullis.yaml's
    `routes:`, its routes after portcullis.yaml's (first match wins, so the
    routes of the other scenarios match as before). `sections`: more
    top-level YAML, put before `routes:` too (upstream_assertion:, tls:)."""
    base = fill("portcullis.yaml", values)
    if sections:
        parts = re.compile(r"^routes:[ \t]*\n", re.M).split(base)
        if len(parts) != 2:
            raise SystemExit("portcullis.yaml must have one top-level 'routes:' line")
        base = parts[0].rstrip("\n") + "\n\n" + sections.strip("\n") + "\n\nroutes:\n" + parts[1]
    if not features:
        return base
    if redis_port is not None:
        redis = (
            "redis:\n"
            f'  url: "redis://127.0.0.1:{redis_port}"\n'
            f'  key_prefix: "{key_prefix}"\n'
            "  hash_key_env: BENCH_REDIS_KEY"
        )
        limit = (
            "  per-user-redis:\n"
            "    key: subject\n"
            "    limit: 100000000\n"
            "    per: 1s\n"
            "    store: redis\n"
            "    # Redis failing is a wrong answer (503), never a silent local count.\n"
            "    on_store_error: deny\n"
        )
        route = (
            "  - path: /limited-redis/**\n"
            "    scopes: [bench:read]\n"
            "    rate_limit: per-user-redis\n"
        )
    else:
        redis = "# redis: off (limit-redis is not measured in this run)"
        limit = route = ""
    sessions = dict(SESSIONS="# sessions: off (session-cookie is not measured in this run)", SESSION_ROUTE="")
    sessions.update({k: v for k, v in values.items() if k in sessions})
    extra = fill("portcullis-features.yaml", dict(values, REDIS=redis, REDIS_LIMIT=limit, REDIS_ROUTE=route, **sessions))
    routes = re.compile(r"^routes:[ \t]*\n", re.M)
    base_parts, extra_parts = routes.split(base), routes.split(extra)
    if len(base_parts) != 2 or len(extra_parts) != 2:
        raise SystemExit("portcullis.yaml and portcullis-features.yaml must each have one top-level 'routes:' line")
    return (
        base_parts[0].rstrip("\n") + "\n\n"
        + extra_parts[0].strip("\n") + "\n\n"
        + "routes:\n" + base_parts[1].rstrip("\n") + "\n" + extra_parts[1].rstrip("\n") + "\n"
    )


# --------------------------------------------------------------------------
# Enforcement checks


def enforcement_checks(port: int, tokens: dict, tls: bool = False) -> list[dict]:
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
            status, headers, _ = get(port, path, token, tls=tls)
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


def wrk(port: int, path: str, mode: str, work: Path, seconds: float, connections: int, offset: int = 0,
        tls: bool = False) -> dict:
    # cookie: the Cookie header of a signed-in session (session-cookie);
    # apikey: the bench's API key (api-key).
    token_file = work / {"single": "token-single.txt", "cookie": "session-cookie.txt",
                         "apikey": "api-key.txt"}.get(mode, "tokens-10k.txt")
    env = dict(os.environ, BENCH_TOKEN_MODE=mode, BENCH_TOKENS=str(token_file), BENCH_OFFSET=str(offset),
               BENCH_CLIENTS=str(FLOOD_CLIENTS))
    argv = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--latency", "--timeout", "5s", "-s", str(HERE / "wrk.lua"),
        f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed (rc {out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["socket_errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    return r


def ab(port: int, path: str, work: Path, seconds: float, connections: int) -> dict:
    """https-handshake's load: ApacheBench over https, `connections` at a
    time, one HTTP/1.0 request per connection (no keep-alive: the proxy
    closes after answering), so every request opens a connection and pays a
    full TLS handshake. Not wrk with `Connection: close`: wrk reuses each
    connection's OpenSSL object across reconnects (SSL_clear after a clean
    shutdown keeps the session) and resumes the session from the server's
    ticket, without certificate or signature (nginx's $ssl_session_reused
    said so for 1,120 of 1,124 connections); ab makes a new one per
    connection and resumes none (787 of 787 full). Its latency runs from
    connect to the last byte, handshake included; the percentiles come from
    its CSV (-e, per whole percent, 0.001 ms)."""
    csv = work / "ab-percentiles.csv"
    # -n after -t: -t alone stops at 50,000 requests.
    argv = [
        "taskset", "-c", LOAD_CORE, "ab", "-q", "-S", "-d", "-r", "-s", "5", f"-c{connections}",
        "-t", str(max(1, round(seconds))), "-n", "100000000", "-e", str(csv),
        f"https://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)

    def field(name: str, default: str | None = None) -> str:
        m = re.search(rf"^{re.escape(name)}:\s+(.+?)\s*$", out.stdout, re.M)
        if m:
            return m.group(1)
        if default is None:
            raise RuntimeError(f"ab failed (rc {out.returncode}), no '{name}': {out.stdout[-800:]} {out.stderr[-800:]}")
        return default

    requests = int(field("Complete requests"))
    seconds_taken = float(field("Time taken for tests").split()[0])
    percent = {}
    for line in csv.read_text().splitlines()[1:]:
        k, _, v = line.partition(",")
        percent[int(k)] = float(v) * 1000
    protocol = field("SSL/TLS Protocol", "?").split(",")
    return {
        "requests": requests,
        "duration_us": seconds_taken * 1e6,
        "rps": requests / seconds_taken if seconds_taken else 0.0,
        "non2xx": int(field("Non-2xx responses", "0")),
        # ab's failed requests: connect, receive, length and exceptions.
        "socket_errors": int(field("Failed requests").split()[0]),
        "p50_us": percent[50], "p90_us": percent[90], "p99_us": percent[99], "max_us": percent[100],
        "tls": " ".join(protocol[:2]) + ", " + field("Server Temp Key", "?"),
    }


def h2load(port: int, path: str, work: Path, seconds: float, connections: int) -> dict:
    """grpc's load: h2load (nghttp2) over HTTP/2 with prior knowledge (h2c),
    `connections` connections carrying one call at a time each (as wrk's
    carry one request), each call POST `path` with the gRPC headers, the
    single token and a 5-byte frame. h2load reads HTTP statuses only, and a
    gRPC refusal is HTTP 200: the checks read grpc-status before (nghttp),
    and portcullis's count of its decisions is read after the run. The
    percentiles come from its per-request log (--log-file: one write() per
    call on the load core, for both rows alike)."""
    log_file = work / "h2load.log"
    token = (work / "token-single.txt").read_text().strip()
    argv = [
        "taskset", "-c", LOAD_CORE, "h2load", "-t1", f"-c{connections}", "-m1", f"-D{max(1, round(seconds))}",
        "-d", str(work / "grpc-request.bin"), "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-H", f"authorization: Bearer {token}", f"--log-file={log_file}", f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^finished in ([\d.]+)(s|ms),", out.stdout, re.M)
    counts = re.search(r"^requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, \d+ failed, "
                       r"(\d+) errored, (\d+) timeout", out.stdout, re.M)
    # Counted as answers arrive: a call whose answer began when the run
    # stopped has a status but is not done.
    statuses = re.search(r"^status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out.stdout, re.M)
    if out.returncode != 0 or not (m and counts and statuses):
        raise RuntimeError(f"h2load failed (rc {out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    duration = float(m.group(1)) / (1 if m.group(2) == "s" else 1000)
    done = int(counts.group(1))
    # start (µs since the epoch), HTTP status, µs to the end of the answer
    latencies = sorted(int(line.split("\t")[2]) for line in log_file.read_text().splitlines() if line.count("\t") == 2)
    if not latencies:
        raise RuntimeError(f"h2load logged no request: {out.stdout[-800:]}")

    def percentile(q: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))])

    return {
        "requests": done,
        "duration_us": duration * 1e6,
        "rps": done / duration if duration else 0.0,
        "non2xx": sum(int(n) for n in statuses.groups()),
        "socket_errors": int(counts.group(2)) + int(counts.group(3)),
        "p50_us": percentile(50), "p90_us": percentile(90), "p99_us": percentile(99), "p999_us": percentile(99.9),
        "max_us": float(latencies[-1]),
    }


def load(scenario: str, port: int, path: str, mode: str, work: Path, seconds: float, connections: int,
         offset: int = 0) -> dict:
    """One run of the scenario's load generator: ab for new TLS connections,
    h2load for gRPC, wrk for the rest (over https in tls and
    https-keepalive)."""
    if scenario == "https-handshake":
        return ab(port, path, work, seconds, connections)
    if scenario == "grpc":
        return h2load(port, path, work, seconds, connections)
    return wrk(port, path, mode, work, seconds, connections, offset=offset,
               tls=scenario in ("tls", "https-keepalive"))


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


def steal_summary(results: dict) -> str | None:
    """One line on the time the hypervisor took from the two cores during
    the measured runs (every round), and the run that lost the most: a run
    that lost a few percent of its core is slower for a reason outside the
    proxies. None when nothing was taken (or nothing reported)."""
    runs = [(proxy, scenario, d["round"], d["steal_s"], d["duration_us"] / 1e6)
            for (proxy, scenario), r in results.items() for d in r.get("rounds_detail", []) if "steal_s" in d]
    total = [sum(run[3][i] for run in runs) for i in (0, 1)]
    if not runs or max(total) <= 0:
        return None
    proxy, scenario, round_no, stolen, seconds = max(runs, key=lambda run: run[3][0])
    return (f"CPU steal during the measured runs (time the hypervisor gave the VM's cores to others, /proc/stat): "
            f"{total[0]:.2f} s of core {PROXY_CORE} (the proxy's), {total[1]:.2f} s of core {LOAD_CORE}; the most "
            f"from one run {stolen[0] / seconds:.1%} of core {PROXY_CORE} ({LABEL[proxy]}, {scenario}, "
            f"round {round_no}).")


def build_report(meta: dict, results: dict, status: dict, rss: dict, checks: dict) -> tuple[str, dict]:
    lines = []
    lines.append(f"# portcullis benchmark — {meta['date']}")
    lines.append("")
    threads, cores = meta.get("threads", 1), meta.get("scaled_cores", PROXY_CORE)
    pinning = (f"each proxy 1 thread on core {PROXY_CORE}, " if threads == 1 else
               f"portcullis and bare Pingora {threads} threads on cores {cores}"
               + (f" (**core {LOAD_CORE} shared with the load generator and the upstream**)"
                  if LOAD_CORE in cores.split(",") else "")
               + f", nginx and HAProxy 1 thread on core {PROXY_CORE}, ")
    lines.append(
        f"{meta['cpu']} · {meta['cores']} cores · Linux {meta['kernel']} · {pinning}"
        f"wrk (`-t1 -c{meta['connections']}`) and the upstream nginx on core {LOAD_CORE} · "
        f"{meta['duration']} s per run after {meta['warmup']} s warm-up"
        + (f", median of {meta['rounds']} interleaved rounds" if meta.get("rounds", 1) > 1 else "")
        + " · loopback"
    )
    lines.append(
        f"Peers: {meta['versions']['nginx']}, {meta['versions']['haproxy']}, {meta['versions']['wrk']}; "
        f"portcullis {meta['portcullis_commit']}; bare Pingora = pingora 0.9.1 passthrough"
        + (f"; limit-redis: redis-server {meta['versions']['redis']} on core {LOAD_CORE}"
           if "limit-redis" in meta["scenarios"] and "portcullis" in meta["proxies"] else "")
        + (f"; https-handshake: {meta['versions']['ab']} on core {LOAD_CORE}"
           if "https-handshake" in meta["scenarios"] else "")
        + (f"; grpc: h2load {meta['versions']['h2load']} on core {LOAD_CORE}" if "grpc" in meta["scenarios"] else "")
        + f". Load average at start: {meta['loadavg_start']}"
        + (f", at the end: {meta['loadavg_end']} (the run itself keeps two cores busy)" if meta.get("loadavg_end") else "")
        + "."
    )
    steal = steal_summary(results)
    if steal:
        lines.append("")
        lines.append(steal)
    if meta.get("quick"):
        lines.append("")
        lines.append("**Quick run: durations too short for representative numbers.**")
    if threads > 1:
        lines.append("")
        lines.append(
            f"**--threads {threads}: portcullis and bare Pingora run {threads} worker threads on cores {cores}"
            + (f"; core {LOAD_CORE} is also the load generator's and the upstream's, so the proxy competes with "
               "its own load for it and what it gains is bounded by what wrk and the upstream leave"
               if LOAD_CORE in cores.split(",") else "")
            + f". nginx and HAProxy keep one thread on core {PROXY_CORE}: ratios against them compare "
            f"{threads} threads with one.**"
        )
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
    def check_text(r):
        return f"{r['check']} → {r['got']}{'' if r['ok'] else ' (want ' + str(r['want']) + ')'}"

    def process_checks(rows, process):
        """Verdict and detail of a process of its own: its enforcement
        checks counted (listed only when they fail), then the others."""
        verdict = "measured" if all(r["ok"] for r in rows) else "FAILED: not measured"
        detail = "; ".join(check_text(r) for r in rows if not r["check"].startswith("enforcement: ") or not r["ok"])
        enforced = [r for r in rows if r["check"].startswith("enforcement: ")]
        if enforced:
            detail = (f"{process}: {sum(r['ok'] for r in enforced)} of {len(enforced)} enforcement checks "
                      "as above; " + detail)
        return verdict, detail

    for scenario, rows in meta.get("feature_checks", {}).items():
        verdict, detail = process_checks(rows, "second process")
        lines.append(f"- **portcullis, {scenario}** — {verdict}. {detail}")
    for name, rows in meta.get("peer_checks", {}).items():
        verdict = "measured" if all(r["ok"] for r in rows) else "FAILED: not measured"
        detail = "; ".join(check_text(r) for r in rows)
        lines.append(f"- **{PEER_PROCESSES[name]}** — {verdict}. {detail}")
    for scenario, by_proxy in meta.get("flood_checks", {}).items():
        for proxy, rows in by_proxy.items():
            verdict, detail = process_checks(rows, "its own process")
            lines.append(f"- **{LABEL[proxy]}, {scenario}** — {verdict}. {detail}")
    lines.append("")
    lines.append("## Results")
    lines.append("")
    per_round = meta.get("rounds", 1) > 1
    lines.append("| proxy | scenario | req/s | p50 ms | p99 ms | answers |" + (" req/s by round |" if per_round else ""))
    lines.append("|---|---|---:|---:|---:|---|" + ("---|" if per_round else ""))
    cell_status = meta.get("cell_status", {})
    for scenario, slabel, _, _ in SCENARIOS:
        for proxy, plabel, _ in ROWS:
            if scenario in HTTPS:
                plabel = PEER_PROCESSES.get(f"{proxy}-tls", plabel)
            if (proxy, scenario) in results:
                r = results[(proxy, scenario)]
                flag = "" if r["answers_ok"] else " ⚠"
                lines.append(
                    f"| {plabel} | {scenario} | {fmt_rps(r['rps'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
                    f"{r['answers']}{flag} |"
                    + (f" {' / '.join(fmt_rps(v) for v in r.get('rounds_rps', []))} |" if per_round else "")
                )
            elif proxy in status and scenario in meta["scenarios"] and supports(proxy, scenario):
                lines.append(f"| {plabel} | {scenario} | {status[proxy]} | | | |")
            elif proxy == "portcullis" and scenario in meta.get("scenario_status", {}):
                lines.append(f"| {plabel} | {scenario} | {meta['scenario_status'][scenario]} | | | |")
            elif (proxy, scenario) in cell_status:
                lines.append(f"| {plabel} | {scenario} | {cell_status[(proxy, scenario)]} | | | |")
    lines.append("")
    lines.append(
        "Passthrough proxies forward the token scenarios' requests untouched (the upstream answers 200); "
        "the authenticating ones answer the forged tokens 401 themselves."
    )
    shown_features = [s for s in FEATURES if s in meta["scenarios"]]
    if shown_features:
        lines.append(
            f"{', '.join(shown_features)}: portcullis features, which the other proxies do not have and are "
            "not measured on."
        )
        for scenario in shown_features:
            if scenario in meta.get("feature_notes", {}):
                lines.append(f"{scenario}: {meta['feature_notes'][scenario]}.")
    shown_floods = [s for s in FLOODS if s in meta["scenarios"]]
    if shown_floods:
        lines.append(
            f"{', '.join(shown_floods)}: HAProxy jwt_verify and portcullis with a failed-authentication budget "
            "(below), the other proxies not measured on."
        )
    shown_peers = [s for s in PEERS if s in meta["scenarios"]]
    if shown_peers:
        lines.append(
            f"{', '.join(shown_peers)}: each measured proxy on a process of its own (below), the other proxies "
            "not measured on."
        )

    def get_r(proxy, scenario):
        return results.get((proxy, scenario))

    ratios = []
    lines.append("")
    lines.append("## portcullis against the others")
    lines.append("")
    lines.append("| scenario | against | req/s ratio | p99 difference ms |")
    lines.append("|---|---|---:|---:|")
    pairs = (
        [(s, "haproxy-jwt") for s in PROTECTED]
        + [(s, "haproxy-jwt") for s in FLOODS]
        + [(s, "bare-pingora") for s, *_ in SCENARIOS if s not in FEATURES and s not in PEERS and s not in FLOODS]
        + [("public", "nginx")]
        + [(s, other) for s in HTTPS for other in ("nginx", "haproxy")]
        + [("grpc", DIRECT)]
    )
    for scenario, other in pairs:
        p, o = get_r("portcullis", scenario), get_r(other, scenario)
        against = PEER_PROCESSES[f"{other}-tls"] if scenario in HTTPS else LABEL[other]
        if p and o and o["rps"]:
            ratio = p["rps"] / o["rps"]
            diff = (p["p99_us"] - o["p99_us"]) / 1000
            ratios.append({"scenario": scenario, "against": other, "rps_ratio": ratio, "p99_diff_ms": diff})
            lines.append(f"| {scenario} | {against} | {ratio:.2f}× | {diff:+.2f} |")
        else:
            ratios.append({"scenario": scenario, "against": other, "rps_ratio": None, "p99_diff_ms": None})
            lines.append(f"| {scenario} | {against} | n/a | n/a |")

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
    # Issue 19's targets: the bare Pingora floor (same allocator) on every
    # forwarded scenario, a local refusal at least HAProxy's.
    for scenario in ("public", "one-token", "10k-tokens"):
        r = ratio_of(scenario, "bare-pingora")
        v = r and r["rps_ratio"]
        target(f"{scenario} req/s ≥ 0.95× bare Pingora", v, 0.95, None if v is None else v >= 0.95,
               "n/a" if v is None else f"{v:.2f}×")
    r = ratio_of("no-token", "haproxy-jwt")
    v = r and r["rps_ratio"]
    target("no-token (a local 401) req/s ≥ 1.0× HAProxy jwt_verify", v, 1.0, None if v is None else v >= 1.0,
           "n/a" if v is None else f"{v:.2f}×")
    for scenario, threshold in FLOOD_TARGETS.items():
        r = ratio_of(scenario, "haproxy-jwt")
        v = r and r["rps_ratio"]
        what = ("one client past its budget" if scenario == "forged-one-client"
                else f"{FLOOD_CLIENTS:,} clients, none past its budget")
        target(f"{scenario} req/s ≥ {threshold:g}× HAProxy jwt_verify ({what})", v, threshold,
               None if v is None else v >= threshold, "n/a" if v is None else f"{v:.2f}×")
    for scenario, *_ in SCENARIOS:
        if scenario in FEATURES or scenario in PEERS or scenario in FLOODS:
            continue
        r = ratio_of(scenario, "bare-pingora")
        v = r and r["p99_diff_ms"]
        target(f"{scenario} p99 ≤ bare Pingora p99 + 0.5 ms", v, 0.5, None if v is None else v <= 0.5,
               "n/a" if v is None else f"{v:+.2f} ms")

    # Each feature against one-token, same process (revoked-list: a second
    # one configured alike), same run. With --rounds, also round by round:
    # a feature's round and one-token's round are minutes apart at most,
    # so the paired change is less exposed to the machine's drift.
    features = []
    base = get_r("portcullis", BASELINE)
    measured_features = [s for s in FEATURES if get_r("portcullis", s)]
    if base and measured_features:
        base_rounds = {d["round"]: d for d in base.get("rounds_detail", [])}

        def paired(r):
            changes = []
            for d in r.get("rounds_detail", []):
                b = base_rounds.get(d["round"])
                if b and b["rps"]:
                    changes.append(d["rps"] / b["rps"] - 1)
            return changes

        def median(values):
            return statistics.median(values) if values else None

        base_rps = [d["rps"] for d in base.get("rounds_detail", [])]
        noise = (max(base_rps) - min(base_rps)) / median(base_rps) if len(base_rps) > 1 and median(base_rps) else None
        lines.append("")
        lines.append(f"## Feature cost (portcullis, against {BASELINE} in the same run)")
        lines.append("")
        lines.append("| scenario | req/s | req/s vs one-token | p50 ms | p99 ms | p99 vs one-token |"
                     + (" req/s change by round |" if per_round else ""))
        lines.append("|---|---:|---:|---:|---:|---:|" + ("---|" if per_round else ""))
        lines.append(f"| {BASELINE} (baseline) | {fmt_rps(base['rps'])} | — | {ms(base['p50_us'])} | "
                     f"{ms(base['p99_us'])} | — |" + (" — |" if per_round else ""))
        for scenario in measured_features:
            r = get_r("portcullis", scenario)
            change = r["rps"] / base["rps"] - 1 if base["rps"] else None
            p99 = (r["p99_us"] - base["p99_us"]) / 1000
            p99_rel = r["p99_us"] / base["p99_us"] - 1 if base["p99_us"] else None
            by_round = paired(r)
            features.append({
                "scenario": scenario, "rps": r["rps"], "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                "rps_change": change, "p99_diff_ms": p99, "p99_change": p99_rel,
                "rps_change_by_round": by_round, "rps_change_paired_median": median(by_round),
            })
            lines.append(
                f"| {scenario} | {fmt_rps(r['rps'])} | {'n/a' if change is None else f'{change:+.1%}'} | "
                f"{ms(r['p50_us'])} | {ms(r['p99_us'])} | {p99:+.2f} ms"
                + ("" if p99_rel is None else f" ({p99_rel:+.0%})") + " |"
                + (f" {' / '.join(f'{c:+.1%}' for c in by_round)} |" if per_round else "")
            )
        lines.append("")
        lines.append(
            "Relative to the one-token cell above" + (" (the median round of each). " if per_round else ". ")
            + (f"Noise: one-token's own req/s spread over its rounds (max − min) is {noise:.1%} of its median. "
               if noise is not None else "One round: no measure of the noise; use --rounds 3 or more. ")
            + ("limit-redis's Redis runs on the load core (wrk and the upstream), so its cost includes taking "
               "CPU from the load generator; a deployed Redis is another host, one network round trip away."
               if "limit-redis" in measured_features else "")
        )
        f = next((f for f in features if f["scenario"] == "revoked-list"), None)
        lines.append("")
        lines.append("## Targets (features)")
        lines.append("")
        if f:
            v = f["rps_change_paired_median"] if per_round and f["rps_change_paired_median"] is not None else f["rps_change"]
            how = "median of the paired rounds" if per_round and f["rps_change_paired_median"] is not None else "one round"
            target(f"revoked-list req/s within {REVOCATION_BUDGET:.0%} of one-token (the revocation check, "
                   f"{REVOCATIONS:,} entries, on the cached-token path)", v, -REVOCATION_BUDGET,
                   None if v is None else v >= -REVOCATION_BUDGET,
                   "n/a" if v is None else f"{v:+.1%} ({how})"
                   + ("" if noise is None or v is None else
                      f"; {'within' if abs(v) <= noise else 'beyond'} one-token's own round-to-round spread "
                      f"of {noise:.1%}"))
        else:
            target("revoked-list req/s within 2% of one-token", None, -REVOCATION_BUDGET, None, "n/a (not measured)")

    # The floods: portcullis with its budget against HAProxy jwt_verify,
    # with bad-signature (the same forgeries, portcullis without a budget)
    # for reference when it ran.
    if any(get_r(p, s) for s in FLOODS for p in FLOODS[s]):
        lines.append("")
        lines.append("## Forged-token floods (portcullis with a failed-authentication budget, against HAProxy "
                     "jwt_verify)")
        lines.append("")
        lines.append("| scenario | HAProxy jwt_verify req/s | portcullis req/s | portcullis / HAProxy | target | "
                     "HAProxy p99 ms | portcullis p99 ms | portcullis's answers |")
        lines.append("|---|---:|---:|---:|---|---:|---:|---|")
        for scenario in ["bad-signature", *FLOODS]:
            h, p = get_r("haproxy-jwt", scenario), get_r("portcullis", scenario)
            if scenario not in meta["scenarios"] or not (h or p):
                continue
            value = p["rps"] / h["rps"] if h and p and h["rps"] else None
            ratio = "n/a" if value is None else f"{value:.2f}×"
            if scenario not in FLOOD_TARGETS:
                goal = "— (no budget: reference)"
            else:
                goal = f"≥ {FLOOD_TARGETS[scenario]:g}×" + (
                    "" if value is None else " PASS" if value >= FLOOD_TARGETS[scenario] else " FAIL")
            lines.append(
                f"| {scenario} | {fmt_rps(h['rps']) if h else 'n/a'} | {fmt_rps(p['rps']) if p else 'n/a'} | {ratio} | "
                f"{goal} | {ms(h['p99_us']) if h else 'n/a'} | {ms(p['p99_us']) if p else 'n/a'} | "
                f"{(p['answers'] + ('' if p['answers_ok'] else ' ⚠')) if p else 'n/a'} |"
            )
        lines.append("")
        lines.append(
            f"portcullis on a process of its own per flood: portcullis.yaml (bad-signature's configuration) plus "
            f"`trusted_proxies: [127.0.0.1/32]` and `tokens.failed_auth_budget: {{limit: {FLOOD_BUDGET['limit']}, "
            f"per: {FLOOD_BUDGET['per']}}}`; HAProxy jwt_verify has no budget and verifies every forgery. "
            "forged-one-client: the forgeries of bad-signature from one client (the load generator's address); its "
            "budget is spent within the first second of the warm-up, and from then on portcullis answers 429 with "
            "Retry-After before any verification; once a refusal's Retry-After (1 s) has passed, it verifies "
            f"(401) what the budget gave back meanwhile ({FLOOD_BUDGET['limit']} per {FLOOD_BUDGET['per']}) and "
            "refuses again. forged-many-clients: the same forgeries, each with "
            f"`X-Forwarded-For` naming the next of {FLOOD_CLIENTS:,} clients in turn (believed from the trusted "
            "127.0.0.1; HAProxy ignores it), so a client's next forgery comes "
            f"{FLOOD_CLIENTS:,} requests after its last: no client ever exceeds its budget (none answered 429, "
            "from portcullis's own counters, warm-up included), every forgery is verified and answered 401, and "
            f"portcullis tracks {FLOOD_CLIENTS:,} budget keys. portcullis's answers: its counters of budget refusals "
            "(429) and invalid_token decisions (401) over the measurement (they include the requests still in "
            "flight when wrk stopped)."
        )

    def busy(r, key="cpu_s"):
        return f"{r[key] / (r['duration_us'] / 1e6):.0%}" if r["duration_us"] else "n/a"

    def cpu_per_request(r):
        return f"{r['cpu_s'] / r['requests'] * 1e6:.1f}" if r["requests"] else "n/a"

    negotiated = meta.get("tls_negotiated", {})
    https_rows = [(proxy, s) for s in HTTPS for proxy in PEERS[s] if get_r(proxy, s)]
    if https_rows:
        lines.append("")
        lines.append("## HTTPS termination (TLS 1.3, the same certificate, one core each)")
        lines.append("")
        lines.append("| proxy | scenario | req/s | p50 ms | p99 ms | proxy core busy | load core busy | "
                     "proxy CPU µs per request | answers |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for proxy, scenario in https_rows:
            r = get_r(proxy, scenario)
            lines.append(
                f"| {PEER_PROCESSES[proxy + '-tls']} | {scenario} | {fmt_rps(r['rps'])} | {ms(r['p50_us'])} | "
                f"{ms(r['p99_us'])} | {busy(r)} | {busy(r, 'load_core_cpu_s')} | {cpu_per_request(r)} | "
                f"{r['answers']}{'' if r['answers_ok'] else ' ⚠'} |"
            )
        shown = {scenario for _, scenario in https_rows}
        lines.append("")
        lines.append(
            "Each proxy terminates TLS on a process of its own (core "
            f"{PROXY_CORE}) with the bench's self-signed EC P-256 certificate and forwards `GET /public/hello` to "
            "the upstream (portcullis: the tls scenario's process, on its public route: no token)."
            + (f" https-keepalive: wrk over https, keep-alive: {meta['connections']} handshakes per run, then record "
               "encryption." if "https-keepalive" in shown else "")
            + (f" https-handshake: ab, {meta['connections']} at a time, one HTTP/1.0 request per connection, each a "
               "full handshake (ab resumes no session); its latency includes connect and handshake."
               if "https-handshake" in shown else "")
            + f" The load generator shares core {LOAD_CORE} with the upstream (load core busy: the two together): "
            "where the load core is busy near 100 % and the proxy's is not, the load side was the limit, the req/s "
            "say little about the proxy, and its CPU per request is the figure to compare. Negotiated: "
            + "; ".join(f"{PEER_PROCESSES[p + '-tls'].split()[0]} {tls}" for p, tls in negotiated.items()) + "."
        )

    # label, result, whether a proxy served it
    grpc_rows = [row for row in [
        ("no proxy: h2load → the upstream (h2c)", get_r(DIRECT, "grpc"), False),
        ("portcullis (h2c both sides, one valid token)", get_r("portcullis", "grpc"), True),
        (f"portcullis, {BASELINE} (HTTP/1.1, wrk), for reference", get_r("portcullis", BASELINE), True),
    ] if row[1]]
    if get_r(DIRECT, "grpc") or get_r("portcullis", "grpc"):
        lines.append("")
        lines.append("## gRPC over HTTP/2 (h2c)")
        lines.append("")
        lines.append("| | req/s | p50 ms | p99 ms | proxy core busy | load core busy | proxy CPU µs per request "
                     "| answers |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for label, r, proxied in grpc_rows:
            lines.append(
                f"| {label} | {fmt_rps(r['rps'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
                f"{busy(r) if proxied else '—'} | {busy(r, 'load_core_cpu_s')} | "
                f"{cpu_per_request(r) if proxied else '—'} | {r['answers']}{'' if r['answers_ok'] else ' ⚠'} |"
            )
        lines.append("")
        p, d = get_r("portcullis", "grpc"), get_r(DIRECT, "grpc")
        lines.append(
            f"h2load, {meta['connections']} connections of one call at a time each: POST {GRPC_PATH} with "
            "`content-type: application/grpc`, `te: trailers`, the single token and an empty message; the "
            "upstream nginx answers a 5-byte empty message and the trailer `grpc-status: 0`. Without a proxy, h2load "
            f"and the upstream have core {LOAD_CORE} to themselves: that row is the load side's own limit, a "
            "ceiling for any proxy here, and its latency the floor."
            + (f" portcullis adds {(p['p50_us'] - d['p50_us']) / 1000:+.2f} ms at p50 and "
               f"{(p['p99_us'] - d['p99_us']) / 1000:+.2f} ms at p99." if p and d else "")
            + (f" {meta['peer_notes']['grpc']}." if "grpc" in meta.get("peer_notes", {}) else "")
        )

    profiled = [(proxy, scenario, r["profile"]) for scenario, *_ in SCENARIOS for proxy, *_ in ROWS
                for r in [get_r(proxy, scenario)] if r and r.get("profile")]
    if profiled:
        lines.append("")
        lines.append("## Where each request's CPU goes (perf, µs per request)")
        lines.append("")
        lines.append("| proxy | scenario | req/s | " + " | ".join(COMPONENTS) + " | total |")
        lines.append("|---|---|---:|" + "---:|" * (len(COMPONENTS) + 1))
        for proxy, scenario, prof in profiled:
            parts = prof["us_per_request"]
            label = process_label(proxy, scenario)
            lines.append(f"| {label} | {scenario} | {fmt_rps(get_r(proxy, scenario)['rps'])} | "
                         + " | ".join(f"{parts[c]:.1f}" for c in COMPONENTS)
                         + f" | {sum(parts.values()):.1f} |")
        lines.append("")
        lines.append(
            f"`--profile`: perf sampled each measured process at {PROFILE_HZ} Hz through the last round's "
            "measurement (every thread, nginx's workers too); a sample's time counts towards the component of its "
            "symbol, divided by the requests of that run. The components: "
            + "; ".join(f"{c}: {COMPONENT_NOTES[c]}" for c in COMPONENTS)
            + ". The largest symbols of each are in results.json (`profile.top_symbols`).")

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
        "meta": {k: v for k, v in meta.items()
                 if k not in ("feature_checks", "feature_notes", "scenario_status", "peer_checks", "peer_notes",
                              "cell_status", "tls_negotiated", "flood_checks")},
        "checks": checks,
        "results": [
            {"proxy": proxy, "scenario": scenario, **results[(proxy, scenario)]}
            for scenario, *_ in SCENARIOS
            for proxy, *_ in ROWS
            if (proxy, scenario) in results
        ],
        "not_measured": status,
        "ratios": ratios,
        "targets": targets,
        "feature_cost": features,
        "feature_checks": meta.get("feature_checks", {}),
        "feature_notes": meta.get("feature_notes", {}),
        "scenarios_not_measured": meta.get("scenario_status", {}),
        "peer_checks": meta.get("peer_checks", {}),
        "peer_notes": meta.get("peer_notes", {}),
        "flood_checks": meta.get("flood_checks", {}),
        "flood_budget": FLOOD_BUDGET,
        "peers_not_measured": [{"proxy": p, "scenario": s, "why": why} for (p, s), why in cell_status.items()],
        "tls_negotiated": negotiated,
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
            "redis": version(["redis-server", "--version"], r"v=[\d.]+").removeprefix("v="),
            "ab": version(["ab", "-V"], r"ApacheBench, Version [\d.]+").replace(", Version", ""),
            "h2load": version(["h2load", "--version"], r"nghttp2/[\d.]+"),
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=15, help="seconds measured per proxy and scenario (default 15)")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of the same load before each measurement (default 3)")
    ap.add_argument("--connections", type=int, default=64,
                    help="the load generator's connections: wrk's, ab's, h2load's (default 64)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 s per run, 1 s warm-up")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every proxy and scenario this many times, interleaved; report the median (default 1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="worker threads of portcullis and bare Pingora (their `threads`), pinned to cores 0 to N-1 "
                         "(default 1: core 0; 2 on two cores shares core 1 with the load generator); nginx and "
                         "HAProxy keep one thread on core 0")
    ap.add_argument("--out", help="directory for results.md / results.json (default: a new temporary directory)")
    ap.add_argument("--proxies", help="comma-separated subset of: " + ",".join(p for p, *_ in PROXIES))
    ap.add_argument("--scenarios", help="comma-separated subset of: " + ",".join(s for s, *_ in SCENARIOS))
    ap.add_argument("--portcullis", default=str(ROOT / "target/release/portcullis"))
    ap.add_argument("--bare-pingora", default=str(ROOT / "target/release/bare-pingora"))
    ap.add_argument("--keep", action="store_true", help="keep the working directory (configs, logs, keys, tokens)")
    ap.add_argument("--profile", action="store_true",
                    help="sample each measured process with perf during the last round and report its CPU per "
                         "request by component (kernel, crypto, allocator, own code, HTTP stack, libraries, other); "
                         "perf costs the profiled round about 1 %%")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup = 2, 1
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    args.scaled_cores = scaled_cores(args.threads)

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
    meta["threads"] = args.threads
    meta["scaled_cores"] = args.scaled_cores
    try:
        return run(args, proxies, scenarios, work, out_dir, procs, meta)
    finally:
        procs.stop_all()
        if args.keep:
            log(f"working directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def scaled_cores(threads: int) -> str:
    """The cores of the processes --threads scales (portcullis, bare
    Pingora): 0 to threads - 1, as many as the machine has. One thread:
    PROXY_CORE alone; two on two cores: both, core 1 shared with the load
    generator and the upstream."""
    count = max(1, min(threads, os.cpu_count() or 1))
    return PROXY_CORE if count == 1 else ",".join(str(i) for i in range(count))


def start_redis(procs: Processes, work: Path, port: int) -> str | None:
    """limit-redis's private redis-server: loopback only, nothing written to
    disk, stopped with everything else. None when it answers PING, else why
    limit-redis is not measured."""
    server = shutil.which("redis-server")
    if not server:
        return "not measured (no redis-server; Debian: apt-get install redis-server)"
    proc = procs.start("redis", LOAD_CORE, [
        server, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
        "--save", "", "--appendonly", "no", "--dir", str(work), "--daemonize", "no", "--logfile", "",
    ])
    if not wait_port(port, proc):
        log(f"    redis-server did not start:\n{procs.log_tail('redis')}")
        return "not measured (redis-server did not start)"
    try:
        pong = redis_command(port, "PING")
    except OSError as e:
        pong = str(e)
    if pong != "PONG":
        log(f"    redis-server does not answer PING: {pong}")
        return "not measured (redis-server does not answer)"
    release = version([server, "--version"], r"v=[\d.]+").removeprefix("v=")
    log(f"    redis-server {release} on 127.0.0.1:{port} (core {LOAD_CORE}, --save '' --appendonly no)")
    return None


def peer_command(work: Path, template: str, values: dict) -> list[str] | None:
    """The command line of nginx or HAProxy running conf/`template`, filled
    in and written to the working directory under the same name; None (and
    why, logged) when haproxy -c rejects it."""
    conf = work / template
    conf.write_text(fill(template, values))
    if template.startswith("nginx"):
        return ["nginx", "-p", str(work), "-e", str(work / f"{conf.stem}.error.log"), "-c", str(conf),
                "-g", "daemon off;"]
    check = subprocess.run(["haproxy", "-c", "-q", "-f", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        log(f"    haproxy -c rejected {conf.name}:\n{check.stdout}{check.stderr}")
        return None
    return ["haproxy", "-db", "-f", str(conf)]


def start_portcullis(args, procs: Processes, work: Path, name: str, config: str, values: dict,
                     env: dict) -> str | None:
    """One portcullis process running `config` (portcullis_config()'s, or
    grpc's own), listening on values' LISTEN_PORT and ADMIN_PORT; None once
    /readyz answers 200, else why not."""
    conf = work / f"{name}.yaml"
    conf.write_text(config)
    check = subprocess.run([args.portcullis, "check", "-c", str(conf)], capture_output=True, text=True, env=env)
    if check.returncode != 0:
        log(f"    portcullis check failed:\n{check.stdout}{check.stderr}")
        return "not measured (config rejected)"
    proc = procs.start(name, args.scaled_cores, [args.portcullis, "run", "-c", str(conf)], env=env)
    if not wait_port(values["LISTEN_PORT"], proc):
        log(f"    did not start:\n{procs.log_tail(name)}")
        return "not measured (did not start)"
    deadline = time.monotonic() + 20
    ready = None
    while time.monotonic() < deadline:
        try:
            ready = get(values["ADMIN_PORT"], "/readyz")
            if ready[0] == 200:
                return None
        except OSError:
            pass
        time.sleep(0.1)
    log(f"    /readyz never answered 200: {ready}\n{procs.log_tail(name)}")
    return "not measured (never ready)"


def token_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def check_row(name: str, want, got, ok: bool) -> dict:
    return {"check": name, "want": want, "got": str(got), "ok": bool(ok)}


def setup_limit(scenario: str, ports: dict, tokens: dict, redis_port: int | None) -> list[dict]:
    """limit-local / limit-redis: the route answers the token 200 and the
    request was counted where it should be (read back from /metrics)."""
    admin = ports["portcullis-admin"]
    limit = "per-user-local" if scenario == "limit-local" else "per-user-redis"
    path = "/limited-local/hello" if scenario == "limit-local" else "/limited-redis/hello"
    rows = []
    if scenario == "limit-redis":
        deadline, state = time.monotonic() + 10, None
        while time.monotonic() < deadline:
            try:
                state = json.loads(get(admin, "/readyz")[2]).get("redis")
            except (OSError, ValueError):
                state = None
            if state == "connected":
                break
            time.sleep(0.2)
        rows.append(check_row("/readyz redis", "connected", state, state == "connected"))
    try:
        status, _, _ = get(ports["portcullis"], path, None)
        rows.append(check_row("no token", 401, status, status == 401))
        status, _, _ = get(ports["portcullis"], path, tokens["single"])
        rows.append(check_row("valid token", 200, status, status == 200))
        if scenario == "limit-local":
            keys = metric(admin, "portcullis_rate_limit_keys", limit=limit)
            rows.append(check_row("keys tracked by the local limiter", "1", f"{keys:.0f}", keys == 1))
        else:
            by_redis = metric(admin, "portcullis_rate_limit_decisions_total", limit=limit, store="redis", result="allowed")
            others = metric(admin, "portcullis_rate_limit_decisions_total", limit=limit) - by_redis
            rows.append(check_row("decisions by Redis / by anything else", "1 / 0", f"{by_redis:.0f} / {others:.0f}",
                                  by_redis == 1 and others == 0))
            keys = int(redis_command(redis_port, "DBSIZE")) if redis_port else 0
            rows.append(check_row("keys in Redis", "1", keys, keys == 1))
    except OSError as e:
        rows.append(check_row("requests", "answers", f"error: {e}", False))
    return rows


def setup_revocations(ports: dict, tokens: dict, admin_token: str) -> list[dict]:
    """revoked-list: the second process passes the enforcement checks, takes
    REVOCATIONS revocations of other tokens through POST /revocations (half
    by jti, a quarter whole tokens, a quarter subjects: every index of the
    denylist is searched) and refuses those tokens, while the single token
    still passes and the first process holds no revocation at all."""
    rows = [dict(r, check=f"enforcement: {r['check']}") for r in enforcement_checks(ports["portcullis-revoked"], tokens)]
    admin = ports["portcullis-revoked-admin"]
    revoked = {}
    started = time.monotonic()
    failures = []
    for i, token in enumerate(tokens["valid"][:REVOCATIONS]):
        c = token_claims(token)
        kind = ("jti", "jti", "token", "sub")[i % 4]
        body = {"jti": c["jti"], "iss": c["iss"]} if kind == "jti" else {"token": token} if kind == "token" else {"sub": c["sub"]}
        try:
            status, text = post_json(admin, "/revocations", body, admin_token)
        except OSError as e:
            status, text = 0, str(e)
        if status != 200:
            failures.append(f"{status} {text[:200]}")
            if len(failures) >= 3:
                break
        revoked.setdefault(kind, token)
    rows.append(check_row(f"POST /revocations × {REVOCATIONS:,}", "all 200", failures[0] if failures else "all 200",
                          not failures))
    log(f"    {REVOCATIONS:,} revocations posted in {time.monotonic() - started:.1f}s")
    try:
        held = metric(admin, "portcullis_revocations")
        rows.append(check_row("revocations held", REVOCATIONS, f"{held:.0f}", held == REVOCATIONS))
        other = metric(ports["portcullis-admin"], "portcullis_revocations")
        rows.append(check_row("revocations held by the one-token process", 0, f"{other:.0f}", other == 0))
        status, _, _ = get(ports["portcullis-revoked"], "/api/hello", tokens["single"])
        rows.append(check_row("the measured token", 200, status, status == 200))
        for kind, token in sorted(revoked.items()):
            status, headers, _ = get(ports["portcullis-revoked"], "/api/hello", token)
            www = headers.get("www-authenticate", "")
            rows.append(check_row(f"revoked by {kind}", 401, f"{status} ({www})" if www else status,
                                  status == 401 and "revoked" in www))
            status, _, _ = get(ports["portcullis"], "/api/hello", token)
            rows.append(check_row(f"revoked by {kind}, at the one-token process", 200, status, status == 200))
    except OSError as e:
        rows.append(check_row("requests", "answers", f"error: {e}", False))
    return rows


class FakeIdp:
    """session-cookie's identity provider: only a token endpoint (POST
    /token), a thread of this process. The bench signs in as a browser
    would, without a browser: the navigation's redirect names the
    authorization endpoint (never visited) with `state`, `nonce` and the PKCE
    challenge; the bench registers a code for them here and comes back to
    the callback with it. The exchange checks the client secret, the
    redirect URI and the PKCE verifier, and answers the single token as the
    access token (1 h, no refresh token) with an RS256 ID token for that
    sign-in's nonce, signed by the bench's key (the issuer's JWKS)."""

    def __init__(self, port: int, signer: Signer, access_token: str, client_secret: str, redirect_uri: str):
        self.port = port
        self.signer = signer
        self.access_token = access_token
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.pending: dict[str, tuple[str, str]] = {}
        self.exchanged = 0
        self.refused: list[str] = []
        self.lock = threading.Lock()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode(errors="replace")))
                status, body = idp.exchange(self.path, self.headers.get("Authorization", ""), form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def authorization_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def expect(self, code: str, nonce: str, challenge: str) -> None:
        with self.lock:
            self.pending[code] = (nonce, challenge)

    def exchange(self, path: str, authorization: str, form: dict) -> tuple[int, dict]:
        basic = "Basic " + base64.b64encode(
            f"{urllib.parse.quote(CLIENT_ID, safe='')}:{urllib.parse.quote(self.client_secret, safe='')}".encode()
        ).decode()
        with self.lock:
            pending = self.pending.pop(form.get("code", ""), None)
        why = None
        if path != "/token":
            why = f"path {path}"
        elif authorization != basic:
            why = "client authentication"
        elif form.get("grant_type") != "authorization_code":
            why = f"grant_type {form.get('grant_type')}"
        elif pending is None:
            why = "unknown or reused code"
        elif form.get("redirect_uri") != self.redirect_uri:
            why = f"redirect_uri {form.get('redirect_uri')}"
        elif b64u(hashlib.sha256(form.get("code_verifier", "").encode()).digest()) != pending[1]:
            why = "PKCE verifier does not match the challenge"
        if why:
            with self.lock:
                self.refused.append(why)
            return 400, {"error": "invalid_grant", "error_description": why}
        now = int(time.time())
        access = self.access_token
        id_token = self.signer.token({
            "iss": ISSUER, "sub": token_claims(access)["sub"], "aud": CLIENT_ID, "azp": CLIENT_ID,
            "nonce": pending[0], "iat": now, "exp": now + 3600,
            "email": token_claims(access)["email"],
            "at_hash": b64u(hashlib.sha256(access.encode()).digest()[:16]),
        })
        with self.lock:
            self.exchanged += 1
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "id_token": id_token}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sessions_section(idp_port: int, listen_port: int) -> tuple[str, str]:
    """session-cookie's `sessions:` section and its browser_login route."""
    section = (
        "sessions:\n"
        "  issuer: bench\n"
        f'  public_url: "http://127.0.0.1:{listen_port}"\n'
        f"  client_id: {CLIENT_ID}\n"
        "  client_secret_env: BENCH_OIDC_SECRET\n"
        "  scopes: [openid, email, profile, bench:read]\n"
        "  # identity_from: access_token (the default): each request authenticates\n"
        "  # the session's access token, from the verified-token cache here.\n"
        f'  authorization_endpoint: "http://127.0.0.1:{idp_port}/authorize"\n'
        f'  token_endpoint: "http://127.0.0.1:{idp_port}/token"\n'
        "  cookie: {key_env: BENCH_SESSION_KEYS, max_age: 12h, idle_timeout: 1h}"
    )
    route = (
        "  - path: /app/**\n"
        "    browser_login: true\n"
        "    scopes: [bench:read]\n"
    )
    return section, route


def set_cookies(headers: list[tuple[str, str]]) -> list[str]:
    return [v for k, v in headers if k == "set-cookie"]


def session_cookie(headers: list[tuple[str, str]]) -> str | None:
    """The session cookie (all its parts) an answer sets, as a Cookie header."""
    parts = []
    for value in set_cookies(headers):
        pair = value.split(";", 1)[0].strip()
        name, _, val = pair.partition("=")
        rest = name[len(SESSION_COOKIE):] if name.startswith(SESSION_COOKIE) else None
        if val and rest is not None and (rest == "" or (rest.startswith("-") and rest[1:].isdigit())):
            parts.append(pair)
    return "; ".join(parts) or None


class SignInError(Exception):
    pass


def sign_in(port: int, idp: FakeIdp, path: str = "/app/hello") -> str:
    """A browser's sign-in: the navigation's redirect, the IdP's (skipped),
    the callback with a code and the sign-in cookie. The session's Cookie
    header."""
    status, headers, body = request(port, path, NAVIGATION)
    location = dict(headers).get("location", "")
    if status != 302 or not location.startswith(idp.authorization_endpoint + "?"):
        raise SignInError(f"the navigation answered {status} {location or body[:200]}, not 302 to the IdP")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    missing = [k for k in ("state", "nonce", "code_challenge") if k not in query]
    if missing or query.get("code_challenge_method") != "S256":
        raise SignInError(f"the redirect lacks {missing or 'code_challenge_method=S256'}: {location}")
    state = query["state"]
    prefix = f"{SESSION_COOKIE}-signin-"
    signin = [c.split(";", 1)[0] for c in set_cookies(headers) if c.startswith(prefix)]
    if len(signin) != 1:
        raise SignInError(f"expected one sign-in cookie, got {set_cookies(headers)}")
    code = secrets.token_urlsafe(16)
    idp.expect(code, query["nonce"], query["code_challenge"])
    callback = f"{CALLBACK}?code={code}&state={urllib.parse.quote(state, safe='')}"
    status, headers, body = request(port, callback, dict(NAVIGATION, Cookie=signin[0]))
    cookie = session_cookie(headers)
    if status != 302 or not cookie:
        raise SignInError(f"the callback answered {status} {body[:200]} (refused by the IdP: {idp.refused[-1:]})")
    return cookie


def setup_session(ports: dict, idp: FakeIdp, work: Path) -> list[dict]:
    """session-cookie: a sign-in through the fake IdP completes; its cookie
    (no navigation headers, as wrk sends it) answers 200 without renewing,
    no cookie answers 401 and a tampered one 401."""
    port, admin = ports["portcullis"], ports["portcullis-admin"]
    rows = []
    try:
        status, headers, _ = request(port, "/app/hello", {"Accept": "application/json"})
        rows.append(check_row("no cookie, not a navigation", 401, status, status == 401))
        try:
            cookie = sign_in(port, idp)
        except SignInError as e:
            rows.append(check_row("sign-in (navigation 302, callback 302 with the session cookie)", "session", e, False))
            return rows
        parts = cookie.count(";") + 1
        rows.append(check_row("sign-in (navigation 302 to the IdP, callback 302 with the session cookie)",
                              "session", f"cookie of {len(cookie):,} bytes in {parts} part{'s' if parts > 1 else ''}",
                              True))
        (work / "session-cookie.txt").write_text(cookie + "\n")
        status, headers, _ = request(port, "/app/hello", {"Cookie": cookie})
        renewed = set_cookies(headers)
        rows.append(check_row("the session cookie (as wrk sends it)", "200, no Set-Cookie",
                              f"{status}{', Set-Cookie' if renewed else ', no Set-Cookie'}",
                              status == 200 and not renewed))
        name, _, value = cookie.split(";", 1)[0].partition("=")
        mid = len(value) // 2
        tampered = f"{name}={value[:mid]}{'B' if value[mid] == 'A' else 'A'}{value[mid + 1:]}"
        status, _, _ = request(port, "/app/hello", {"Cookie": tampered})
        rows.append(check_row("a tampered session cookie", 401, status, status == 401))
        completed = metric(admin, "portcullis_sign_ins_total", result="completed")
        failed = metric(admin, "portcullis_sign_ins_total") - completed - metric(
            admin, "portcullis_sign_ins_total", result="started")
        rows.append(check_row("sign-ins completed / failed", "1 / 0", f"{completed:.0f} / {failed:.0f}",
                              completed == 1 and failed == 0))
    except OSError as e:
        rows.append(check_row("requests", "answers", f"error: {e}", False))
    return rows


def verify_es256(public_pem: Path, signing_input: bytes, signature: bytes) -> bool | None:
    """An ES256 JWS signature (r || s) checked with `cryptography`; None
    when that package is missing."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils
    except ImportError:
        return None
    key = serialization.load_pem_public_key(public_pem.read_bytes())
    if len(signature) != 64:
        return False
    der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def setup_assertion(ports: dict, tokens: dict, work: Path) -> list[dict]:
    """upstream-assertion: the second process passes the enforcement checks
    and the upstream receives a valid ES256 assertion of the request (read
    back from nginx, which echoes the header on ASSERTION_PATH), while the
    first process sends none."""
    port = ports["portcullis-assertion"]
    rows = [dict(r, check=f"enforcement: {r['check']}") for r in enforcement_checks(port, tokens)]
    try:
        status, _, body = get(port, ASSERTION_PATH, tokens["single"])
        jwt = body.strip()
        parts = jwt.split(".")
        if status != 200 or len(parts) != 3:
            rows.append(check_row("the upstream receives an assertion", "a JWT", f"{status} {jwt[:80]!r}", False))
            return rows
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        c = token_claims(jwt)
        single = token_claims(tokens["single"])
        want = {"iss": ASSERTION_ISSUER, "sub": single["sub"], "aud": "fixed", "method": "GET", "path": ASSERTION_PATH}
        got = {k: c.get(k) for k in want}
        rows.append(check_row("assertion header (alg, typ)", "ES256 JWT", f"{header.get('alg')} {header.get('typ')}",
                              header.get("alg") == "ES256" and header.get("typ") == "JWT" and "kid" in header))
        rows.append(check_row("assertion claims (iss, sub, aud, method, path)", "as sent", "as sent" if got == want else got,
                              got == want and c.get("exp", 0) - c.get("iat", 0) == 30 and bool(c.get("jti"))))
        signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
        valid = verify_es256(work / "assertion-public.pem", f"{parts[0]}.{parts[1]}".encode(), signature)
        rows.append(check_row("assertion signature (the key's public half)", "valid",
                              "not checked (no cryptography package)" if valid is None else "valid" if valid else "INVALID",
                              valid is not False))
        status, _, body = get(port, "/.well-known/portcullis/jwks.json")
        kids = [k.get("kid") for k in json.loads(body).get("keys", [])] if status == 200 else []
        rows.append(check_row("JWKS on the listener names the assertion's kid", "yes", "yes" if header.get("kid") in kids
                              else f"{status} {kids}", header.get("kid") in kids))
        status, _, body = get(ports["portcullis"], ASSERTION_PATH, tokens["single"])
        rows.append(check_row("the one-token process sends no assertion", "200, none",
                              f"{status}, {'none' if not body.strip() else 'one'}", status == 200 and not body.strip()))
    except (OSError, ValueError) as e:
        rows.append(check_row("requests", "answers", f"error: {e}", False))
    return rows


def setup_tls(ports: dict, tokens: dict, work: Path, connections: int) -> list[dict]:
    """tls: the TLS process serves the bench's certificate, passes the
    enforcement checks over HTTPS, and this wrk speaks TLS to it."""
    port = ports["portcullis-tls"]
    rows = []
    try:
        context = client_tls()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
                version, cipher = tls.version(), tls.cipher()[0]
        ours = ssl.PEM_cert_to_DER_cert((work / "tls.crt").read_text())
        rows.append(check_row("handshake (Python's OpenSSL client, no ALPN, like wrk)", "the bench's certificate",
                              f"{version} {cipher}, {'the bench certificate' if der == ours else 'ANOTHER certificate'}",
                              der == ours and version in ("TLSv1.2", "TLSv1.3")))
    except (OSError, ssl.SSLError) as e:
        rows.append(check_row("handshake", "TLS", f"error: {e}", False))
        return rows
    rows += [dict(r, check=f"enforcement: {r['check']}") for r in enforcement_checks(port, tokens, tls=True)]
    try:
        r = wrk(port, "/api/hello", "single", work, 1, min(4, connections), tls=True)
        ok = r["requests"] > 0 and r["non2xx"] == 0 and r["socket_errors"] == 0
        rows.append(check_row("wrk over https (1 s probe)", "all 2xx", f"{r['requests']:,} requests, {r['non2xx']} non-2xx, "
                              f"{r['socket_errors']} socket errors", ok))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        rows.append(check_row("wrk over https (1 s probe)", "all 2xx", f"this wrk cannot: {str(e)[:200]}", False))
    return rows


def make_tls_files(work: Path) -> None:
    """A self-signed EC P-256 certificate for 127.0.0.1 (tls and the HTTPS
    scenarios), and the same certificate and key in one PEM file for
    HAProxy."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(work / "tls.key"), "-out", str(work / "tls.crt"), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    (work / "tls.pem").write_bytes((work / "tls.crt").read_bytes() + (work / "tls.key").read_bytes())


def setup_https(port: int, work: Path, https: list[str], connections: int) -> tuple[list[dict], str]:
    """The HTTPS scenarios' checks of one proxy's TLS process: the handshake
    (TLS 1.3, the bench's certificate, by bytes), the public route 200 over
    HTTPS, and a 1 s probe with each selected scenario's load generator
    (wrk over https, ab), all 2xx. Also what was negotiated (protocol and
    cipher suite; with ab, the key exchange group), to compare across the
    proxies."""
    rows = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_tls().wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
                version, cipher = tls.version(), tls.cipher()[0]
        ours = ssl.PEM_cert_to_DER_cert((work / "tls.crt").read_text())
        rows.append(check_row("handshake (Python's OpenSSL client, no ALPN, like wrk and ab)",
                              "TLSv1.3, the bench's certificate",
                              f"{version} {cipher}, {'the bench certificate' if der == ours else 'ANOTHER certificate'}",
                              der == ours and version == "TLSv1.3"))
        negotiated = f"{version} {cipher}"
        status, _, _ = get(port, "/public/hello", tls=True)
        rows.append(check_row("public route over HTTPS", 200, status, status == 200))
    except (OSError, ssl.SSLError) as e:
        rows.append(check_row("handshake", "TLS", f"error: {e}", False))
        return rows, ""
    for scenario in https:
        tool = "ab, a new connection per request" if scenario == "https-handshake" else "wrk over https, keep-alive"
        try:
            r = load(scenario, port, "/public/hello", "none", work, 1, min(4, connections))
            ok = r["requests"] > 0 and r["non2xx"] == 0 and r["socket_errors"] == 0
            got = f"{r['requests']:,} requests, {r['non2xx']} non-2xx, {r['socket_errors']} failed"
            if "tls" in r:
                negotiated = r["tls"]
                got += f"; {negotiated}"
            rows.append(check_row(f"{tool} (1 s probe)", "all 2xx", got, ok))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            rows.append(check_row(f"{tool} (1 s probe)", "all 2xx", f"error: {str(e)[:200]}", False))
    return rows, negotiated


def grpc_call(port: int, work: Path, token: str | None) -> tuple[list[dict], int]:
    """One gRPC call as h2load makes it (nghttp, h2c with prior knowledge):
    the answer's header blocks (the headers, then the trailers; a
    trailers-only answer has one) and its DATA bytes."""
    argv = ["nghttp", "-nv", "-d", str(work / "grpc-request.bin"), "-H", "content-type: application/grpc",
            "-H", "te: trailers", *(["-H", f"authorization: Bearer {token}"] if token else []),
            f"http://127.0.0.1:{port}{GRPC_PATH}"]
    out = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=10)
    blocks, fields, data = [], {}, 0
    for line in out.stdout.splitlines():
        if m := re.search(r"\] recv \(stream_id=\d+\) (:?[^:]+): (.*)$", line):
            fields[m.group(1)] = m.group(2)
        elif re.search(r"\] recv HEADERS frame ", line):
            blocks.append(fields)
            fields = {}
        elif m := re.search(r"\] recv DATA frame <length=(\d+)", line):
            data += int(m.group(1))
    if not blocks:
        raise OSError(f"nghttp got no answer (rc {out.returncode}): {out.stdout[-400:]} {out.stderr[-400:]}")
    return blocks, data


def setup_grpc(port: int, work: Path, tokens: dict, direct: bool) -> list[dict]:
    """grpc's checks, with nghttp: through portcullis a call without a
    token, with a forged one or without the scope is refused in gRPC form
    (HTTP 200, trailers only, grpc-status 16 or 7, no message) and the
    valid one gets the upstream's answer (a 5-byte message, then the
    trailer grpc-status 0); straight to the upstream (`direct`), the same
    call gets that answer."""
    t = tokens["checks"]
    cases = [("valid token", t["valid"], "0")]
    if not direct:
        cases = [("no token", None, "16"), ("bad signature", t["bad signature"], "16"),
                 ("missing scope", t["no scope"], "7"), *cases]
    rows = []
    for name, token, want in cases:
        passed = want == "0"
        try:
            blocks, data = grpc_call(port, work, token)
            status, grpc = blocks[0].get(":status"), blocks[-1].get("grpc-status")
            got = (f"{status}, grpc-status {grpc}, {'trailers only' if len(blocks) == 1 else 'trailers'}, "
                   f"{data} message bytes")
            ok = (status == "200" and grpc == want and blocks[0].get("content-type") == "application/grpc"
                  and (len(blocks) == 2 and data == len(GRPC_FRAME) if passed else len(blocks) == 1 and data == 0))
        except (OSError, subprocess.TimeoutExpired) as e:
            got, ok = f"error: {e}", False
        rows.append(check_row(name, f"200, grpc-status {want}, " + (f"trailers, {len(GRPC_FRAME)} message bytes"
                                                                    if passed else "trailers only"), got, ok))
    return rows


def make_api_keys(work: Path) -> dict[str, str]:
    """api-key's key file (keys/bench.yaml: the bench's key with bench:read,
    another without it; each stored as its SHA-256, as `portcullis keys new`
    prints them) and the keys of its checks; the bench's key also where wrk
    reads it (api-key.txt)."""

    def new_key(subject: str, scopes: list[str]) -> tuple[str, str, str]:
        key_id = secrets.token_hex(6)
        key = f"pk_{key_id}_{b64u(secrets.token_bytes(32))}"
        entry = (f"  - id: {key_id}\n"
                 f"    sha256: {hashlib.sha256(key.encode()).hexdigest()}\n"
                 f"    subject: {json.dumps(subject)}\n"
                 f"    scopes: {json.dumps(scopes)}\n")
        return key_id, key, entry

    key_id, valid, entry = new_key("bench-api-key", [SCOPE])
    _, no_scope, other = new_key("bench-api-key-write", ["bench:write"])
    (work / "keys").mkdir(exist_ok=True)
    (work / "keys" / "bench.yaml").write_text(
        "# api-key: the bench's key (bench:read) and one without bench:read (the 403 check).\nkeys:\n"
        + entry + other)
    (work / "api-key.txt").write_text(valid + "\n")
    return {
        "valid": valid,
        "wrong secret": f"pk_{key_id}_{b64u(secrets.token_bytes(32))}",
        "unknown id": f"pk_{secrets.token_hex(6)}_{b64u(secrets.token_bytes(32))}",
        "no scope": no_scope,
    }


def header_checks(port: int, cases: list[tuple[str, str, dict, int, object]]) -> list[dict]:
    """Requests with the given headers: (check, path, headers, status
    wanted, what the answer must also have: a WWW-Authenticate fragment, a
    callable on (WWW-Authenticate, body), or None)."""
    rows = []
    for name, path, headers, want, also in cases:
        try:
            status, pairs, body = request(port, path, headers)
            www = dict(pairs).get("www-authenticate", "")
            if also is None:
                extra = True
            elif callable(also):
                extra = also(www, body)
            else:
                extra = also in www.lower()
            got = f"{status}" + (f" ({www})" if www else "")
            rows.append(check_row(name, want, got, status == want and extra))
        except OSError as e:
            rows.append(check_row(name, want, f"error: {e}", False))
    return rows


def setup_api_key(ports: dict, tokens: dict, keys: dict) -> list[dict]:
    """api-key: its process (the first's configuration plus api_keys) passes
    the enforcement checks, answers the bench's key 200 (as wrk sends it,
    `Authorization: ApiKey`), refuses a wrong secret and an unknown id 401
    invalid_key and a key without the scope 403, challenges for both kinds
    without a credential; the first process (no api_keys) refuses the key."""
    port = ports["portcullis-apikey"]
    rows = [dict(r, check=f"enforcement: {r['check']}") for r in enforcement_checks(port, tokens)]
    invalid_key = lambda www, _body: "apikey" in www.lower() and "invalid_key" in www  # noqa: E731
    rows += header_checks(port, [
        ("the bench's API key (Authorization: ApiKey, as wrk sends it)", "/api/hello",
         {"Authorization": f"ApiKey {keys['valid']}"}, 200, None),
        ("the key's id with a wrong secret", "/api/hello",
         {"Authorization": f"ApiKey {keys['wrong secret']}"}, 401, invalid_key),
        ("an unknown key id", "/api/hello", {"Authorization": f"ApiKey {keys['unknown id']}"}, 401, invalid_key),
        ("a key without bench:read", "/api/hello", {"Authorization": f"ApiKey {keys['no scope']}"}, 403,
         "insufficient_scope"),
        ("no credential: both challenges", "/api/hello", {}, 401,
         lambda www, _body: "bearer" in www.lower() and "apikey" in www.lower()),
    ])
    rows += [dict(r, check=f"the one-token process (no api_keys): {r['check']}") for r in header_checks(
        ports["portcullis"], [("the bench's API key", "/api/hello", {"Authorization": f"ApiKey {keys['valid']}"},
                               401, None)])]
    return rows


def setup_claims(ports: dict, tokens: dict) -> list[dict]:
    """claims: its process (the first's configuration plus the policy file
    conf/portcullis-claims.yaml) passes the enforcement checks and answers
    the single token 200 on its own path, where the three conditions hold,
    and 403 access_denied (no challenge) on another user's path and to a
    token without `email`; the refusals are counted as claim_not_met."""
    port, admin = ports["portcullis-claims"], ports["portcullis-claims-admin"]
    rows = [dict(r, check=f"enforcement: {r['check']}") for r in enforcement_checks(port, tokens)]

    def denied(www: str, body: str) -> bool:
        try:
            return not www and json.loads(body).get("error") == "access_denied"
        except ValueError:
            return False

    no_email = tokens["checks"]["no email"]
    single = tokens["single"]
    rows += header_checks(port, [
        (f"own path {CLAIMS_PATH} (sub, email, scope: all hold)", CLAIMS_PATH,
         {"Authorization": f"Bearer {single}"}, 200, None),
        (f"another user's path {OTHER_USER_PATH} (sub ≠ {{user}})", OTHER_USER_PATH,
         {"Authorization": f"Bearer {single}"}, 403, denied),
        ("a token without email, on its own path", f"/users/{token_claims(no_email)['sub']}/hello",
         {"Authorization": f"Bearer {no_email}"}, 403, denied),
        ("no token", CLAIMS_PATH, {}, 401, "bearer"),
    ])
    try:
        refused = metric(admin, "portcullis_requests_total", decision="claim_not_met")
        rows.append(check_row("decisions claim_not_met", 2, f"{refused:.0f}", refused == 2))
    except OSError as e:
        rows.append(check_row("decisions claim_not_met", 2, f"error: {e}", False))
    return rows


def send_all(port: int, requests: list[tuple[str, dict]]) -> list[tuple[int, dict]]:
    """GET each (path, headers) in turn on one keep-alive connection (a new
    one when the server closes it); each answer's status and headers."""
    answers, conn = [], None
    try:
        for path, headers in requests:
            for attempt in (0, 1):
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                try:
                    conn.request("GET", path, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    answers.append((resp.status, {k.lower(): v for k, v in resp.getheaders()}))
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()
                    conn = None
                    if attempt:
                        raise
    finally:
        if conn is not None:
            conn.close()
    return answers


def tally(statuses: list[int]) -> str:
    """Statuses in order of first appearance, with their counts."""
    return ", ".join(f"{statuses.count(s):,} × {s}" for s in dict.fromkeys(statuses))


def spent_then_refused(answers: list[tuple[int, dict]], limit: int) -> tuple[str, bool, int]:
    """A client's forgeries past its budget: 401 (verified) until the budget
    is spent, then 429 with Retry-After, but for a few 401s once a refusal's
    Retry-After has passed: what the budget gave back meanwhile (10 a second
    with FLOOD_BUDGET) is verified before it refuses again. What was seen,
    whether it is that, and the number of 429s. The first 429 may come a
    little later than `limit` (the budget gives some back while the checks
    run) or earlier (the enforcement checks spent some)."""
    statuses = [status for status, _ in answers]
    if 429 not in statuses:
        return f"{tally(statuses)}, no 429", False, 0
    first = statuses.index(429)
    after = statuses[first:]
    retry = [h.get("retry-after", "") for status, h in answers if status == 429]
    # Once a refusal's Retry-After has passed, the forgeries are verified
    # (401) again until what the budget gave back is spent: a few 401s a
    # second among the 429s.
    shape = (set(statuses[:first]) <= {401} and set(after) <= {401, 429}
             and after.count(401) <= max(10, len(after) // 5))
    ok = shape and first <= limit + 60 and all(r.isdigit() and int(r) >= 1 for r in retry)
    got = (f"401 × {first:,}, then 429 × {len(retry):,}"
           + (f" and 401 × {after.count(401)} (verified once a Retry-After had passed)" if after.count(401) else "")
           + f" (Retry-After: {', '.join(sorted(set(retry)))})") if shape else tally(statuses)
    return got, ok, len(retry)


def setup_flood(scenario: str, port: int, admin: int, tokens: dict) -> list[dict]:
    """The floods' checks of a portcullis flood process (portcullis.yaml
    plus trusted_proxies and FLOOD_BUDGET): the enforcement checks, then

    - forged-one-client: one client's forgeries are answered 401 until its
      budget is spent, then 429 with Retry-After; the single token (verified
      by the enforcement checks, so cached) is still 200, and another
      client's forgery (X-Forwarded-For from the trusted 127.0.0.1) 401;
    - forged-many-clients: more forgeries than one budget, each from the
      next of FLOOD_CLIENTS clients as wrk sends them, are all answered 401;
      one client past its budget through X-Forwarded-For gets 429 with
      Retry-After, so the budget is on and keyed by the forwarded client;

    and portcullis counted exactly the 429s seen as budget refusals. The
    forgeries are not those of wrk's sequence (no refused-token cache hit
    in the measurement)."""
    rows = [dict(r, check=f"enforcement: {r['check']}") for r in enforcement_checks(port, tokens)]
    limit, valid = FLOOD_BUDGET["limit"], tokens["valid"]
    budget = f"{limit} per {FLOOD_BUDGET['per']}"

    def forged(i: int) -> str:
        return forge(valid, 98_000_000 + i)

    try:
        refused_before = metric(admin, "portcullis_failed_auth_budget_refusals_total")
        if scenario == "forged-one-client":
            answers = send_all(port, [("/api/hello", {"Authorization": f"Bearer {forged(i)}"})
                                      for i in range(limit + 100)])
            got, ok, seen = spent_then_refused(answers, limit)
            rows.append(check_row(f"{limit + 100:,} forgeries from one client (the peer, 127.0.0.1; budget {budget})",
                                  "401 until the budget is spent, then 429 with Retry-After", got, ok))
            status, _, _ = get(port, "/api/hello", tokens["single"])
            rows.append(check_row("the single token (verified by the checks, cached) while over budget", 200,
                                  status, status == 200))
            status, _, _ = request(port, "/api/hello", {"Authorization": f"Bearer {forged(limit + 100)}",
                                                        "X-Forwarded-For": "10.255.255.254"})
            rows.append(check_row("a forgery from another client (X-Forwarded-For from the trusted 127.0.0.1)", 401,
                                  status, status == 401))
        else:
            answers = send_all(port, [
                ("/api/hello", {"Authorization": f"Bearer {forge(valid, 50_000_000 + i)}",
                                "X-Forwarded-For": flood_client(50_000_000 + i)})
                for i in range(limit + 100)])
            statuses = [status for status, _ in answers]
            rows.append(check_row(f"{limit + 100:,} forgeries, each from the next of the {FLOOD_CLIENTS:,} clients "
                                  "(X-Forwarded-For, as wrk sends them)", "all 401", tally(statuses),
                                  set(statuses) == {401}))
            answers = send_all(port, [("/api/hello", {"Authorization": f"Bearer {forged(i)}",
                                                      "X-Forwarded-For": "10.255.255.254"})
                                      for i in range(limit + 100)])
            got, ok, seen = spent_then_refused(answers, limit)
            rows.append(check_row(f"{limit + 100:,} forgeries from one client outside the {FLOOD_CLIENTS:,} "
                                  f"(X-Forwarded-For: 10.255.255.254; budget {budget})",
                                  "401 until the budget is spent, then 429 with Retry-After", got, ok))
        refused = metric(admin, "portcullis_failed_auth_budget_refusals_total") - refused_before
        rows.append(check_row("portcullis_failed_auth_budget_refusals_total", f"{seen:,} (the 429s)", f"{refused:,.0f}",
                              refused == seen))
    except OSError as e:
        rows.append(check_row("requests", "answers", f"error: {e}", False))
    return rows


def setup_flood_unbudgeted(scenario: str, port: int, tokens: dict) -> list[dict]:
    """The floods' checks of HAProxy jwt_verify (its one process, whose
    enforcement checks have passed): it has no budget, so as many forgeries
    from one client as make portcullis answer 429 are all verified and
    answered 401; with X-Forwarded-For (which it ignores), the same."""
    limit, valid = FLOOD_BUDGET["limit"], tokens["valid"]
    if scenario == "forged-one-client":
        name = f"{limit + 100:,} forgeries from one client (no budget: each verified)"
        reqs = [("/api/hello", {"Authorization": f"Bearer {forge(valid, 98_000_000 + i)}"})
                for i in range(limit + 100)]
    else:
        name = "100 forgeries, each from the next client (X-Forwarded-For, as wrk sends them)"
        reqs = [("/api/hello", {"Authorization": f"Bearer {forge(valid, 50_000_000 + i)}",
                                "X-Forwarded-For": flood_client(50_000_000 + i)}) for i in range(100)]
    try:
        statuses = [status for status, _ in send_all(port, reqs)]
        return [check_row(name, "all 401", tally(statuses), set(statuses) == {401})]
    except OSError as e:
        return [check_row(name, "all 401", f"error: {e}", False)]


MISSES = "portcullis_token_cache_misses_total"


def flood_counts(admin: int) -> tuple[float, float]:
    """A flood process's answers so far: refused by the budget (429) and
    verified and refused (401 invalid_token)."""
    return (metric(admin, "portcullis_failed_auth_budget_refusals_total"),
            metric(admin, "portcullis_requests_total", decision="invalid_token"))


def flood_answers(scenario: str, r: dict) -> tuple[str, bool]:
    """A portcullis flood run's answers, with its own counts of 429s and
    401s (wrk tells only 2xx from the rest): forged-one-client is held at
    429 (at least 90 % of the run's answers), forged-many-clients never is
    (not one 429, warm-up included)."""
    summary, ok = r["answers"], r["answers_ok"]
    refused, verified, warm = r["budget_refusals"], r["verified_refusals"], r["budget_refusals_warmup"]
    if scenario == "forged-one-client":
        summary += f": {refused:,.0f} × 429 (budget), {verified:,.0f} × 401"
        if refused + verified == 0 or refused < 0.9 * (refused + verified):
            summary += ", the budget held back less than 90 %"
            ok = False
    else:
        summary += f": {verified:,.0f} × 401, {refused:,.0f} × 429"
        if refused or warm:
            summary += f" ({warm:,.0f} more in the warm-up): the budget applied"
            ok = False
    return summary, ok


def make_assertion_key(work: Path) -> None:
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(work / "assertion-key.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(work / "assertion-key.pem"), "-pubout",
                    "-out", str(work / "assertion-public.pem")], check=True, capture_output=True)


def fresh_session(port: int, idp: FakeIdp | None, work: Path) -> float:
    """A new sign-in for session-cookie's next wrk run, its cookie where wrk
    reads it; when it was made."""
    if idp is None:
        raise SignInError("no fake IdP")
    cookie = sign_in(port, idp)
    (work / "session-cookie.txt").write_text(cookie + "\n")
    return time.time()


def run(args, proxies, scenarios, work: Path, out_dir: Path, procs: Processes, meta: dict) -> int:
    log(f"==> keys and tokens (in {work})")
    tokens = make_tokens(work)
    meta["token_chars"] = tokens["length"]
    meta["signing"] = tokens["backend"]

    selected = [s[0] for s in scenarios]
    features = [s for s in FEATURES if s in selected] if "portcullis" in proxies else []
    https = [s for s in HTTPS if s in selected]
    names = ["upstream", "upstream-grpc", "jwks", *proxies, "portcullis-admin"]
    if "revoked-list" in features:
        names += ["portcullis-revoked", "portcullis-revoked-admin"]
    if "limit-redis" in features:
        names.append("redis")
    if "session-cookie" in features:
        names.append("idp")
    for scenario in ("upstream-assertion", "tls", "api-key", "claims"):
        if scenario in features or (scenario == "tls" and https and "portcullis" in proxies):
            names += [INSTANCE[scenario], INSTANCE[scenario] + "-admin"]
    if "portcullis" in proxies:
        for scenario, name in FLOOD_INSTANCE.items():
            if scenario in selected:
                names += [name, name + "-admin"]
    names += [f"{proxy}-tls" for proxy in ("nginx", "haproxy") if https and proxy in proxies]
    if "grpc" in selected and "portcullis" in proxies:
        names += ["portcullis-grpc", "portcullis-grpc-admin"]
    ports = {name: free_port() for name in names}
    values = {
        "DIR": work,
        "UPSTREAM_PORT": ports["upstream"],
        "GRPC_PORT": ports["upstream-grpc"],
        "JWKS_PORT": ports["jwks"],
        "ISSUER": ISSUER,
        "AUDIENCE": AUDIENCE,
        "USER_LINE": "user root root;" if os.geteuid() == 0 else "# not root: workers keep our user",
        "THREADS": args.threads,
    }
    # Random secrets, in the environment of the portcullis processes only.
    admin_token = secrets.token_hex(16)
    client_secret = secrets.token_urlsafe(24)
    portcullis_env = dict(os.environ, BENCH_ADMIN_TOKEN=admin_token, BENCH_REDIS_KEY=secrets.token_hex(16),
                          BENCH_OIDC_SECRET=client_secret,
                          BENCH_SESSION_KEYS=base64.b64encode(secrets.token_bytes(32)).decode())
    idp = None
    if "session-cookie" in features and "portcullis" in ports:
        values["SESSIONS"], values["SESSION_ROUTE"] = sessions_section(ports["idp"], ports["portcullis"])
        idp = FakeIdp(ports["idp"], tokens["signer"], tokens["single"], client_secret,
                      f"http://127.0.0.1:{ports['portcullis']}{CALLBACK}")
        log(f"==> fake IdP token endpoint for session-cookie on 127.0.0.1:{ports['idp']} (a thread of bench.py)")
    try:
        return measure(args, proxies, scenarios, work, out_dir, procs, meta, tokens, features, ports, values,
                       admin_token, portcullis_env, idp)
    finally:
        if idp:
            idp.stop()


def measure(args, proxies, scenarios, work, out_dir, procs, meta, tokens, features, ports, values,
            admin_token, portcullis_env, idp) -> int:
    selected = [s[0] for s in scenarios]
    https = [s for s in HTTPS if s in selected]

    log("==> fixed upstream (nginx, core 1)")
    # grpc: the upstream's answer, and the request h2load and nghttp send.
    (work / "www" / "grpc-reply").write_bytes(GRPC_FRAME)
    (work / "grpc-request.bin").write_bytes(GRPC_FRAME)
    conf = work / "nginx-upstream.conf"
    conf.write_text(fill("nginx-upstream.conf", values))
    up = procs.start("upstream", LOAD_CORE, ["nginx", "-p", str(work), "-e", str(work / "nginx-upstream.error.log"),
                                              "-c", str(conf), "-g", "daemon off;"])
    if not all(wait_port(ports[name], up) for name in ("upstream", "upstream-grpc", "jwks")):
        raise SystemExit("upstream nginx did not start:\n" + procs.log_tail("upstream")
                         + (work / "nginx-upstream.error.log").read_text(errors="replace")[-2000:])
    status, _, body = get(ports["jwks"], "/jwks.json")
    assert status == 200 and KID in body, f"JWKS not served: {status}"

    # Why a feature scenario is not measured (the other proxies never are).
    scenario_status: dict[str, str] = {}
    # Why a peer scenario is not measured on one of its proxies (or, for
    # grpc, without a proxy).
    cell_status: dict[tuple[str, str], str] = {}

    def unmeasured(scenario: str, why: str) -> None:
        for who in PEERS[scenario]:
            if who in proxies or who == DIRECT:
                cell_status[(who, scenario)] = why

    if "https-handshake" in selected and not shutil.which("ab"):
        unmeasured("https-handshake", "not measured (no ab; Debian: apt-get install apache2-utils)")
    if "grpc" in selected and not (shutil.which("h2load") and shutil.which("nghttp")):
        unmeasured("grpc", "not measured (no h2load or nghttp; Debian: apt-get install nghttp2-client)")
    redis_port = None
    if "limit-redis" in features:
        log(f"==> redis-server for limit-redis (core {LOAD_CORE})")
        why = start_redis(procs, work, ports["redis"])
        if why:
            scenario_status["limit-redis"] = why
        else:
            redis_port = ports["redis"]

    status_of: dict[str, str] = {}
    pids: dict[str, int] = {}
    for proxy in proxies:
        port = ports[proxy]
        v = dict(values, LISTEN_PORT=port)
        core = args.scaled_cores if proxy in ("bare-pingora", "portcullis") else PROXY_CORE
        log(f"==> {LABEL[proxy]} on 127.0.0.1:{port} (core {core})")
        if proxy in ("nginx", "haproxy", "haproxy-jwt"):
            argv = peer_command(work, {"nginx": "nginx-proxy.conf", "haproxy": "haproxy-passthrough.cfg",
                                       "haproxy-jwt": "haproxy-jwt.cfg"}[proxy], v)
            if argv is None:
                status_of[proxy] = "not measured (config rejected)"
                continue
        elif proxy == "bare-pingora":
            argv = [args.bare_pingora, f"127.0.0.1:{port}", f"127.0.0.1:{ports['upstream']}", str(args.threads)]
        else:
            v["ADMIN_PORT"] = ports["portcullis-admin"]
            why = start_portcullis(args, procs, work, "portcullis",
                                   portcullis_config(v, bool(features), redis_port, "bench-portcullis:"), v,
                                   portcullis_env)
            if why:
                status_of[proxy] = why
            else:
                pids[proxy] = procs.procs[proxy].pid
            continue
        proc = procs.start(proxy, core, argv)
        if not wait_port(port, proc):
            status_of[proxy] = "not measured (did not start)"
            log(f"    did not start:\n{procs.log_tail(proxy)}")
            continue
        pids[proxy] = proc.pid
    if "revoked-list" in features and "portcullis" in pids:
        # Configured as the first (its own key_prefix), idle but for revoked-list.
        port = ports["portcullis-revoked"]
        log(f"==> portcullis for revoked-list on 127.0.0.1:{port} (core {args.scaled_cores})")
        v = dict(values, LISTEN_PORT=port, ADMIN_PORT=ports["portcullis-revoked-admin"])
        why = start_portcullis(args, procs, work, "portcullis-revoked",
                               portcullis_config(v, True, redis_port, "bench-portcullis-revoked:"), v, portcullis_env)
        if why:
            scenario_status["revoked-list"] = why
    if https or "tls" in features:
        make_tls_files(work)
    # upstream-assertion, tls, api-key and claims: configured as the first,
    # plus their section. tls's process is also portcullis's in the HTTPS
    # scenarios (on the public route).
    api_keys: dict[str, str] = {}
    for scenario in ("upstream-assertion", "tls", "api-key", "claims"):
        served = [s for s in (scenario, *(https if scenario == "tls" else [])) if s in features or s in https]
        if not served or "portcullis" not in pids:
            continue
        name = INSTANCE[scenario]
        if scenario == "upstream-assertion":
            make_assertion_key(work)
            sections = ("upstream_assertion:\n"
                        f'  issuer: "{ASSERTION_ISSUER}"\n'
                        f'  key_file: "{work / "assertion-key.pem"}"\n'
                        "  alg: ES256")
        elif scenario == "tls":
            sections = f'tls:\n  cert: "{work / "tls.crt"}"\n  key: "{work / "tls.key"}"'
        elif scenario == "api-key":
            api_keys = make_api_keys(work)
            sections = f'api_keys:\n  files: ["{work / "keys" / "*.yaml"}"]'
        else:
            # The claims route, in a policy file of its own: appended after
            # every route of the main file. (Not named after the template:
            # the process's own configuration is portcullis-claims.yaml.)
            (work / "claims-policy.yaml").write_text(fill("portcullis-claims.yaml", values))
            sections = f'policy_files: ["{work / "claims-policy.yaml"}"]'
        port = ports[name]
        log(f"==> portcullis for {', '.join(served)} on 127.0.0.1:{port} (core {args.scaled_cores})")
        v = dict(values, LISTEN_PORT=port, ADMIN_PORT=ports[name + "-admin"])
        why = start_portcullis(args, procs, work, name,
                               portcullis_config(v, True, redis_port, f"bench-{name}:", sections), v, portcullis_env)
        if why:
            for s in served:
                if s in FEATURES:
                    scenario_status[s] = why
                else:
                    cell_status[("portcullis", s)] = why
    # The floods: portcullis.yaml (what bad-signature measures) plus a
    # trusted proxy (the load generator, 127.0.0.1, for forged-many-clients'
    # X-Forwarded-For) and the failed-authentication budget; a process for
    # each flood, so that each one's budget state and counters are its own.
    for scenario, name in FLOOD_INSTANCE.items():
        if scenario not in selected or "portcullis" not in pids:
            continue
        sections = ('trusted_proxies: ["127.0.0.1/32"]\n'
                    "tokens:\n"
                    f"  failed_auth_budget: {{limit: {FLOOD_BUDGET['limit']}, per: {FLOOD_BUDGET['per']}}}")
        port = ports[name]
        log(f"==> portcullis for {scenario} (failed_auth_budget, trusted_proxies) on 127.0.0.1:{port} "
            f"(core {args.scaled_cores})")
        v = dict(values, LISTEN_PORT=port, ADMIN_PORT=ports[name + "-admin"])
        why = start_portcullis(args, procs, work, name,
                               portcullis_config(v, False, None, f"bench-{name}:", sections), v, portcullis_env)
        if why:
            cell_status[("portcullis", scenario)] = why
    # The HTTPS scenarios' nginx and HAProxy: their own processes with a TLS
    # listener and the same certificate, idle on core 0 while the others are
    # measured.
    for proxy in ("nginx", "haproxy"):
        if not https or proxy not in pids:
            continue
        name = f"{proxy}-tls"
        port = ports[name]
        log(f"==> {LABEL[proxy].split()[0]} terminating TLS on 127.0.0.1:{port} (core {PROXY_CORE})")
        argv = peer_command(work, "nginx-tls.conf" if proxy == "nginx" else "haproxy-tls.cfg",
                            dict(values, LISTEN_PORT=port))
        proc = procs.start(name, PROXY_CORE, argv) if argv else None
        if proc is None or not wait_port(port, proc):
            why = "not measured (config rejected)" if proc is None else "not measured (did not start)"
            if proc is not None:
                log(f"    did not start:\n{procs.log_tail(name)}")
            for s in https:
                cell_status[(proxy, s)] = why
    # grpc: portcullis with h2c on both sides, a process of its own
    # (conf/portcullis-grpc.yaml); the floor needs nothing but the upstream.
    if "grpc" in selected and "portcullis" in pids and ("portcullis", "grpc") not in cell_status:
        port = ports["portcullis-grpc"]
        log(f"==> portcullis for grpc (h2c) on 127.0.0.1:{port} (core {args.scaled_cores})")
        v = dict(values, LISTEN_PORT=port, ADMIN_PORT=ports["portcullis-grpc-admin"])
        why = start_portcullis(args, procs, work, "portcullis-grpc", fill("portcullis-grpc.yaml", v), v,
                               portcullis_env)
        if why:
            cell_status[("portcullis", "grpc")] = why

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

    # The feature scenarios' own checks; one failing leaves only that
    # scenario unmeasured.
    feature_checks: dict[str, list[dict]] = {}
    if features and "portcullis" in pids and "portcullis" not in status_of:
        log("==> feature scenarios: setup and checks")
        for scenario in features:
            if scenario in scenario_status:
                log(f"    {scenario}: {scenario_status[scenario]}")
                continue
            if scenario == "revoked-list":
                rows = setup_revocations(ports, tokens, admin_token)
            elif scenario == "session-cookie":
                rows = setup_session(ports, idp, work)
            elif scenario == "upstream-assertion":
                rows = setup_assertion(ports, tokens, work)
            elif scenario == "tls":
                rows = setup_tls(ports, tokens, work, args.connections)
            elif scenario == "api-key":
                rows = setup_api_key(ports, tokens, api_keys)
            elif scenario == "claims":
                rows = setup_claims(ports, tokens)
            else:
                rows = setup_limit(scenario, ports, tokens, redis_port)
            feature_checks[scenario] = rows
            for r in rows:
                log(f"    {scenario:<26} {'ok  ' if r['ok'] else 'FAIL'} {r['check']}: want {r['want']}, got {r['got']}")
            if not all(r["ok"] for r in rows):
                scenario_status[scenario] = "not measured (check failed)"
    redis_calls_before = redis_calls(redis_port) if redis_port and "limit-redis" not in scenario_status else None

    # The peer scenarios' checks, by process; one failing leaves its proxy
    # unmeasured in the scenarios that process serves.
    peer_checks: dict[str, list[dict]] = {}
    negotiated: dict[str, str] = {}
    peers = [(proxy, scenario) for scenario in selected if scenario in PEERS for proxy in PEERS[scenario]
             if (proxy == DIRECT or (proxy in pids and proxy not in status_of)) and (proxy, scenario) not in cell_status]
    if peers:
        log("==> peer scenarios: setup and checks")
    for proxy in dict.fromkeys(p for p, s in peers if s in HTTPS):
        peer_checks[f"{proxy}-tls"], negotiated[proxy] = setup_https(
            ports[f"{proxy}-tls"], work, [s for p, s in peers if p == proxy and s in HTTPS], args.connections)
    # The same TLS for all three: each against what portcullis negotiated
    # (or, without it, the first proxy).
    seen = {proxy: tls for proxy, tls in negotiated.items() if tls}
    if len(seen) > 1:
        reference = "portcullis" if "portcullis" in seen else next(iter(seen))
        for proxy, tls in seen.items():
            if proxy != reference:
                peer_checks[f"{proxy}-tls"].append(check_row(
                    f"negotiated as with {LABEL[reference]}", seen[reference], tls, tls == seen[reference]))
    grpc_refused_before = 0.0
    for proxy in (p for p, s in peers if s == "grpc"):
        name = target(proxy, "grpc")[1]
        peer_checks[name] = setup_grpc(ports[name], work, tokens, direct=proxy == DIRECT)
        if proxy == "portcullis":
            # The checks' refusals; the measurement must add none.
            admin = ports["portcullis-grpc-admin"]
            grpc_refused_before = (metric(admin, "portcullis_requests_total")
                                   - metric(admin, "portcullis_requests_total", decision="allow"))
    for proxy, scenario in peers:
        name = target(proxy, scenario)[1]
        if not all(r["ok"] for r in peer_checks.get(name, [])):
            cell_status[(proxy, scenario)] = "not measured (check failed)"
    for name, rows in peer_checks.items():
        for r in rows:
            log(f"    {name:<26} {'ok  ' if r['ok'] else 'FAIL'} {r['check']}: want {r['want']}, got {r['got']}")

    # The floods' checks, by scenario and proxy; one failing leaves that
    # proxy unmeasured in that flood.
    flood_checks: dict[str, dict[str, list[dict]]] = {}
    floods = [(proxy, scenario) for scenario in selected if scenario in FLOODS for proxy in FLOODS[scenario]
              if proxy in pids and proxy not in status_of and (proxy, scenario) not in cell_status]
    if floods:
        log("==> floods: setup and checks")
    for proxy, scenario in floods:
        port = ports[target(proxy, scenario)[1]]
        if proxy == "portcullis":
            rows = setup_flood(scenario, port, ports[FLOOD_INSTANCE[scenario] + "-admin"], tokens)
        else:
            rows = setup_flood_unbudgeted(scenario, port, tokens)
        flood_checks.setdefault(scenario, {})[proxy] = rows
        for r in rows:
            log(f"    {proxy + ', ' + scenario:<26} {'ok  ' if r['ok'] else 'FAIL'} {r['check']}: want {r['want']}, "
                f"got {r['got']}")
        if not all(r["ok"] for r in rows):
            cell_status[(proxy, scenario)] = "not measured (check failed)"

    # Scenario by scenario, the proxies one after another, `--rounds` times
    # over: a machine whose speed drifts (a cloud VM's neighbours) shifts
    # every proxy alike instead of whichever ran last. Each (proxy, scenario)
    # reports the round with its median requests/s. The feature scenarios
    # come right after one-token, so each is measured minutes, not seconds,
    # from its baseline only when --rounds is 1.
    measured = [p for p in proxies if p not in status_of and p in pids]
    rss: dict[str, dict[str, int]] = {p: {"idle_after_start": rss_kib(pids[p])} for p in measured}
    rounds_of: dict[tuple[str, str], list[dict]] = {}
    profiles: dict[tuple[str, str], dict | None] = {}
    offsets: dict[tuple[str, str], int] = {}
    for round_no in range(1, args.rounds + 1):
        if args.rounds > 1:
            log(f"==> round {round_no} of {args.rounds}")
        for scenario, _, path, mode in scenarios:
            for proxy in [*measured, DIRECT]:
                if (proxy in status_of or not supports(proxy, scenario) or scenario in scenario_status
                        or (proxy, scenario) in cell_status):
                    continue
                # Some scenarios are measured on processes of their own.
                instance, port_name = target(proxy, scenario)
                port = ports[port_name]
                if not procs.alive(instance):
                    why = f"crashed before {scenario}"
                    if instance == proxy:
                        status_of[proxy] = why
                    elif scenario in FEATURES:
                        scenario_status[scenario] = why
                    else:
                        cell_status[(proxy, scenario)] = why
                    log(f"    {instance} is no longer running (exit {procs.procs[instance].returncode}):\n"
                        f"{procs.log_tail(instance)}")
                    continue
                key = (proxy, scenario)
                try:
                    # The measurement continues the warm-up's request sequence
                    # (and earlier rounds'): forged tokens are never replayed.
                    # With 10k tokens the warm-up goes on until every token has
                    # been sent once in this round, so what is measured is the
                    # steady state of 10,000 active users. In each round: a
                    # round of the full bench takes about as long as
                    # portcullis trusts a verified token (token_cache.ttl, 5
                    # minutes by default), so what lapsed since the last
                    # round is verified again here, not while measured.
                    sent = offsets.get(key, 0)
                    # The floods: what portcullis answered, from its
                    # counters (wrk tells only 2xx from the rest).
                    flood_admin = ports[instance + "-admin"] if proxy == "portcullis" and scenario in FLOODS else None
                    counts_start = flood_counts(flood_admin) if flood_admin else None
                    warmed, warmups = 0, 0
                    while args.warmup > 0 and warmups < 6 and (
                        warmups == 0 or (mode == "rotate" and warmed < TOKEN_COUNT)
                    ):
                        if mode == "cookie":
                            fresh_session(port, idp, work)
                        n = load(scenario, port, path, mode, work, args.warmup, args.connections,
                                 offset=sent)["requests"]
                        sent, warmed, warmups = sent + n, warmed + n, warmups + 1
                    if mode == "cookie":
                        signed_in_at = fresh_session(port, idp, work)
                    counts_before = flood_counts(flood_admin) if flood_admin else None
                    # 10k-tokens on portcullis: how many tokens the measured
                    # seconds verified (cache misses). The steady state needs
                    # none; a number here says the run measured something else.
                    misses_admin = (ports["portcullis-admin"]
                                    if proxy == "portcullis" and scenario == "10k-tokens" else None)
                    misses_before = metric(misses_admin, MISSES) if misses_admin else 0.0
                    # What the run cost the process measured (for the
                    # floor, the upstream) and the load core: the upstream
                    # and the load generator, a child reaped by load().
                    cpu_before = cpu_seconds(procs.procs[instance].pid)
                    upstream_before = cpu_seconds(procs.procs["upstream"].pid)
                    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    steal_before = steal_seconds(PROXY_CORE, LOAD_CORE)
                    # --profile: the last round, the process measured.
                    perf_data = work / f"perf-{instance}-{scenario}.data"
                    profiler = (start_profile(procs.procs[instance].pid, perf_data)
                                if args.profile and round_no == args.rounds and proxy != DIRECT else None)
                    try:
                        r = load(scenario, port, path, mode, work, args.duration, args.connections, offset=sent)
                    except BaseException:
                        if profiler:
                            profiler.kill()
                        raise
                    if profiler:
                        profiles[key] = stop_profile(profiler, perf_data, r["requests"])
                    children = resource.getrusage(resource.RUSAGE_CHILDREN)
                    r["cpu_s"] = cpu_seconds(procs.procs[instance].pid) - cpu_before
                    if flood_admin:
                        counts_after = flood_counts(flood_admin)
                        r["budget_refusals"] = counts_after[0] - counts_before[0]
                        r["verified_refusals"] = counts_after[1] - counts_before[1]
                        r["budget_refusals_warmup"] = counts_before[0] - counts_start[0]
                    if misses_admin:
                        r["verifications"] = metric(misses_admin, MISSES) - misses_before
                    r["steal_s"] = [after - before for after, before
                                    in zip(steal_seconds(PROXY_CORE, LOAD_CORE), steal_before)]
                    r["load_core_cpu_s"] = (cpu_seconds(procs.procs["upstream"].pid) - upstream_before
                                            + children.ru_utime + children.ru_stime
                                            - children_before.ru_utime - children_before.ru_stime)
                    if mode == "cookie":
                        # wrk keeps sending the cookie it was given: past the
                        # renewal time every answer would re-seal the session.
                        r["session_seconds"] = time.time() - signed_in_at
                    offsets[key] = sent + r["requests"]
                    r["warmup_requests"] = warmed
                    r["round"] = round_no
                except (RuntimeError, subprocess.TimeoutExpired, SignInError, OSError) as e:
                    log(f"    {proxy} / {scenario}: {e}\n{procs.log_tail(instance)}")
                    if scenario in FEATURES:
                        scenario_status.setdefault(scenario, "not measured (wrk failed)")
                    elif scenario in PEERS or scenario in FLOODS:
                        cell_status.setdefault(key, "not measured (load generator failed)")
                    else:
                        status_of.setdefault(proxy, f"wrk failed in {scenario}")
                    continue
                r["answers"], r["answers_ok"] = answers(proxy, scenario, r)
                if "budget_refusals" in r:
                    r["answers"], r["answers_ok"] = flood_answers(scenario, r)
                if "verifications" in r:
                    r["answers"] += f", {r['verifications']:,.0f} verified while measured"
                if r.get("session_seconds", 0) >= SESSION_RENEW_S - 1:
                    r["answers"] += f", ended {r['session_seconds']:.0f} s after its sign-in: renewals measured"
                    r["answers_ok"] = False
                rounds_of.setdefault(key, []).append(r)
                stolen = r["steal_s"][0] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
                log(f"    {LABEL[proxy]:<26} {scenario:<18} {fmt_rps(r['rps']):>8} req/s  p50 {ms(r['p50_us'])} ms  "
                    f"p99 {ms(r['p99_us'])} ms  {r['answers']}{'' if r['answers_ok'] else '  <-- unexpected'}"
                    + (f"  (steal {stolen:.1%} of core {PROXY_CORE})" if stolen >= 0.005 else ""))
                if scenario == "10k-tokens" and round_no == 1:
                    rss[proxy]["after_10k_tokens"] = rss_kib(pids[proxy])
                for feature, other in INSTANCE.items():
                    if not (scenario == "10k-tokens" and proxy == "portcullis" and feature in features
                            and feature not in scenario_status and procs.alive(other)):
                        continue
                    # The same 10,000 tokens into the cache of each feature's
                    # own process, so that from the next round on every
                    # process answers the single token from a cache of the
                    # same size.
                    key = (other, "10k-tokens")
                    sent = offsets.get(key, 0)
                    goal = sent + TOKEN_COUNT
                    try:
                        for _ in range(6):  # bounded, like the warm-up
                            if sent >= goal:
                                break
                            sent += wrk(ports[other], path, mode, work, max(1.0, args.warmup),
                                        args.connections, offset=sent, tls=feature == "tls")["requests"]
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        log(f"    {other} / 10k-tokens: {e}")
                    offsets[key] = sent

    results: dict[tuple[str, str], dict] = {}
    for key, runs in rounds_of.items():
        by_rps = sorted(runs, key=lambda r: r["rps"])
        median = dict(by_rps[(len(by_rps) - 1) // 2])
        median["rounds_rps"] = [r["rps"] for r in runs]
        median["rounds_detail"] = [{k: r[k] for k in ("round", "rps", "p50_us", "p99_us", "duration_us", "steal_s")} for r in runs]
        median["answers_ok"] = all(r["answers_ok"] for r in runs)
        if not median["answers_ok"]:
            median["answers"] = next(r["answers"] for r in runs if not r["answers_ok"])
        if key in profiles:
            median["profile"] = profiles[key]
        results[key] = median
    for proxy in measured:
        if procs.alive(proxy):
            rss[proxy]["at_end"] = rss_kib(pids[proxy])
        else:
            status_of[proxy] = status_of.get(proxy, "crashed during the run")
            log(f"    {proxy} exited (code {procs.procs[proxy].returncode}):\n{procs.log_tail(proxy)}")

    # Where the feature scenarios' (and grpc's) requests went, read back
    # after the run.
    feature_notes: dict[str, str] = {}
    peer_notes: dict[str, str] = {}
    try:
        r = results.get(("portcullis", "limit-redis"))
        if r and redis_calls_before is not None and procs.alive("portcullis"):
            limit = "per-user-redis"
            admin = ports["portcullis-admin"]
            by_redis = metric(admin, "portcullis_rate_limit_decisions_total", limit=limit, store="redis")
            others = metric(admin, "portcullis_rate_limit_decisions_total", limit=limit) - by_redis
            calls = redis_calls(redis_port) - redis_calls_before
            sent = offsets.get(("portcullis", "limit-redis"), 0)
            feature_notes["limit-redis"] = (
                f"{by_redis:,.0f} decisions by Redis, {others:,.0f} by anything else; Redis ran {calls:,} scripts "
                f"while wrk counted {sent:,} responses (warm-ups included; wrk leaves out the requests still in "
                "flight when each run stops)"
            )
            timed = histogram(admin, "portcullis_redis_command_duration_seconds", 0.99, operation="rate_limit")
            if timed:
                # What each decision waited for: the script, from the
                # request's runtime to the Redis runtime, to Redis and back.
                feature_notes["limit-redis"] += (
                    f"; each decision's Redis call as portcullis timed it ({timed[0]:,.0f} calls): mean "
                    f"{timed[1] * 1000:.2f} ms, p99 at most {timed[2] * 1000:g} ms (its histogram's bucket)"
                )
            if others:
                r["answers_ok"] = False
                r["answers"] += f", {others:,.0f} decided without Redis"
        r = results.get(("portcullis", "revoked-list"))
        if r and procs.alive("portcullis-revoked"):
            admin = ports["portcullis-revoked-admin"]
            held = metric(admin, "portcullis_revocations")
            feature_notes["revoked-list"] = (
                f"a second portcullis process, configured alike, holding {held:,.0f} revocations at the end "
                f"({REVOCATIONS // 2:,} by jti, {REVOCATIONS // 4:,} whole tokens, {REVOCATIONS // 4:,} subjects)"
            )
            if held != REVOCATIONS:
                r["answers_ok"] = False
                r["answers"] += f", denylist held {held:,.0f}"
        r = results.get(("portcullis", "session-cookie"))
        if r and procs.alive("portcullis"):
            admin = ports["portcullis-admin"]
            completed = metric(admin, "portcullis_sign_ins_total", result="completed")
            started = metric(admin, "portcullis_sign_ins_total", result="started")
            failed = metric(admin, "portcullis_sign_ins_total") - completed - started
            refreshes = metric(admin, "portcullis_session_refreshes_total")
            # One sign-in for the check, one before each warm-up and each
            # measurement: as many as the fake IdP answered.
            want = idp.exchanged if idp else 0
            cookie = (work / "session-cookie.txt").read_text().strip()
            feature_notes["session-cookie"] = (
                f"identity_from: access_token (the single token, from the verified-token cache); a session cookie "
                f"of {len(cookie):,} bytes ({cookie.count(';') + 1} part(s)) on every request, no other header; "
                f"{completed:,.0f} sign-ins completed through the fake IdP, as many as its token endpoint answered "
                f"(the check's, and one before each warm-up and each measurement, so that every run ends before the "
                f"session's {SESSION_RENEW_S} s renewal and no answer re-seals it), {started:,.0f} started, "
                f"{failed:,.0f} failed, {refreshes:,.0f} refreshes"
            )
            if completed != want or failed or refreshes:
                r["answers_ok"] = False
                r["answers"] += f", {completed:,.0f} sign-ins (want {want}), {failed:,.0f} failed, {refreshes:,.0f} refreshes"
        r = results.get(("portcullis", "api-key"))
        if r and procs.alive("portcullis-apikey"):
            # Every answer wrk counted must have been an API key's decision.
            admin = ports["portcullis-apikey-admin"]
            by_key = metric(admin, "portcullis_auth_duration_seconds_count", source="api_key")
            sent = offsets.get(("portcullis", "api-key"), 0)
            feature_notes["api-key"] = (
                "a second portcullis process, configured alike plus api_keys (one key file, two keys); the key as "
                f"`Authorization: ApiKey`, looked up by its id and its SHA-256 compared on every request (never "
                f"cached); {by_key:,.0f} API-key authentications, wrk counted {sent:,} answers (warm-ups included)"
            )
            if by_key < sent:
                r["answers_ok"] = False
                r["answers"] += f", {by_key:,.0f} API-key authentications for {sent:,} answers"
        r = results.get(("portcullis", "claims"))
        if r and procs.alive("portcullis-claims"):
            admin = ports["portcullis-claims-admin"]
            refused = metric(admin, "portcullis_requests_total", decision="claim_not_met")
            feature_notes["claims"] = (
                "a second portcullis process, configured alike plus the policy file conf/portcullis-claims.yaml: "
                f"`{CLAIMS_PATH}`, route /users/{{user}}/** with sub = {{user}}, email present, scope has all of "
                f"[openid, profile]; {refused:,.0f} claim_not_met decisions (the checks' 2)"
            )
            if refused != 2:
                r["answers_ok"] = False
                r["answers"] += f", {refused - 2:,.0f} refused by a claim condition"
        if results.get(("portcullis", "upstream-assertion")):
            feature_notes["upstream-assertion"] = (
                "a second portcullis process, configured alike plus upstream_assertion (an EC P-256 PKCS#8 key: "
                "one ES256 signature per forwarded request, lifetime 30 s)"
            )
        if results.get(("portcullis", "tls")):
            shake = next((row["got"] for row in feature_checks.get("tls", []) if row["check"].startswith("handshake")), "")
            feature_notes["tls"] = (
                "a second portcullis process, configured alike plus tls (a self-signed EC P-256 certificate); "
                f"wrk's OpenSSL client, HTTP/1.1 with keep-alive (no ALPN), so {args.connections} handshakes per wrk run "
                f"and record encryption on every request, wrk's share of it on the load core; handshake as the check "
                f"saw it: {shake.split(',')[0]}"
            )
        r = results.get(("portcullis", "grpc"))
        if r and procs.alive("portcullis-grpc"):
            # h2load cannot tell a gRPC refusal (HTTP 200) from an answer:
            # portcullis's own count of what it decided.
            admin = ports["portcullis-grpc-admin"]
            allowed = metric(admin, "portcullis_requests_total", decision="allow")
            # The calls in flight when h2load stops a run are cut off (it
            # closes its connections): portcullis counts them as bad requests.
            cut = metric(admin, "portcullis_requests_total", decision="bad_request")
            refused = metric(admin, "portcullis_requests_total") - allowed - cut - grpc_refused_before
            answered = metric(admin, "portcullis_upstream_responses_total", upstream="grpc", **{"class": "2xx"})
            sent = offsets.get(("portcullis", "grpc"), 0)
            peer_notes["grpc"] = (
                f"portcullis allowed {allowed:,.0f} calls and refused {refused:,.0f} after the checks ({cut:,.0f} more "
                f"cut off by h2load at the end of a run); the upstream answered {answered:,.0f} of them 2xx; h2load "
                f"counted {sent:,} answers (warm-ups included, the calls cut off not)"
            )
            if refused or allowed < sent:
                r["answers_ok"] = False
                r["answers"] += f", {refused:,.0f} refused, {allowed:,.0f} allowed for {sent:,} answers"
    except OSError as e:
        log(f"warning: reading the feature metrics back failed: {e}")
    meta["feature_notes"] = feature_notes
    meta["feature_checks"] = feature_checks
    meta["scenario_status"] = scenario_status
    meta["peer_checks"] = peer_checks
    meta["peer_notes"] = peer_notes
    meta["flood_checks"] = flood_checks
    meta["cell_status"] = cell_status
    meta["tls_negotiated"] = negotiated
    meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[0]

    report, data = build_report(meta, results, status_of, rss, checks)
    (out_dir / "results.md").write_text(report + "\n")
    (out_dir / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    print(report)
    print(f"\nResults written to {out_dir}/results.md and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
