#!/usr/bin/env python3
"""Writes a rotor config with N domains for benchmarks.

The domains are d00001.bench.test, d00002.bench.test, ... (as many digits as N needs, at least
five), all in the one zone bench.test (`zone: bench.test`, so no SOA lookup per domain), through
one RFC 2136 provider, with one signer. Timings are compressed to seconds, as in
examples/quickstart.sh: a key is active a few seconds after it is published, and a replaced key
is retired 6 s after the switch.

    bench/gen-config.py 100000 --out /tmp/rotor-100k/rotor.yaml --dir /tmp/rotor-100k

writes a 100,000-domain config (about 7 MB) whose state, keys and signer files live under
--dir; bench/scale.sh uses it with --server and --tsig pointing at the BIND it starts. Without
--server the provider points at 127.0.0.1:53 and --tsig defaults to DIR/tsig.key: enough for
`rotor plan` and `rotor status`, which read the config and the store but ask no server.
"""

import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of domains")
    parser.add_argument("--out", required=True, help="the config file to write")
    parser.add_argument("--dir", required=True, help="absolute directory for state, keys and signer files")
    parser.add_argument("--server", default="127.0.0.1:53", help="the RFC 2136 primary, ip:port")
    parser.add_argument("--tsig", help="TSIG key file (default DIR/tsig.key)")
    parser.add_argument("--signer", choices=["files", "opendkim"], default="files")
    parser.add_argument("--keys", default="rsa-2048", help="defaults.keys, comma-separated")
    parser.add_argument("--zone", default="bench.test")
    parser.add_argument(
        "--list",
        action="store_true",
        help="put the domains in a domains_file (OUT's folder/domains.jsonl, one JSON object a line) instead of the YAML",
    )
    args = parser.parse_args()
    if args.count < 1:
        parser.error("count must be at least 1")
    d = os.path.abspath(args.dir)
    tsig = os.path.abspath(args.tsig or os.path.join(d, "tsig.key"))
    width = max(5, len(str(args.count)))

    if args.signer == "files":
        # One small file per domain; `reload: "true"` stands for a signer that re-reads them.
        signer = f"""  mx1:
    type: files
    key_dir: {d}/signer/keys
    files:
      - path: "{d}/signer/conf/{{{{ domain }}}}.conf"
        template: |
          {{% for key in keys %}}
          sign {{{{ domain }}}} {{{{ key.selector }}}} {{{{ key.key_path }}}}
          {{% endfor %}}
    reload: "true"
"""
    else:
        signer = f"""  mx1:
    type: opendkim
    key_table: {d}/signer/KeyTable
    signing_table: {d}/signer/SigningTable
    key_dir: {d}/signer/keys
    reload: "true"
"""

    keys = ", ".join(k.strip() for k in args.keys.split(",") if k.strip())
    head = f"""# rotor benchmark config: {args.count} domains in zone {args.zone} (bench/gen-config.py).
# Compressed timings (seconds), as in examples/quickstart.sh.
state_dir: {d}/state
key_dir: {d}/keys
passes:
  timeout: 6h
defaults:
  keys: [{keys}]
  selector: "rotor{{yyyy}}{{mm}}{{dd}}"
  rotate_every: 90d
  ttl: 5
  propagation:
    resolvers: []
    authoritative: ["{args.server}"]
    min_wait: 2s
    poll_every: 1s
    timeout: 2h
  grace: 6s
providers:
  bind:
    type: rfc2136
    server: {args.server}
    tsig_key_file: {tsig}
    timeout: 60s
signers:
{signer}"""
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    if args.list:
        head += "domains_file: domains.jsonl\n"
        path = os.path.join(out_dir, "domains.jsonl")
        line = '{{"name": "d{:0%dd}.%s", "zone": "%s", "provider": "bind", "signers": ["mx1"]}}\n'
    else:
        head += "domains:\n"
        path = args.out
        line = "  - {{name: d{:0%dd}.%s, zone: %s, provider: bind, signers: [mx1]}}\n"
    line = line % (width, args.zone, args.zone)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        if not args.list:
            f.write(head)
        for i in range(1, args.count + 1):
            f.write(line.format(i))
    os.replace(tmp, path)
    if args.list:
        with open(args.out + ".tmp", "w", encoding="ascii") as f:
            f.write(head)
        os.replace(args.out + ".tmp", args.out)
    for sub in ("signer", "signer/keys", "signer/conf"):
        os.makedirs(os.path.join(d, sub), mode=0o700, exist_ok=True)
        os.chmod(os.path.join(d, sub), 0o700)
    return 0


if __name__ == "__main__":
    sys.exit(main())
