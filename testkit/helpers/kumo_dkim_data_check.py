#!/usr/bin/env python3
"""Checks a dkim_data.toml against the format KumoMTA documents for its dkim_sign.lua helper
(https://docs.kumomta.com/userguide/configuration/dkim/), as the helper reads it: the tables
and fields it knows, the values it accepts, and its own start-up checks (every name in
base.additional_signatures has a signature block; every domain has a selector, its own or
base's). Prints the problems found, one a line; exits 1 if there are any. Stdlib only."""

import sys
import tomllib

TOP = {"base", "domain", "signature"}
BASE = {
    "vault_mount",
    "vault_path_prefix",
    "additional_signatures",
    "selector",
    "headers",
    "header_canonicalization",
    "body_canonicalization",
}
DOMAIN = {
    "selector",
    "headers",
    "algo",
    "filename",
    "policy",
    "header_canonicalization",
    "body_canonicalization",
}
SIGNATURE = DOMAIN | {"domain"}
ALGOS = {"sha256", "ed25519"}
CANON = {"Relaxed", "Simple"}
SIGNATURE_POLICIES = {"Always", "OnlyIfMissingDomainBlock"}
# Documented under "TODO: reception-time policy"; the helper does not act on them.
DOMAIN_POLICIES = {"TempFailIfNotInDNS", "SignAlways", "SignOnlyIfInDNS", "Always"}


def check(data):
    problems = []
    unknown = set(data) - TOP
    if unknown:
        problems.append(f"unknown top-level keys: {sorted(unknown)}")
    base = data.get("base", {})
    problems += [f"base: unknown key {k}" for k in sorted(set(base) - BASE)]
    headers_default = "headers" in base
    for kind, allowed in (("domain", DOMAIN), ("signature", SIGNATURE)):
        for name, block in data.get(kind, {}).items():
            where = f'{kind}."{name}"'
            if not isinstance(block, dict):
                problems.append(f"{where}: not a table")
                continue
            problems += [f"{where}: unknown key {k}" for k in sorted(set(block) - allowed)]
            if "selector" not in block and "selector" not in base:
                problems.append(f"{where}: no selector and no base.selector")
            if "headers" not in block and not headers_default:
                problems.append(f"{where}: no headers and no base.headers")
            if block.get("algo", "sha256") not in ALGOS:
                problems.append(f"{where}: algo {block['algo']!r} is not one of {sorted(ALGOS)}")
            for canon in ("header_canonicalization", "body_canonicalization"):
                if canon in block and block[canon] not in CANON:
                    problems.append(f"{where}: {canon} {block[canon]!r}")
            policies = SIGNATURE_POLICIES if kind == "signature" else DOMAIN_POLICIES
            if "policy" in block and block["policy"] not in policies:
                problems.append(f"{where}: policy {block['policy']!r}")
            if kind == "signature" and "domain" not in block:
                problems.append(f"{where}: no signing domain")
            if "filename" in block and not str(block["filename"]).startswith("/"):
                problems.append(f"{where}: filename is not absolute")
    for name in base.get("additional_signatures", []):
        if name not in data.get("signature", {}):
            problems.append(f"base.additional_signatures names {name!r}: no such signature block")
    return problems


def main():
    with open(sys.argv[1], "rb") as f:
        data = tomllib.load(f)
    problems = check(data)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
