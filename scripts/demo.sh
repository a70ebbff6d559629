#!/usr/bin/env bash
# Builds sandlock and shows it confining real programs: a secret file stays
# unreadable, an allowed host is reachable, every other destination is
# refused with the reason printed, and HTTPS requests are checked one by
# one by the intercepting proxy.
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
# An HTTPS server behind a private root, for the intercepting proxy.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=demo root" -keyout "$work/root.key" -out "$work/root.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=api.test" \
    -keyout "$work/srv.key" -out "$work/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test\nextendedKeyUsage=serverAuth\n' > "$work/ext"
openssl x509 -req -in "$work/srv.csr" -CA "$work/root.pem" -CAkey "$work/root.key" \
    -CAcreateserial -days 1 -extfile "$work/ext" -out "$work/srv.pem" 2>/dev/null
python3 - "$work" >/dev/null 2>&1 <<'PY' &
import functools, http.server, ssl, sys
w = sys.argv[1]
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=w + "/www")
s = http.server.ThreadingHTTPServer(("127.0.0.1", 18443), h)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain(w + "/srv.pem", w + "/srv.key")
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
PY
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18081/ && curl -sk -o /dev/null https://127.0.0.1:18443/ && break; sleep 0.1; done

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
http=(--add-host api.test:127.0.0.1 --http-port 18443 --upstream-ca "$work/root.pem"
      --http-allow 'GET api.test/index.html')
step sandlock run "${http[*]}" -- sh -c "curl -sS https://api.test:18443/index.html; curl -sS https://api.test:18443/admin"
"$SL" run -q "${http[@]}" -- sh -c "curl -sS https://api.test:18443/index.html; curl -sS https://api.test:18443/admin"
echo "(TLS was terminated with the sandbox's own CA, which curl trusted with no flag, and every request was checked: /admin is refused with 403)"
printf '\nDemo done: confinement and allowlisting work on this machine.\n'
