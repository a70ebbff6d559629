#!/usr/bin/env python3
"""Hold many idle keep-alive TLS connections, for bench/http.sh.

    idle_conns.py HOST PORT CAFILE COUNT [CONNECT_IP]

Opens one TLS connection to HOST:PORT (SNI and certificate check against
HOST, trusting only CAFILE), sends one keep-alive `GET /` and reads the whole
response, then prints `ready 1` and waits for a line on stdin. It then does
the same for COUNT-1 more connections, prints `ready COUNT SECONDS` (the
time those took) and waits for stdin to be closed (or a line), keeping every
connection open and idle. The harness reads the supervisor's memory at the
two `ready` points.

CONNECT_IP, when given, is the address to connect to instead of resolving
HOST (the direct run: the harness cannot edit the host's /etc/hosts). Inside
the sandbox HOST resolves through the sandbox's virtual /etc/hosts.

Runs inside the sandbox with the system python3 (only /usr is needed).
"""
import socket
import ssl
import sys
import time


def one(ctx: ssl.SSLContext, host: str, port: int, addr: str) -> ssl.SSLSocket:
    raw = socket.create_connection((addr, port), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname=host)
    s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed before the response headers")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200"):
        raise RuntimeError(f"unexpected status line: {lines[0]!r}")
    length = None
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
        if k.strip().lower() == "connection" and v.strip().lower() == "close":
            raise RuntimeError("server asked to close the connection")
    if length is None:
        raise RuntimeError("no Content-Length in the response")
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed in the response body")
        body += chunk
    return s


def main() -> int:
    host, port, cafile, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    addr = sys.argv[5] if len(sys.argv) > 5 else host
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    conns = [one(ctx, host, port, addr)]
    print("ready 1", flush=True)
    sys.stdin.readline()
    t0 = time.monotonic()
    for _ in range(count - 1):
        conns.append(one(ctx, host, port, addr))
    print(f"ready {len(conns)} {time.monotonic() - t0:.3f}", flush=True)
    sys.stdin.readline()
    for s in conns:
        s.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # one line for the harness's log
        print(f"idle_conns: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
