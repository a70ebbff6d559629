#!/usr/bin/env bash
# Builds sandlock (release) and installs it under PREFIX:
#   bin/sandlock                  the command line (statically linked)
#   bin/sandlock-oci              the OCI runtime (statically linked)
#   lib/libsandlock_ffi.so, .a    the C ABI
#   include/sandlock.h            its header
#   lib/pkgconfig/sandlock.pc     for `pkg-config --cflags --libs sandlock`
#
#   bash scripts/install.sh                        # PREFIX=/usr/local (as root)
#   PREFIX=$HOME/.local bash scripts/install.sh    # for one user, no root
#   DESTDIR=/tmp/stage PREFIX=/usr bash scripts/install.sh   # staged (packaging)
#
# Environment:
#   PREFIX    where the files go (absolute; default /usr/local). The
#             pkg-config file names this prefix.
#   DESTDIR   prepended to every installed path, not to the prefix the
#             pkg-config file names (default empty).
#   SANDLOCK_INSTALL_PROFILE   release (default) or dev: the Cargo profile
#             built and installed (dev is the debug build, for tests).
#   SANDLOCK_INSTALL_SKIP_BUILD=1   install what the target directory
#             already holds instead of building (the tests use it with
#             SANDLOCK_INSTALL_PROFILE=dev).
#   CARGO_TARGET_DIR   the Cargo target directory (default ./target).
#
# The build's system packages (a C compiler with glibc's static libraries,
# pkg-config, libseccomp) are installed with apt-get when missing and run
# as root, as scripts/deps.sh does; deps.sh itself is not sourced because
# it also installs the test suite's tools (podman, a JDK, node, ...).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}
trap 'echo "install.sh: error: \"$BASH_COMMAND\" failed (line $LINENO); nothing after it was installed" >&2' ERR

prefix="${PREFIX:-/usr/local}"
destdir="${DESTDIR:-}"
profile="${SANDLOCK_INSTALL_PROFILE:-release}"
skip_build="${SANDLOCK_INSTALL_SKIP_BUILD:-0}"
case "$prefix" in
    /*) ;;
    *) die "PREFIX must be an absolute path, not '$prefix' (e.g. PREFIX=\$HOME/.local)" ;;
esac
case "$prefix" in
    *[[:space:]]*) die "PREFIX must not contain white space (pkg-config files cannot name such a path): '$prefix'" ;;
esac
prefix="${prefix%/}"
[ -n "$prefix" ] || die "PREFIX=/ is not supported: use PREFIX=/usr"
case "$destdir" in
    "" | /*) ;;
    *) die "DESTDIR must be an absolute path, not '$destdir'" ;;
esac
case "$profile" in
    release) cargo_profile=(--release) dir=release ;;
    dev) cargo_profile=() dir=debug ;;
    *) die "SANDLOCK_INSTALL_PROFILE must be release or dev, not '$profile'" ;;
esac
case "$skip_build" in
    0 | "" | 1) ;;
    *) die "SANDLOCK_INSTALL_SKIP_BUILD must be 0 or 1, not '$skip_build'" ;;
esac
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

version="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)"
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"

# Fail before building when the destination cannot be written.
dest="$destdir$prefix"
probe="$dest"
while [ ! -e "$probe" ]; do probe="$(dirname "$probe")"; done
if [ ! -d "$probe" ] || [ ! -w "$probe" ]; then
    die "cannot write to $probe (to install into $dest): run as root, or install for one user with PREFIX=\$HOME/.local"
fi

if [ "$skip_build" != 1 ]; then
    need=()
    command -v cc >/dev/null || need+=(gcc libc6-dev)
    # sandlock-oci links glibc statically: libc.a comes with libc6-dev.
    if command -v cc >/dev/null; then
        case "$(cc -print-file-name=libc.a)" in /*) ;; *) need+=(libc6-dev) ;; esac
    fi
    command -v pkg-config >/dev/null || need+=(pkg-config)
    pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev)
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
            die "missing build packages: ${need[*]} (install them, or run this as root on Debian/Ubuntu to have apt-get install them)"
        fi
        echo "install.sh: installing build packages: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
            die "apt-get install ${need[*]} failed"
    fi
    if ! command -v cargo >/dev/null; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            die "cargo not found: install a Rust toolchain (https://rustup.rs, or apt-get install cargo)"
        fi
    fi
    echo "install.sh: building sandlock $version ($profile profile; a first build takes several minutes)"
    build=(cargo build "${cargo_profile[@]}" --locked -p sandlock-ffi)
    "${build[@]}" || die "'${build[*]}' failed (its errors are above)"
    # The static command line and OCI runtime (see .cargo/config.toml).
    build=(cargo build-static "${cargo_profile[@]}" --locked)
    "${build[@]}" || die "'${build[*]}' failed (its errors are above)"
fi

static="$target/x86_64-unknown-linux-gnu/$dir"
built="$target/$dir"
for f in "$static/sandlock" "$built/libsandlock_ffi.so" "$built/libsandlock_ffi.a" "$static/sandlock-oci"; do
    if [ ! -f "$f" ]; then
        if [ "$skip_build" = 1 ]; then
            die "$f is missing: build it first (cargo build ${cargo_profile[*]} -p sandlock-ffi; cargo build-static ${cargo_profile[*]}), or unset SANDLOCK_INSTALL_SKIP_BUILD"
        fi
        die "$f is missing after the build (is CARGO_TARGET_DIR=$target where cargo builds?)"
    fi
done

# Installs $2 as $3 (a path under PREFIX) with mode $1 and says so.
put() {
    install -D -m "$1" "$2" "$dest$3"
    echo "installed $dest$3"
}
put 0755 "$static/sandlock" /bin/sandlock
put 0755 "$static/sandlock-oci" /bin/sandlock-oci
put 0755 "$built/libsandlock_ffi.so" /lib/libsandlock_ffi.so
put 0644 "$built/libsandlock_ffi.a" /lib/libsandlock_ffi.a
put 0644 include/sandlock.h /include/sandlock.h
pc="$(mktemp)"
trap 'rm -f "$pc"' EXIT
# The prefix is written as given, without DESTDIR: where the files will be
# once a staged tree is copied into place.
sed_prefix="$(printf '%s' "$prefix" | sed 's/[&|\\]/\\&/g')"
sed -e "s|@PREFIX@|$sed_prefix|g" -e "s|@VERSION@|$version|g" sandlock-ffi/sandlock.pc.in >"$pc"
put 0644 "$pc" /lib/pkgconfig/sandlock.pc
# The man pages and shell completions, generated by the binary from the
# same definitions as its --help.
gen="$(mktemp -d)"
trap 'rm -f "$pc"; rm -rf "$gen"' EXIT
"$static/sandlock" man >"$gen/sandlock.1"
put 0644 "$gen/sandlock.1" /share/man/man1/sandlock.1
for cmd in run check profile cow completions; do
    "$static/sandlock" man "$cmd" >"$gen/sandlock-$cmd.1"
    put 0644 "$gen/sandlock-$cmd.1" "/share/man/man1/sandlock-$cmd.1"
done
"$static/sandlock" completions bash >"$gen/bash"
put 0644 "$gen/bash" /share/bash-completion/completions/sandlock
"$static/sandlock" completions zsh >"$gen/zsh"
put 0644 "$gen/zsh" /share/zsh/site-functions/_sandlock
"$static/sandlock" completions fish >"$gen/fish"
put 0644 "$gen/fish" /share/fish/vendor_completions.d/sandlock.fish

# A system-wide library is found by the loader once its cache knows it.
if [ -z "$destdir" ] && [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then
    ldconfig 2>/dev/null || true
fi

echo "install.sh: sandlock $version installed under $dest"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "  add $prefix/bin to PATH to run sandlock" ;;
esac
case "$prefix" in
    /usr | /usr/local) ;;
    *)
        echo "  for pkg-config: export PKG_CONFIG_PATH=$prefix/lib/pkgconfig"
        echo "  programs linked against libsandlock_ffi.so find it with -Wl,-rpath,$prefix/lib (or LD_LIBRARY_PATH=$prefix/lib)"
        ;;
esac
