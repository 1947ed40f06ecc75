#!/usr/bin/env python3
"""Dependency audit: every crates.io package in our lockfiles against the
RustSec advisory database.

The live database cannot be fetched from CI, so this reads a local checkout
of it when one is there (--db DIR, $ADVISORY_DB, or ../shared/advisory-db next
to the repository) and otherwise the committed machine-readable snapshot in
tests/advisories.json (advisory id, package, date, patched and unaffected
version ranges, withdrawn and informational flags; no advisory prose).
`--refresh-snapshot` rewrites that file from a local database.

A package version is affected by an advisory unless it matches one of its
`patched` or `unaffected` requirements (RustSec semantics). Affected by a
vulnerability: exit 1. Informational advisories (unmaintained, unsound,
notice) are listed as warnings. tests/audit-ignore.txt may list advisory ids
to accept, each with a reason; an ignore that no longer matches is reported.
"""

import argparse
import json
import os
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "advisories.json"
IGNORE = ROOT / "tests" / "audit-ignore.txt"
LOCKFILES = ["Cargo.lock", "fuzz/Cargo.lock", "tests/bench/bare-pingora/Cargo.lock"]


def parse_version(text):
    """'1.2.3-alpha.1+build' -> ((1, 2, 3), ('alpha', 1)) ; prerelease () sorts last."""
    text = text.strip().split("+", 1)[0]
    core, _, pre = text.partition("-")
    parts = [int(p) for p in core.split(".")]
    while len(parts) < 3:
        parts.append(0)
    pre_key = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")) if pre else None
    return tuple(parts[:3]), pre_key


def version_key(version):
    core, pre = version
    # A release sorts after every prerelease of the same core.
    return (core, 1, ()) if pre is None else (core, 0, pre)


def comparator_matches(comparator, version):
    comparator = comparator.strip()
    match = re.fullmatch(r"(>=|<=|>|<|=|\^|~)?\s*v?([0-9][0-9A-Za-z.+-]*)", comparator)
    if not match:
        raise ValueError(f"unsupported version requirement {comparator!r}")
    op, text = match.group(1) or "^", match.group(2)
    given = len(text.split("-", 1)[0].split("."))
    bound = parse_version(text)
    v, b = version_key(version), version_key(bound)
    if op == ">=":
        return v >= b
    if op == ">":
        return v > b
    if op == "<=":
        return v <= b
    if op == "<":
        return v < b
    if op == "=":
        return v == b
    major, minor, patch = bound[0]
    if op == "~":
        upper = (major + 1, 0, 0) if given == 1 else (major, minor + 1, 0)
    elif major > 0 or given == 1:
        upper = (major + 1, 0, 0)
    elif minor > 0 or given == 2:
        upper = (0, minor + 1, 0)
    else:
        upper = (0, 0, patch + 1)
    return b <= v < ((upper), 0, ())


def requirement_matches(requirement, version):
    return all(comparator_matches(c, version) for c in requirement.split(",") if c.strip())


def load_database(directory):
    advisories = []
    for path in sorted(Path(directory, "crates").glob("*/*.md")):
        text = path.read_text(encoding="utf-8")
        match = re.search(r"```toml\n(.*?)\n```", text, re.S)
        if not match:
            continue
        data = tomllib.loads(match.group(1))
        advisory, versions = data.get("advisory", {}), data.get("versions", {})
        advisories.append({
            "id": advisory.get("id"),
            "package": advisory.get("package"),
            "date": str(advisory.get("date", "")),
            "informational": advisory.get("informational"),
            "withdrawn": str(advisory["withdrawn"]) if "withdrawn" in advisory else None,
            "aliases": advisory.get("aliases", []),
            "patched": versions.get("patched", []),
            "unaffected": versions.get("unaffected", []),
        })
    return advisories


def find_database(explicit):
    candidates = [explicit, os.environ.get("ADVISORY_DB"), ROOT.parent / "shared" / "advisory-db"]
    for candidate in candidates:
        if candidate and Path(candidate, "crates").is_dir():
            return Path(candidate)
    return None


def locked_packages(lockfile):
    data = tomllib.loads(lockfile.read_text(encoding="utf-8"))
    for package in data.get("package", []):
        if package.get("source", "").startswith("registry+"):
            yield package["name"], package["version"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a checkout of rustsec/advisory-db")
    parser.add_argument("--refresh-snapshot", action="store_true", help="rewrite tests/advisories.json from --db")
    args = parser.parse_args()

    database = find_database(args.db)
    if database:
        advisories = load_database(database)
        snapshot_line = (database / "SNAPSHOT").read_text().strip() if (database / "SNAPSHOT").exists() else ""
        source = f"{database} ({len(advisories)} advisories) {snapshot_line}"
        if args.refresh_snapshot:
            SNAPSHOT.write_text(json.dumps({"source": snapshot_line, "advisories": advisories}, indent=0) + "\n")
            print(f"wrote {SNAPSHOT.relative_to(ROOT)}")
    else:
        if args.refresh_snapshot:
            sys.exit("--refresh-snapshot needs an advisory database (--db DIR)")
        data = json.loads(SNAPSHOT.read_text())
        advisories = data["advisories"]
        source = f"committed snapshot tests/advisories.json ({len(advisories)} advisories) {data.get('source', '')}"
    print(f"advisories: {source}")

    ignored = {}
    if IGNORE.exists():
        for line in IGNORE.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                advisory_id, _, reason = line.partition(" ")
                ignored[advisory_id] = reason.strip()

    by_package = {}
    for advisory in advisories:
        if not advisory.get("withdrawn"):
            by_package.setdefault(advisory["package"], []).append(advisory)

    vulnerable, warnings, used_ignores = [], [], set()
    checked = 0
    for lockfile in LOCKFILES:
        path = ROOT / lockfile
        if not path.exists():
            continue
        for name, version_text in sorted(set(locked_packages(path))):
            checked += 1
            version = parse_version(version_text)
            for advisory in by_package.get(name, []):
                safe = any(requirement_matches(r, version) for r in advisory["patched"] + advisory["unaffected"])
                if safe:
                    continue
                line = f"{advisory['id']} {name} {version_text} ({lockfile})"
                if advisory["id"] in ignored:
                    used_ignores.add(advisory["id"])
                    print(f"ignored: {line}: {ignored[advisory['id']]}")
                elif advisory.get("informational"):
                    warnings.append(f"{line}: {advisory['informational']}")
                else:
                    vulnerable.append(line)

    for warning in sorted(set(warnings)):
        print(f"warning: {warning}")
    for advisory_id in sorted(set(ignored) - used_ignores):
        print(f"note: {advisory_id} in tests/audit-ignore.txt matches nothing any more; remove it")
    for line in sorted(set(vulnerable)):
        print(f"VULNERABLE: {line}")
    print(f"checked {checked} locked packages: {len(set(vulnerable))} vulnerable, {len(set(warnings))} warnings")
    sys.exit(1 if vulnerable else 0)


if __name__ == "__main__":
    main()
