#!/usr/bin/env bash
# sandlock HTTPS-proxy benchmark: HTTPS traffic from a workload to a local
# nginx, measured directly and through sandlock's intercepting proxy
# (--http-allow ... --http-port ...) in the same invocation. Prints a summary
# table with medians, ratios/differences and PASS/FAIL against the targets.
#
#   bash bench/http.sh
#
# What it sets up (in a temp dir, removed on exit):
#   - a private root CA and a server certificate for bench.test
#     (SAN DNS:bench.test, IP:127.0.0.1) signed by it, made with openssl;
#   - nginx (its own config, pid file and logs; daemon off; access_log off)
#     on 127.0.0.1:PORT with TLS and HTTP/2, PORT a free port in 20000-32767,
#     serving `/` ("ok\n") and `/64m.bin` (64 MiB).
# Traffic goes only to 127.0.0.1.
#
# Measurements (direct = the same client run without sandlock; sandboxed =
# `sandlock run --http-allow 'GET bench.test/*' --add-host bench.test:127.0.0.1
#  --http-port PORT --upstream-ca root.pem --http-ca-out ca.pem -- CLIENT`):
#   - sequential keep-alive GETs: the time the proxy adds to each request of
#     one curl fetching SEQ_N URLs, HTTP/2 and HTTP/1.1, beside the floor
#     of a plain TCP relay, and the proxy's own per-request stage trace
#     (bench/http/seq.sh)                                     (target <= +100 us)
#   - git clone over HTTPS of a GIT_FILES-file repository, dumb HTTP
#     (bench/http/git.sh)                                     (target <= x1.3)
#   - keep-alive HTTPS requests/s      wrk -t1 -c16 -d5s               (target >= 50 %)
#   - new HTTPS connections/s          same with `Connection: close`   (target >= 30 %)
#   - 64 MiB download MiB/s            curl        (target >= 85 %, also the slowest run)
#   - added median latency, keep-alive wrk -t1 -c1 -d5s --latency, 50% (target <= 250 us)
#   - proxy memory per idle TLS connection: bench/http/idle_conns.py holds
#     1000 idle keep-alive connections inside the sandbox; the supervisor's
#     (the `sandlock` process's) VmRSS is read at 1 and at 1000 connections
#     and (after - before) / 999 is reported                   (target <= 64 KiB)
#   - secrets: keep-alive requests/s with a header secret against the same
#     proxy without one                                        (target >= 90 %)
#   - secrets: the 64 MiB download with a --secret bound to another host
#     (other.bench.test), so nothing it downloads is substituted, against
#     the same download without a secret, both through sandlock: every
#     response of a sandbox holding secrets is scanned for every spelling
#     of every value. With SANDLOCK_BASE=/path the same pair also runs
#     through that build, alternating with this one, so a build before a
#     change and one after it are measured in one sitting   (target >= 90 %)
#   - secrets: a 1 GiB identity upload (curl -T - with a Content-Length,
#     tests/fixtures/bigbody.py's body with the placeholder every 3 MiB) to
#     bench/http/upload_sink.py, with --secret against the same upload
#     through the same proxy without a secret                 (target >= 70 %)
#     and sandlock's peak RSS (VmHWM, sampled) during it      (target <= 64 MiB)
# Direct wrk runs use https://127.0.0.1:PORT/ with `Host: bench.test` (the
# host's /etc/hosts is left alone); sandboxed ones use https://bench.test:PORT/
# (the sandbox's virtual /etc/hosts has it). wrk checks no certificates; curl
# and the Python client check against root.pem (direct) or the proxy's
# ca.pem (sandboxed), so a passing sandboxed run proves the proxy intercepted.
#
# Environment knobs (all optional):
#   REPS=3            alternating direct/sandboxed repetitions (median taken)
#   DURATION=5        seconds per wrk run
#   DL_PER_REP=3      64 MiB downloads per repetition and side
#   IDLE_CONNS=1000   idle connections for the memory measurement
#   NGINX_WORKERS=1   nginx worker_processes
#   KEY_TYPE=ec       server/root key type: ec (P-256) or rsa (2048)
#   PIN=split         pin nginx to the last CPU and every client (wrk, curl,
#                     python, and sandlock with its proxy) to the others;
#                     default: no pinning. On a 2-vCPU VM the median latency
#                     is bimodal unpinned (same CPU ~40 us, cross-CPU ~120 us)
#   DIRECT_ONLY=1     only the direct half (no build, no sandlock needed)
#   SANDLOCK_EXTRA="" extra `sandlock run` flags, word-split (e.g. --net-allow ...)
#   SECTIONS="seq git wrk ksec dl dlsec idle upload"
#                     which measurements to run (default all), e.g.
#                     SECTIONS=upload for the 1 GiB upload rows alone
#   SEQ_N=500         URLs per sequential curl (seq)
#   GIT_FILES=2000 GIT_DIRS=40   the cloned repository (git)
#   PEER=/path        also run the seq and git rows under the peer sandbox
#                     (multikernel's sandlock) at that path, side by side
#   SANDLOCK_BASE=/path  the dlsec rows also through this build
#   UPLOAD_MIB=1024   size of the upload
#   UPLOAD_PROTO=--http2  curl's protocol for the upload (or --http1.1)
#   SKIP_BUILD=1      do not run cargo build (use the existing release binary)
#   SANDLOCK=/path    benchmark this binary instead of target/release/sandlock
#   BENCH_MD=/path    also write the summary table as Markdown to this file
#   KEEP_WORK=1       keep the temp dir (logs of every run) and print its path
#
# Exit status: 0 when everything ran (even if a target is missed: this is a
# report); non-zero when something failed to set up or run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
REPS="${REPS:-3}"
DURATION="${DURATION:-5}"
DL_PER_REP="${DL_PER_REP:-3}"
IDLE_CONNS="${IDLE_CONNS:-1000}"
NGINX_WORKERS="${NGINX_WORKERS:-1}"
KEY_TYPE="${KEY_TYPE:-ec}"
DIRECT_ONLY="${DIRECT_ONLY:-0}"
read -r -a EXTRA <<<"${SANDLOCK_EXTRA:-}"
PIN="${PIN:-}"
SECTIONS="${SECTIONS:-seq git wrk ksec dl dlsec idle upload}"
UPLOAD_MIB="${UPLOAD_MIB:-1024}"
BIG_MIB=64
SB_PY=/usr/bin/python3 # the system python: inside the system view

log() { printf '==> %s\n' "$*" >&2; }
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v nginx >/dev/null 2>&1 || need_pkgs+=(nginx)
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
[[ -x "$SB_PY" ]] || need_pkgs+=(python3)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
[[ -z "$PIN" ]] || command -v taskset >/dev/null 2>&1 || need_pkgs+=(util-linux)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    # Debian's nginx package has the ssl and http_v2 modules built in (its
    # postinst cannot start the system service where policy-rc.d forbids it;
    # either way this script runs its own instance).
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
for t in nginx wrk curl openssl python3; do
    command -v "$t" >/dev/null 2>&1 || die "no $t after install"
done
[[ -x "$SB_PY" ]] || die "no $SB_PY after install"
[[ -z "$PIN" ]] || command -v taskset >/dev/null 2>&1 || die "no taskset after install"
NGINX_V="$(nginx -V 2>&1)"
grep -q -- --with-http_ssl_module <<<"$NGINX_V" || die "nginx lacks http_ssl_module"
grep -q -- --with-http_v2_module <<<"$NGINX_V" || die "nginx lacks http_v2_module"
NGINX_VERSION="$(sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p' <<<"$NGINX_V")"
[[ -n "$NGINX_VERSION" ]] || die "cannot read the nginx version"

CPIN=() # prefix of every client command (direct, and sandlock itself)
NPIN=() # prefix of nginx
case "$PIN" in
"") ;;
split)
    ncpu="$(nproc)"
    ((ncpu >= 2)) || die "PIN=split needs 2 CPUs"
    CPIN=(taskset -c "0-$((ncpu - 2))")
    NPIN=(taskset -c "$((ncpu - 1))")
    ;;
*) die "PIN must be empty or split" ;;
esac

# ---------------------------------------------------------------- build
if [[ "$DIRECT_ONLY" != 1 ]]; then
    if [[ -z "${SANDLOCK:-}" ]]; then
        if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
            log "cargo build --release -p sandlock-cli"
            (cd "$ROOT" && cargo build --release -p sandlock-cli) >&2
        fi
        SANDLOCK="${CARGO_TARGET_DIR:-$ROOT/target}/release/sandlock"
    fi
    [[ -x "$SANDLOCK" ]] || die "no sandlock binary at $SANDLOCK"
fi

# 1000 idle connections: the client holds 1 fd each, the proxy 2 (downstream
# and upstream), nginx 1. Raise the soft limit (the hard one too, as root).
if (($(ulimit -Hn) < 8192)); then ulimit -Hn 8192 2>/dev/null || true; fi
ulimit -Sn "$(( $(ulimit -Hn) < 8192 ? $(ulimit -Hn) : 8192 ))"
(($(ulimit -Sn) >= IDLE_CONNS * 2 + 64)) || die "ulimit -n $(ulimit -Sn) is too low for IDLE_CONNS=$IDLE_CONNS"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sandlock-http-bench.XXXXXX")"
PKI="$WORK/pki"   # root and server keys: never granted to the sandbox
NGX="$WORK/nginx" # nginx config, pid, logs, temp dirs
WWW="$WORK/www"
SBD="$WORK/sb"    # granted read-only to the sandbox: helper + proxy CA
L="$WORK/logs"    # one file per run
mkdir -p "$PKI" "$NGX" "$WWW" "$SBD" "$L"
NGINX_PID=""
MEM_PID=""
BG_PIDS=() # helpers (relays) stopped on exit
BG_CLEAN=() # directories outside WORK removed on exit
cleanup() {
    exec 4>&- 2>/dev/null || true
    for p in "$MEM_PID" "$NGINX_PID" "${BG_PIDS[@]}"; do
        if [[ -n "$p" ]]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
    done
    if ((${#BG_CLEAN[@]})); then rm -rf "${BG_CLEAN[@]}"; fi
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

FAILED_RUNS=()              # runs that failed but did not stop the report
SAMPLES="$WORK/samples.tsv" # metric  side(direct|sandbox)  value
METRICS="$WORK/metrics.tsv" # metric  label  unit  kind  target
DIAG="$WORK/diag.tsv"       # label   value
: >"$SAMPLES"
: >"$METRICS"
: >"$DIAG"
metric() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$METRICS"; }
sample() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$SAMPLES"; }
diag() { printf '%s\t%s\n' "$1" "$2" >>"$DIAG"; }
failed() { FAILED_RUNS+=("$1"); log "FAILED: $1"; }
# tail of a log file, indented, for failure messages
tail_of() { if [[ -s "$1" ]]; then tail -n 8 "$1" | sed 's/^/    /' >&2; fi; }

# Other work on the machine skews everything: the load is reported.
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
awk '$1 > 0.5 { exit 1 }' /proc/loadavg ||
    log "warning: the machine is not idle (load average $LOAD_START): the numbers will be noisy"

# ---------------------------------------------------------------- PKI + content
log "openssl: private root CA and a bench.test server certificate ($KEY_TYPE)"
case "$KEY_TYPE" in
ec) NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
rsa) NEWKEY=(-newkey rsa:2048) ;;
*) die "KEY_TYPE must be ec or rsa" ;;
esac
(
    cd "$PKI"
    openssl req -x509 "${NEWKEY[@]}" -nodes -days 2 -sha256 \
        -keyout root.key -out root.pem -subj "/CN=sandlock bench root CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash"
    openssl req -new "${NEWKEY[@]}" -nodes -keyout server.key -out server.csr -subj "/CN=bench.test"
    cat >server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:bench.test,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    openssl x509 -req -in server.csr -CA root.pem -CAkey root.key -CAcreateserial \
        -days 2 -sha256 -extfile server.ext -out server.pem
    openssl verify -CAfile root.pem server.pem
) >"$L/openssl.log" 2>&1 || { tail_of "$L/openssl.log"; die "openssl failed"; }
head -c "$((BIG_MIB << 20))" /dev/urandom >"$WWW/64m.bin"
cp "$BENCH/http/idle_conns.py" "$SBD/"

# ---------------------------------------------------------------- nginx
# `http2 on;` exists from nginx 1.25.1; older ones (Debian 12: 1.22) take
# `http2` as a listen parameter.
if [[ "$(printf '%s\n' 1.25.1 "$NGINX_VERSION" | sort -V | head -n1)" == 1.25.1 ]]; then
    LISTEN_OPTS="ssl"; HTTP2_LINE="http2 on;"
else
    LISTEN_OPTS="ssl http2"; HTTP2_LINE=""
fi
# `user` matters only for a root master: without it the workers would run as
# nobody and could not read the 0700 temp dir.
USER_LINE=""
[[ $(id -u) -eq 0 ]] && USER_LINE="user root;"

write_nginx_conf() {
    cat >"$NGX/nginx.conf" <<EOF
$USER_LINE
daemon off;
master_process on;
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 16384;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $NGX/body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$1 $LISTEN_OPTS;
        $HTTP2_LINE
        server_name bench.test;
        ssl_certificate $PKI/server.pem;
        ssl_certificate_key $PKI/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = / { default_type text/plain; return 200 "ok\n"; }
        location = /64m.bin { root $WWW; }
        location ^~ /repo.git/ { root $WWW; }
        location / { return 404; }
    }
}
EOF
}

# A free port below the ephemeral range, so clients' source ports never
# collide with it.
free_port() {
    python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 32767)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
EOF
}

CURL_DIRECT=() # set once PORT is known
started=0
for attempt in 1 2 3 4 5; do
    PORT="$(free_port)"
    [[ "$PORT" =~ ^[0-9]+$ ]] || die "no free port found"
    write_nginx_conf "$PORT"
    nginx -t -q -p "$NGX/" -c "$NGX/nginx.conf" -e "$NGX/error.log" >"$L/nginx-t.log" 2>&1 ||
        { tail_of "$L/nginx-t.log"; tail_of "$NGX/error.log"; die "nginx -t rejected the config"; }
    log "starting nginx $NGINX_VERSION on 127.0.0.1:$PORT (attempt $attempt)"
    "${NPIN[@]}" nginx -p "$NGX/" -c "$NGX/nginx.conf" -e "$NGX/error.log" >"$L/nginx.log" 2>&1 &
    NGINX_PID=$!
    CURL_DIRECT=(curl -sS --fail --max-time 60 --cacert "$PKI/root.pem" --resolve "bench.test:$PORT:127.0.0.1")
    for _ in $(seq 100); do
        if [[ "$("${CURL_DIRECT[@]}" "https://bench.test:$PORT/" 2>/dev/null)" == ok ]]; then started=1; break; fi
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.05
    done
    ((started)) && break
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
    grep -q "Address already in use" "$NGX/error.log" 2>/dev/null || { tail_of "$NGX/error.log"; die "nginx did not start"; }
done
((started)) || die "nginx did not start (port collisions)"
[[ "$("${CURL_DIRECT[@]}" -o /dev/null -w '%{http_version}' "https://bench.test:$PORT/")" == 2 ]] ||
    die "nginx does not negotiate HTTP/2"

# ---------------------------------------------------------------- sandbox
# sb_cmd ARRAY RULE PORT: sets ARRAY to the benchmarks' `sandlock run`
# (bench.test pinned to loopback, PORT intercepted, the private root
# trusted upstream, the proxy's CA written to $SBD) allowing RULE.
sb_cmd() {
    local -n cmd="$1"
    cmd=("$SANDLOCK" run
        --http-allow "$2"
        --add-host bench.test:127.0.0.1
        --http-port "$3"
        --upstream-ca "$PKI/root.pem"
        --http-ca-out "$SBD/ca.pem"
        -r "$SBD"
        "${EXTRA[@]}")
}
SB=()
SANDBOX_OK=0
if [[ "$DIRECT_ONLY" != 1 ]]; then
    sb_cmd SB 'GET bench.test/*' "$PORT"
    # Preflight: curl inside the sandbox trusts only the proxy's CA, so a
    # 200 here means the connection was intercepted and forwarded.
    log "sandbox preflight: ${SB[*]} -- curl https://bench.test:$PORT/"
    rm -f "$SBD/ca.pem"
    if out="$(timeout -k 5 60 "${CPIN[@]}" "${SB[@]}" -- curl -sS --fail --max-time 30 --cacert "$SBD/ca.pem" \
        "https://bench.test:$PORT/" 2>"$L/preflight.err")" && [[ "$out" == ok ]]; then
        SANDBOX_OK=1
        if cmp -s "$SBD/ca.pem" "$PKI/root.pem"; then die "--http-ca-out wrote the upstream root?"; fi
    else
        tail_of "$L/preflight.err"
        failed "sandbox preflight (curl through the proxy) failed; every sandboxed measurement is skipped"
    fi
fi
# ---------------------------------------------------------------- peer
# PEER=/path: the peer sandbox, multikernel's sandlock (0.8.6 measured),
# which has no --add-host and resolves a rule's host with the host's own
# resolver (at start and again for every upstream connection), so it runs
# in a private mount namespace whose /etc/hosts maps bench.test to
# loopback (this needs root). Its proxy trusts the host's roots through
# SSL_CERT_FILE in its own environment (the private root here); the
# workload trusts the proxy's CA through --http-inject-ca, which adds it to
# the system bundle as the workload reads it (zero-config, as sandlock's).
PEER_CURL_CA=() # nothing: the injected bundle is curl's default
PEER_GIT_CA=()  # nothing: the injected bundle is git's default
if [[ -n "${PEER:-}" ]]; then
    [[ -x "$PEER" ]] || die "no peer binary at PEER=$PEER"
    [[ $(id -u) -eq 0 ]] || die "PEER needs root (a private /etc/hosts for bench.test)"
    printf '127.0.0.1 localhost\n127.0.0.1 bench.test\n' >"$WORK/peer-hosts"
    diag "peer sandbox" "$("$PEER" --version 2>&1 | head -n1)"
fi
# peer_cmd ARRAY PORT [DIR]: ARRAY becomes the prefix that runs a command
# under the peer, GET bench.test/* allowed on PORT, DIR writable
peer_cmd() {
    local -n pc="$1"
    pc=(unshare -m --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$WORK/peer-hosts"
        env SSL_CERT_FILE="$PKI/root.pem" "$PEER" run
        -r /usr -r /lib -r /lib64 -r /bin -r /etc -r "$SBD" -w /dev/null
        --http-allow 'GET bench.test/*' --http-port "$2"
        --http-inject-ca /etc/ssl/certs/ca-certificates.crt
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
    [[ -z "${3:-}" ]] || pc+=(-w "$3" -r "$WORK")
    # This machine's shells export CA variables; the workload must use
    # the bundle the peer injects into.
    pc+=(-- env -u CURL_CA_BUNDLE -u SSL_CERT_FILE -u GIT_SSL_CAINFO -u REQUESTS_CA_BUNDLE)
}

# sandboxed CMD...: run CMD under sandlock with a fresh CA file
sandboxed() { rm -f "$SBD/ca.pem"; timeout -k 5 $((DURATION + 60)) "${CPIN[@]}" "${SB[@]}" -- "$@"; }

source "$BENCH/http/relay.sh"
want seq && source "$BENCH/http/seq.sh"
want git && source "$BENCH/http/git.sh"

# ---------------------------------------------------------------- wrk
# Shared by the wrk and ksec sections.
wrk_args() { # wrk_args METRIC: sets WRK
    case "$1" in
    ka) WRK=(wrk -t1 -c16 -d"${DURATION}s") ;;
    close) WRK=(wrk -t1 -c16 -d"${DURATION}s" -H 'Connection: close') ;;
    lat) WRK=(wrk -t1 -c1 -d"${DURATION}s" --latency) ;;
    esac
}
# wrk_value METRIC FILE: requests/s or the median latency in us
wrk_value() {
    case "$1" in
    lat) awk '$1 == "50%" { v = $2; m = 0
            if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000
            sub(/[a-z]+$/, "", v); if (m) print v * m; exit }' "$2" ;;
    *) awk '/^Requests\/sec:/ { print $2 }' "$2" ;;
    esac
}
# wrk_ok METRIC FILE: one number parsed, no non-2xx answers
wrk_ok() {
    local v
    v="$(wrk_value "$1" "$2")"
    [[ "$v" =~ ^[0-9]+(\.[0-9]+)?$ ]] && ! grep -q 'Non-2xx' "$2"
}
wrk_errors() { grep -h 'Socket errors' "$@" 2>/dev/null | sed 's/^ *//' | sort | uniq -c | sed 's/^ *//' | paste -sd ';' - || true; }

if want wrk; then
metric ka "keep-alive HTTPS requests/s (wrk -t1 -c16)" "req/s" min_ratio 0.5
metric close "new HTTPS connections/s (wrk -t1 -c16, Connection: close)" "conn/s" min_ratio 0.3
metric ka_floor "  reference: through a generic TLS-terminating relay (socat + OpenSSL)" "req/s" ref_ratio 0
metric lat "median latency, keep-alive (wrk -t1 -c1, 50%)" "us" max_diff 250
relay_start tls

for ((i = 1; i <= REPS; i++)); do
    for m in ka close lat; do
        wrk_args "$m"
        f="$L/wrk-$m-$i-direct.out"
        log "wrk $m rep $i/$REPS: direct"
        if timeout -k 5 $((DURATION + 30)) "${CPIN[@]}" "${WRK[@]}" -H 'Host: bench.test' "https://127.0.0.1:$PORT/" >"$f" 2>&1 &&
            wrk_ok "$m" "$f"; then
            sample "$m" direct "$(wrk_value "$m" "$f")"
        else
            tail_of "$f"; die "direct wrk ($m) failed"
        fi
        if [[ "$m" == ka ]]; then
            sample ka_floor direct "$(wrk_value "$m" "$f")"
            f="$L/wrk-$m-$i-relay.out"
            if timeout -k 5 $((DURATION + 30)) "${CPIN[@]}" "${WRK[@]}" -H 'Host: bench.test' \
                "https://127.0.0.1:$RELAY_PORT/" >"$f" 2>&1 && wrk_ok "$m" "$f"; then
                sample ka_floor sandbox "$(wrk_value "$m" "$f")"
            else
                tail_of "$f"; failed "wrk ($m) through the TLS relay, rep $i"
            fi
        fi
        ((SANDBOX_OK)) || continue
        f="$L/wrk-$m-$i-sandbox.out"
        log "wrk $m rep $i/$REPS: sandlock"
        if sandboxed "${WRK[@]}" "https://bench.test:$PORT/" >"$f" 2>&1 && wrk_ok "$m" "$f"; then
            sample "$m" sandbox "$(wrk_value "$m" "$f")"
        else
            tail_of "$f"; failed "sandboxed wrk ($m) rep $i"
        fi
    done
done
for m in ka close lat; do
    e="$(wrk_errors "$L"/wrk-$m-*-direct.out)"; [[ -z "$e" ]] || diag "wrk $m, direct (count: line)" "$e"
    e="$(wrk_errors "$L"/wrk-$m-*-sandbox.out)"; [[ -z "$e" ]] || diag "wrk $m, sandlock (count: line)" "$e"
done
fi

# ---------------------------------------------------------------- secrets
# Keep-alive rate with a header secret substituted on every request, against
# the same proxy and the same header without a secret.
if want ksec; then
metric ksec "keep-alive req/s, header secret vs none (both through sandlock)" "req/s" min_ratio 0.9
SECRET_VALUE=bench_secret_value_0123456789abcdef
WRK_SH='exec wrk -t1 -c16 -d"$1"s -H "Authorization: Bearer $TOKEN" "$2"'
for ((i = 1; i <= REPS; i++)); do
    ((SANDBOX_OK)) || break
    f="$L/wrk-ksec-$i-plain.out"
    log "wrk ksec rep $i/$REPS: sandlock, no secret"
    if sandboxed env TOKEN=bench_placeholder_0123456789abcd sh -c "$WRK_SH" sh "$DURATION" \
        "https://bench.test:$PORT/" >"$f" 2>&1 && wrk_ok ka "$f"; then
        sample ksec direct "$(wrk_value ka "$f")"
    else
        tail_of "$f"; failed "sandboxed wrk without a secret, rep $i"
    fi
    f="$L/wrk-ksec-$i-secret.out"
    log "wrk ksec rep $i/$REPS: sandlock, --secret in the Authorization header"
    rm -f "$SBD/ca.pem"
    if BENCH_TOKEN="$SECRET_VALUE" timeout -k 5 $((DURATION + 60)) "${CPIN[@]}" "${SB[@]}" \
        --secret 'TOKEN=env:BENCH_TOKEN@bench.test' -- sh -c "$WRK_SH" sh "$DURATION" \
        "https://bench.test:$PORT/" >"$f" 2>&1 && wrk_ok ka "$f"; then
        sample ksec sandbox "$(wrk_value ka "$f")"
    else
        tail_of "$f"; failed "sandboxed wrk with a secret, rep $i"
    fi
done
fi

# ---------------------------------------------------------------- download
# Shared by the dl and dlsec sections.
CURL_W=(-o /dev/null -w '%{speed_download} %{size_download} %{http_version}\n')
# dl_ok FILE: the whole file came, prints MiB/s
dl_ok() {
    local speed size ver
    read -r speed size ver <"$1" || return 1
    [[ "$size" == $((BIG_MIB << 20)) ]] || return 1
    printf '%s\n' "$ver" >>"$1.ver"
    python3 -c "print($speed / 1048576)"
}
if want dl; then
metric dl "64 MiB HTTPS download (curl)" "MiB/s" min_ratio 0.85
metric dl_floor "  reference: through a generic TLS-terminating relay (socat + OpenSSL; HTTP/1.1, it offers no ALPN)" "MiB/s" ref_ratio 0
relay_start tls
for ((i = 1; i <= REPS * DL_PER_REP; i++)); do
    f="$L/dl-$i-direct.out"
    log "download $i/$((REPS * DL_PER_REP)): direct"
    if timeout -k 5 90 "${CPIN[@]}" "${CURL_DIRECT[@]}" "${CURL_W[@]}" "https://bench.test:$PORT/64m.bin" >"$f" 2>&1 &&
        v="$(dl_ok "$f")"; then
        sample dl direct "$v"
        sample dl_floor direct "$v"
    else
        tail_of "$f"; die "direct download failed"
    fi
    f="$L/dl-$i-relay.out"
    if timeout -k 5 90 "${CPIN[@]}" "${CURL_DIRECT[@]}" --resolve "bench.test:$RELAY_PORT:127.0.0.1" "${CURL_W[@]}" \
        "https://bench.test:$RELAY_PORT/64m.bin" >"$f" 2>&1 && v="$(dl_ok "$f")"; then
        sample dl_floor sandbox "$v"
    else
        tail_of "$f"; failed "download $i through the TLS relay"
    fi
    ((SANDBOX_OK)) || continue
    f="$L/dl-$i-sandbox.out"
    log "download $i/$((REPS * DL_PER_REP)): sandlock"
    if sandboxed curl -sS --fail --max-time 60 --cacert "$SBD/ca.pem" "${CURL_W[@]}" \
        "https://bench.test:$PORT/64m.bin" >"$f" 2>"$f.err" && v="$(dl_ok "$f")"; then
        sample dl sandbox "$v"
    else
        tail_of "$f"; tail_of "$f.err"; failed "sandboxed download $i"
    fi
done
vers() { cat "$@" 2>/dev/null | sort | uniq -c | awk '{ printf "%sHTTP/%s x%s", (NR > 1 ? ", " : ""), $2, $1 }' || true; }
diag "download protocol (curl %{http_version}), direct" "$(vers "$L"/dl-*-direct.out.ver)"
((SANDBOX_OK)) && diag "download protocol (curl %{http_version}), sandlock" "$(vers "$L"/dl-*-sandbox.out.ver)"
# The target holds for every run, not only the median.
((SANDBOX_OK)) && diag "64 MiB download: slowest sandlock run against the median direct one" "$(python3 - "$SAMPLES" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1])]
d = [float(r[2]) for r in rows if r[0] == "dl" and r[1] == "direct"]
s = [float(r[2]) for r in rows if r[0] == "dl" and r[1] == "sandbox"]
print(f"x{min(s) / statistics.median(d):.3f}" if d and s else "-")
EOF
)"
fi

# ---------------------------------------------------------------- download, secret elsewhere
# The download through sandlock without a secret ("direct" column) and with
# a --secret bound to another host ("sandlock" column): nothing is
# substituted, so what differs is the scan of every response for the
# value's spellings.
if want dlsec; then
metric dlsec "64 MiB download, no secret vs --secret bound elsewhere (both through sandlock)" "MiB/s" min_ratio 0.9
if [[ -n "${SANDLOCK_BASE:-}" ]]; then
    [[ -x "$SANDLOCK_BASE" ]] || die "no sandlock binary at SANDLOCK_BASE=$SANDLOCK_BASE"
    metric dlsec_base "the same through SANDLOCK_BASE ($(basename "$SANDLOCK_BASE"))" "MiB/s" min_ratio 0.9
fi
DLSEC_VALUE=bench_secret_value_0123456789abcdef
# dlsec_run METRIC BINARY SIDE I: one download, SIDE sandbox with the secret
dlsec_run() {
    local m="$1" bin="$2" side="$3" i="$4" f="$L/dlsec-$1-$4-$3.out" sbc v
    sb_cmd sbc 'GET bench.test/*' "$PORT"
    sbc[0]="$bin"
    [[ "$side" == sandbox ]] &&
        sbc+=(--add-host other.bench.test:127.0.0.2 --secret 'TOKEN=env:BENCH_TOKEN@other.bench.test')
    rm -f "$SBD/ca.pem"
    log "download with a secret elsewhere $i/$((REPS * DL_PER_REP)): $m, $side"
    if BENCH_TOKEN="$DLSEC_VALUE" timeout -k 5 90 "${CPIN[@]}" "${sbc[@]}" -- curl -sS --fail --max-time 60 \
        --cacert "$SBD/ca.pem" "${CURL_W[@]}" "https://bench.test:$PORT/64m.bin" >"$f" 2>"$f.err" &&
        v="$(dl_ok "$f")"; then
        sample "$m" "$side" "$v"
    else
        tail_of "$f"; tail_of "$f.err"; failed "download $m $side $i"
    fi
}
for ((i = 1; i <= REPS * DL_PER_REP; i++)); do
    ((SANDBOX_OK)) || break
    if [[ -n "${SANDLOCK_BASE:-}" ]]; then
        dlsec_run dlsec_base "$SANDLOCK_BASE" direct "$i"
        dlsec_run dlsec_base "$SANDLOCK_BASE" sandbox "$i"
    fi
    dlsec_run dlsec "$SANDLOCK" direct "$i"
    dlsec_run dlsec "$SANDLOCK" sandbox "$i"
done
fi

# ---------------------------------------------------------------- idle connections
want idle && metric mem "proxy memory per idle TLS connection (sandlock VmRSS, $IDLE_CONNS conns)" "KiB" max_abs 64

# wait_line FILE ERE SECS PID: until a line of FILE matches, or PID is gone
wait_line() {
    local f="$1" re="$2" t="$3" pid="$4" k
    for ((k = 0; k < t * 20; k++)); do
        grep -Eq "$re" "$f" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { grep -Eq "$re" "$f" 2>/dev/null; return; }
        sleep 0.05
    done
    return 1
}
kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# rss_children PID: summed VmRSS of PID's children (the nginx workers), KiB
rss_children() {
    local s=0 c
    for c in $(pgrep -P "$1"); do s=$((s + $(kib "$c" VmRSS))); done
    echo "$s"
}
# idle_run SIDE: direct (the client alone; reference numbers from nginx) or
# sandbox (the client under sandlock; the supervisor's VmRSS)
idle_run() {
    local side="$1" out="$L/idle-$1.out" err="$L/idle-$1.err" ctl="$WORK/ctl-$1"
    local sup_before="" sup_after="" ngx_before ngx_after secs fds threads
    mkfifo "$ctl"
    if [[ "$side" == direct ]]; then
        "${CPIN[@]}" "$SB_PY" "$SBD/idle_conns.py" bench.test "$PORT" "$PKI/root.pem" "$IDLE_CONNS" 127.0.0.1 \
            <"$ctl" >"$out" 2>"$err" &
    else
        rm -f "$SBD/ca.pem"
        "${CPIN[@]}" "${SB[@]}" -t 300 -- "$SB_PY" "$SBD/idle_conns.py" bench.test "$PORT" "$SBD/ca.pem" "$IDLE_CONNS" \
            <"$ctl" >"$out" 2>"$err" &
    fi
    MEM_PID=$!
    exec 4>"$ctl" # unblocks the job's open of the fifo
    local ok=0
    if wait_line "$out" '^ready 1$' 60 "$MEM_PID"; then
        sleep 0.5
        ngx_before="$(rss_children "$NGINX_PID")"
        if [[ "$side" == sandbox ]]; then
            [[ "$(cat "/proc/$MEM_PID/comm" 2>/dev/null)" == sandlock ]] || die "pid $MEM_PID is not the sandlock process"
            sup_before="$(kib "$MEM_PID" VmRSS)"
        fi
        (echo go >&4) 2>/dev/null || true
        if wait_line "$out" "^ready $IDLE_CONNS " 240 "$MEM_PID"; then
            sleep 1 # let the last connections settle
            ngx_after="$(rss_children "$NGINX_PID")"
            secs="$(awk '$1 == "ready" && NF == 3 { print $3 }' "$out")"
            if [[ "$side" == sandbox ]]; then
                sup_after="$(kib "$MEM_PID" VmRSS)"
                fds="$(find "/proc/$MEM_PID/fd" -mindepth 1 2>/dev/null | wc -l)"
                threads="$(kib "$MEM_PID" Threads)"
            fi
            ok=1
        fi
    fi
    exec 4>&- # EOF: the client closes everything and exits
    local rc=0
    wait "$MEM_PID" || rc=$?
    MEM_PID=""
    rm -f "$ctl"
    if ((!ok || rc != 0)); then
        tail_of "$out"; tail_of "$err"
        [[ "$side" == direct ]] && die "direct idle-connection client failed (exit $rc)"
        failed "sandboxed idle-connection client (exit $rc)"
        return 0
    fi
    local n1=$((IDLE_CONNS - 1))
    diag "time to open $n1 TLS connections + 1 request each, $side [ms/conn]" \
        "$(python3 -c "print(round($secs * 1000 / $n1, 3))")"
    if [[ "$side" == direct ]]; then
        diag "reference: nginx worker VmRSS per idle TLS connection [KiB]" \
            "$(python3 -c "print(round(($ngx_after - $ngx_before) / $n1, 2))")"
    else
        [[ -n "$sup_before" && -n "$sup_after" ]] || die "no VmRSS for pid $MEM_PID"
        sample mem sandbox "$(python3 -c "print(($sup_after - $sup_before) / $n1)")"
        diag "sandlock VmRSS with 1 / $IDLE_CONNS idle connections [MiB]" \
            "$(python3 -c "print(f'{$sup_before/1024:.2f} / {$sup_after/1024:.2f}')")"
        diag "sandlock open fds / threads with $IDLE_CONNS idle connections" "$fds / $threads"
    fi
}
if want idle; then
    log "idle connections: $IDLE_CONNS, direct (reference only)"
    idle_run direct
    if ((SANDBOX_OK)); then
        log "idle connections: $IDLE_CONNS under sandlock"
        idle_run sandbox
    fi
fi

want upload && source "$BENCH/http/upload.sh"

diag "load average (1/5/15 min) at start | at end" "$LOAD_START | $(cut -d' ' -f1-3 /proc/loadavg)"
diag "nginx $NGINX_VERSION, workers, key type, pinning" "$NGINX_WORKERS, $KEY_TYPE, ${PIN:-none}"

# ---------------------------------------------------------------- report
python3 - "$METRICS" "$SAMPLES" "$DIAG" "${BENCH_MD:-}" "$DIRECT_ONLY" "$SANDBOX_OK" <<'EOF'
import statistics, sys

metrics_f, samples_f, diag_f, md_path, direct_only, sandbox_ok = sys.argv[1:7]
direct_only = direct_only == "1"

samples = {}
for line in open(samples_f):
    m, side, v = line.rstrip("\n").split("\t")
    samples.setdefault((m, side), []).append(float(v))

def fmt(x):
    x = float(x)
    if x.is_integer() and abs(x) < 1000:
        return str(int(x))
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"

rows = []
for line in open(metrics_f):
    key, label, unit, kind, target = line.rstrip("\n").split("\t")
    t = float(target)
    d = samples.get((key, "direct"), [])
    s = samples.get((key, "sandbox"), [])
    md = statistics.median(d) if d else None
    ms = statistics.median(s) if s else None
    for side, vals in (("direct", d), ("sandlock", s)):
        if vals:
            print(f"{key} {side}: {' '.join(fmt(v) for v in vals)}", file=sys.stderr)
    if kind == "min_ratio":
        tgt = f"ratio >= {target}"
    elif kind == "max_ratio":
        tgt = f"ratio <= {target}"
    elif kind == "max_diff":
        tgt = f"diff <= {target} {unit}"
    elif kind.startswith("ref_"):
        tgt = "(reference)"
    else:
        tgt = f"<= {target} {unit}"
    dcell = fmt(md) if md is not None else "-"
    if direct_only:
        rows.append([f"{label} [{unit}]", dcell, "-", "-", tgt, "n/a (DIRECT_ONLY)"])
        continue
    if ms is None:
        rows.append([f"{label} [{unit}]", dcell, "error", "-", tgt, "FAIL (did not run)"])
        continue
    if kind in ("min_ratio", "max_ratio", "ref_ratio"):
        r = ms / md
        delta, ok = f"x{r:.3f}", r >= t if kind == "min_ratio" else r <= t
    elif kind in ("max_diff", "ref_diff"):
        x = ms - md
        delta, ok = f"{'+' if x >= 0 else ''}{fmt(x)} {unit}", x <= t
    else:
        delta, ok = "-", ms <= t
    result = "-" if kind.startswith("ref_") else "PASS" if ok else "FAIL"
    rows.append([f"{label} [{unit}]", dcell, fmt(ms), delta, tgt, result])

head = ["metric", "direct", "sandlock", "ratio/diff", "target", "result"]
drows = [l.rstrip("\n").split("\t") for l in open(diag_f)]

def plain(head, rows):
    w = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w[i]) for i, c in enumerate(head)).rstrip()]
    out.append("  ".join("-" * x for x in w))
    out += ["  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(out)

def markdown(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)

print()
print("HTTPS PROXY SUMMARY (medians; sandlock = same client under `sandlock run --http-allow ...`)")
print(plain(head, rows))
if drows:
    print()
    print("DIAGNOSTICS (reference points, no target)")
    print(plain(["measurement", "value"], drows))
if md_path:
    with open(md_path, "w") as f:
        f.write(markdown(head, rows) + "\n")
        if drows:
            f.write("\n" + markdown(["diagnostic", "value"], drows) + "\n")
EOF

if ((${#FAILED_RUNS[@]})); then
    printf '\nFAILED RUNS (the numbers above may be incomplete):\n' >&2
    printf '  %s\n' "${FAILED_RUNS[@]}" >&2
    exit 1
fi
