#!/usr/bin/env python3
"""Hold N idle client connections to a proxy (bench/run.sh, the "many-conns" scenario).

    python3 bench/idle_conns.py URL N

Opens N connections to URL's host and port, sends one GET for URL on each and reads the answer
(so each is a kept-alive connection the proxy has served), prints "holding N" and waits. On
SIGUSR1 (or after 120 s) it sends a second GET on every connection, prints "lost K" (connections
that were closed or did not answer 200 meanwhile) and exits. Loopback only.
"""
import signal
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def request(sock, path, host):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
        if len(head) > 65536:
            raise ConnectionError("head too large")
    top, _, rest = head.partition(b"\r\n\r\n")
    lines = top.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        rest += chunk
    return status


def main():
    url, n = sys.argv[1], int(sys.argv[2])
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback only")
    path = parts.path or "/"
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        if request(s, path, f"{host}:{port}") != 200:
            sys.exit("the first request on a connection did not answer 200")
        conns.append(s)
    print(f"holding {len(conns)}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: done.set())
    deadline = time.monotonic() + 120
    while not done.is_set() and time.monotonic() < deadline:
        time.sleep(0.1)
    lost = 0
    for s in conns:
        try:
            if request(s, path, f"{host}:{port}") != 200:
                lost += 1
        except (OSError, ValueError, IndexError):
            lost += 1
        s.close()
    print(f"lost {lost}", flush=True)


if __name__ == "__main__":
    main()
