"""upload_sink.py: the upstream of bench/http.sh's upload rows.

usage: python3 upload_sink.py CERT KEY PORT_FILE PATTERN

Listens on 127.0.0.1 (an ephemeral port, written to PORT_FILE once it
listens) with TLS (ALPN http/1.1) and answers every request with a body
announced by Content-Length only after reading all of it: the body is
read into one reused buffer and dropped, and the answer is 200 "got N C",
C being how often PATTERN (a secret's real value) occurs in the body.
A request without Content-Length gets 411. Keep-alive; one thread per
connection. Nothing is logged or stored, so the sink costs little more
than TLS decryption.
"""

import os
import socket
import ssl
import sys
import threading

# The pattern counter of the tests' upstream fixture, so both count alike.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures"))
from upstream import Counter  # noqa: E402

BUF = 1 << 20


def serve(sock, pattern):
    buf = bytearray(BUF)
    view = memoryview(buf)
    pending = b""
    try:
        while True:
            while b"\r\n\r\n" not in pending:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length is None:
                sock.sendall(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            counter = Counter(pattern)
            counter.feed(pending[:length])
            got = min(len(pending), length)
            pending = pending[length:]
            while got < length:
                n = sock.recv_into(view[: min(BUF, length - got)])
                if not n:
                    return
                got += n
                counter.feed(view[:n])
            body = b"got %d %d\n" % (got, counter.count)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except (OSError, ssl.SSLError):
        pass
    finally:
        sock.close()


def main():
    cert, key, port_file, pattern = sys.argv[1:5]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % lst.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    while True:
        conn, _ = lst.accept()
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            continue
        threading.Thread(target=serve, args=(tls, pattern.encode()), daemon=True).start()


if __name__ == "__main__":
    main()
