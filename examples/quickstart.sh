#!/usr/bin/env bash
# rotor quickstart: starts a real BIND 9 (a primary and a secondary fed by zone transfer) on
# 127.0.0.1, writes a config with compressed timings (seconds instead of days) and runs two
# complete rotations of example.com, showing `rotor status` at every step.
# Everything lives in a temporary directory; BIND is stopped at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
port1=${ROTOR_QS_PORT:-53531}
port2=$((port1 + 1))

if ! command -v named >/dev/null || ! command -v tsig-keygen >/dev/null; then
  echo "==> installing BIND 9 (bind9, bind9-dnsutils)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bind9 bind9-dnsutils >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq bind9 bind9-dnsutils >/dev/null; fi
fi
PATH=$PATH:/usr/sbin

echo "==> building rotor"
(cd "$here" && cargo build --quiet --bin rotor)
rotor() { "$here/target/debug/rotor" --config "$work/rotor.yaml" "$@"; }

work=$(mktemp -d /tmp/rotor-quickstart.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "==> BIND stopped; files kept in $work"
}
trap cleanup EXIT

for port in "$port1" "$port2"; do
  if dig +short +norecurse +time=1 +tries=1 -p "$port" @127.0.0.1 SOA example.com >/dev/null 2>&1; then
    echo "quickstart: something already answers DNS on 127.0.0.1:$port (an earlier quickstart?); stop it first" >&2
    exit 1
  fi
done
echo "==> starting BIND on 127.0.0.1:$port1 (primary) and :$port2 (secondary)"
(umask 077 && tsig-keygen -a hmac-sha256 rotor-key > "$work/tsig.key")   # a secret: 0600
for role in primary secondary; do mkdir -p "$work/$role"; done
cat > "$work/primary/example.com.db" <<EOF
\$TTL 60
@    IN SOA ns1.example.com. hostmaster.example.com. ( 1 3600 600 86400 60 )
@    IN NS  ns1.example.com.
ns1  IN A   127.0.0.1
@    IN TXT "v=spf1 -all"
EOF
common() {
  cat <<EOF
include "$work/tsig.key";
options {
  directory "$work/$1";
  pid-file "$work/$1/named.pid";
  session-keyfile "$work/$1/session.key";
  listen-on port $2 { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify-source 127.0.0.1;
  transfer-source 127.0.0.1;
};
controls { };
EOF
}
{ common primary "$port1"; cat <<EOF
zone "example.com" {
  type primary;
  file "example.com.db";
  update-policy { grant rotor-key zonesub TXT; };
  notify explicit;
  also-notify { 127.0.0.1 port $port2; };
  allow-transfer { 127.0.0.1; };
};
EOF
} > "$work/primary/named.conf"
{ common secondary "$port2"; cat <<EOF
zone "example.com" {
  type secondary;
  file "example.com.db";
  primaries { 127.0.0.1 port $port1; };
};
EOF
} > "$work/secondary/named.conf"
for role in primary secondary; do
  named -g -c "$work/$role/named.conf" > "$work/$role/named.log" 2>&1 &
  pids+=($!)
done
for port in "$port1" "$port2"; do
  for _ in $(seq 100); do
    dig +short +norecurse +time=1 +tries=1 -p "$port" @127.0.0.1 SOA example.com | grep -q hostmaster && break
    sleep 0.1
  done
done

mkdir -p "$work/opendkim"
chmod 700 "$work/opendkim"
mkdir -p "$work/opendkim/keys" && chmod 700 "$work/opendkim/keys"
cat > "$work/rotor.yaml" <<EOF
# Compressed timings: a rotation takes seconds. Real deployments use the defaults
# (min_wait 4h, grace 7d, rotate_every 90d): see examples/rotor.yaml.
state_dir: $work/state
key_dir: $work/keys
defaults:
  keys: [rsa-2048]
  selector: "qs{yyyy}{mm}{dd}"
  rotate_every: 90d
  ttl: 5                           # not above grace: resolvers' copies expire within it
  propagation:
    resolvers: []
    authoritative: ["127.0.0.1:$port1", "127.0.0.1:$port2"]
    min_wait: 2s
    poll_every: 1s
    timeout: 2m
  grace: 6s
providers:
  local-bind:
    type: rfc2136
    server: 127.0.0.1:$port1
    tsig_key_file: $work/tsig.key
signers:
  mx1:
    type: opendkim
    key_table: $work/opendkim/KeyTable
    signing_table: $work/opendkim/SigningTable
    key_dir: $work/opendkim/keys
    reload: "echo \"\$(date +%T) opendkim reloaded\" >> $work/opendkim/reloads.log"
domains:
  - name: example.com
    provider: local-bind
    signers: [mx1]
EOF

echo "==> rotor check"
rotor check

last=""
show() {
  local now
  now=$(rotor status | tail -n +2 | awk '{print $2, $4}' | tr '\n' ' ')
  if [ "$now" != "$last" ]; then
    echo; echo "--- rotor status ($(date +%T))"; rotor status; last=$now
  fi
}
# Runs `rotor run` once a second (as a timer would) until the status matches.
run_until() {
  for _ in $(seq 120); do
    rotor run
    show
    if rotor status --json | python3 -c "$1"; then return 0; fi
    sleep 1
  done
  echo "rotation did not finish in time" >&2; exit 1
}
active_count='import json,sys; k=json.load(sys.stdin); sys.exit(0 if [r["phase"] for r in k]==["active"] else 1)'

echo; echo "==> rotation 1: the first key (generate, publish, wait until both nameservers have it, activate)"
run_until "$active_count"
for round in 2 3; do
  echo; echo "==> rotation $round: rotor rotate example.com (the old key retires after the 6s grace window)"
  rotor rotate example.com
  show
  run_until "$active_count"
done

echo; echo "==> what OpenDKIM was given"
cat "$work/opendkim/SigningTable" "$work/opendkim/KeyTable"
ls -l "$work/opendkim/keys"
sel=$(rotor status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["selector"])')
echo; echo "==> the record, on both nameservers"
for port in "$port1" "$port2"; do
  echo "127.0.0.1:$port: $(dig +short +norecurse -p "$port" @127.0.0.1 TXT "$sel._domainkey.example.com" | cut -c1-70)..."
done
echo; echo "==> rotor status --all"
rotor status --all
echo; echo "quickstart done: two full rotations, every retired record removed and its key destroyed."
