#!/usr/bin/env bash
# sandlock benchmark harness: every measurement runs side by side with its
# baseline (bare, unsandboxed) in the same invocation, and a summary table
# with medians, differences and PASS/FAIL against the targets is printed.
#
#   bash bench/run.sh
#
# Environment knobs (all optional):
#   REPS=7             repetitions of each in-process microbenchmark (median taken)
#   STARTUP_RUNS=300   hyperfine runs per command for the startup benchmark
#   SKIP_BUILD=1       do not run cargo build (use the existing release binaries)
#   SANDLOCK=/path     benchmark this binary instead of the static release build
#                      that scripts/install.sh installs
#                      (target/x86_64-unknown-linux-gnu/release/sandlock); the
#                      start-up rows add the dynamic target/release/sandlock
#                      when it exists
#   BENCH_MD=/path     also write the summary table as Markdown to this file
#
# Exit status: 0 when everything ran (even if a target is missed: this is a
# report); non-zero when something failed to build or run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
REPS="${REPS:-7}"
STARTUP_RUNS="${STARTUP_RUNS:-300}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v hyperfine >/dev/null 2>&1 || need_pkgs+=(hyperfine)
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need_pkgs+=(ca-certificates)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
command -v cc >/dev/null 2>&1 || die "no C compiler after install"
command -v hyperfine >/dev/null 2>&1 || die "no hyperfine after install"

# ---------------------------------------------------------------- build
DYNAMIC="$ROOT/target/release/sandlock"
if [[ -z "${SANDLOCK:-}" ]]; then
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        log "cargo build --release -p sandlock-cli; cargo build-static --release"
        (cd "$ROOT" && cargo build --release -p sandlock-cli && cargo build-static --release) >&2
    fi
    SANDLOCK="$ROOT/target/x86_64-unknown-linux-gnu/release/sandlock"
fi
[[ -x "$SANDLOCK" ]] || die "no sandlock binary at $SANDLOCK"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sandlock-bench.XXXXXX")"
BIN="$WORK/bin"
mkdir -p "$BIN"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

log "compiling bench/*.c into $BIN"
for src in "$BENCH"/*.c; do
    name="$(basename "$src" .c)"
    cc -O2 -Wall -Wextra -pthread -o "$BIN/$name" "$src"
done

# The sandbox cannot read /tmp by default: grant the directory of binaries.
SB=("$SANDLOCK" run -r "$BIN")

FAILED_RUNS=()                # runs that failed but did not stop the report
RESULTS="$WORK/results.tsv"   # metric  unit  bare  sandlock  kind  target
DIAG="$WORK/diag.tsv"         # what    unit  value
: >"$RESULTS"
: >"$DIAG"

# median of the numbers given as arguments
median() { printf '%s\n' "$@" | python3 -c 'import statistics,sys; print(statistics.median(float(l) for l in sys.stdin if l.strip()))'; }

# run_one CMD...: runs a microbenchmark, checks it printed one number.
run_one() {
    local out
    out="$("$@")" || die "failed: $*"
    [[ "$out" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "unexpected output from $*: $out"
    printf '%s' "$out"
}

# pair LABEL UNIT SCALE KIND TARGET -- BARE_CMD... --- SANDBOXED_CMD...
# Alternates bare and sandboxed runs REPS times (so drift hits both alike),
# takes the median of each (ns per iteration), divides by SCALE.
pair() {
    local label="$1" unit="$2" scale="$3" kind="$4" target="$5"
    shift 5
    [[ "$1" == -- ]] || die "pair: expected --"
    shift
    local bare=() sand=()
    while [[ "$1" != --- ]]; do bare+=("$1"); shift; done
    shift
    sand=("$@")
    local b=() s=() i
    for ((i = 0; i < REPS; i++)); do
        b+=("$(run_one "${bare[@]}")")
        s+=("$(run_one "${sand[@]}")")
    done
    local mb ms
    mb="$(median "${b[@]}")"
    ms="$(median "${s[@]}")"
    log "$label: bare [${b[*]}] sandlock [${s[*]}] ns"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$unit" \
        "$(python3 -c "print($mb/$scale)")" "$(python3 -c "print($ms/$scale)")" "$kind" "$target" >>"$RESULTS"
}

# diag WHAT UNIT SCALE CMD...: median of REPS runs, informational only.
diag() {
    local what="$1" unit="$2" scale="$3"
    shift 3
    local v=() i
    for ((i = 0; i < REPS; i++)); do v+=("$(run_one "$@")"); done
    local m
    m="$(median "${v[@]}")"
    log "$what: [${v[*]}] ns"
    printf '%s\t%s\t%s\n' "$what" "$unit" "$(python3 -c "print($m/$scale)")" >>"$DIAG"
}

# ---------------------------------------------------------------- 1. startup
log "startup: hyperfine (${STARTUP_RUNS} runs each)"
ok=0
for _ in 1 2 3; do "$SANDLOCK" run -- /bin/true && { ok=1; break; }; done
((ok)) || die "sandlock run -- /bin/true failed 3 times in a row"
# -i: a failing run must not abort the whole report; failures are counted
# from the exported exit codes and make the script exit non-zero at the end.
# The dynamic build (`cargo build`, `cargo install`) beside the static one,
# when it is there and is not the binary under test.
dynamic=()
if [[ -x "$DYNAMIC" && "$DYNAMIC" != "$SANDLOCK" ]]; then
    dynamic=(-n dynamic "$DYNAMIC run -- /bin/true")
fi
hyperfine -N -i --warmup 20 --runs "$STARTUP_RUNS" --style none \
    --export-json "$WORK/startup.json" \
    -n bare '/bin/true' \
    -n sandlock "$SANDLOCK run -- /bin/true" \
    "${dynamic[@]}" \
    -n floor-one "$BIN/launch_floor -- /bin/true" \
    -n floor-entries "$BIN/launch_floor per-entry -- /bin/true" \
    -n floor-ns "$BIN/launch_floor per-entry ns -- /bin/true" >&2
read -r start_bare start_sand start_fail floor_one floor_entries floor_ns start_dynamic < <(python3 - "$WORK/startup.json" <<'EOF'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
fails = sum(1 for c in res["sandlock"].get("exit_codes", []) if c != 0)
ms = lambda name: res[name]["median"] * 1e3 if name in res else "-"
print(ms("bare"), ms("sandlock"), fails, ms("floor-one"), ms("floor-entries"), ms("floor-ns"), ms("dynamic"))
EOF
)
[[ -n "${start_fail:-}" ]] || die "could not parse hyperfine results"
printf 'startup: sandlock run -- /bin/true\tms\t%s\t%s\tdiff\t1.5\n' "$start_bare" "$start_sand" >>"$RESULTS"
# The same start in minimal C (bench/launch_floor.c): what any
# implementation of the prescribed mechanism pays on this machine.
if [[ "$start_dynamic" != - ]]; then
    printf '%s\t%s\t%s\n' "startup: the dynamic build (target/release/sandlock) run -- /bin/true" ms "$start_dynamic" >>"$DIAG"
fi
printf '%s\t%s\t%s\n' "startup floor: launch_floor -- /bin/true, /etc as one rule (no sandlock)" ms "$floor_one" >>"$DIAG"
printf '%s\t%s\t%s\n' "startup floor: launch_floor per-entry -- /bin/true, /etc entry by entry as for root (no sandlock)" ms "$floor_entries" >>"$DIAG"
printf '%s\t%s\t%s\n' "startup floor: launch_floor per-entry ns -- /bin/true, the same in mount and pid namespaces with their own /proc, as sandlock's workload (no sandlock)" ms "$floor_ns" >>"$DIAG"
if ((start_fail > 0)); then
    FAILED_RUNS+=("startup: $start_fail of $STARTUP_RUNS 'sandlock run -- /bin/true' runs exited non-zero")
fi

# ---------------------------------------------------------------- 2. trapped open
# --add-host turns on the virtual /etc/hosts. In the workload's own mount
# namespace it is a read-only bind and nothing traps; with the host's /proc
# granted (no namespaces) the supervisor serves it and every read-only
# open traps: these rows measure that trap.
HOSTS=(--add-host x.test:127.0.0.1 -r /proc)
HOSTS_MOUNT=(--add-host x.test:127.0.0.1)
log "trapped open: open+close /etc/passwd"
pair "open+close /etc/passwd (trapped)" "us/op" 1000 diff 10 \
    -- "$BIN/open_loop" 20000 /etc/passwd \
    --- "${SB[@]}" "${HOSTS[@]}" -- "$BIN/open_loop" 20000 /etc/passwd
log "trapped open: open+read+close /etc/hosts (virtual file in the sandbox)"
pair "open+read+close /etc/hosts (virtual; issue-4 bound)" "us/op" 1000 diff 100 \
    -- "$BIN/open_loop" 20000 /etc/hosts read \
    --- "${SB[@]}" "${HOSTS[@]}" -- "$BIN/open_loop" 20000 /etc/hosts read
log "untrapped open: open+read+close /etc/hosts (a read-only bind in the sandbox's namespace)"
pair "open+read+close /etc/hosts (bound in the namespace, no trap)" "us/op" 1000 diff 100 \
    -- "$BIN/open_loop" 20000 /etc/hosts read \
    --- "${SB[@]}" "${HOSTS_MOUNT[@]}" -- "$BIN/open_loop" 20000 /etc/hosts read

# The CA spliced into the Debian bundle (any HTTP rule turns it on): the
# bundle is a sealed memfd holding the real content and the sandbox CA.
BUNDLE=/etc/ssl/certs/ca-certificates.crt
HTTP=(--http-allow 'GET x.test/*' --add-host x.test:127.0.0.1)
log "trapped open: open+read+close $BUNDLE (CA spliced in)"
pair "open+read+close the Debian CA bundle (CA spliced in; issue-4 bound)" "us/op" 1000 diff 100 \
    -- "$BIN/open_loop" 2000 "$BUNDLE" read \
    --- "${SB[@]}" "${HTTP[@]}" -- "$BIN/open_loop" 2000 "$BUNDLE" read
log "trapped open: open+close /etc/passwd with the trust files in place"
pair "open+close /etc/passwd (trapped, trust splicing on)" "us/op" 1000 diff 10 \
    -- "$BIN/open_loop" 20000 /etc/passwd \
    --- "${SB[@]}" "${HTTP[@]}" -- "$BIN/open_loop" 20000 /etc/passwd

# ---------------------------------------------------------------- 3. untrapped syscalls
log "untrapped syscall: getppid"
# Two rows: against a process with no filter at all (which no seccomp
# sandbox can match: the kernel's seccomp entry path costs the same for a
# one-instruction filter), and against a one-instruction allow-all filter,
# which isolates what sandlock's own filter adds.
# sandlock's largest filter: open family, inet and udp rules all present.
BIGGEST=(--net-allow 127.0.0.1:9 --net-allow udp://127.0.0.1:9)
pair "getppid (untrapped) vs no filter" "ns/op" 1 ratio 1.05 \
    -- "$BIN/getpid_loop" 2000000 \
    --- "${SB[@]}" "${BIGGEST[@]}" -- "$BIN/getpid_loop" 2000000
pair "getppid (untrapped) vs a 1-insn filter" "ns/op" 1 ratio 1.05 \
    -- "$BIN/getpid_loop" 2000000 filter \
    --- "${SB[@]}" "${BIGGEST[@]}" -- "$BIN/getpid_loop" 2000000

# ---------------------------------------------------------------- 4. connect on behalf
log "starting accept-and-close server on 127.0.0.1"
python3 "$BENCH/accept_server.py" >"$WORK/port" &
SERVER_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/port" ]] && break; sleep 0.05; done
PORT="$(head -n1 "$WORK/port")"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "accept server did not report a port"
NET=(--net-allow "127.0.0.1:$PORT")
log "connect on behalf: connect() to 127.0.0.1:$PORT, timed alone"
pair "connect 127.0.0.1 (on behalf)" "us/op" 1000 diff 20 \
    -- "$BIN/connect_loop" 5000 "$PORT" connect-only \
    --- "${SB[@]}" "${NET[@]}" -- "$BIN/connect_loop" 5000 "$PORT" connect-only

# ---------------------------------------------------------------- 5. decided since issue 12
# Calls Landlock does not govern, now decided (and made) by the supervisor
# in every sandbox: metadata changes and unix-socket connects and sends.
# Here on a file and a socket under a write grant, the common (allowed)
# case. Bound: the connect-on-behalf target, the same mechanism.
META="$WORK/meta"
mkdir -p "$META"
for mode in chmod fchmod utimens sendmsg connect; do
    log "decided on behalf: $mode under a write grant"
    pair "$mode under a write grant (on behalf)" "us/op" 1000 diff 20 \
        -- "$BIN/meta_loop" 5000 "$mode" "$META" \
        --- "${SB[@]}" -w "$META" -- "$BIN/meta_loop" 5000 "$mode" "$META"
done

# ---------------------------------------------------------------- 6. supervisor memory
log "supervisor memory: sandlock run --net-allow 127.0.0.1:$PORT -- sleep 2"
"$SANDLOCK" run -q "${NET[@]}" -- sleep 2 &
SUP_PID=$!
sleep 1
[[ "$(cat "/proc/$SUP_PID/comm" 2>/dev/null)" == sandlock ]] || die "pid $SUP_PID is not the sandlock process"
STATUS="$(cat "/proc/$SUP_PID/status")" || die "sandlock exited before its memory could be read"
wait "$SUP_PID" || die "sandlock run -- sleep 2 failed"
kib() { awk -v k="$1:" '$1 == k { print $2 }' <<<"$STATUS"; }
rss_kib="$(kib VmRSS)"; hwm_kib="$(kib VmHWM)"; threads="$(kib Threads)"
[[ -n "$rss_kib" && -n "$hwm_kib" ]] || die "no VmRSS/VmHWM in /proc/$SUP_PID/status"
printf 'supervisor VmRSS (idle, --net-allow)\tMiB\t-\t%s\tabs\t10\n' "$(python3 -c "print($rss_kib/1024)")" >>"$RESULTS"
printf 'supervisor VmHWM (idle, --net-allow)\tMiB\t-\t%s\tabs\t10\n' "$(python3 -c "print($hwm_kib/1024)")" >>"$RESULTS"
printf 'supervisor threads (idle)\tcount\t%s\n' "$threads" >>"$DIAG"

# ---------------------------------------------------------------- diagnostics
# Not targets: reference points that explain the numbers above.
log "diagnostics"
diag "socket+connect+close, bare" "us/op" 1000 "$BIN/connect_loop" 5000 "$PORT"
diag "socket+connect+close, sandlock --net-allow" "us/op" 1000 \
    "${SB[@]}" "${NET[@]}" -- "$BIN/connect_loop" 5000 "$PORT"
diag "socket+close, bare" "us/op" 1000 "$BIN/connect_loop" 5000 "$PORT" socket-only
diag "socket+close, sandlock --net-allow (decided in BPF)" "us/op" 1000 \
    "${SB[@]}" "${NET[@]}" -- "$BIN/connect_loop" 5000 "$PORT" socket-only
diag "getppid under a 1-insn allow-all seccomp filter (no sandlock)" "ns/op" 1 "$BIN/getpid_loop" 2000000 filter
diag "getppid under sandlock --net-allow (largest filter)" "ns/op" 1 \
    "${SB[@]}" "${NET[@]}" -- "$BIN/getpid_loop" 2000000
diag "open+close /etc/passwd under sandlock, no virtual file (untrapped)" "us/op" 1000 \
    "${SB[@]}" -- "$BIN/open_loop" 20000 /etc/passwd
diag "kernel floor: 1 seccomp-notify round trip, CONTINUE, 1 receiver in another process (no sandlock)" "us/op" 1000 \
    "$BIN/notify_floor" 20000 process
diag "kernel floor: same with 2 receivers waiting in NOTIF_RECV (sandlock's pool)" "us/op" 1000 \
    "$BIN/notify_floor" 20000 process 2rx
diag "kernel floor: connect to 127.0.0.1 performed on behalf by a minimal C supervisor (read address, pidfd_getfd, connect; no sandlock)" "us/op" 1000 \
    "$BIN/onbehalf_floor" 5000 "$PORT"
diag "kernel floor: open+close /etc/passwd, openat trapped and answered CONTINUE (no Landlock, no argument read, no sandlock)" "us/op" 1000 \
    "$BIN/notify_floor" 20000 process open

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$DIAG" "${BENCH_MD:-}" <<'EOF'
import sys

results, diag, md_path = sys.argv[1], sys.argv[2], sys.argv[3]

def fmt(x):
    x = float(x)
    if x.is_integer() and abs(x) < 1000:
        return str(int(x))
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"

rows = []
for line in open(results):
    metric, unit, bare, sand, kind, target = line.rstrip("\n").split("\t")
    t = float(target)
    if kind == "diff":
        d = float(sand) - float(bare)
        delta = f"{'+' if d >= 0 else ''}{fmt(d)} {unit.split('/')[0]}"
        tgt, ok = f"diff <= {target} {unit.split('/')[0]}", d <= t
    elif kind == "ratio":
        r = float(sand) / float(bare)
        delta = f"x{r:.3f}"
        tgt, ok = f"ratio <= {target}", r <= t
    else:
        delta = "-"
        tgt, ok = f"<= {target} {unit}", float(sand) <= t
    rows.append([f"{metric} [{unit}]", "-" if bare == "-" else fmt(bare), fmt(sand), delta, tgt, "PASS" if ok else "FAIL"])

head = ["metric", "bare", "sandlock", "diff/ratio", "target", "result"]
drows = [[f"{w} [{u}]", fmt(v)] for w, u, v in (l.rstrip("\n").split("\t") for l in open(diag))]

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
print("SUMMARY (medians; sandlock = same workload under `sandlock run`)")
print(plain(head, rows))
print()
print("DIAGNOSTICS (reference points, no target)")
print(plain(["measurement", "median"], drows))
if md_path:
    with open(md_path, "w") as f:
        f.write(markdown(head, rows) + "\n\n" + markdown(["diagnostic", "median"], drows) + "\n")
EOF

if ((${#FAILED_RUNS[@]})); then
    printf '\nFAILED RUNS (the numbers above may be skewed):\n' >&2
    printf '  %s\n' "${FAILED_RUNS[@]}" >&2
    exit 1
fi
