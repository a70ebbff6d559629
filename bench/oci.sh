#!/usr/bin/env bash
# The OCI runtime (issue 15): what sandlock-oci adds to a container's
# start, beside runc in the same run. podman starts a container from a
# busybox root filesystem and runs /bin/true in it:
#
#   - with runc (the baseline, first and again last: the machine drifts
#     over a run by more than sandlock-oci adds);
#   - with sandlock-oci, no annotation (sandlock's default policy);
#   - with sandlock-oci and an HTTP rule (the proxy and its CA too);
#   - and, for the floor of the supervisor itself, `sandlock run --
#     /bin/true` on the host, with no container.
#
#   bash bench/oci.sh            (as root)
#
# Knobs: RUNS=20 (hyperfine runs per command), SKIP_BUILD=1.
# Prints hyperfine's table and the medians with the added time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-20}"
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (podman runs rootful here)"
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release -p sandlock-cli; cargo build-oci --release"
    (cd "$ROOT" && cargo build --release -p sandlock-cli && cargo build-oci --release) >&2
fi
OCI="$ROOT/target/x86_64-unknown-linux-gnu/release/sandlock-oci"
SANDLOCK="$ROOT/target/release/sandlock"

work="$(mktemp -d /tmp/sandlock-bench-oci.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,tmp,proc,dev,sys}
cp /bin/busybox "$rootfs/bin/"
for a in sh true; do ln -s busybox "$rootfs/bin/$a"; done
# Root here lacks CAP_SYS_RESOURCE: podman's default ulimits would fail.
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"

podman_run() { # RUNTIME [ANNOTATION...]
    local rt="$1"; shift
    local a=""
    for x in "$@"; do a+=" --annotation '$x'"; done
    echo "podman --runtime $rt run --rm --network host$a --rootfs $rootfs /bin/true"
}
json="$work/out.json"
hyperfine --warmup 3 --runs "$RUNS" --export-json "$json" \
    -n runc "$(podman_run "$(command -v runc)")" \
    -n sandlock-oci "$(podman_run "$OCI")" \
    -n "sandlock-oci, HTTP rule" "$(podman_run "$OCI" 'run.sandlock/http-allow=GET api.test/*' run.sandlock/add-host=api.test:127.0.0.1)" \
    -n "sandlock run (no container)" "$SANDLOCK run -- /bin/true" \
    -n "runc, again" "$(podman_run "$(command -v runc)")"

python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: sorted(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v[len(v) // 2] * 1000 for k, v in r.items()}
# runc runs first and last: the machine drifts over a run by more than
# sandlock-oci adds, so the baseline is the mean of the two.
base = (med["runc"] + med["runc, again"]) / 2
print()
print(f"{'':32} {'median ms':>10} {'added ms':>10}")
print(f"{'runc (mean of both)':32} {base:10.1f}")
for k, m in med.items():
    added = f"{m - base:+10.1f}" if k.startswith("sandlock-oci") else f"{'':>10}"
    print(f"{k:32} {m:10.1f} {added}")
PY
