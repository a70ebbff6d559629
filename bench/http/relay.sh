# Sourced by bench/http.sh: reference relays in front of nginx, for the
# rows that show what any extra process in the path costs on this machine.
#   relay_start plain   a plain TCP relay (TLS end to end, nothing read)
#   relay_start tls     a generic TLS-terminating relay: TLS from the
#                       client ends in it and a new TLS connection to nginx
#                       (verified against the private root) starts, the
#                       work a MITM proxy must do for every byte, without
#                       any HTTP
# Both are socat (Debian's, with OpenSSL), forking one process per
# connection. Sets RELAY_PORT; the relay is stopped by http.sh's cleanup.

if ! command -v socat >/dev/null 2>&1; then
    log "installing socat (the reference relays)"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq socat >/dev/null ||
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq socat >/dev/null; }
    command -v socat >/dev/null 2>&1 || die "no socat after install"
fi

relay_start() {
    local listen connect
    RELAY_PORT="$(free_port)"
    case "$1" in
    plain)
        listen="TCP-LISTEN:$RELAY_PORT,bind=127.0.0.1,fork,reuseaddr,nodelay"
        connect="TCP:127.0.0.1:$PORT,nodelay"
        ;;
    tls)
        listen="OPENSSL-LISTEN:$RELAY_PORT,bind=127.0.0.1,fork,reuseaddr,nodelay,cert=$PKI/server.pem,key=$PKI/server.key,verify=0"
        connect="OPENSSL:127.0.0.1:$PORT,nodelay,cafile=$PKI/root.pem,commonname=bench.test,snihost=bench.test"
        ;;
    *) die "relay_start plain|tls" ;;
    esac
    socat "$listen" "$connect" >"$L/socat-$1.log" 2>&1 &
    BG_PIDS+=("$!")
    local _
    for _ in $(seq 100); do
        "${CURL_DIRECT[@]}" --resolve "bench.test:$RELAY_PORT:127.0.0.1" -o /dev/null \
            "https://bench.test:$RELAY_PORT/" 2>/dev/null && return 0
        sleep 0.05
    done
    tail_of "$L/socat-$1.log"
    die "the $1 relay did not start"
}
