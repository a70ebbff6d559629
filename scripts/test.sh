#!/usr/bin/env bash
# Runs every check and test: formatting, the dependency policy (cargo
# deny: licenses, duplicate crates, sources, advisories), clippy, unit
# tests, the end-to-end suite through the real binary (as root and as
# uid 65534), the C ABI (a C program compiled against
# include/sandlock.h, the header checked against cbindgen), and the Python
# SDK's pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source scripts/clients.sh

cargo fmt --all -- --check
# The dependency policy (deny.toml): licenses, duplicate versions and
# sources on every run, offline (the crates come from the registry, nothing
# else is fetched); the RustSec advisories only where their database (a git
# repository) can be fetched, and a loud note where it cannot.
deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]; then
    # A debug build: about 1 minute on 2 cores instead of 3 for the release
    # profile (fat LTO), and the checks still take 2 s.
    echo "installing cargo-deny $deny_version (debug build, about a minute)" >&2
    cargo install --locked --debug --quiet --version "$deny_version" cargo-deny
fi
cargo fetch --locked --target x86_64-unknown-linux-gnu
cargo deny --locked --offline check licenses bans sources
if deny_db="$(timeout 300 cargo deny --locked fetch db 2>&1)"; then
    cargo deny --locked check advisories
else
    echo "*** cargo deny: the advisory check was NOT run here: the RustSec advisory database could not be fetched (licenses, bans and sources were checked). The fetch said:" >&2
    printf '%s\n' "$deny_db" | sed 's/^/***   /' >&2
fi
cargo clippy --workspace --all-targets --locked -- -D warnings
# `cargo test` builds sandlock-ffi only as an rlib; the C program's tests
# link the .so and the .a, which a build makes.
cargo build --workspace --locked
# The static builds of sandlock and sandlock-oci, the ones scripts/install.sh
# installs (see .cargo/config.toml): the end-to-end suite runs that sandlock.
cargo build-static --locked
root="$(pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
SANDLOCK_E2E_BIN="$target/x86_64-unknown-linux-gnu/debug/sandlock" \
    cargo test --workspace --locked -- --test-threads=2

# The Python SDK: `pip install ./python` into a venv under the target dir
# (its build step reuses the debug build above), then its pytest suite, as
# root and, like the end-to-end suite, as uid 65534.
venv="$target/pyvenv"
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
# With its [test] extra: pytest, and mypy to type-check code against the
# generated stub.
SANDLOCK_CARGO_PROFILE=dev "$venv/bin/pip" install -q --disable-pip-version-check "./python[test]"
# From / so that the package under test is the installed one, not ./python.
(cd / && "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests")
if [ "$(id -u)" -eq 0 ]; then
    # The build tree may sit where uid 65534 cannot enter (/root): it runs
    # a copy of the installed package and of the tests from /tmp.
    pkg="$(cd / && "$venv/bin/python" -c 'import os, sandlock; print(os.path.dirname(sandlock.__file__))')"
    copy="$(mktemp -d /tmp/sandlock-py.XXXXXX)"
    trap 'rm -rf "$copy"' EXIT
    cp -r "$pkg" "$root/python/tests" "$copy/"
    chmod -R a+rX "$copy"
    (cd / && setpriv --reuid 65534 --regid 65534 --clear-groups env HOME=/tmp \
        PYTHONPATH="$copy" /usr/bin/python3 -m pytest -q -p no:cacheprovider "$copy/tests")
fi
