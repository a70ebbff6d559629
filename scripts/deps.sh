#!/usr/bin/env bash
# Installs what building and testing sandlock needs on Debian, when missing.
# Sourced by demo.sh and test.sh; safe to run repeatedly.
set -euo pipefail

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
command -v git >/dev/null || need+=(git)
command -v python3 >/dev/null || need+=(python3)
[ -x /usr/bin/python3 ] || need+=(python3)
# The HTTP proxy's end-to-end tests: python requests and an HTTP/2 client
# (h2) inside the sandbox, nginx as an HTTP/2 upstream.
/usr/bin/python3 -c 'import requests' 2>/dev/null || need+=(python3-requests)
/usr/bin/python3 -c 'import h2' 2>/dev/null || need+=(python3-h2)
command -v nginx >/dev/null || need+=(nginx)
# The trust-bundle tests: node's fetch, requests' certifi.
command -v node >/dev/null || need+=(nodejs)
/usr/bin/python3 -c 'import certifi' 2>/dev/null || need+=(python3-certifi)
# The client matrix's system packages (scripts/clients.sh installs the rest).
command -v go >/dev/null || need+=(golang-go)
command -v wget >/dev/null || need+=(wget)
command -v npm >/dev/null || need+=(npm)
# Interactive use: a REPL and less under tmux.
command -v tmux >/dev/null || need+=(tmux)
command -v less >/dev/null || need+=(less)
# The JVM's key store splice: java's HttpClient and keytool.
command -v java >/dev/null || need+=(default-jdk-headless)
# The Python SDK's tests: a venv to pip-install the package into (pip then
# fetches setuptools from PyPI to build it), and pytest.
dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
/usr/bin/python3 -c 'import pytest' 2>/dev/null || need+=(python3-pytest)
command -v setpriv >/dev/null || need+=(util-linux)
# The OCI runtime's tests: podman and containerd (with ctr) run containers
# through sandlock-oci, which hands them to runc; the root filesystem is
# built from a static busybox.
command -v podman >/dev/null || need+=(podman)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v getent >/dev/null || need+=(libc-bin)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${need[*]} (run as root or install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cargo not found: install a Rust toolchain (rustup or apt-get install cargo)" >&2
        exit 1
    fi
fi
