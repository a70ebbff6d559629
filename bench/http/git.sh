# Sourced by bench/http.sh (SECTIONS containing "git"): a git clone over
# HTTPS of a repository of GIT_FILES small files in GIT_DIRS directories,
# served by nginx as static files ("dumb" HTTP: git fetches every loose
# object with a request of its own, a few in parallel), timed whole,
# direct against under sandlock (and under PEER when given), beside the
# same clone under sandlock with --net-allow alone (no HTTP rule: git's TLS
# goes to nginx untouched), which separates the sandbox's own share (its
# file-system traps) from the proxy's. Clones go to a tmpfs (/dev/shm when
# there is one): on ext4, creating thousands of files right after deleting
# the previous clone's runs into the inode allocator's scan of recently
# deleted inodes, which made direct clones vary from 0.8 s to 4.8 s here.
#
# The repository is built here: one commit, files of 200-600 random bytes,
# objects left loose (no gc), `git update-server-info` for the dumb
# protocol. Direct runs trust the private root with GIT_SSL_CAINFO and reach
# bench.test through http.curloptResolve; sandboxed ones get neither: the
# name comes from --add-host and the trust from the CA sandlock splices into
# the system bundle git opens (zero-config trust, so the run also proves the
# interception). Two floors run beside them: the direct clone with the
# calls sandlock traps sent to a minimal C supervisor that answers CONTINUE
# at once (bench/trap_floor.c: read-only opens, as with any network flag;
# and the lookups by path too, as with an HTTP rule), which is what the
# kernel's mechanism alone costs this clone, whatever the supervisor does.
# Every git runs with a plain environment and an empty HOME
# (no ~/.gitconfig of the machine's). Each clone is checked: the files of
# its work tree and the commit it checked out.
#
# Uses http.sh's helpers and its PKI, WWW, WORK, L, PORT, CPIN, SB, REPS,
# SANDBOX_OK.

GIT_FILES="${GIT_FILES:-2000}"
GIT_DIRS="${GIT_DIRS:-40}"
GIT_BIN=/usr/bin/git
[[ -x "$GIT_BIN" ]] || GIT_BIN="$(command -v git || true)"
[[ -x "$GIT_BIN" ]] || die "no git"

metric git "git clone over HTTPS (dumb HTTP), $GIT_FILES files" "s" max_ratio 1.3
metric git_net "  reference: under sandlock with --net-allow only (no proxy: TLS end to end)" "s" ref_ratio 0
metric git_floor "  floor: direct, its opens and lookups by path trapped and answered CONTINUE (bench/trap_floor.c open+stat)" "s" ref_ratio 0
metric git_nfloor "  floor: direct, its read-only opens trapped and answered CONTINUE (bench/trap_floor.c open)" "s" ref_ratio 0
[[ -n "${PEER:-}" ]] && metric git_peer "  peer sandbox ($(basename "$PEER"))" "s" ref_ratio 0

GIT_HOME="$WORK/git-home" # empty: no user configuration
GIT_CLONES="$WORK/clones" # granted read-write to the sandbox
if [[ -d /dev/shm && -w /dev/shm ]]; then
    GIT_CLONES="$(mktemp -d /dev/shm/sandlock-bench-clones.XXXXXX)"
    BG_CLEAN+=("$GIT_CLONES")
fi
mkdir -p "$GIT_HOME" "$GIT_CLONES"
# An identity given, so git never looks up the machine's name for one (its
# reflog entry): outside a sandbox that lookup went to a DNS server this
# machine cannot reach and stalled direct clones for seconds; inside, the
# DNS interceptor refuses it at once.
GIT_ENV=(env -i PATH=/usr/bin:/bin HOME="$GIT_HOME" GIT_CONFIG_NOSYSTEM=1 LC_ALL=C
    GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@bench.test
    GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@bench.test)

log "building a $GIT_FILES-file repository for the clone"
(
    src="$WORK/git-src"
    mkdir -p "$src"
    cd "$src"
    python3 - "$GIT_FILES" "$GIT_DIRS" <<'EOF'
import os, random, sys
files, dirs = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(17)
for i in range(files):
    d = f"d{i % dirs:03d}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i:05d}.txt", "w") as f:
        f.write("".join(rng.choice("abcdefghij \n") for _ in range(rng.randint(200, 600))))
EOF
    "${GIT_ENV[@]}" "$GIT_BIN" init -q -b main .
    "${GIT_ENV[@]}" "$GIT_BIN" add -A
    "${GIT_ENV[@]}" "$GIT_BIN" commit -q -m bench
    cp -r .git "$WWW/repo.git"
    "${GIT_ENV[@]}" "$GIT_BIN" -C "$WWW/repo.git" config core.bare true
    "${GIT_ENV[@]}" "$GIT_BIN" -C "$WWW/repo.git" update-server-info
) >"$L/git-build.log" 2>&1 || { tail_of "$L/git-build.log"; die "building the repository failed"; }
GIT_HEAD="$("${GIT_ENV[@]}" "$GIT_BIN" -C "$WWW/repo.git" rev-parse HEAD)"
GIT_OBJECTS="$(find "$WWW/repo.git/objects" -type f -path '*/objects/??/*' | wc -l)"
diag "git repository: files, loose objects" "$GIT_FILES, $GIT_OBJECTS"
GIT_URL="https://bench.test:$PORT/repo.git"

# git_check DIR: the clone is whole
git_check() {
    [[ "$(find "$1" -path "$1/.git" -prune -o -type f -print | wc -l)" == "$GIT_FILES" ]] &&
        [[ "$("${GIT_ENV[@]}" "$GIT_BIN" -C "$1" rev-parse HEAD)" == "$GIT_HEAD" ]]
}
# git_run METRIC SIDE I CMD...: times one clone into $GIT_CLONES/SIDE-I
git_run() {
    local m="$1" side="$2" i="$3" dir="$GIT_CLONES/$2-$3" t0 t1
    shift 3
    rm -rf "$dir"
    t0="$(date +%s%N)"
    if timeout -k 5 300 "${CPIN[@]}" "$@" "$dir" >"$L/git-$side-$i.log" 2>&1; then
        t1="$(date +%s%N)"
        if git_check "$dir"; then
            sample "$m" "$( [[ "$side" == direct ]] && echo direct || echo sandbox)" \
                "$(python3 -c "print(($t1 - $t0) / 1e9)")"
            rm -rf "$dir"
            return 0
        fi
        echo "incomplete clone" >>"$L/git-$side-$i.log"
    fi
    tail_of "$L/git-$side-$i.log"
    rm -rf "$dir"
    return 1
}
GIT_CLONE=("$GIT_BIN" clone -q "$GIT_URL")
TRAP_FLOOR="$WORK/trap_floor"
cc -O2 -o "$TRAP_FLOOR" "$BENCH/trap_floor.c" -lpthread 2>"$L/trap_floor-cc.log" ||
    { tail_of "$L/trap_floor-cc.log"; die "cannot compile bench/trap_floor.c"; }
# An untimed clone first: the freshly written repository into the page
# cache, nginx's file handles warm (the first clone ran up to 4x slower).
sync
"${GIT_ENV[@]}" GIT_SSL_CAINFO="$PKI/root.pem" "$GIT_BIN" -c "http.curloptResolve=bench.test:$PORT:127.0.0.1" \
    clone -q "$GIT_URL" "$GIT_CLONES/warm" >"$L/git-warm.log" 2>&1 || { tail_of "$L/git-warm.log"; die "git clone failed"; }
rm -rf "$GIT_CLONES/warm"
for ((i = 1; i <= REPS; i++)); do
    log "git clone rep $i/$REPS: direct, sandlock${PEER:+, peer}"
    git_run git direct "$i" "${GIT_ENV[@]}" GIT_SSL_CAINFO="$PKI/root.pem" \
        "$GIT_BIN" -c "http.curloptResolve=bench.test:$PORT:127.0.0.1" clone -q "$GIT_URL" ||
        die "direct git clone failed"
    last="$(grep -P '^git\tdirect\t' "$SAMPLES" | tail -n1 | cut -f3)"
    sample git_net direct "$last"
    sample git_floor direct "$last"
    sample git_nfloor direct "$last"
    [[ -n "${PEER:-}" ]] && sample git_peer direct "$last"
    if ((SANDBOX_OK)); then
        git_run git sandbox "$i" "${SB[@]}" -w "$GIT_CLONES" -- "${GIT_ENV[@]}" "${GIT_CLONE[@]}" ||
            failed "git clone under sandlock, rep $i"
    fi
    git_run git_net net "$i" "$SANDLOCK" run --net-allow "127.0.0.1:$PORT" -r "$PKI" -w "$GIT_CLONES" -- \
        "${GIT_ENV[@]}" GIT_SSL_CAINFO="$PKI/root.pem" \
        "$GIT_BIN" -c "http.curloptResolve=bench.test:$PORT:127.0.0.1" clone -q "$GIT_URL" ||
        failed "git clone under sandlock --net-allow, rep $i"
    for floor in open+stat open; do
        m=git_floor
        [[ "$floor" == open ]] && m=git_nfloor
        git_run "$m" "floor-$floor" "$i" "${GIT_ENV[@]}" GIT_SSL_CAINFO="$PKI/root.pem" "$TRAP_FLOOR" "$floor" \
            "$GIT_BIN" -c "http.curloptResolve=bench.test:$PORT:127.0.0.1" clone -q "$GIT_URL" ||
            failed "git clone under bench/trap_floor.c $floor, rep $i"
    done
    if [[ -n "${PEER:-}" ]]; then
        peer_cmd PC "$PORT" "$GIT_CLONES"
        git_run git_peer peer "$i" "${PC[@]}" "${GIT_ENV[@]}" "${PEER_GIT_CA[@]}" "${GIT_CLONE[@]}" ||
            failed "git clone under the peer, rep $i"
    fi
done

# What a clone asks of the file system: every read-only open traps to the
# supervisor in a sandbox with virtual files (/etc/hosts, the spliced
# trust bundles), so their number says what the sandbox's share costs.
if command -v strace >/dev/null 2>&1; then
    rm -rf "$GIT_CLONES/counted"
    if "${GIT_ENV[@]}" GIT_SSL_CAINFO="$PKI/root.pem" strace -f -c -o "$L/git-strace.txt" -e trace=openat,open \
        "$GIT_BIN" -c "http.curloptResolve=bench.test:$PORT:127.0.0.1" clone -q "$GIT_URL" "$GIT_CLONES/counted" \
        >"$L/git-strace.log" 2>&1; then
        diag "git clone: opens (calls, failed) a direct clone makes (strace -f -c)" \
            "$(awk '$NF == "openat" || $NF == "open" { c += $(NF-2); e += ($(NF-1) ~ /^[0-9]+$/ ? $(NF-1) : 0) } END { print c ", " e }' "$L/git-strace.txt")"
    fi
    rm -rf "$GIT_CLONES/counted"
fi

# One traced clone: how many requests a clone makes, and their stages.
if ((SANDBOX_OK)); then
    tr="$L/git-trace.tsv"
    log "git clone: one traced sandlock run"
    rm -rf "$GIT_CLONES/traced"
    if SANDLOCK_PROXY_TRACE="$tr" timeout -k 5 300 "${CPIN[@]}" "${SB[@]}" -w "$GIT_CLONES" -- \
        "${GIT_ENV[@]}" "${GIT_CLONE[@]}" "$GIT_CLONES/traced" >"$L/git-trace.log" 2>&1; then
        diag "git clone: requests through the proxy" "$(grep -vc '^#' "$tr")"
        diag "git clone: proxy stages of a request, median us" "$(python3 "$BENCH/http/trace_summary.py" "$tr")"
    else
        tail_of "$L/git-trace.log"; failed "traced git clone"
    fi
    rm -rf "$GIT_CLONES/traced"
fi
