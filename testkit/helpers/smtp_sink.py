#!/usr/bin/env python3
"""A tiny SMTP sink for rotor's tests: accepts every message on 127.0.0.1:PORT and writes each
one, exactly as received (dot-unstuffed, CRLF line ends), to DIR/NNNNNN.eml (temp + rename, so a
reader never sees half a message). Prints "ready" on stdout once it listens. Stdlib only."""

import argparse
import os
import socketserver
import threading

COUNTER = threading.Lock()
STATE = {"next": 0}


class Session(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.reply("220 sink.test ESMTP rotor test sink")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.decode("latin-1").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink.test")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                self.data()
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")

    def data(self):
        lines = []
        while True:
            line = self.rfile.readline()
            if not line:
                return  # the client gave up mid-message (Exim does when signing fails)
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)
        with COUNTER:
            STATE["next"] += 1
            n = STATE["next"]
        path = os.path.join(self.server.out_dir, "%06d.eml" % n)
        with open(path + ".tmp", "wb") as f:
            f.write(b"".join(lines))
        os.rename(path + ".tmp", path)
        self.reply("250 OK queued as %d" % n)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    server = Server(("127.0.0.1", args.port), Session)
    server.out_dir = args.dir
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
