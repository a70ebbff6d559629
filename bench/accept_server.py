#!/usr/bin/env python3
"""Accept-and-close TCP server on 127.0.0.1 for connect_loop.

Binds an ephemeral port (or argv[1]), writes the port number to stdout
(one line, flushed), then accepts and closes connections until killed.
Runs OUTSIDE the sandbox: the workload only connects.

It drains the accept queue in batches every millisecond instead of blocking
in accept(): nobody sleeps on the listener, so a client's connect never has
to wake the server (a cross-CPU wake-up, costly in a VM) and the baseline
measures the connect itself. The kernel completes the handshake before
accept(), so the batching does not delay the client.
"""
import signal
import socket
import sys
import time

def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4096)
    srv.setblocking(False)
    print(srv.getsockname()[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        while True:
            try:
                conn, _ = srv.accept()
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue
            conn.close()
        time.sleep(0.001)

if __name__ == "__main__":
    main()
