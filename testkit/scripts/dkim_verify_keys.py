"""Independent check of every DKIM-Signature on a message, against records computed from private
key files instead of DNS.

Usage: dkim_verify_keys.py SELECTOR._domainkey.DOMAIN=KEYFILE ... < MESSAGE
       dkim_verify_keys.py --record KEYFILE   (prints the record for KEYFILE)

Each KEYFILE may be an RSA key (PEM, PKCS#8 or PKCS#1, or DER) or an Ed25519 key (PEM PKCS#8,
base64 of the 32-byte seed, base64 of the 64-byte seed||public key, or the raw 32-byte seed).
The record served for its name is `v=DKIM1; k=rsa; p=<base64 DER SubjectPublicKeyInfo>` or
`v=DKIM1; k=ed25519; p=<base64 raw public key>`. Prints one line per signature,
`ok|fail d=DOMAIN s=SELECTOR a=ALGORITHM`, and exits 1 unless there is at least one signature and
all of them verify. Needs dkimpy, pynacl (Ed25519) and cryptography."""
import base64
import re
import sys

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def load_private(data):
    if data.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_private_key(data, password=None)
    try:
        return serialization.load_der_private_key(data, password=None)
    except Exception:  # not DER: an Ed25519 seed in some form
        pass
    if len(data) == 32:
        return ed25519.Ed25519PrivateKey.from_private_bytes(data)
    raw = base64.b64decode(b"".join(data.split()), validate=True)
    if len(raw) not in (32, 64):
        raise ValueError(f"not a key: {len(raw)} bytes after base64")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64 and raw[32:] != public_raw(key):
        raise ValueError("64-byte Ed25519 key whose second half is not its public key")
    return key


def public_raw(key):
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def record(path):
    with open(path, "rb") as f:
        key = load_private(f.read())
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public_raw(key))
    raise ValueError(f"{path}: unsupported key type {type(key).__name__}")


if sys.argv[1:2] == ["--record"]:
    print(record(sys.argv[2]).decode())
    sys.exit(0)

records = {}
for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    records[name.lower().rstrip(".")] = record(path)


def lookup(name, timeout=5):
    return records.get(name.decode().lower().rstrip("."), b"")


message = sys.stdin.buffer.read()
if b"\r\n" not in message:
    message = message.replace(b"\n", b"\r\n")
head = message.split(b"\r\n\r\n", 1)[0]
signatures = [
    m.group(1)
    for m in re.finditer(rb"^DKIM-Signature:(.*(?:\r\n[ \t].*)*)", head, re.M | re.I)
]
checker = dkim.DKIM(message)
failed = not signatures
for idx, value in enumerate(signatures):
    tags = dict(
        (k.strip().decode(), v.strip().decode())
        for k, _, v in (t.partition(b"=") for t in re.sub(rb"\s+", b"", value).split(b";"))
        if k.strip()
    )
    ok = checker.verify(idx=idx, dnsfunc=lookup)
    failed |= not ok
    print(f"{'ok' if ok else 'fail'} d={tags.get('d')} s={tags.get('s')} a={tags.get('a')}")
sys.exit(1 if failed else 0)
