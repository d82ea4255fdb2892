"""Checks every DKIM-Signature of a message (stdin) against the records a DNS server on
127.0.0.1 publishes, as a receiver would. Prints a JSON list, one {"d", "s", "a", "ok"} per
signature in header order. Usage: dkim_verify_message.py PORT < MESSAGE"""
import json
import re
import sys

import dkim
import dns.resolver

resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[1])


def lookup(name, timeout=5):
    answer = resolver.resolve(name.decode().rstrip("."), "TXT", raise_on_no_answer=False)
    return b"".join(b"".join(record.strings) for record in answer)


message = sys.stdin.buffer.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
checker = dkim.DKIM(message)
head = message.split(b"\r\n\r\n", 1)[0].decode()
headers = re.findall(r"(?im)^dkim-signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)
results = []
for index, value in enumerate(headers):
    tags = dict(
        (k.strip(), v.strip())
        for k, _, v in (t.partition("=") for t in re.sub(r"\s+", "", value).split(";"))
        if k.strip()
    )
    try:
        ok = bool(checker.verify(idx=index, dnsfunc=lookup))
    except Exception:  # a record that is missing or malformed fails, like any other mismatch
        ok = False
    results.append({"d": tags.get("d"), "s": tags.get("s"), "a": tags.get("a"), "ok": ok})
print(json.dumps(results))
