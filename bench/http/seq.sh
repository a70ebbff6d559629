# Sourced by bench/http.sh (SECTIONS containing "seq"): what the proxy adds
# to each request of a sequential keep-alive client, the case of package
# managers and git, which make thousands of small requests one after the
# other. One curl fetches SEQ_N URLs of nginx's `/` over one connection
# (`https://bench.test:PORT/?[1-SEQ_N]`), printing each transfer's
# %{time_total}; the value of a run is the median over requests 2..SEQ_N
# (the first one carries the TLS handshake), in microseconds. Once over
# HTTP/2 (curl's choice) and once with --http1.1.
#
# Beside direct and sandlock, reference rows in the same sitting:
#   - the floor: the same curl through socat, a plain userspace TCP relay
#     (TLS end to end, nothing read): what any extra process in the path
#     costs on this machine, two more loopback sends and wake-ups per
#     request. The proxy cannot cost less than that.
#   - the same through socat terminating TLS (relay.sh's `tls`): what
#     decrypting and re-encrypting each request and response adds, the
#     work every MITM proxy does. socat offers no ALPN, so this row is
#     HTTP/1.1 whatever curl asks for.
#   - with PEER=/path, the peer sandbox's binary (see peer_cmd in http.sh).
# Then one traced run per protocol (SANDLOCK_PROXY_TRACE, see
# sandlock-core/src/proxy/trace.rs): the median moment of each stage of a
# request inside the proxy, and how often a request moved between threads.
#
# Uses http.sh's helpers and its PKI, SBD, L, PORT, CPIN, SB, REPS, SANDBOX_OK.

SEQ_N="${SEQ_N:-500}"
SEQ_FMT='T %{time_total} %{http_version}\n'
SEQ_PROTOS=(h2 h1)
seq_flag() { [[ "$1" == h1 ]] && echo --http1.1 || echo --http2; }

for p in "${SEQ_PROTOS[@]}"; do
    metric "seq_$p" "sequential keep-alive GET, added time per request, $p (curl, $SEQ_N URLs)" "us" max_diff 100
    metric "seq_floor_$p" "  floor: the same through a plain TCP relay (socat), $p" "us" ref_diff 0
    metric "seq_tls_$p" "  floor: through a TLS-terminating relay (socat + OpenSSL; HTTP/1.1, no ALPN), $p" "us" ref_diff 0
    [[ -n "${PEER:-}" ]] && metric "seq_peer_$p" "  peer sandbox ($(basename "$PEER")), $p" "us" ref_diff 0
done

# seq_value FILE: median time_total of requests 2..N in us; fails unless
# all N came back over one protocol
seq_value() {
    python3 - "$1" "$SEQ_N" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("T ")]
if len(rows) != int(sys.argv[2]) or len({r[2] for r in rows}) != 1:
    sys.exit(f"{len(rows)} transfers of {sys.argv[2]}, versions {sorted({r[2] for r in rows})}")
print(round(statistics.median(float(r[1]) * 1e6 for r in rows[1:]), 1))
EOF
}

relay_start plain
SEQ_PLAIN_PORT="$RELAY_PORT"
relay_start tls
SEQ_TLS_PORT="$RELAY_PORT"

# seq_measure FILE CMD...: runs CMD (output to FILE), prints its value
seq_measure() {
    local f="$1"
    shift
    timeout -k 5 120 "${CPIN[@]}" "$@" >"$f" 2>"$f.err" && seq_value "$f" 2>>"$f.err" ||
        { tail_of "$f.err"; return 1; }
}
SEQ_CURL=(curl -sS --fail --max-time 100 -o /dev/null -w "$SEQ_FMT")
for ((i = 1; i <= REPS; i++)); do
    for p in "${SEQ_PROTOS[@]}"; do
        fl="$(seq_flag "$p")"
        log "sequential GETs ($p) rep $i/$REPS: direct, relay, sandlock${PEER:+, peer}"
        v="$(seq_measure "$L/seq-$p-$i-direct.out" "${CURL_DIRECT[@]}" "$fl" -o /dev/null -w "$SEQ_FMT" \
            "https://bench.test:$PORT/?[1-$SEQ_N]")" || die "direct sequential GETs ($p) failed"
        for m in "seq_$p" "seq_floor_$p" "seq_tls_$p" ${PEER:+"seq_peer_$p"}; do sample "$m" direct "$v"; done
        for relay in plain tls; do
            m="seq_floor_$p" rp="$SEQ_PLAIN_PORT"
            [[ "$relay" == tls ]] && m="seq_tls_$p" rp="$SEQ_TLS_PORT"
            if v="$(seq_measure "$L/seq-$p-$i-relay-$relay.out" "${CURL_DIRECT[@]}" \
                --resolve "bench.test:$rp:127.0.0.1" "$fl" -o /dev/null -w "$SEQ_FMT" \
                "https://bench.test:$rp/?[1-$SEQ_N]")"; then
                sample "$m" sandbox "$v"
            else
                failed "sequential GETs ($p) through the $relay relay, rep $i"
            fi
        done
        if ((SANDBOX_OK)) && v="$(seq_measure "$L/seq-$p-$i-sandbox.out" "${SB[@]}" -- \
            env -u SSL_CERT_FILE -u CURL_CA_BUNDLE "${SEQ_CURL[@]}" "$fl" "https://bench.test:$PORT/?[1-$SEQ_N]")"; then
            sample "seq_$p" sandbox "$v"
        elif ((SANDBOX_OK)); then
            failed "sequential GETs ($p) under sandlock, rep $i"
        fi
        if [[ -n "${PEER:-}" ]]; then
            peer_cmd PC "$PORT"
            if v="$(seq_measure "$L/seq-$p-$i-peer.out" "${PC[@]}" "${SEQ_CURL[@]}" "${PEER_CURL_CA[@]}" "$fl" \
                "https://bench.test:$PORT/?[1-$SEQ_N]")"; then
                sample "seq_peer_$p" sandbox "$v"
            else
                failed "sequential GETs ($p) under the peer, rep $i"
            fi
        fi
    done
done

# One traced run per protocol: the stages' medians.
if ((SANDBOX_OK)); then
    for p in "${SEQ_PROTOS[@]}"; do
        tr="$L/seq-$p-trace.tsv"
        log "sequential GETs ($p): one traced sandlock run"
        if SANDLOCK_PROXY_TRACE="$tr" timeout -k 5 120 "${CPIN[@]}" "${SB[@]}" -- \
            env -u SSL_CERT_FILE -u CURL_CA_BUNDLE "${SEQ_CURL[@]}" "$(seq_flag "$p")" \
            "https://bench.test:$PORT/?[1-$SEQ_N]" >"$L/seq-$p-trace.out" 2>&1; then
            diag "proxy stages of a request, $p, median us after its first bytes were read ($((SEQ_N - 1)) requests)" \
                "$(python3 "$BENCH/http/trace_summary.py" "$tr")"
        else
            tail_of "$L/seq-$p-trace.out"; failed "traced run ($p)"
        fi
    done
fi
