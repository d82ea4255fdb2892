#!/usr/bin/env python3
"""What a mail client sees in a test's Dovecot (python's imaplib, independent of rotor's client).

    imap_tool.py PORT USER append MAILBOX   < message    (creates MAILBOX if missing)
    imap_tool.py PORT USER count MAILBOX                  (prints the number of messages)
    imap_tool.py PORT USER seen MAILBOX                   (prints the number flagged \\Seen)

The password is read from the environment variable IMAP_PASSWORD. A mailbox that does not
exist counts 0. Stdlib only."""

import imaplib
import os
import sys


def main():
    port, user, action, mailbox = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    imap = imaplib.IMAP4("127.0.0.1", int(port))
    imap.login(user, os.environ["IMAP_PASSWORD"])
    quoted = '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if action == "append":
        message = sys.stdin.buffer.read()
        imap.create(quoted)  # NO [ALREADYEXISTS] when it exists: fine
        status, data = imap.append(quoted, None, None, message)
        if status != "OK":
            sys.exit(f"APPEND {mailbox}: {status} {data}")
    elif action in ("count", "seen"):
        status, data = imap.select(quoted, readonly=True)
        if status != "OK":
            print(0)
        else:
            query = "ALL" if action == "count" else "SEEN"
            status, data = imap.uid("SEARCH", None, query)
            if status != "OK":
                sys.exit(f"SEARCH {query}: {status} {data}")
            print(len(data[0].split()))
    else:
        sys.exit(f"unknown action {action}")
    imap.logout()


if __name__ == "__main__":
    main()
