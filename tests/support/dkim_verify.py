"""Independent DKIM check: sign a message with a private key file and verify it against the
record a DNS server on 127.0.0.1 publishes. Usage: dkim_verify.py KEY SELECTOR DOMAIN PORT"""
import sys

import dkim
import dns.resolver

key_file, selector, domain, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = port


def lookup(name, timeout=5):
    answer = resolver.resolve(name.decode().rstrip("."), "TXT", raise_on_no_answer=False)
    return b"".join(b"".join(record.strings) for record in answer)


message = (
    f"From: probe@{domain}\r\nTo: someone@example.net\r\nSubject: rotor probe\r\n"
    "Message-ID: <probe@rotor>\r\n\r\nHello.\r\n"
).encode()
with open(key_file, "rb") as f:
    key = f.read()
signature = dkim.sign(message, selector.encode(), domain.encode(), key,
                      include_headers=[b"from", b"to", b"subject"])
if not dkim.verify(signature + message, dnsfunc=lookup):
    print(f"signature by {key_file} does not verify against {selector}._domainkey.{domain}")
    sys.exit(1)
print("verified")
