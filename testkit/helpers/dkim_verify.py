#!/usr/bin/env python3
"""Verifies every DKIM-Signature of a message with dkimpy, against DKIM records computed from
private key files instead of DNS (the independent check for rotor's signer tests).

usage: dkim_verify.py MESSAGE_FILE NAME=KEYFILE...
  NAME is "<selector>._domainkey.<domain>"; KEYFILE a private key in any form `openssl pkey`
  reads (PEM or DER; RSA or Ed25519) or an Ed25519 seed in base64 (32 bytes, or the 64-byte
  seed+public form). The record is `v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo DER>` or
  `v=DKIM1; k=ed25519; p=<base64 raw 32-byte public key>`.

Prints one JSON line: a list with, per signature in header order, {"d", "s", "a", "ok"}.
Needs dkimpy, and pynacl for Ed25519."""

import base64
import json
import subprocess
import sys

import dkim
import dkim.util


def record(path):
    data = open(path, "rb").read()
    der = subprocess.run(
        ["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
        capture_output=True,
    )
    if der.returncode == 0 and der.stdout:
        spki = der.stdout
        # An Ed25519 SubjectPublicKeyInfo is 44 bytes: 12 of ASN.1, then the raw key.
        if len(spki) == 44 and spki[:12] == bytes.fromhex("302a300506032b6570032100"):
            return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(spki[12:])
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)
    import nacl.signing

    raw = base64.b64decode(data.strip())
    seed = raw[:32]
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)


def main():
    message = open(sys.argv[1], "rb").read()
    records = {}
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        records[name.lower().rstrip(".")] = record(path)

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().lower().rstrip("."))

    headers, _ = dkim.rfc822_parse(message)
    signatures = [v for k, v in headers if k.lower() == b"dkim-signature"]
    results = []
    for idx, value in enumerate(signatures):
        tags = dkim.util.parse_tag_value(value)
        try:
            ok = dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc)
        except Exception:  # a malformed signature or record is a failed check
            ok = False
        results.append(
            {
                "d": tags.get(b"d", b"").decode(),
                "s": tags.get(b"s", b"").decode(),
                "a": tags.get(b"a", b"").decode(),
                "ok": bool(ok),
            }
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
