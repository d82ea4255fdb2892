#!/usr/bin/env bash
# Key generation, rotor-keys against OpenSSL's command line, in one run on this machine.
#
#   bench/keygen.sh [N]        (N keys of each kind, default 200)
#
# For RSA-2048 and Ed25519 it makes N keys with rotor-keys (keys/examples/keygen.rs, built with
# --release: PrivateKey::generate, PEM included, one thread per core, each key timed on its
# thread) and N with `openssl genrsa 2048` / `openssl genpkey -algorithm ed25519` (one process
# per key, `xargs -P $(nproc)`, each process timed from its start to its exit, so the process
# start is in OpenSSL's numbers: its own row shows how much). It prints a markdown table of the
# per-key median and 90th percentile and the throughput with all cores busy. Keys go to
# /dev/null; nothing secret is printed. Needs cargo, openssl, bash 5, awk, xargs.
set -euo pipefail
export LC_ALL=C

n=${1:-200}
case $n in '' | *[!0-9]* | 0) echo "usage: $0 [N]  (N a positive number)" >&2; exit 2 ;; esac
cores=$(nproc)
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "building keys/examples/keygen.rs (--release) ..." >&2
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p rotor-keys --example keygen
bin=$target/release/examples/keygen

# rotor ALGORITHM: N keys on all cores; lines `key MS` and `wall S`.
rotor() {
    "$bin" "$1" "$n" "$cores"
}

# processes COMMAND: COMMAND run N times, `$cores` at a time; the same lines as rotor's.
processes() {
    local start end
    start=$EPOCHREALTIME
    # shellcheck disable=SC2016 # expanded by the inner bash
    seq "$n" | xargs -P "$cores" -n 1 bash -c '
        s=$EPOCHREALTIME
        '"$1"' >/dev/null 2>&1 || { echo "failed: '"$1"'" >&2; exit 255; }
        e=$EPOCHREALTIME
        echo "span $s $e"' _ |
        awk '$1 == "span" { printf "key %.3f\n", ($3 - $2) * 1000 }'
    end=$EPOCHREALTIME
    awk -v s="$start" -v e="$end" 'BEGIN { printf "wall %.6f\n", e - s }'
}

# sorted FILE: the per-key milliseconds of FILE, ascending.
sorted() {
    awk '$1 == "key" { print $2 }' "$1" | sort -g
}

# median FILE: the per-key median in milliseconds.
median() {
    sorted "$1" | awk '{ ms[++k] = $1 } END { print (k % 2) ? ms[(k + 1) / 2] : (ms[k / 2] + ms[k / 2 + 1]) / 2 }'
}

# row NAME FILE: a table row from `key`/`wall` lines (p90 by nearest rank).
row() {
    local wall
    wall=$(awk '$1 == "wall" { print $2 }' "$2")
    sorted "$2" | awk -v name="$1" -v wall="$wall" -v median="$(median "$2")" '
        { ms[++k] = $1 }
        END {
            p90 = ms[int(0.9 * k + 0.999999)]
            printf "| %s | %d | %s | %s | %.1f |\n", name, k, ms_text(median), ms_text(p90), k / wall
        }
        function ms_text(v) { return sprintf(v < 1 ? "%.3f ms" : v < 10 ? "%.2f ms" : "%.1f ms", v) }'
}

echo "RSA-2048: rotor-keys ..." >&2
rotor rsa-2048 >"$tmp/rotor-rsa"
echo "RSA-2048: openssl genrsa 2048 ..." >&2
processes "openssl genrsa 2048" >"$tmp/openssl-rsa"
echo "Ed25519: rotor-keys ..." >&2
rotor ed25519 >"$tmp/rotor-ed"
echo "Ed25519: openssl genpkey -algorithm ed25519 ..." >&2
processes "openssl genpkey -algorithm ed25519" >"$tmp/openssl-ed"
echo "process start alone: openssl version ..." >&2
processes "openssl version" >"$tmp/openssl-start"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "Machine: $cores cores ($cpu); $(openssl version | cut -d' ' -f1-2); $(rustc --version | cut -d' ' -f1-2)."
echo "N = $n keys of each kind, $cores at a time."
echo
echo "| generator | keys | per-key median | per-key p90 | keys/s, $cores cores |"
echo "| --- | ---: | ---: | ---: | ---: |"
row "rotor-keys RSA-2048 (rsa 0.10)" "$tmp/rotor-rsa"
row "\`openssl genrsa 2048\`" "$tmp/openssl-rsa"
row "rotor-keys Ed25519 (ed25519-dalek 3)" "$tmp/rotor-ed"
row "\`openssl genpkey -algorithm ed25519\`" "$tmp/openssl-ed"
row "\`openssl version\` (process start only)" "$tmp/openssl-start"
echo
awk -v r="$(median "$tmp/rotor-rsa")" -v o="$(median "$tmp/openssl-rsa")" 'BEGIN {
    printf "RSA-2048 per-key median, rotor-keys / openssl genrsa: %.2f (goal: at most 0.50)\n", r / o
}'
