#!/usr/bin/env python3
"""A `probe:` command for the tests' `type: files` signer: reads the message on stdin, signs it
with dkimpy as the signer would (each `sign DOMAIN SELECTOR KEYFILE` line of
CONF_DIR/$ROTOR_PROBE_DOMAIN.conf), and prints it signed. With a second argument, that key file
signs instead of the one the line names (a signer whose key is not the published one)."""

import os
import sys

import dkim


def main():
    conf_dir = sys.argv[1]
    planted = sys.argv[2] if len(sys.argv) > 2 else None
    domain = os.environ["ROTOR_PROBE_DOMAIN"]
    message = sys.stdin.buffer.read()
    headers = b""
    with open(os.path.join(conf_dir, domain + ".conf")) as conf:
        for line in conf:
            words = line.split()
            if len(words) != 4 or words[0] != "sign":
                continue
            _, d, selector, key_file = words
            with open(planted or key_file, "rb") as key:
                private = key.read()
            headers += dkim.sign(
                message,
                selector.encode(),
                d.encode(),
                private,
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
            )
    sys.stdout.buffer.write(headers + message)


main()
