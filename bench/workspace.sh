#!/usr/bin/env bash
# Resource limits and copy-on-write workspaces (issue 14), each beside its
# baseline in the same run:
#
#   - start-up: `sandlock run -- /bin/true` with every limit on, against
#     the same run without limits (as root, and as uid 65534 when run as
#     root);
#   - a 10,000-file git tree: `git status`, and a small build (make -j2 of
#     40 C files, from clean) run with `--cow DIR` (changes committed at
#     the end) against `-w DIR`, and against no sandbox at all.
#
#   bash bench/workspace.sh
#
# Knobs: RUNS=30 (hyperfine runs per command), SKIP_BUILD=1,
# SANDLOCK=/path (the binary; default target/release/sandlock).
# Prints hyperfine's table per group and a summary of medians and ratios.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-30}"
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

need=()
for t in hyperfine git make cc; do
    command -v "$t" >/dev/null 2>&1 || need+=("$t")
done
if ((${#need[@]})); then
    pkgs=("${need[@]/cc/gcc}")
    log "installing ${pkgs[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

if [[ -z "${SANDLOCK:-}" ]]; then
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        log "cargo build --release -p sandlock-cli"
        (cd "$ROOT" && cargo build --release -p sandlock-cli) >&2
    fi
    SANDLOCK="$ROOT/target/release/sandlock"
fi
[[ -x "$SANDLOCK" ]] || die "no sandlock binary at $SANDLOCK"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sandlock-ws.XXXXXX")"
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
# Layers go under the bench's own directory, not the user's state.
export XDG_STATE_HOME="$WORK/state"
SL="$WORK/sandlock"
cp "$SANDLOCK" "$SL"
chmod 755 "$SL"

# ---------------------------------------------------------------- start-up
LIMITS=(--memory 512M --pids 256 --cpu 2 --open-files 4096 --file-size 1G --disk 256M)
log "start-up with and without every limit (${RUNS}0 runs each)"
startup=(-n bare "$SL run -- /bin/true" -n limits "$SL run ${LIMITS[*]} -- /bin/true")
if [[ $(id -u) -eq 0 ]]; then
    S='setpriv --reuid 65534 --regid 65534 --clear-groups env -i PATH=/usr/bin:/bin HOME=/nonexistent'
    startup+=(-n bare-65534 "$S $SL run -- /bin/true" -n limits-65534 "$S $SL run ${LIMITS[*]} -- /bin/true")
fi
hyperfine -N -w 20 -r "${RUNS}0" --export-json "$WORK/startup.json" "${startup[@]}" >&2

# ---------------------------------------------------------------- the tree
TREE="$WORK/tree"
log "building a 10,000-file git tree"
python3 - "$TREE" <<'EOF'
import os, sys
tree = sys.argv[1]
for d in range(100):
    os.makedirs(f"{tree}/data/d{d:03}")
    for f in range(99):
        with open(f"{tree}/data/d{d:03}/f{f:02}.txt", "w") as out:
            out.write(f"file {d} {f}\n" * 8)
os.makedirs(f"{tree}/src")
for i in range(40):
    with open(f"{tree}/src/m{i:02}.c", "w") as out:
        out.write(f"int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i}; return s; }}\n")
with open(f"{tree}/src/main.c", "w") as out:
    out.write("int main(void) { return 0; }\n")
with open(f"{tree}/Makefile", "w") as out:
    out.write("OBJS := $(patsubst %.c,%.o,$(wildcard src/*.c))\n"
              "app: $(OBJS)\n\tcc -o $@ $^\n"
              "%.o: %.c\n\tcc -O1 -c -o $@ $<\n"
              "clean:\n\trm -f app src/*.o\n")
with open(f"{tree}/.gitignore", "w") as out:
    out.write("*.o\napp\n")
EOF
git -C "$TREE" init -q
git -C "$TREE" -c user.name=b -c user.email=b@b add -A
git -C "$TREE" -c user.name=b -c user.email=b@b commit -qm tree
echo "$(git -C "$TREE" ls-files | wc -l) files in git" >&2

GIT="git -c safe.directory=* -C $TREE status --porcelain"
log "git status: direct, -w, --cow (${RUNS} runs each)"
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/status.json" \
    -n direct "$GIT" \
    -n w "$SL run -w $TREE -- $GIT" \
    -n cow "$SL run --cow $TREE --cow-summary none -- $GIT" >&2

if [[ $(id -u) -eq 0 ]]; then
    # The mechanism's floor: the same overlay, freshly mounted in a new
    # mount namespace, without sandlock (a fresh overlay starts with cold
    # dentry and inode caches: every file's first lookup builds its
    # overlay inode).
    OPTS="lowerdir=$TREE,upperdir=$WORK/fu,workdir=$WORK/fw,redirect_dir=nofollow,metacopy=off,index=off,xino=off"
    log "git status in a fresh overlay without sandlock (floor)"
    hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/floor.json" \
        --prepare "sh -c 'rm -rf $WORK/fu $WORK/fw; mkdir $WORK/fu $WORK/fw'" \
        -n plain "unshare -m sh -c '$GIT'" \
        -n overlay "unshare -m sh -c 'mount -t overlay -o $OPTS ovl $TREE && $GIT'" >&2
fi

log "make -j2 from clean: direct, -w, --cow committing the objects (${RUNS} runs each)"
BUILD="make -s -C $TREE -j2"
hyperfine -w 2 -r "$RUNS" --export-json "$WORK/build.json" \
    --prepare "make -s -C $TREE clean" \
    -n direct "$BUILD" \
    -n w "$SL run -w $TREE -- $BUILD" \
    -n cow "$SL run --cow $TREE --cow-summary none -- $BUILD" >&2
[[ -x "$TREE/app" ]] || die "the --cow build's app did not reach the tree"
[[ -z "$(ls -A "$XDG_STATE_HOME/sandlock/cow" 2>/dev/null)" ]] || die "a layer was left behind"

python3 - "$WORK" <<'EOF'
import json, sys
w = sys.argv[1]
def med(f):
    return {r["command"]: r["median"] * 1e3 for r in json.load(open(f"{w}/{f}.json"))["results"]}
s = med("startup")
print("\n| start-up, `sandlock run -- /bin/true` | without limits [ms] | every limit on [ms] | difference |")
print("|---|---|---|---|")
for who, suffix in (("as invoker", ""), ("uid 65534", "-65534")):
    if f"bare{suffix}" in s:
        b, l = s[f"bare{suffix}"], s[f"limits{suffix}"]
        print(f"| {who} | {b:.2f} | {l:.2f} | {l - b:+.2f} |")
print("\n| 10,000-file tree | direct [ms] | `-w` [ms] | `--cow` [ms] | `--cow` / `-w` |")
print("|---|---|---|---|---|")
for name, f in (("git status", "status"), ("make -j2 (40 objects) from clean", "build")):
    r = med(f)
    print(f"| {name} | {r['direct']:.1f} | {r['w']:.1f} | {r['cow']:.1f} | x{r['cow'] / r['w']:.2f} |")
import os
if os.path.exists(f"{w}/floor.json"):
    f = med("floor")
    print(f"\nfloor, no sandlock: git status in a new mount namespace {f['plain']:.1f} ms, "
          f"in a freshly mounted overlay {f['overlay']:.1f} ms ({f['overlay'] - f['plain']:+.1f} ms)")
EOF
