#!/usr/bin/env bash
# Runs rotor's whole test suite. Installs what the tests use when it is missing (BIND 9 and dig,
# PowerDNS and Knot for real DNS; OpenDKIM, rspamd and Exim as real signers; Dovecot as the IMAP
# server DMARC reports are read from; PostgreSQL as the shared store; dkimpy + dnspython +
# pynacl as the independent DKIM check; moto's Route53 emulation), then runs cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=$PATH:/usr/sbin:/sbin:$HOME/.local/bin

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
norecommends=()
command -v named >/dev/null || missing+=(bind9)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
command -v opendkim >/dev/null || missing+=(opendkim)
command -v miltertest >/dev/null || missing+=(miltertest)
command -v strace >/dev/null || missing+=(strace)   # the store's fsync-order test
# PowerDNS (sqlite3 backend, its schema loaded with sqlite3) and Knot: DNS hosts of the suite.
[ -x /usr/sbin/pdns_server ] || missing+=(pdns-server)
[ -e /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql ] || missing+=(pdns-backend-sqlite3)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
[ -x /usr/sbin/knotd ] || missing+=(knot)
command -v curl >/dev/null || missing+=(curl)
command -v exim4 >/dev/null || command -v exim >/dev/null || missing+=(exim4-daemon-light)
# rspamd without its Recommends (redis-server): the tests run it without Redis.
command -v rspamd >/dev/null || norecommends+=(rspamd)
# Dovecot's IMAP server (pulls dovecot-core), for the IMAP report source's tests, which run it on
# loopback with a certificate from a test CA (openssl).
[ -x /usr/sbin/dovecot ] && [ -e /usr/lib/dovecot/imap ] || norecommends+=(dovecot-imapd)
command -v openssl >/dev/null || missing+=(openssl)
# PostgreSQL, the shared store's backend: the tests make their own clusters with initdb.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
all=("${missing[@]}" "${norecommends[@]}")
if [ ${#all[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${all[*]}" >&2
  sudo_ apt-get update -qq
  # The tests start their own servers on loopback: keep the packages' services from starting.
  policy=/usr/sbin/policy-rc.d
  added_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | sudo_ tee "$policy" >/dev/null && sudo_ chmod +x "$policy" && added_policy=1
  fi
  apt_install() { sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  [ ${#norecommends[@]} -eq 0 ] || apt_install --no-install-recommends "${norecommends[@]}"
  [ -z "$added_policy" ] || sudo_ rm -f "$policy"
  # Where systemd runs, the packages' units are enabled for the next boot: the tests start their
  # own PowerDNS, Knot and Dovecot on loopback, so keep Debian's off.
  if [ -d /run/systemd/system ]; then
    sudo_ systemctl disable --now pdns.service knot.service dovecot.service dovecot.socket postgresql.service >/dev/null 2>&1 || true
  fi
fi
if ! python3 -c 'import dkim, dns.resolver, jsonschema, nacl, cryptography' 2>/dev/null; then
  echo "tests/run.sh: installing dkimpy, dnspython, jsonschema, pynacl and cryptography" >&2
  python3 -m pip install -q dkimpy dnspython jsonschema pynacl cryptography 2>/dev/null \
    || python3 -m pip install -q --break-system-packages dkimpy dnspython jsonschema pynacl cryptography
fi
if ! command -v moto_server >/dev/null; then
  echo "tests/run.sh: installing moto[server] (the Route53 adapter's tests)" >&2
  python3 -m pip install -q 'moto[server]' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'moto[server]'
fi
exec cargo test --workspace "$@"
