#!/usr/bin/env bash
# sandlock DNS-interceptor benchmark: query latency through the interceptor
# against the same queries sent straight to the resolver, and the start-up
# cost of a networked sandbox (whose DNS namespace is set up in parallel).
#
#   bash bench/dns.sh
#
# The resolver is tests/fixtures/dnsserver.py on 127.0.0.1 (answers
# *.bench.test with 127.0.0.1); the sandboxed client sends to 192.0.2.53
# (a documentation address: the query ends in sandlock's namespace and is
# answered there). Nothing leaves the machine.
#
# Measurements (bench/dns/query_loop.py, one connected UDP socket):
#   - cached query: the same name COUNT times (direct: the resolver answers
#     each; sandboxed: the interceptor answers from its cache after one
#     upstream question)
#   - uncached query: COUNT distinct names (sandboxed: each goes upstream)
#   - start-up: hyperfine of `sandlock run -- /bin/true` with and without a
#     network flag, and of a Python getaddrinfo of an allowed name answered
#     through the interceptor against the same name from --add-host
#
# Environment knobs: COUNT=2000, REPS=3, SKIP_BUILD=1, SANDLOCK=/path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COUNT="${COUNT:-2000}"
REPS="${REPS:-3}"
need() { command -v "$1" >/dev/null 2>&1; }
if ! need hyperfine; then
  if need apt-get; then apt-get install -y -qq hyperfine >/dev/null 2>&1 || true; fi
  need hyperfine || cargo install --locked hyperfine >/dev/null
fi
if [ -z "${SANDLOCK:-}" ]; then
  [ -n "${SKIP_BUILD:-}" ] || cargo build --release --manifest-path "$ROOT/Cargo.toml" -q
  SANDLOCK="$ROOT/target/release/sandlock"
fi
WORK="$(mktemp -d)"
chmod 755 "$WORK"
cleanup() { kill "${DNS_PID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

python3 "$ROOT/tests/fixtures/dnsserver.py" "$WORK/queries" '*.bench.test=127.0.0.1' >"$WORK/port" &
DNS_PID=$!
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT="$(head -1 "$WORK/port")"
cp "$ROOT/bench/dns/query_loop.py" "$WORK/"
LOOP="$WORK/query_loop.py"
printf 'import socket\nsocket.getaddrinfo("a.bench.test", 443)\n' >"$WORK/resolve.py"
SL=("$SANDLOCK" run -q -r "$WORK" --net-allow '*.bench.test:443' --dns-server "127.0.0.1:$PORT" --)

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

declare -A R
for mode in same distinct; do
  d=(); s=()
  for _ in $(seq "$REPS"); do
    d+=("$(python3 "$LOOP" 127.0.0.1 "$PORT" "$COUNT" "$mode" | field median_us)")
    s+=("$("${SL[@]}" python3 "$LOOP" 192.0.2.53 53 "$COUNT" "$mode" | field median_us)")
  done
  R[$mode-direct]="$(printf '%s\n' "${d[@]}" | median)"
  R[$mode-sandboxed]="$(printf '%s\n' "${s[@]}" | median)"
done

hyperfine -N -w 5 -r 40 --export-json "$WORK/start.json" \
  "$SANDLOCK run -q -- /bin/true" \
  "$SANDLOCK run -q --net-allow 127.0.0.1:9 -- /bin/true" \
  "$SANDLOCK run -q -r $WORK --net-allow *.bench.test:443 --dns-server 127.0.0.1:$PORT -- python3 $WORK/resolve.py" \
  "$SANDLOCK run -q -r $WORK --add-host a.bench.test:127.0.0.1 --net-allow a.bench.test:443 -- python3 $WORK/resolve.py" >/dev/null
start() { python3 -c "import json,sys; r=json.load(open('$WORK/start.json'))['results'][$1]; print(f\"{r['median']*1000:.2f}\")"; }

printf '\n%-44s %12s %12s %10s\n' "DNS (median of $REPS runs)" direct sandboxed ratio
for mode in same distinct; do
  label=$([ "$mode" = same ] && echo "cached query, us" || echo "uncached query (upstream), us")
  d="${R[$mode-direct]}"; s="${R[$mode-sandboxed]}"
  printf '%-44s %12s %12s %9sx\n' "$label" "$d" "$s" "$(awk -v a="$s" -v b="$d" 'BEGIN{printf "%.2f", a/b}')"
done
printf '\n%-44s %12s\n' "start-up (hyperfine median)" ms
printf '%-44s %12s\n' "run -- /bin/true" "$(start 0)"
printf '%-44s %12s\n' "run --net-allow 127.0.0.1:9 -- /bin/true" "$(start 1)"
printf '%-44s %12s\n' "run ... -- python3 getaddrinfo(allowed)" "$(start 2)"
printf '%-44s %12s\n' "same, name from --add-host (no DNS query)" "$(start 3)"
