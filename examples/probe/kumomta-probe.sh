#!/bin/sh
# rotor's probe for KumoMTA (`probe: {command: "/usr/local/lib/rotor/kumomta-probe.sh DIR"}`).
#
# KumoMTA signs in its policy when a message is received (the DKIM helper's signer, called from
# smtp_server_message_received), so the probe goes in by SMTP like any submission, from
# $ROTOR_PROBE_SENDER to $PROBE_RECIPIENT (default rotor-probe@probe.invalid), and the policy
# routes that recipient's domain to a maildir queue, e.g.
#
#   kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
#     if domain == 'probe.invalid' then
#       return kumo.make_queue_config { protocol = { maildir_path = '/var/lib/rotor/probe' } }
#     end
#     ...
#
# The script waits for the copy with the probe's Message-ID under DIR (the maildir), prints it
# and removes it. Not run by rotor's suite (Debian has no KumoMTA); its shape is exim-probe.sh's.
#
# Environment: KUMO_SMTP (host:port of a listener that relays for 127.0.0.1, default
# 127.0.0.1:25), PROBE_RECIPIENT, PROBE_TIMEOUT (seconds, default 20).
set -eu
dir=$1
smtp=${KUMO_SMTP:-127.0.0.1:25}
recipient=${PROBE_RECIPIENT:-rotor-probe@probe.invalid}
timeout=${PROBE_TIMEOUT:-20}
message=$(mktemp)
trap 'rm -f "$message"' EXIT
cat > "$message"
id=$(sed -n 's/^Message-ID: *//Ip' "$message" | head -n 1 | tr -d '\r')
[ -n "$id" ] || { echo "kumomta-probe: the probe has no Message-ID" >&2; exit 2; }
python3 - "$smtp" "$ROTOR_PROBE_SENDER" "$recipient" "$message" <<'PY'
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
with open(sys.argv[4], "rb") as f:
    body = f.read()
with smtplib.SMTP(host, int(port), timeout=30) as smtp:
    smtp.sendmail(sys.argv[2], [sys.argv[3]], body)
PY
waited=0
while :; do
    found=$(grep -rlF -- "$id" "$dir" 2>/dev/null | head -n 1 || true)
    if [ -n "$found" ]; then
        cat "$found"
        rm -f "$found"
        exit 0
    fi
    if [ "$waited" -ge $((timeout * 10)) ]; then
        echo "kumomta-probe: no signed copy of the probe in $dir after ${timeout}s" >&2
        exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
done
