# Sourced by bench/http.sh (SECTIONS containing "upload"): a large identity
# upload with a secret's placeholder scattered through it, through the MITM
# with --secret, against the same upload through the MITM without a secret;
# and sandlock's peak RSS during the secret runs. Uses http.sh's helpers
# (metric, sample, diag, failed, log, tail_of, kib) and its PKI, SBD, L,
# WORK, CPIN, EXTRA, REPS, SANDLOCK and SANDBOX_OK.
#
# The body is tests/fixtures/bigbody.py's: generated on the fly inside the
# sandbox from $TOKEN (the placeholder, or with no secret a value of the
# same shape), 1 MiB of fixed pseudo-random bytes repeated with the token
# every 3 MiB, across 16 KiB boundaries. curl sends it with -T - and a
# Content-Length, so the proxy streams it (same-length substitution) and
# passes the length on. The upstream is bench/http/upload_sink.py, which
# reads the whole body before it answers "got N C", C the occurrences of
# the real value: both are checked (C is the number of placeholders with
# --secret, 0 without).

metric up "${UPLOAD_MIB} MiB identity upload, placeholders + --secret vs none (both through sandlock)" "MiB/s" min_ratio 0.7
metric uprss "sandlock peak RSS (VmHWM) during the ${UPLOAD_MIB} MiB upload with --secret" "MiB" max_abs 64

UP_SIZE=$((UPLOAD_MIB << 20))
UP_VALUE=bench_upload_secret_value_0123456789 # 36 bytes: a same-length placeholder
UP_FAKE=benchUploadNoSecret0123456789abcdefg  # the same shape, substituted by nothing
cp "$ROOT/tests/fixtures/bigbody.py" "$SBD/"
mkdir -p "$WORK/upsink"
# how many tokens bigbody.py puts in the body
read -r _ UP_TOKENS _ < <(python3 "$SBD/bigbody.py" "$UP_SIZE" "$UP_VALUE" --sha256)
"$SB_PY" "$BENCH/http/upload_sink.py" "$PKI/server.pem" "$PKI/server.key" "$WORK/upsink/port" "$UP_VALUE" \
    >"$L/upload-sink.log" 2>&1 &
UP_SINK_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/upsink/port" ]] && break; sleep 0.05; done
UPORT="$(cat "$WORK/upsink/port" 2>/dev/null || true)"
[[ "$UPORT" =~ ^[0-9]+$ ]] || { tail_of "$L/upload-sink.log"; die "upload_sink.py did not start"; }
BG_PIDS+=("$UP_SINK_PID") # stopped by http.sh's cleanup

sb_cmd UP_SB 'PUT bench.test/upload' "$UPORT"
# CA SIZE URL DIR [CURL ARGS...], $TOKEN the token (DIR holds bigbody.py).
# Prints the sink's "got N C", then curl's "<bytes/s> <bytes sent> <http
# version>".
UP_SH='ca=$1 size=$2 url=$3 dir=$4
shift 4
python3 "$dir/bigbody.py" "$size" "$TOKEN" |
  curl -sS --fail --max-time 300 --cacert "$ca" -T - -H "Content-Length: $size" -H "Transfer-Encoding:" \
    -w "\n%{speed_upload} %{size_upload} %{http_version}\n" "$@" "$url"'
UP_URL="https://bench.test:$UPORT/upload"
# curl's protocol to the proxy (the upstream speaks HTTP/1.1 either way)
UP_PROTO="${UPLOAD_PROTO:---http2}"

# up_ok FILE COUNT: the whole body was sent and received, with COUNT real
# values in it; prints MiB/s
up_ok() {
    local speed size ver got count
    read -r got count < <(awk '$1 == "got" { print $2, $3 }' "$1")
    read -r speed size ver < <(awk 'NF == 3 && $1 ~ /^[0-9.]+$/' "$1")
    [[ "$got" == "$UP_SIZE" && "$size" == "$UP_SIZE" && "$count" == "$2" ]] || return 1
    printf '%s\n' "$ver" >>"$1.ver"
    python3 -c "print($speed / 1048576)"
}
# up_run OUT CMD...: runs CMD (sandlock itself, or taskset exec'ing it: the
# pid must be sandlock's) in the background, sampling its VmHWM (which only
# grows) and CPU time until it exits, killing it after 400 s; writes
# "<VmHWM KiB> <CPU ticks>" to OUT.peak. Returns CMD's status.
up_run() {
    local out="$1" pid hwm=0 cpu=0 v rc=0 n=0
    shift
    "$@" >"$out" 2>"$out.err" &
    pid=$!
    sleep 0.05
    cat "/proc/$pid/comm" >"$out.comm" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        v="$(kib "$pid" VmHWM)"; [[ -n "$v" ]] && hwm="$v"
        v="$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true)"; [[ -n "$v" ]] && cpu="$v"
        ((++n < 8000)) || kill "$pid" 2>/dev/null || true
        sleep 0.05
    done
    wait "$pid" || rc=$?
    [[ "$(cat "$out.comm" 2>/dev/null)" == sandlock ]] || rc=1
    echo "$hwm $cpu" >"$out.peak"
    return "$rc"
}

for ((i = 1; i <= REPS; i++)); do
    f="$L/up-$i-direct.out"
    log "upload rep $i/$REPS: direct (reference only)"
    if TOKEN="$UP_FAKE" timeout -k 5 400 "${CPIN[@]}" sh -c "$UP_SH" sh "$PKI/root.pem" "$UP_SIZE" \
        "$UP_URL" "$SBD" "$UP_PROTO" --resolve "bench.test:$UPORT:127.0.0.1" >"$f" 2>"$f.err" && v="$(up_ok "$f" 0)"; then
        sample updirect direct "$v"
    else
        tail_of "$f"; tail_of "$f.err"; failed "direct upload $i"
    fi
    ((SANDBOX_OK)) || continue
    f="$L/up-$i-plain.out"
    log "upload rep $i/$REPS: sandlock, no secret"
    rm -f "$SBD/ca.pem"
    if up_run "$f" "${CPIN[@]}" "${UP_SB[@]}" -- env TOKEN="$UP_FAKE" \
        sh -c "$UP_SH" sh "$SBD/ca.pem" "$UP_SIZE" "$UP_URL" "$SBD" "$UP_PROTO" && v="$(up_ok "$f" 0)"; then
        sample up direct "$v"
    else
        tail_of "$f"; tail_of "$f.err"; failed "sandboxed upload without a secret, rep $i"
    fi
    f="$L/up-$i-secret.out"
    log "upload rep $i/$REPS: sandlock, --secret with placeholders in the body"
    rm -f "$SBD/ca.pem"
    if BENCH_UP_TOKEN="$UP_VALUE" up_run "$f" "${CPIN[@]}" "${UP_SB[@]}" \
        --secret 'TOKEN=env:BENCH_UP_TOKEN@bench.test' -- \
        sh -c "$UP_SH" sh "$SBD/ca.pem" "$UP_SIZE" "$UP_URL" "$SBD" "$UP_PROTO" && v="$(up_ok "$f" "$UP_TOKENS")"; then
        sample up sandbox "$v"
        read -r hwm _ <"$f.peak"
        sample uprss sandbox "$(python3 -c "print($hwm / 1024)")"
    else
        tail_of "$f"; tail_of "$f.err"; failed "sandboxed upload with a secret, rep $i"
    fi
done
kill "$UP_SINK_PID" 2>/dev/null || true
wait "$UP_SINK_PID" 2>/dev/null || true

# med VALUES...: their median, or "-"
med() { python3 -c 'import statistics, sys; v = [float(x) for x in sys.argv[1:]]; print(round(statistics.median(v), 2) if v else "-")' "$@"; }
# peaks SIDE hwm|cpu: per run of SIDE (plain, secret), sandlock's VmHWM in
# MiB or its CPU seconds per GiB uploaded
peaks() {
    local p hz
    hz="$(getconf CLK_TCK)"
    for p in "$L"/up-*-"$1".out.peak; do
        [[ -e "$p" ]] || continue
        case "$2" in
        hwm) awk '{ print $1 / 1024 }' "$p" ;;
        cpu) awk -v hz="$hz" -v mib="$UPLOAD_MIB" '{ print $2 / hz * 1024 / mib }' "$p" ;;
        esac
    done
}
diag "${UPLOAD_MIB} MiB upload without sandlock [MiB/s]" "$(med $(awk '$1 == "updirect" { print $3 }' "$SAMPLES"))"
diag "sandlock VmHWM during the upload, no secret / --secret [MiB]" "$(med $(peaks plain hwm)) / $(med $(peaks secret hwm))"
diag "sandlock CPU per GiB uploaded, no secret / --secret [s]" "$(med $(peaks plain cpu)) / $(med $(peaks secret cpu))"
diag "upload protocol client->proxy, --secret runs (curl %{http_version})" \
    "$(cat "$L"/up-*-secret.out.ver 2>/dev/null | sort | uniq -c | awk '{ printf "%sHTTP/%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')"
