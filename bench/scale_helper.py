#!/usr/bin/env python3
"""Helpers of bench/scale.sh: a free port, GNU time's output, rotor's status, the nsupdate
baseline's input, where a pass spent its time (from its JSON log), and the final table."""

import base64
import json
import os
import re
import socket
import statistics
import sys
from datetime import datetime


def free_port() -> None:
    """A port free on 127.0.0.1 for both UDP and TCP, from a range away from the usual ones."""
    for port in range(45300, 46300):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, socket.socket(
                socket.AF_INET, socket.SOCK_DGRAM
            ) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        return
    sys.exit("no free port in 45300-46299")


def timev(path: str) -> None:
    """Peak RSS (KiB), user and system seconds and the exit status from `/usr/bin/time -v -o`."""
    text = open(path, encoding="utf-8", errors="replace").read()

    def field(name: str) -> str:
        m = re.search(r"^\s*" + re.escape(name) + r": (.*)$", text, re.M)
        return m.group(1).strip() if m else "0"

    rss = field("Maximum resident set size (kbytes)")
    user = field("User time (seconds)")
    system = field("System time (seconds)")
    status = field("Exit status")
    print(rss, user, system, status)


def status_check(mode: str, path: str, before: str = "") -> None:
    """Exit 0 when `rotor status --json --all` (in PATH) shows the state MODE asks for:
    `active`: every domain has an active key and nothing else but retired keys;
    `rotated`: also, every domain's active key is not its selector in BEFORE (a JSON file of
    an earlier status) and the key it replaced is retired (not retiring any more).
    Prints a one-line summary of the phases on stderr."""
    rows = json.load(open(path, encoding="utf-8"))
    phases = {}
    by_domain = {}
    for r in rows:
        phase = r.get("phase") or "none"
        phases[phase] = phases.get(phase, 0) + 1
        by_domain.setdefault(r["domain"], []).append(r)
    print("phases: " + ", ".join(f"{k}={v}" for k, v in sorted(phases.items())), file=sys.stderr)
    old = {}
    if before:
        for r in json.load(open(before, encoding="utf-8")):
            if r.get("phase") == "active":
                old[r["domain"]] = r["selector"]
    for domain, keys in by_domain.items():
        live = [k for k in keys if k.get("phase") not in ("retired",)]
        if len(live) != 1 or live[0].get("phase") != "active":
            sys.exit(1)
        if mode == "rotated":
            if live[0]["selector"] == old.get(domain):
                sys.exit(1)
            if not any(k.get("phase") == "retired" for k in keys):
                sys.exit(1)
    sys.exit(0)


# The DER size of an RSA public key (SubjectPublicKeyInfo) of each size rotor makes.
SPKI_BYTES = {1024: 162, 2048: 294, 3072: 422, 4096: 550}


def nsupdate_input(count: int, zone: str, server: str, port: str, per_message: int, bits: int = 2048) -> None:
    """An nsupdate script adding COUNT TXT records of an RSA-BITS DKIM record's size (v=DKIM1;
    k=rsa; p= and the base64 of a BITS-bit SPKI, in 255-byte strings), PER_MESSAGE per `send`."""
    out = [f"server {server} {port}", f"zone {zone}"]
    for i in range(1, count + 1):
        p = base64.b64encode(os.urandom(SPKI_BYTES[bits])).decode()
        value = "v=DKIM1; k=rsa; p=" + p
        strings = " ".join('"%s"' % value[j : j + 255] for j in range(0, len(value), 255))
        out.append(f"update add peer{i:06d}._domainkey.d{i:06d}.{zone}. 5 IN TXT {strings}")
        if i % per_message == 0 or i == count:
            out.append("send")
    print("\n".join(out))


def parse_time(ts: str) -> float:
    ts = ts.rstrip("Z")
    if "." in ts:
        head, frac = ts.split(".", 1)
        ts = head + "." + frac[:6]
        return datetime.fromisoformat(ts + "+00:00").timestamp()
    return datetime.fromisoformat(ts + "+00:00").timestamp()


def phases(log: str, start: str) -> None:
    """Where a `rotor run -v --log-format json` spent its time: for each kind of event, how
    many, and the first and last, in seconds after START (epoch seconds)."""
    t0 = float(start)
    kinds = {}
    for line in open(log, encoding="utf-8", errors="replace"):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        msg = event.get("fields", {}).get("message", "")
        if "rotation started" in msg:
            kind = "rotation started (selectors reserved)"
        elif "->" in msg:
            kind = msg.split(": ", 1)[-1]
        elif "not visible everywhere" in msg:
            kind = "not visible yet"
        else:
            kind = msg[:60]
        at = parse_time(event["timestamp"]) - t0
        first, last, n = kinds.get(kind, (at, at, 0))
        kinds[kind] = (min(first, at), max(last, at), n + 1)
    for kind, (first, last, n) in sorted(kinds.items(), key=lambda kv: kv[1][0]):
        print(f"    {kind}: {n} events, first at {first:.2f} s, last at {last:.2f} s")


def table(results: str, meta: str) -> None:
    """The markdown table of RESULTS (tab-separated: label, wall s, peak RSS KiB, user s,
    sys s, exit) and META (key=value lines)."""
    m = dict(
        line.rstrip("\n").split("=", 1) for line in open(meta, encoding="utf-8") if "=" in line
    )
    rows = [line.rstrip("\n").split("\t") for line in open(results, encoding="utf-8") if line.strip()]

    def group(prefix):
        return [r for r in rows if r[0] == prefix or r[0].startswith(prefix + "#")]

    def fmt_mb(kib):
        return f"{int(kib) / 1024:.1f}"

    out = []
    n = m.get("domains", "?")
    out.append(f"Domains: {n}; signer: {m.get('signer')}; keys: {m.get('keys')}; "
               f"{m.get('cores')} cores; load average at start {m.get('load_start')}, "
               f"at end {m.get('load_end')}; rotor {m.get('rotor_version')}")
    out.append("")
    out.append("| measurement | runs | wall (s) | peak RSS (MB) | user (s) | sys (s) | exit codes |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")

    def summed(label, prefix):
        g = group(prefix)
        if not g:
            return None
        wall = sum(float(r[1]) for r in g)
        rss = max(int(r[2]) for r in g)
        user = sum(float(r[3]) for r in g)
        sys_ = sum(float(r[4]) for r in g)
        each = " + ".join(f"{float(r[1]):.2f}" for r in g)
        codes = ",".join(sorted({r[5] for r in g}))
        runs = str(len(g)) if len(g) == 1 else f"{len(g)} ({each})"
        out.append(f"| {label} | {runs} | {wall:.2f} | {fmt_mb(rss)} | {user:.2f} | {sys_:.2f} | {codes} |")
        return wall

    def median(label, prefix):
        g = group(prefix)
        if not g:
            return None
        walls = [float(r[1]) for r in g]
        wall = statistics.median(walls)
        rss = statistics.median(int(r[2]) for r in g)
        user = statistics.median(float(r[3]) for r in g)
        sys_ = statistics.median(float(r[4]) for r in g)
        codes = ",".join(sorted({r[5] for r in g}))
        out.append(
            f"| {label} | median of {len(g)} (min {min(walls):.3f}, max {max(walls):.3f}) | {wall:.3f} | "
            f"{fmt_mb(rss)} | {user:.3f} | {sys_:.3f} | {codes} |"
        )
        return wall

    first_run = group("first")
    first_one = float(first_run[0][1]) if first_run else None
    first = summed("rotation 1: `rotor run`s from nothing until every key is active", "first")
    if first_one is not None and len(first_run) > 1:
        out.append(f"| … of which the first run (select, generate, publish) | 1 | {first_one:.2f} | "
                   f"{fmt_mb(first_run[0][2])} | {float(first_run[0][3]):.2f} | {float(first_run[0][4]):.2f} | {first_run[0][5]} |")
    median("idle `rotor run` (nothing due)", "idle")
    median("`rotor status` (table)", "status")
    median("`rotor status --json --all`", "status_json")
    summed("rotation 2: `rotor rotate` (all domains) + `rotor run`s until the old keys are retired", "second")
    median("idle `rotor run` after rotation 2", "idle2")
    bits = m.get("bits", "2048")
    openssl = summed(f"peer: {n} × `openssl genrsa {bits}`, xargs -P {m.get('cores')}", "openssl")
    rustkeys = summed(f"peer: {n} RSA-{bits} keys by rotor-keys alone (`keys/examples/keygen`, {m.get('cores')} threads)",
                      "rustkeys")
    nsupdate = summed(f"peer: one `nsupdate`, {n} TXT records of {m.get('txt_bytes')} bytes, "
                      f"{m.get('per_message')} per message", "nsupdate")
    out.append("")
    if first and openssl and nsupdate:
        peer = openssl + nsupdate
        out.append(f"Ratio rotor / (openssl + nsupdate): rotation 1 until active {first:.2f} / {peer:.2f} = "
                   f"**{first / peer:.2f}×**" + (
                       f"; first run alone {first_one:.2f} / {peer:.2f} = **{first_one / peer:.2f}×**"
                       if first_one is not None and len(first_run) > 1 else ""))
        if rustkeys:
            fastest = min(openssl, rustkeys) + nsupdate
            out.append(f"Ratio rotor / (fastest generator + nsupdate): rotation 1 until active {first:.2f} / "
                       f"{fastest:.2f} = **{first / fastest:.2f}×**")
        out.append(f"(rotation 1 wall clock including the {m.get('sleep_between')} s pauses between runs: "
                   f"{m.get('first_elapsed')} s; the propagation gate min_wait is 2 s)")
    for key in ("store_size", "zone_records"):
        if key in m:
            out.append(f"{key.replace('_', ' ')}: {m[key]}")
    print("\n".join(out))


def main() -> None:
    cmd, *args = sys.argv[1:]
    if cmd == "free-port":
        free_port()
    elif cmd == "timev":
        timev(*args)
    elif cmd == "status-check":
        status_check(*args)
    elif cmd == "nsupdate-input":
        count, zone, server, port, per, *bits = args
        nsupdate_input(int(count), zone, server, port, int(per), int(bits[0]) if bits else 2048)
    elif cmd == "phases":
        phases(*args)
    elif cmd == "table":
        table(*args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
