"""Verifies the DKIM-Signature OpenDKIM put on the probe message (tests/support/probe.lua)
against the record a DNS server on 127.0.0.1 publishes. Usage: dkim_verify_signed.py PORT < SIGNATURE"""
import sys

import dkim
import dns.resolver

resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[1])


def lookup(name, timeout=5):
    answer = resolver.resolve(name.decode().rstrip("."), "TXT", raise_on_no_answer=False)
    return b"".join(b"".join(record.strings) for record in answer)


signature = sys.stdin.read().strip().replace("\r\n", "\n").replace("\n", "\r\n")
message = (
    f"DKIM-Signature: {signature}\r\n"
    "From: probe@example.com\r\nTo: someone@example.net\r\nSubject: rotor probe\r\n"
    "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\nHello.\r\n"
).encode()
if not dkim.verify(message, dnsfunc=lookup):
    print("the signature does not verify")
    sys.exit(1)
print("verified")
