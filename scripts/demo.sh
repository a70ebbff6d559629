#!/usr/bin/env bash
# Builds sandlock and shows it confining real programs: a secret file stays
# unreadable, an allowed host is reachable, every other destination is
# refused with the reason printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

cargo build --release --locked -p sandlock-cli
SL="$PWD/target/release/sandlock"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
echo "api-key=hunter2" > "$work/secret.txt"
mkdir "$work/www" && echo "hello from the allowed host" > "$work/www/index.html"
python3 -m http.server 18080 --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
python3 -m http.server 18081 --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18081/ && break; sleep 0.1; done

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step sandlock run -- cat "$work/secret.txt"
"$SL" run -- cat "$work/secret.txt" || echo "(exit $?: files outside the grants stay unreadable)"
step sandlock run -- cat /etc/shadow
"$SL" run -- cat /etc/shadow || echo "(exit $?: /etc secrets are never granted, even to root)"
step sandlock run -r "$work" -- cat "$work/secret.txt"
"$SL" run -r "$work" -- cat "$work/secret.txt"
step sandlock run --add-host api.test:127.0.0.1 --net-allow api.test:18080 -- curl -s http://api.test:18080/
"$SL" run --add-host api.test:127.0.0.1 --net-allow api.test:18080 -- curl -s http://api.test:18080/
step sandlock run --add-host api.test:127.0.0.1 --net-allow api.test:18080 -- curl -sS http://api.test:18081/
"$SL" run --add-host api.test:127.0.0.1 --net-allow api.test:18080 -- curl -sS http://api.test:18081/ || echo "(exit $?: port 18081 is not allowed)"
step sandlock run -- python3 -c 'import socket; socket.create_connection(("127.0.0.1", 18080))'
"$SL" run -- /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", 18080))' 2>&1 | grep -E '^(sandlock|PermissionError)' || true
printf '\nDemo done: confinement and allowlisting work on this machine.\n'
