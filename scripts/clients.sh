#!/usr/bin/env bash
# Installs the clients the end-to-end client matrix runs inside the
# sandbox, when missing, into one directory every test user may read:
# Python packages in a venv (grpcio, httpx with HTTP/2, aiohttp,
# websockets, uv), bun and deno from npm, and the Rust toolchain (cargo,
# rustc and the standard library, hard-linked from rustup's, which lives
# under root's private home). Sourced by test.sh after
# deps.sh (which installs the apt ones: golang, wget, a JDK).
# SANDLOCK_CLIENTS overrides the directory; a second run reuses it.
set -euo pipefail

clients="${SANDLOCK_CLIENTS:-/var/cache/sandlock-clients}"
export SANDLOCK_CLIENTS="$clients"
stamp="$clients/.installed-v1"
if [ ! -f "$stamp" ]; then
    mkdir -p "$clients"
    chmod 755 "$clients"
    [ -x "$clients/venv/bin/python" ] ||
        /usr/bin/python3 -m venv --system-site-packages "$clients/venv"
    "$clients/venv/bin/pip" install -q --disable-pip-version-check \
        'grpcio>=1.60,<2' 'httpx[http2]>=0.27,<1' 'aiohttp>=3.9,<4' \
        'websockets>=12,<16' 'uv>=0.4,<1'
    npm install -s --no-audit --no-fund --prefix "$clients/node" bun@1 deno@2 >/dev/null
    chmod -R a+rX "$clients"
    touch "$stamp"
fi

# The toolchain cargo drives, renewed when rustup's changes: hard links
# where the cache shares rustup's filesystem (instant, no space), a copy
# otherwise.
sysroot="$(rustc --print sysroot)"
if [ "$("$clients/rust/bin/rustc" -V 2>/dev/null)" != "$(rustc -V)" ] ||
    [ "$("$clients/rust/bin/cargo" -V 2>/dev/null)" != "$(cargo -V)" ]; then
    toolchain() {
        rm -rf "$clients/rust" && mkdir -p "$clients/rust/bin" &&
            cp "$@" "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$clients/rust/bin/" &&
            cp "$@" "$sysroot/lib" "$clients/rust/"
    }
    toolchain -al 2>/dev/null || toolchain -a
    chmod -R a+rX "$clients/rust"
fi
