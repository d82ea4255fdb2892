#!/bin/sh
# rotor's probe for a signer inside an MTA (`probe: {command: "/usr/local/lib/rotor/mta-probe.sh DIR"}`):
# the probe goes the way real mail goes, and the signed copy is read back from DIR.
#
# - Exim signs in its smtp transport only: by default the probe is submitted with `exim -odi`
#   from $ROTOR_PROBE_SENDER to $PROBE_RECIPIENT (default rotor-probe@localhost), routed through
#   the DKIM-signing smtp transport to a listener that files it in DIR (e.g. this Exim itself on
#   127.0.0.1:25, whose router for the recipient delivers to a maildir's new/).
# - KumoMTA signs when a message is received (the DKIM helper's signer, called from
#   smtp_server_message_received): set PROBE_SMTP=host:port and the probe is submitted by SMTP
#   to that listener, to a recipient whose domain the policy routes to a maildir queue, e.g.
#     kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
#       if domain == 'probe.invalid' then
#         return kumo.make_queue_config { protocol = { maildir_path = '/var/lib/rotor/probe' } }
#       end ...
#
# The script waits for the copy with the probe's Message-ID under DIR, prints it, and removes it.
#
# Environment: PROBE_SMTP (host:port: submit by SMTP instead of exim -odi), EXIM (default: exim4
# or exim on PATH), EXIM_ARGS (e.g. "-C /etc/exim4/exim4.conf"), PROBE_RECIPIENT,
# PROBE_TIMEOUT (seconds, default 20).
set -eu
dir=$1
recipient=${PROBE_RECIPIENT:-rotor-probe@localhost}
timeout=${PROBE_TIMEOUT:-20}
message=$(mktemp)
trap 'rm -f "$message"' EXIT
cat > "$message"
id=$(sed -n 's/^Message-ID: *//Ip' "$message" | head -n 1 | tr -d '\r')
[ -n "$id" ] || { echo "mta-probe: the probe has no Message-ID" >&2; exit 2; }
if [ -n "${PROBE_SMTP:-}" ]; then
    python3 - "$PROBE_SMTP" "$ROTOR_PROBE_SENDER" "$recipient" "$message" <<'PY'
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
with open(sys.argv[4], "rb") as f:
    body = f.read()
with smtplib.SMTP(host, int(port), timeout=30) as smtp:
    smtp.sendmail(sys.argv[2], [sys.argv[3]], body)
PY
else
    exim=${EXIM:-$(command -v exim4 || command -v exim)}
    # shellcheck disable=SC2086 # EXIM_ARGS is a list of arguments
    "$exim" ${EXIM_ARGS:-} -odi -f "$ROTOR_PROBE_SENDER" "$recipient" < "$message"
fi
waited=0
while :; do
    found=$(grep -rlF -- "$id" "$dir" 2>/dev/null | head -n 1 || true)
    if [ -n "$found" ]; then
        cat "$found"
        rm -f "$found"
        exit 0
    fi
    if [ "$waited" -ge $((timeout * 10)) ]; then
        echo "mta-probe: no signed copy of the probe in $dir after ${timeout}s" >&2
        exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
done
