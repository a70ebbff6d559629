"""Summarises a proxy trace (SANDLOCK_PROXY_TRACE, see
sandlock-core/src/proxy/trace.rs) for bench/http.sh: the median of each
stage over the requests after the first (which carries the connection's
setup), and the thread hops per request.

    python3 trace_summary.py TRACE_FILE
"""

import statistics
import sys


def main(path):
    lines = [l.split() for l in open(path) if l.strip()]
    header = lines[0]
    if header[0] != "#":
        sys.exit("not a sandlock proxy trace")
    stages = header[2 : header.index("(us")]
    rows = lines[2:]
    if not rows:
        sys.exit("no requests traced after the first")
    parts = []
    for i, name in enumerate(stages):
        vals = [float(r[1 + i]) for r in rows if r[1 + i] != "-"]
        if vals:
            parts.append(f"{name.replace('_', ' ')} {statistics.median(vals):.1f}")
    hops = [int(r[-1]) for r in rows]
    threads = {t for r in rows for t in r[-2].split(",")}
    parts.append(
        f"thread hops per request: median {statistics.median(hops):g}, max {max(hops)};"
        f" {len(threads)} thread(s)"
    )
    print(", ".join(parts))


if __name__ == "__main__":
    main(sys.argv[1])
