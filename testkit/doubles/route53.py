#!/usr/bin/env python3
"""Route53 as moto emulates it, for end-to-end tests of rotor's Route53 provider.

Usage: route53.py --port PORT [--zone NAME]... [--mirror IP:PORT --mirror-key TSIG_FILE]

Runs moto's server on 127.0.0.1:PORT with a public hosted zone for each --zone, prints `ready`
once it listens, and exits on SIGTERM/SIGINT. moto serves no DNS, so with --mirror every change of
TXT records (ChangeResourceRecordSets) is pushed with nsupdate (TSIG) to that DNS server, which
plays Route53's nameservers: end-to-end tests then check propagation through real DNS. A change
the mirror cannot push fails the API call (HTTP 500), so it cannot go unnoticed.
"""
import argparse
import logging
import signal
import subprocess
import sys
import threading

import boto3
from moto.route53 import models
from moto.server import ThreadedMotoServer


def txt_records(zone):
    """Every TXT value of a moto zone as (name, ttl, value): what nameservers would serve."""
    return {
        (rrset.name.rstrip(".").lower(), int(rrset.ttl or 300), value)
        for rrset in zone.rrsets
        if rrset.type == "TXT"
        for value in rrset.records
    }


def mirrored(original, server, port, key_file):
    def change_resource_record_sets(self, zoneid, change_list):
        zone = self.get_hosted_zone(zoneid)
        before = txt_records(zone)
        original(self, zoneid, change_list)
        after = txt_records(zone)
        if before == after:
            return
        lines = [f"server {server} {port}", f"zone {zone.name.rstrip('.')}"]
        lines += [f"update delete {name} TXT {value}" for name, _, value in sorted(before - after)]
        lines += [f"update add {name} {ttl} TXT {value}" for name, ttl, value in sorted(after - before)]
        lines.append("send")
        result = subprocess.run(["nsupdate", "-k", key_file], input="\n".join(lines) + "\n",
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"mirror update failed: {result.stderr.strip()}")

    return change_resource_record_sets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--zone", action="append", default=[])
    parser.add_argument("--mirror")
    parser.add_argument("--mirror-key")
    args = parser.parse_args()
    if args.mirror:
        server, port = args.mirror.rsplit(":", 1)
        models.Route53Backend.change_resource_record_sets = mirrored(
            models.Route53Backend.change_resource_record_sets, server, port, args.mirror_key)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    moto.start()
    client = boto3.client("route53", endpoint_url=f"http://127.0.0.1:{args.port}",
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    for zone in args.zone:
        client.create_hosted_zone(Name=zone, CallerReference=zone)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    moto.stop()


if __name__ == "__main__":
    sys.exit(main())
