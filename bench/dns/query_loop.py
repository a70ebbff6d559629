"""Times DNS queries the way a stub resolver sends them.

Usage: query_loop.py SERVER PORT COUNT MODE
MODE: same (one name, COUNT times: cached after the first) or distinct
(COUNT different names under bench.test). One connected UDP socket, one
query in flight. Prints 'median_us=N mean_us=N' over the COUNT queries.
"""
import socket
import statistics
import struct
import sys
import time

server, port, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ":" in server else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((server, port))
times = []
for i in range(count):
    name = "q.bench.test" if mode == "same" else f"q{i}.bench.test"
    q = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", 1, 1)
    t = time.perf_counter()
    s.send(q)
    while True:
        data = s.recv(4096)
        if struct.unpack("!H", data[:2])[0] == i & 0xFFFF:
            break
    times.append((time.perf_counter() - t) * 1e6)
    if data[3] & 0xF != 0:
        sys.exit(f"query {name}: rcode {data[3] & 0xF}")
print(f"median_us={statistics.median(times):.1f} mean_us={statistics.mean(times):.1f}")
