#!/usr/bin/env bash
# Builds sandlock and shows it confining real programs: a secret file stays
# unreadable, an allowed host is reachable, every other destination is
# refused with the reason printed, and HTTPS requests are checked one by
# one by the intercepting proxy.
#
# Every step checks that its output is what the demo says it shows; the
# demo stops with a non-zero exit and a message naming the step when one
# is not, or when a fixture server does not start.
#
# Environment:
#   SANDLOCK=/path/to/sandlock   run this binary instead of building the
#                                release one (the tests use the debug build)
#   SANDLOCK_DEMO_PORTS="A B C"  the loopback ports of the allowed HTTP
#                                server, the other HTTP server and the HTTPS
#                                server (default "0 0 0": the kernel picks
#                                free ones)
set -euo pipefail
# A relative SANDLOCK is relative to where the demo was started.
case "${SANDLOCK:-}" in "" | /*) ;; *) SANDLOCK="$PWD/$SANDLOCK" ;; esac
cd "$(dirname "$0")/.."

phase="setting up"
reported=""
fixtures=""
work=""
# Stops the demo at the current phase with a message, exit status 1.
fail() {
    printf '\ndemo.sh: FAILED at "%s": %s\n' "$phase" "$*" >&2
    reported=1
    exit 1
}
cleanup() {
    [ -z "$fixtures" ] || kill "$fixtures" 2>/dev/null || true
    [ -z "$work" ] || rm -rf "$work"
}
# Any other failure (set -e) is reported with its phase too.
trap 'rc=$?; cleanup; if [ "$rc" -ne 0 ] && [ -z "$reported" ]; then
    printf "\ndemo.sh: FAILED at \"%s\" (exit %s)\n" "$phase" "$rc" >&2; fi; exit "$rc"' EXIT

if [ -n "${SANDLOCK:-}" ]; then
    phase="checking SANDLOCK=$SANDLOCK"
    [ -f "$SANDLOCK" ] && [ -x "$SANDLOCK" ] || fail "SANDLOCK=$SANDLOCK is not an executable file"
    SL="$SANDLOCK"
    for tool in curl openssl python3; do
        command -v "$tool" >/dev/null || fail "$tool is needed (scripts/deps.sh installs it)"
    done
    [ -x /usr/bin/python3 ] || fail "/usr/bin/python3 is needed (scripts/deps.sh installs it)"
else
    phase="installing the build's dependencies"
    source scripts/deps.sh
    phase="building sandlock (release)"
    cargo build --release --locked -p sandlock-cli
    SL="$PWD/target/release/sandlock"
fi
version="$("$SL" --version 2>&1)" || fail "$SL --version failed: $version"
case "$version" in sandlock\ *) ;; *) fail "$SL is not sandlock: '$SL --version' says '$version'" ;; esac

phase="preparing files and certificates"
read -r -a ports <<<"${SANDLOCK_DEMO_PORTS:-0 0 0}"
[ "${#ports[@]}" -eq 3 ] || fail "SANDLOCK_DEMO_PORTS needs three ports, not '${SANDLOCK_DEMO_PORTS:-}'"
work=$(mktemp -d)
echo "api-key=hunter2" >"$work/secret.txt"
mkdir "$work/www" && echo "hello from the allowed host" >"$work/www/index.html"
# An HTTPS server behind a private root, for the intercepting proxy.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=demo root" -keyout "$work/root.key" -out "$work/root.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=api.test" \
    -keyout "$work/srv.key" -out "$work/srv.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test\nextendedKeyUsage=serverAuth\n' >"$work/ext"
openssl x509 -req -in "$work/srv.csr" -CA "$work/root.pem" -CAkey "$work/root.key" \
    -CAcreateserial -days 1 -extfile "$work/ext" -out "$work/srv.pem" 2>/dev/null

# The fixtures: two HTTP servers and an HTTPS one, in one python process
# that binds the ports (0: the kernel picks a free one) and prints them.
phase="starting the fixture servers"
python3 - "$work" "${ports[@]}" >"$work/ports" 2>"$work/fixtures.log" <<'PY' &
import functools, http.server, ssl, sys, threading

work, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(work + "/srv.pem", work + "/srv.key")


class TLSServer(http.server.ThreadingHTTPServer):
    def finish_request(self, request, client_address):
        # The handshake runs in the connection's thread, not the accept loop.
        super().finish_request(tls.wrap_socket(request, server_side=True), client_address)


handler = functools.partial(Quiet, directory=work + "/www")
kinds = [
    ("the allowed HTTP server", http.server.ThreadingHTTPServer),
    ("the other HTTP server", http.server.ThreadingHTTPServer),
    ("the HTTPS server", TLSServer),
]
servers = []
for (name, kind), port in zip(kinds, ports):
    try:
        servers.append(kind(("127.0.0.1", port), handler))
    except OSError as e:
        sys.exit(f"{name} cannot listen on 127.0.0.1:{port}: {e}")
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print(*(s.server_address[1] for s in servers), flush=True)
threading.Event().wait()
PY
fixtures=$!
for _ in $(seq 100); do
    [ -s "$work/ports" ] && break
    kill -0 "$fixtures" 2>/dev/null || break
    sleep 0.1
done
[ -s "$work/ports" ] || fail "the fixture servers did not start: $(cat "$work/fixtures.log")"
read -r port other_port tls_port <"$work/ports"
phase="checking the fixture servers answer"
for url in "http://127.0.0.1:$port/" "http://127.0.0.1:$other_port/" "https://api.test:$tls_port/"; do
    page=$(curl -sS --max-time 5 --cacert "$work/root.pem" --resolve "api.test:$tls_port:127.0.0.1" "$url" 2>&1) ||
        fail "$url does not answer: $page"
    [ "$page" = "hello from the allowed host" ] || fail "$url answers '$page', not the demo's page"
done

# Shows a step's command line and enters its phase.
step() {
    phase="$*"
    printf '\n\033[1m$ %s\033[0m\n' "$*"
}
# Runs a command, keeping its output (stdout and stderr) in $out and its
# exit status in $rc.
capture() { out="$("$@" 2>&1)" && rc=0 || rc=$?; }
show() { [ -z "$out" ] || printf '%s\n' "$out"; }
# The step's output must (has) or must not (lacks) hold a string.
has() { grep -qF -- "$1" <<<"$out" || fail "the output lacks '$1'"; }
lacks() { ! grep -qF -- "$1" <<<"$out" || fail "the output shows '$1'"; }
succeeded() { [ "$rc" -eq 0 ] || fail "exit $rc, expected success"; }
refused() { [ "$rc" -ne 0 ] || fail "exit 0: the command was not refused"; }

step sandlock run -- cat "$work/secret.txt"
capture "$SL" run -- cat "$work/secret.txt"
show
refused
lacks hunter2
has "Permission denied"
echo "(exit $rc: files outside the grants stay unreadable)"

step sandlock run -- cat /etc/shadow
capture "$SL" run -- cat /etc/shadow
show
refused
lacks "root:"
echo "(exit $rc: /etc secrets are never granted, even to root)"

step sandlock run -r "$work" -- cat "$work/secret.txt"
capture "$SL" run -r "$work" -- cat "$work/secret.txt"
show
succeeded
[ "$out" = "api-key=hunter2" ] || fail "expected the file's line 'api-key=hunter2'"

allow=(--add-host api.test:127.0.0.1 --net-allow "api.test:$port")
step sandlock run "${allow[*]}" -- curl -sS "http://api.test:$port/"
capture "$SL" run "${allow[@]}" -- curl -sS "http://api.test:$port/"
show
succeeded
has "hello from the allowed host"

step sandlock run "${allow[*]}" -- curl -sS "http://api.test:$other_port/"
capture "$SL" run "${allow[@]}" -- curl -sS "http://api.test:$other_port/"
show
refused
lacks "hello from the allowed host"
has "denied connect 127.0.0.1:$other_port"
echo "(exit $rc: port $other_port is not allowed)"

connect="import socket; socket.create_connection((\"127.0.0.1\", $port))"
step sandlock run -- python3 -c "'$connect'"
capture "$SL" run -- /usr/bin/python3 -c "$connect"
refused
# The traceback is long: its last line and sandlock's own line say it all.
out=$(grep -E '^(sandlock|PermissionError)' <<<"$out" || true)
show
has "PermissionError"
has "sandlock: denied socket AF_INET"

http=(--add-host api.test:127.0.0.1 --http-port "$tls_port" --upstream-ca "$work/root.pem"
    --http-allow 'GET api.test/index.html')
fetch="curl -sS https://api.test:$tls_port/index.html; curl -sS -w '%{http_code}\n' https://api.test:$tls_port/admin"
step sandlock run "${http[*]}" -- sh -c "\"$fetch\""
capture "$SL" run -q "${http[@]}" -- sh -c "$fetch"
show
succeeded
has "hello from the allowed host"
has "403 GET https://api.test:$tls_port/admin: no --http-allow rule matches"
[ "$(tail -n 1 <<<"$out")" = 403 ] || fail "GET /admin was not refused with 403"
echo "(TLS was terminated with the sandbox's own CA, which curl trusted with no flag, and every request was checked: /admin is refused with 403)"

phase="finishing"
printf '\nDemo done: confinement and allowlisting work on this machine.\n'
