#!/usr/bin/env bash
# An idle rotor at scale: N domains, each with one active key and nothing due, without
# generating keys or starting a DNS server.
#
#   bench/idle.sh N [--bin PATH] [--list] [--keep]
#
# Seeds the store (STATE_DIR/store) with N domains (state/examples/seed.rs: one active RSA-2048 key each, activated
# now, so nothing is due for `rotate_every: 90d`), writes the matching config
# (bench/gen-config.py, the same names d00001.bench.test …), and measures with /usr/bin/time -v
# `rotor run` (nothing due: it must ask no DNS server; the provider points at 127.0.0.1:53) and
# the readers (`rotor status`, `status --json`, `status --check`, `plan`, `plan --json`), 5 times
# each (RUNS=n to change), printing every run and the medians (wall, peak RSS, user, sys).
# --bin measures another rotor binary (default: a release build of this checkout); --list puts
# the domains in a `domains_file` (JSON lines) instead of the YAML.
set -euo pipefail

usage() { echo "usage: bench/idle.sh N [--bin PATH] [--list] [--keep]" >&2; exit 2; }
[ $# -ge 1 ] || usage
count=$1; shift
[[ $count =~ ^[1-9][0-9]*$ ]] || usage
bin="" keep=0 list=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) [ $# -ge 2 ] || usage; bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --list) list=(--list); shift ;;
    *) usage ;;
  esac
done
[ -x /usr/bin/time ] || { echo "bench/idle.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

here=$(cd "$(dirname "$0")/.." && pwd)
helper="python3 $here/bench/scale_helper.py"
target=${CARGO_TARGET_DIR:-$here/target}
runs=${RUNS:-5}

echo "==> building (release)"
(cd "$here" && cargo build --quiet --release -p rotor-state --example seed)
if [ -z "$bin" ]; then
  (cd "$here" && cargo build --quiet --release --bin rotor)
  bin=$target/release/rotor
fi

work=$(mktemp -d /tmp/rotor-idle.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/log" "$work/time"
cleanup() {
  local code=$?
  if [ "$keep" = 1 ]; then echo "==> files kept in $work"; else rm -rf "$work"; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A TSIG key in BIND's format: the provider is built, never asked.
(umask 077 && printf 'key "rotor-key" {\n\talgorithm hmac-sha256;\n\tsecret "%s";\n};\n' \
  "$(head -c 32 /dev/urandom | base64)" > "$work/tsig.key")
config=$work/rotor.yaml
python3 "$here/bench/gen-config.py" "$count" "${list[@]}" --out "$config" --dir "$work"
echo "==> seeding $count domains"
start=$(date +%s.%N)
mkdir -p "$work/state"
"$target/release/examples/seed" "$work/state/store" "$count" "$work/keys"
echo "    seeded in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s"

results=$work/results.tsv
: > "$results"
measure() {
  local label=$1; shift
  local t0 t1 wall rss user sys code
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time/$label" "$@" > "$work/log/$label.out" 2> "$work/log/$label.err" || true
  t1=$(date +%s.%N)
  wall=$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")
  read -r rss user sys code < <($helper timev "$work/time/$label")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${label%#*}" "$wall" "$rss" "$user" "$sys" "$code" >> "$results"
  printf '    %-10s %8.3f s  %7.1f MB  user %s  sys %s  exit %s\n' "$label" "$wall" \
    "$(awk "BEGIN { print $rss / 1024 }")" "$user" "$sys" "$code"
}

# The first run after seeding plans every domain (the store has no index of due domains yet, as
# after an edit of the config): measured on its own, then the idle runs.
echo "==> first rotor run (plans every domain, writes the index of due domains)"
measure "first-run#1" "$bin" --config "$config" run
echo "==> idle rotor run x $runs"
for i in $(seq 1 $runs); do measure "run#$i" "$bin" --config "$config" run; done
echo "==> rotor status x $runs"
for i in $(seq 1 $runs); do measure "status#$i" "$bin" --config "$config" status; done
echo "==> rotor status --json, status --check, plan, plan --json x $runs"
for i in $(seq 1 $runs); do measure "status-json#$i" "$bin" --config "$config" status --json; done
for i in $(seq 1 $runs); do measure "status-check#$i" "$bin" --config "$config" status --check; done
for i in $(seq 1 $runs); do measure "plan#$i" "$bin" --config "$config" plan; done
for i in $(seq 1 $runs); do measure "plan-json#$i" "$bin" --config "$config" plan --json; done
if [ -s "$work/log/run#1.err" ]; then
  echo "==> what the first run said (stderr, first lines)"
  head -n 5 "$work/log/run#1.err" | cut -c1-200
fi

echo "==> medians, N = $count"
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, rss, user, sys_, code = line.rstrip("\n").split("\t")
    rows.setdefault(label, []).append((float(wall), int(rss), float(user), float(sys_), code))
print("| command | wall (s) | peak RSS (MB) | user (s) | sys (s) | exit |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for label, runs in rows.items():
    med = lambda i: statistics.median(r[i] for r in runs)
    codes = ",".join(sorted({r[4] for r in runs}))
    print(f"| {label} | {med(0):.3f} | {med(1) / 1024:.1f} | {med(2):.2f} | {med(3):.2f} | {codes} |")
EOF
