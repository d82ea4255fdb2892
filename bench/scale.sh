#!/usr/bin/env bash
# rotor at scale: N domains through RFC 2136 to a real BIND 9 on 127.0.0.1, against the peer
# baseline of the same work done by hand (openssl genrsa on every core, one batched nsupdate).
#
#   bench/scale.sh N [--signer files|opendkim] [--key rsa-1024|rsa-2048|rsa-3072|rsa-4096]
#                    [--keep] [--no-rotation]
#
# In one run: starts its own BIND (one primary, a free port, stopped on exit), writes a config
# with N domains (bench/gen-config.py), builds rotor in release, and measures with
# /usr/bin/time -v (wall and peak RSS):
#   rotation 1   `rotor run` from nothing, repeated (1 s apart, as a timer would) until
#                every domain's key is active (the min_wait gate is 2 s: two runs at least)
#   idle         `rotor run` with nothing due, 5 times (median)
#   status       `rotor status` and `rotor status --json --all`, 5 times each (median)
#   rotation 2   `rotor rotate` of every domain, then `rotor run`s until every new key is
#                active and every old one retired (grace 6 s); then idle runs again
#   peer         N x `openssl genrsa BITS` with xargs -P $(nproc); the same keys by rotor-keys
#                alone; one nsupdate adding N TXT records of that DKIM record's size, 100 per
#                UPDATE message
# --key (default rsa-2048) is the one key type of every domain and of the peers: rsa-1024
# makes a 10,000-domain run affordable on a small machine.
# and prints a markdown table (also written to the work directory as results.md).
# Everything lives in a temporary directory, removed at the end unless --keep.
set -euo pipefail

usage() { echo "usage: bench/scale.sh N [--signer files|opendkim] [--key rsa-BITS] [--keep] [--no-rotation]" >&2; exit 2; }
[ $# -ge 1 ] || usage
count=$1; shift
[[ $count =~ ^[1-9][0-9]*$ ]] || usage
signer=files keep=0 rotation2=1 key=rsa-2048
while [ $# -gt 0 ]; do
  case $1 in
    --signer) [ $# -ge 2 ] || usage; signer=$2; shift 2 ;;
    --key) [ $# -ge 2 ] || usage; key=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-rotation) rotation2=0; shift ;;
    *) usage ;;
  esac
done
case $signer in files|opendkim) ;; *) usage ;; esac
case $key in rsa-1024|rsa-2048|rsa-3072|rsa-4096) bits=${key#rsa-} ;; *) usage ;; esac

here=$(cd "$(dirname "$0")/.." && pwd)
helper="python3 $here/bench/scale_helper.py"
PATH=$PATH:/usr/sbin
cores=$(nproc)
per_message=100
idle_runs=5

need=()
command -v named >/dev/null && command -v tsig-keygen >/dev/null || need+=(bind9)
command -v nsupdate >/dev/null && command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "==> building rotor (release)"
target=${CARGO_TARGET_DIR:-$here/target}
(cd "$here" && cargo build --quiet --release --bin rotor && cargo build --quiet --release -p rotor-keys --example keygen)
bin=$target/release/rotor

work=$(mktemp -d /tmp/rotor-bench.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/log" "$work/time"
named_pid=""
cleanup() {
  local code=$?
  if [ -n "$named_pid" ]; then
    kill "$named_pid" 2>/dev/null || true
    wait "$named_pid" 2>/dev/null || true
  fi
  if [ "$keep" = 1 ]; then echo "==> BIND stopped; files kept in $work"
  else rm -rf "$work"; echo "==> BIND stopped; $work removed (--keep keeps it)"; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$($helper free-port)
echo "==> starting BIND on 127.0.0.1:$port (zones bench.test for rotor, peer.test for nsupdate)"
(umask 077 && tsig-keygen -a hmac-sha256 rotor-key > "$work/tsig.key")
mkdir -p "$work/bind"
for zone in bench.test peer.test; do
  cat > "$work/bind/$zone.db" <<EOF
\$TTL 60
@    IN SOA ns1.$zone. hostmaster.$zone. ( 1 3600 600 86400 60 )
@    IN NS  ns1.$zone.
ns1  IN A   127.0.0.1
EOF
done
{
  cat <<EOF
include "$work/tsig.key";
options {
  directory "$work/bind";
  pid-file "$work/bind/named.pid";
  session-keyfile "$work/bind/session.key";
  listen-on port $port { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
controls { };
EOF
  for zone in bench.test peer.test; do
    cat <<EOF
zone "$zone" {
  type primary;
  file "$zone.db";
  update-policy { grant rotor-key zonesub TXT; };
  allow-transfer { 127.0.0.1; };
};
EOF
  done
} > "$work/bind/named.conf"
named -g -c "$work/bind/named.conf" > "$work/bind/named.log" 2>&1 &
named_pid=$!
for _ in $(seq 100); do
  dig +short +norecurse +time=1 +tries=1 -p "$port" @127.0.0.1 SOA bench.test 2>/dev/null | grep -q hostmaster && break
  kill -0 "$named_pid" 2>/dev/null || { cat "$work/bind/named.log" >&2; echo "BIND did not start" >&2; exit 1; }
  sleep 0.1
done

python3 "$here/bench/gen-config.py" "$count" --out "$work/rotor.yaml" --dir "$work" \
  --server "127.0.0.1:$port" --tsig "$work/tsig.key" --signer "$signer" --keys "$key"
config=$work/rotor.yaml

meta=$work/meta.txt results=$work/results.tsv
: > "$results"
{
  echo "domains=$count"; echo "signer=$signer"; echo "keys=$key"; echo "bits=$bits"
  echo "cores=$cores"; echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rotor_version=$("$bin" --version | awk '{print $2}') ($(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "per_message=$per_message"; echo "sleep_between=1"
} > "$meta"

# measure LABEL CMD...: runs CMD under /usr/bin/time -v, stdout and stderr to log/LABEL.*;
# appends "LABEL wall rss user sys exit" to the results. Exit codes are recorded, not fatal.
measure() {
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  echo "$t0" > "$work/log/$label.start"
  /usr/bin/time -v -o "$work/time/$label" "$@" > "$work/log/$label.out" 2> "$work/log/$label.err" || true
  t1=$(date +%s.%N)
  local wall rss user sys code
  wall=$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")
  read -r rss user sys code < <($helper timev "$work/time/$label")
  printf '%s\t%.3f\t%s\t%s\t%s\t%s\n' "$label" "$wall" "$rss" "$user" "$sys" "$code" >> "$results"
  printf '    %-14s %8.3f s  %7.1f MB  exit %s\n' "$label" "$wall" "$(awk "BEGIN { print $rss / 1024 }")" "$code"
}
rotor() { "$bin" --config "$config" "$@"; }
status_json() { rotor status --json --all > "$1" 2>/dev/null || true; }

# runs_until PREFIX MODE [BEFORE]: `rotor run -v --log-format json` (1 s apart) until the
# status check MODE passes; each run is measured as PREFIX#i.
runs_until() {
  local prefix=$1 mode=$2 before=${3:-} i
  for i in $(seq 1 120); do
    measure "$prefix#$i" "$bin" --config "$config" -v --log-format json run
    $helper phases "$work/log/$prefix#$i.err" "$(cat "$work/log/$prefix#$i.start")" | tee -a "$work/phases.txt"
    status_json "$work/status.json"
    if $helper status-check "$mode" "$work/status.json" $before; then return 0; fi
    sleep 1
  done
  echo "scale: $prefix did not finish in 120 runs" >&2
  return 1
}

echo "==> rotor check"
rotor check > "$work/log/check.out" 2>&1 || { cat "$work/log/check.out" >&2; exit 1; }

echo "==> rotation 1: $count domains from nothing until every key is active"
started=$(date +%s.%N)
echo "rotation 1" >> "$work/phases.txt"
runs_until first active
echo "first_elapsed=$(python3 -c "import time; print(f'{time.time() - $started:.2f}')")" >> "$meta"
cp "$work/status.json" "$work/status-rotation1.json"

echo "==> idle rotor run (nothing due) x $idle_runs"
for i in $(seq 1 $idle_runs); do measure "idle#$i" "$bin" --config "$config" run; done
echo "==> rotor status x $idle_runs"
for i in $(seq 1 $idle_runs); do measure "status#$i" "$bin" --config "$config" status; done
for i in $(seq 1 $idle_runs); do measure "status_json#$i" "$bin" --config "$config" status --json --all; done

if [ "$rotation2" = 1 ]; then
  echo "==> rotation 2: rotor rotate (every domain), then runs until the old keys are retired"
  mapfile -t names < <(grep -o 'name: d[0-9]*\.bench\.test' "$config" | cut -d' ' -f2)
  echo "rotation 2" >> "$work/phases.txt"
  measure "second#0" "$bin" --config "$config" -v --log-format json rotate "${names[@]}"
  $helper phases "$work/log/second#0.err" "$(cat "$work/log/second#0.start")" | tee -a "$work/phases.txt"
  sleep 1
  runs_until second rotated "$work/status-rotation1.json"
  echo "==> idle rotor run after rotation 2 x $idle_runs"
  for i in $(seq 1 $idle_runs); do measure "idle2#$i" "$bin" --config "$config" run; done
fi
echo "store_size=$(du -sh "$work/state" | cut -f1) (state_dir), $(du -sh "$work/keys" | cut -f1) (key_dir)" >> "$meta"
echo "zone_records=$(dig +nocmd +nostats -p "$port" @127.0.0.1 AXFR bench.test | grep -c '_domainkey') DKIM TXT records in bench.test" >> "$meta"

echo "==> peer: $count x openssl genrsa $bits on $cores cores"
mkdir -p "$work/openssl" && chmod 700 "$work/openssl"
measure "openssl" sh -c "seq $count | xargs -P $cores -I{} openssl genrsa -out $work/openssl/{}.pem $bits 2>/dev/null"
echo "==> peer: $count RSA-$bits keys by rotor-keys (rsa 0.10, the fastest generator here) on $cores threads"
measure "rustkeys" "${CARGO_TARGET_DIR:-$here/target}/release/examples/keygen" "$key" "$count" "$cores"
echo "==> peer: one nsupdate, $count TXT records, $per_message per message"
$helper nsupdate-input "$count" peer.test 127.0.0.1 "$port" "$per_message" "$bits" > "$work/nsupdate.txt"
echo "txt_bytes=$(grep -m1 'update add' "$work/nsupdate.txt" | sed 's/.*TXT //; s/" "//g; s/"//g' | tr -d '\n' | wc -c)" >> "$meta"
measure "nsupdate" nsupdate -v -k "$work/tsig.key" "$work/nsupdate.txt"
peer=$(dig +nocmd +nostats -p "$port" @127.0.0.1 AXFR peer.test | grep -c '_domainkey' || true)
[ "$peer" = "$count" ] || { echo "scale: nsupdate published $peer of $count records" >&2; cat "$work/log/nsupdate.err" >&2; exit 1; }

echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$meta"
echo
$helper table "$results" "$meta" | tee "$work/results.md"
echo
echo "Where the time went (seconds after each run's start, from rotor -v --log-format json):"
cat "$work/phases.txt"
