#!/usr/bin/env python3
"""A fault-injecting proxy on loopback, for rotor's fault tests.

Usage:
    fault_proxy.py http --port PORT --upstream HOST:PORT --flavor cloudflare|aws
                        --rate 0.3 --seed N --stats FILE [--hang SECONDS]
    fault_proxy.py dns  --port PORT --upstream HOST:PORT --rate 0.3 --seed N --stats FILE
                        [--delay SECONDS]

It binds 127.0.0.1:PORT (TCP, and UDP too in dns mode), prints `ready` once listening and exits on
SIGTERM. Each request (an HTTP request, a DNS message) draws from one random generator seeded with
N, in arrival order: with probability RATE it gets a fault, else it is passed to the upstream and
its answer relayed. After every request FILE holds {"calls": n, "faults": {kind: n, ...}}.

HTTP faults (one connection per request, `Connection: close`):
  500    answered 500 without forwarding;
  429    throttled without forwarding: 429 with `Retry-After: 1` and Cloudflare's code 971
         (flavor cloudflare), or 400 `Throttling` (flavor aws, as Route53 throttles);
  hang   forwarded (so it is applied), then no answer for --hang seconds and a reset: the client
         cannot know whether its write happened;
  reset  the connection is reset before anything is forwarded.
DNS faults (over TCP; over UDP the message is dropped or delayed alike):
  drop   the connection is closed before anything is forwarded;
  lost   forwarded (an UPDATE is applied), the answer dropped and the connection closed;
  delay  forwarded after --delay seconds (past a client's timeout, it gives up first).
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Faults:
    """The seeded draw and the counts, shared by every handler thread."""

    def __init__(self, rate, seed, kinds, stats):
        self.rate = rate
        self.random = random.Random(seed)
        self.kinds = kinds
        self.stats = stats
        self.lock = threading.Lock()
        self.calls = 0
        self.counts = {kind: 0 for kind in kinds}
        self.write()

    def draw(self):
        """None (pass), or the kind of fault for this request."""
        with self.lock:
            self.calls += 1
            kind = None
            if self.random.random() < self.rate:
                kind = self.random.choice(self.kinds)
                self.counts[kind] += 1
            self.write()
            return kind

    def write(self):
        tmp = self.stats + ".tmp"
        with open(tmp, "w") as out:
            json.dump({"calls": self.calls, "faults": self.counts}, out)
        os.replace(tmp, self.stats)


def reset(sock):
    """Closes `sock` with a TCP reset instead of an orderly close."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


def http_handler(args, faults):
    upstream_host, upstream_port = args.upstream.rsplit(":", 1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def answer(self, status, headers, body):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def forward(self, body):
            conn = http.client.HTTPConnection(upstream_host, int(upstream_port), timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            relayed = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            conn.close()
            return response.status, relayed, data

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            kind = faults.draw()
            if kind == "reset":
                self.close_connection = True
                reset(self.connection)
                return
            if kind == "500":
                message = json.dumps({"success": False, "errors": [
                    {"code": 10001, "message": "injected server error"}]}).encode()
                if args.flavor == "aws":
                    message = b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>injected</Message></Error></ErrorResponse>"
                return self.answer(500, [], message)
            if kind == "429":
                if args.flavor == "aws":
                    message = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>"
                    return self.answer(400, [("Content-Type", "text/xml")], message)
                message = json.dumps({"success": False, "errors": [
                    {"code": 971, "message": "Please wait and consider throttling your request speed"}]}).encode()
                return self.answer(429, [("Retry-After", "1"), ("Content-Type", "application/json")], message)
            status, headers, data = self.forward(body)
            if kind == "hang":
                time.sleep(args.hang)
                self.close_connection = True
                reset(self.connection)
                return
            self.answer(status, headers, data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    return Handler


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def dns_servers(args, faults):
    host, port = args.upstream.rsplit(":", 1)
    upstream = (host, int(port))

    def over_tcp(message):
        with socket.create_connection(upstream, timeout=10) as sock:
            sock.sendall(struct.pack("!H", len(message)) + message)
            head = read_exact(sock, 2)
            return read_exact(sock, struct.unpack("!H", head)[0]) if head else None

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            while True:
                head = read_exact(sock, 2)
                if not head:
                    return
                message = read_exact(sock, struct.unpack("!H", head)[0])
                if message is None:
                    return
                kind = faults.draw()
                if kind == "drop":
                    return reset(sock)
                if kind == "delay":
                    time.sleep(args.delay)
                answer = over_tcp(message)
                if kind == "lost" or answer is None:
                    return reset(sock)
                try:
                    sock.sendall(struct.pack("!H", len(answer)) + answer)
                except OSError:
                    return

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            message, sock = self.request
            kind = faults.draw()
            if kind in ("drop", "lost"):
                return
            if kind == "delay":
                time.sleep(args.delay)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.settimeout(10)
                out.sendto(message, upstream)
                try:
                    answer, _ = out.recvfrom(65535)
                except OSError:
                    return
            sock.sendto(answer, self.client_address)

    class TcpServer(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    class UdpServer(socketserver.ThreadingUDPServer):
        daemon_threads = True

    return [TcpServer(("127.0.0.1", args.port), Tcp), UdpServer(("127.0.0.1", args.port), Udp)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["http", "dns"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--flavor", choices=["cloudflare", "aws"], default="cloudflare")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--hang", type=float, default=2.0)
    parser.add_argument("--delay", type=float, default=3.0)
    args = parser.parse_args()
    if args.mode == "http":
        faults = Faults(args.rate, args.seed, ["500", "429", "hang", "reset"], args.stats)
        server = ThreadingHTTPServer(("127.0.0.1", args.port), http_handler(args, faults))
        server.daemon_threads = True
        servers = [server]
    else:
        faults = Faults(args.rate, args.seed, ["drop", "lost", "delay"], args.stats)
        servers = dns_servers(args, faults)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
