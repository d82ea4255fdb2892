#!/bin/sh
# rotor's probe for Exim (`probe: {command: "/usr/local/lib/rotor/exim-probe.sh DIR"}`).
#
# Exim signs in its smtp transport only, so the probe goes the way real mail goes: submitted
# with `exim -odi` from $ROTOR_PROBE_SENDER to $PROBE_RECIPIENT (default rotor-probe@localhost),
# routed through the DKIM-signing smtp transport to a listener that files it in DIR (e.g. this
# Exim itself on 127.0.0.1:25, whose router for the recipient delivers to a maildir's new/).
# The script waits for the copy with the probe's Message-ID in DIR, prints it, and removes it.
#
# Environment: EXIM (default: exim4 or exim on PATH), EXIM_ARGS (e.g. "-C /etc/exim4/exim4.conf"),
# PROBE_RECIPIENT, PROBE_TIMEOUT (seconds, default 20).
set -eu
dir=$1
exim=${EXIM:-$(command -v exim4 || command -v exim)}
recipient=${PROBE_RECIPIENT:-rotor-probe@localhost}
timeout=${PROBE_TIMEOUT:-20}
message=$(mktemp)
trap 'rm -f "$message"' EXIT
cat > "$message"
id=$(sed -n 's/^Message-ID: *//Ip' "$message" | head -n 1 | tr -d '\r')
[ -n "$id" ] || { echo "exim-probe: the probe has no Message-ID" >&2; exit 2; }
# shellcheck disable=SC2086 # EXIM_ARGS is a list of arguments
"$exim" ${EXIM_ARGS:-} -odi -f "$ROTOR_PROBE_SENDER" "$recipient" < "$message"
waited=0
while :; do
    found=$(grep -rlF -- "$id" "$dir" 2>/dev/null | head -n 1 || true)
    if [ -n "$found" ]; then
        cat "$found"
        rm -f "$found"
        exit 0
    fi
    if [ "$waited" -ge $((timeout * 10)) ]; then
        echo "exim-probe: no signed copy of the probe in $dir after ${timeout}s" >&2
        exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
done
