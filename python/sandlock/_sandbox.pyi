"""Types of sandlock's Sandbox, Result and Secret (the stub of _sandbox.py).

Generated from sandlock's option table (sandlock_core::policy::OPTIONS)
and sandlock-ffi/tests/python_stub.pyi.in by sandlock-ffi/tests/python_stub.rs;
do not edit. Regenerate with
    SANDLOCK_BLESS=1 cargo test -p sandlock-ffi --test python_stub
"""

import os
from dataclasses import dataclass
from types import TracebackType
from typing import (
    Any, Dict, Iterable, List, Literal, Mapping, Sequence, TypeVar,
)

_Text = str | bytes | os.PathLike[str] | os.PathLike[bytes]
"""Text, or bytes and paths, decoded as the OS decodes file names
(``os.fsdecode``); a value that is not valid UTF-8 raises PolicyError."""

_Value = _Text | int | float
"""One value: text, a path, or a number (``timeout=2.5``)."""

_Strings = _Text | Iterable[_Text]
"""A repeatable option: one value, or any iterable of them."""

_Ports = _Text | int | Iterable[_Text | int]
"""Ports: ``8080``, ``"9000-9005"``, or any iterable of them."""

_SandboxT = TypeVar("_SandboxT", bound="Sandbox")

@dataclass(frozen=True)
class Secret:
    """A secret the workload holds only as a placeholder.

    The workload's ``$NAME`` (the key in ``Sandbox(secrets={NAME: ...})``)
    is a random placeholder; the supervisor swaps in the real value on the
    wire to ``hosts``. Give exactly one of ``env``, ``file`` and ``fd``.
    """

    hosts: Sequence[str] | str
    """Names (or ``*.suffix``) the value may be sent to."""
    env: str | None = None
    """Read the value from this variable of the calling process."""
    file: _Text | None = None
    """Read it from this file."""
    fd: int | None = None
    """Read it from this file descriptor."""
    plaintext: bool = False
    """Also substitute on plain HTTP to those hosts."""
    headers: Sequence[str] | None = None
    """Substitute only in these request headers."""
    def spec(self, name: str) -> str:
        """The ``--secret`` value for this secret under ``name``."""

@dataclass(frozen=True)
class Result:
    """How a run ended: ``Sandbox.run``'s answer."""

    exit_code: int
    """The status ``sandlock run`` would exit with: the workload's exit
    code, 128 plus the signal that killed it, 124 when the timeout expired
    (125 when the workload succeeded but its ``cow`` changes did not all
    reach their directories)."""
    signal: int | None = None
    """The signal that killed the workload, or None."""
    timed_out: bool = False
    """The policy's timeout expired and the tree was killed."""
    limit: str | None = None
    """The resource limit that ended the run (``"memory"``,
    ``"file-size"``: the option's name), or None."""
    stdout: bytes = b""
    """What the workload wrote to stdout (when captured)."""
    stderr: bytes = b""
    """What it wrote to stderr (when captured): never sandlock's own lines."""
    cow: List[Dict[str, Any]] = ...
    """One dict per ``cow`` directory: what became of its changes."""
    learned: str | None = None
    """With ``learn=PATH``: the profile the run was found to need."""
    denials: List[str] = ...
    """When captured: sandlock's own lines about the run (``sandlock:
    denied ...``, warnings, a limit reached), in order, which it prints on
    this process's stderr when not capturing; empty with ``quiet=True``."""
    @property
    def ok(self) -> bool:
        """The workload exited with status 0."""

class Sandbox:
    """A policy ready to run commands confined by sandlock.

    Use it as a context manager, or ``close()`` it, to free the native
    policy at once rather than when it is garbage collected.
    """

    def __init__(
        self,
        *,
        fs_read: _Strings | None = None,
        fs_write: _Strings | None = None,
        no_system_view: bool | None = None,
        home: _Value | None = None,
        net_allow: _Strings | None = None,
        add_host: _Strings | None = None,
        dns_server: _Strings | None = None,
        net_allow_bind: _Ports | None = None,
        unix_allow: _Strings | None = None,
        http_allow: _Strings | None = None,
        http_deny: _Strings | None = None,
        http_port: _Ports | None = None,
        http_ports: _Ports | None = None,
        http_bypass: _Strings | None = None,
        http_ca: _Value | None = None,
        http_key: _Value | None = None,
        http_ca_out: _Value | None = None,
        upstream_ca: _Strings | None = None,
        http_timeout: _Value | None = None,
        http_inject_ca: _Strings | None = None,
        no_default_bundles: bool | None = None,
        no_ca_env: bool | None = None,
        trust_host_cas: bool | None = None,
        secret: Mapping[str, Secret] | _Strings | None = None,
        secrets: Mapping[str, Secret] | _Strings | None = None,
        secret_headers: _Strings | None = None,
        on_secret_misuse: Literal["warn", "block"] | None = None,
        env: Mapping[str, _Value] | _Strings | None = None,
        clean_env: bool | None = None,
        cwd: _Value | None = None,
        timeout: _Value | None = None,
        keep_caps: bool | None = None,
        memory: _Value | None = None,
        pids: _Value | None = None,
        cpu: _Value | None = None,
        open_files: _Value | None = None,
        file_size: _Value | None = None,
        disk: _Value | None = None,
        cow: _Strings | None = None,
        on_exit: _Value | None = None,
        cow_summary: _Value | None = None,
        quiet: bool | None = None,
        audit: _Value | None = None,
        learn: _Value | None = None,
    ) -> None:
        """A sandbox with these options (``sandlock run``'s, ``_`` for ``-``).

        Every keyword is optional; None (the default) leaves the option
        unset. Values are checked now, each alone and against each other.

        Args:
            fs_read (PATH): Allow reading and executing PATH and everything
                below it (repeatable).
            fs_write (PATH): Allow reading, writing and executing PATH and
                everything below it (repeatable).
            no_system_view: Start from nothing instead of the minimal system
                view (/usr, /lib*, /bin, /sbin, /etc without secrets, a few
                devices).
            home (DIR): The workload's HOME: the existing directory DIR,
                granted read-write. Without it HOME is a fresh private
                directory, removed on exit, in which every fs_read/fs_write
                grant under your own home appears at the same place (e.g.
                fs_read ~/.gitconfig).
            net_allow (SPEC): Allow outbound connections: host, *.suffix,
                host:PORT[,PORT], IP, CIDR, [IPv6]:PORT, :PORT (any host), *
                (anything); prefix udp:// for UDP (repeatable). Names are
                resolved at start and pinned; *.suffix names reach the
                addresses sandlock's DNS answers gave for them.
            add_host (NAME:IP): Give the sandbox a static name NAME -> IP, used
                to resolve net_allow names and in its virtual /etc/hosts
                (repeatable).
            dns_server (IP[:PORT]): The resolver sandlock asks for names a rule
                covers (repeatable; default: the nameservers of the host's
                /etc/resolv.conf). Every DNS query in the sandbox is answered
                by sandlock; names no rule covers get NXDOMAIN.
            net_allow_bind (PORTS): Ports the workload may bind and listen on:
                8080,9000-9005 (default none).
            unix_allow (PATH): Let the workload connect (and send) to the unix
                socket file PATH, or to any socket below the directory PATH
                (repeatable). Sockets under a write grant need no flag; every
                other socket file (docker, D-Bus, ssh-agent, X11) is refused
                with EACCES.
            http_allow (RULE): Allow HTTP(S) requests matching 'METHOD
                HOST[/PATH]' (repeatable). METHOD is a name or *; HOST an exact
                name, an IP, * or *.suffix; PATH defaults to /*, a trailing *
                is a prefix. Once any allow rule exists, every other request is
                refused with 403. Turns on the intercepting proxy for ports 80,
                443 and http_port, which the rules' hosts may then reach.
            http_deny (RULE): Refuse HTTP(S) requests matching 'METHOD
                HOST[/PATH]' (repeatable); deny wins over allow.
            http_port (PORTS): Intercept these TCP ports too, besides 80 and
                443: 8080,8443 (repeatable).
            http_ports: the same as ``http_port``.
            http_bypass (PATTERN): Pass TLS for this SNI through untouched,
                without interception: exact name or *.suffix (repeatable). For
                clients that pin certificates.
            http_ca (PEM): Sign intercepted TLS with this CA certificate (PEM)
                instead of an ephemeral one; needs http_key.
            http_key (PEM): Private key (PEM) of http_ca.
            http_ca_out (PATH): Write the CA certificate (public part, PEM) to
                PATH before the workload starts, e.g. for curl --cacert.
            upstream_ca (PEM): Also trust this root (PEM) when verifying
                upstream servers (repeatable); the host's trusted roots are
                always used.
            http_timeout (SECS): Give up on an upstream that takes longer than
                SECS to accept or to answer (the workload gets 504) [default:
                60].
            http_inject_ca (PATH): Also splice the sandbox CA into this PEM
                bundle when the workload reads it (repeatable); it must exist.
            no_default_bundles: Splice the CA only into http_inject_ca bundles,
                not into the system bundles and certifi.
            no_ca_env: Do not point SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
                NODE_EXTRA_CA_CERTS and the other CA variables (--show-policy
                lists them) at the sandbox CA for the workload.
            trust_host_cas: Append the host's trusted roots to spliced bundles
                too (for hosts behind a TLS-inspecting corporate proxy).
            secret (NAME=SOURCE@HOSTS): Give the workload a secret it can use
                but never read: NAME=SOURCE@HOSTS, SOURCE being env:VAR,
                file:PATH or fd:N; NAME@HOSTS reads env NAME. HOSTS:
                comma-separated names or *.suffix. The workload's $NAME holds a
                placeholder; the proxy swaps in the real value only on TLS
                requests to those hosts. Append ;plaintext to allow plain HTTP
                too (repeatable). A dict maps each NAME to a sandlock.Secret.
            secrets: the same as ``secret``.
            secret_headers (NAME=H1,H2): Substitute secret NAME only in these
                request headers (default: all headers, the URL and the body;
                repeatable).
            on_secret_misuse (warn|block): What a request carrying a secret's
                placeholder to a host the secret is not bound to gets: warn
                (forward it, the placeholder is worthless there) or block (403)
                [default: warn].
            env (KEY=VALUE): Set an environment variable for the workload
                (repeatable). A dict sets each key to its value.
            clean_env: Pass only PATH, TERM and LANG (with env, TMPDIR and
                HOME) to the workload.
            cwd (DIR): Working directory of the workload.
            timeout (SECS): Kill the whole workload tree after SECS seconds
                (exit status 124).
            keep_caps: When started as root, keep capabilities instead of
                dropping them all.
            memory (SIZE): Memory of the whole workload tree, e.g. 256M or 2G:
                past it the tree is killed (exit status 137) and sandlock says
                so.
            pids (N): Processes and threads the workload tree may have at once;
                a fork past it fails with EAGAIN.
            cpu (FRACTION): Share of CPU time for the whole tree: 0.5 is half
                of one CPU, 2 is two CPUs' worth.
            open_files (N): Open files per process (RLIMIT_NOFILE); past it,
                EMFILE.
            file_size (SIZE): Largest file a process may write (RLIMIT_FSIZE),
                e.g. 100M; past it the write fails (EFBIG) or SIGXFSZ ends the
                process.
            disk (SIZE): Bytes the workload may write into its private TMPDIR
                and HOME, e.g. 64M; past it, ENOSPC.
            cow (DIR): Let the workload change DIR through a private
                copy-on-write layer: the host's DIR is untouched while it runs
                (repeatable).
            on_exit (ACTION): What happens to the cow changes at the end:
                commit (apply them to DIR), discard, or keep (leave the layer
                for `sandlock cow apply|drop`). Default: commit on exit status
                0, keep otherwise.
            cow_summary (FORMAT): How the cow changes are listed on stderr:
                text, json or none.
            quiet: Do not print denials on stderr.
            audit (FILE): Append denials and allowed connections to FILE as
                JSON lines.
            learn (FILE): Watch the run and write to FILE a profile that lets
                it pass: the options given, plus the paths, hosts, ports and
                HTTP requests it was seen to need, each with what it was
                learned from. While it is watched, the run may read and write
                wherever you can and reach any host: learn with a command you
                trust. Use the result with -p FILE.

        Raises:
            PolicyError: an unknown keyword, or a value or combination the
                library refuses; ``.field`` names the keyword.
        """
    @classmethod
    def from_profile(
        cls: type[_SandboxT],
        name: _Text,
        *,
        fs_read: _Strings | None = None,
        fs_write: _Strings | None = None,
        no_system_view: bool | None = None,
        home: _Value | None = None,
        net_allow: _Strings | None = None,
        add_host: _Strings | None = None,
        dns_server: _Strings | None = None,
        net_allow_bind: _Ports | None = None,
        unix_allow: _Strings | None = None,
        http_allow: _Strings | None = None,
        http_deny: _Strings | None = None,
        http_port: _Ports | None = None,
        http_ports: _Ports | None = None,
        http_bypass: _Strings | None = None,
        http_ca: _Value | None = None,
        http_key: _Value | None = None,
        http_ca_out: _Value | None = None,
        upstream_ca: _Strings | None = None,
        http_timeout: _Value | None = None,
        http_inject_ca: _Strings | None = None,
        no_default_bundles: bool | None = None,
        no_ca_env: bool | None = None,
        trust_host_cas: bool | None = None,
        secret: Mapping[str, Secret] | _Strings | None = None,
        secrets: Mapping[str, Secret] | _Strings | None = None,
        secret_headers: _Strings | None = None,
        on_secret_misuse: Literal["warn", "block"] | None = None,
        env: Mapping[str, _Value] | _Strings | None = None,
        clean_env: bool | None = None,
        cwd: _Value | None = None,
        timeout: _Value | None = None,
        keep_caps: bool | None = None,
        memory: _Value | None = None,
        pids: _Value | None = None,
        cpu: _Value | None = None,
        open_files: _Value | None = None,
        file_size: _Value | None = None,
        disk: _Value | None = None,
        cow: _Strings | None = None,
        on_exit: _Value | None = None,
        cow_summary: _Value | None = None,
        quiet: bool | None = None,
        audit: _Value | None = None,
        learn: _Value | None = None,
    ) -> _SandboxT:
        """A sandbox from the profile ``name``, as ``sandlock run -p NAME``.

        The profile is looked up in ``$XDG_CONFIG_HOME/sandlock/profiles``,
        then among the shipped ones; a name with a ``/`` in it, or ending
        in ``.toml``, is a profile file's path. Keyword options layer on
        top, as flags do on the command line: lists are added to, single
        values replace the profile's.

        Args:
            name: the profile's name, or its file's path.
            fs_read (PATH): Allow reading and executing PATH and everything
                below it (repeatable).
            fs_write (PATH): Allow reading, writing and executing PATH and
                everything below it (repeatable).
            no_system_view: Start from nothing instead of the minimal system
                view (/usr, /lib*, /bin, /sbin, /etc without secrets, a few
                devices).
            home (DIR): The workload's HOME: the existing directory DIR,
                granted read-write. Without it HOME is a fresh private
                directory, removed on exit, in which every fs_read/fs_write
                grant under your own home appears at the same place (e.g.
                fs_read ~/.gitconfig).
            net_allow (SPEC): Allow outbound connections: host, *.suffix,
                host:PORT[,PORT], IP, CIDR, [IPv6]:PORT, :PORT (any host), *
                (anything); prefix udp:// for UDP (repeatable). Names are
                resolved at start and pinned; *.suffix names reach the
                addresses sandlock's DNS answers gave for them.
            add_host (NAME:IP): Give the sandbox a static name NAME -> IP, used
                to resolve net_allow names and in its virtual /etc/hosts
                (repeatable).
            dns_server (IP[:PORT]): The resolver sandlock asks for names a rule
                covers (repeatable; default: the nameservers of the host's
                /etc/resolv.conf). Every DNS query in the sandbox is answered
                by sandlock; names no rule covers get NXDOMAIN.
            net_allow_bind (PORTS): Ports the workload may bind and listen on:
                8080,9000-9005 (default none).
            unix_allow (PATH): Let the workload connect (and send) to the unix
                socket file PATH, or to any socket below the directory PATH
                (repeatable). Sockets under a write grant need no flag; every
                other socket file (docker, D-Bus, ssh-agent, X11) is refused
                with EACCES.
            http_allow (RULE): Allow HTTP(S) requests matching 'METHOD
                HOST[/PATH]' (repeatable). METHOD is a name or *; HOST an exact
                name, an IP, * or *.suffix; PATH defaults to /*, a trailing *
                is a prefix. Once any allow rule exists, every other request is
                refused with 403. Turns on the intercepting proxy for ports 80,
                443 and http_port, which the rules' hosts may then reach.
            http_deny (RULE): Refuse HTTP(S) requests matching 'METHOD
                HOST[/PATH]' (repeatable); deny wins over allow.
            http_port (PORTS): Intercept these TCP ports too, besides 80 and
                443: 8080,8443 (repeatable).
            http_ports: the same as ``http_port``.
            http_bypass (PATTERN): Pass TLS for this SNI through untouched,
                without interception: exact name or *.suffix (repeatable). For
                clients that pin certificates.
            http_ca (PEM): Sign intercepted TLS with this CA certificate (PEM)
                instead of an ephemeral one; needs http_key.
            http_key (PEM): Private key (PEM) of http_ca.
            http_ca_out (PATH): Write the CA certificate (public part, PEM) to
                PATH before the workload starts, e.g. for curl --cacert.
            upstream_ca (PEM): Also trust this root (PEM) when verifying
                upstream servers (repeatable); the host's trusted roots are
                always used.
            http_timeout (SECS): Give up on an upstream that takes longer than
                SECS to accept or to answer (the workload gets 504) [default:
                60].
            http_inject_ca (PATH): Also splice the sandbox CA into this PEM
                bundle when the workload reads it (repeatable); it must exist.
            no_default_bundles: Splice the CA only into http_inject_ca bundles,
                not into the system bundles and certifi.
            no_ca_env: Do not point SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
                NODE_EXTRA_CA_CERTS and the other CA variables (--show-policy
                lists them) at the sandbox CA for the workload.
            trust_host_cas: Append the host's trusted roots to spliced bundles
                too (for hosts behind a TLS-inspecting corporate proxy).
            secret (NAME=SOURCE@HOSTS): Give the workload a secret it can use
                but never read: NAME=SOURCE@HOSTS, SOURCE being env:VAR,
                file:PATH or fd:N; NAME@HOSTS reads env NAME. HOSTS:
                comma-separated names or *.suffix. The workload's $NAME holds a
                placeholder; the proxy swaps in the real value only on TLS
                requests to those hosts. Append ;plaintext to allow plain HTTP
                too (repeatable). A dict maps each NAME to a sandlock.Secret.
            secrets: the same as ``secret``.
            secret_headers (NAME=H1,H2): Substitute secret NAME only in these
                request headers (default: all headers, the URL and the body;
                repeatable).
            on_secret_misuse (warn|block): What a request carrying a secret's
                placeholder to a host the secret is not bound to gets: warn
                (forward it, the placeholder is worthless there) or block (403)
                [default: warn].
            env (KEY=VALUE): Set an environment variable for the workload
                (repeatable). A dict sets each key to its value.
            clean_env: Pass only PATH, TERM and LANG (with env, TMPDIR and
                HOME) to the workload.
            cwd (DIR): Working directory of the workload.
            timeout (SECS): Kill the whole workload tree after SECS seconds
                (exit status 124).
            keep_caps: When started as root, keep capabilities instead of
                dropping them all.
            memory (SIZE): Memory of the whole workload tree, e.g. 256M or 2G:
                past it the tree is killed (exit status 137) and sandlock says
                so.
            pids (N): Processes and threads the workload tree may have at once;
                a fork past it fails with EAGAIN.
            cpu (FRACTION): Share of CPU time for the whole tree: 0.5 is half
                of one CPU, 2 is two CPUs' worth.
            open_files (N): Open files per process (RLIMIT_NOFILE); past it,
                EMFILE.
            file_size (SIZE): Largest file a process may write (RLIMIT_FSIZE),
                e.g. 100M; past it the write fails (EFBIG) or SIGXFSZ ends the
                process.
            disk (SIZE): Bytes the workload may write into its private TMPDIR
                and HOME, e.g. 64M; past it, ENOSPC.
            cow (DIR): Let the workload change DIR through a private
                copy-on-write layer: the host's DIR is untouched while it runs
                (repeatable).
            on_exit (ACTION): What happens to the cow changes at the end:
                commit (apply them to DIR), discard, or keep (leave the layer
                for `sandlock cow apply|drop`). Default: commit on exit status
                0, keep otherwise.
            cow_summary (FORMAT): How the cow changes are listed on stderr:
                text, json or none.
            quiet: Do not print denials on stderr.
            audit (FILE): Append denials and allowed connections to FILE as
                JSON lines.
            learn (FILE): Watch the run and write to FILE a profile that lets
                it pass: the options given, plus the paths, hosts, ports and
                HTTP requests it was seen to need, each with what it was
                learned from. While it is watched, the run may read and write
                wherever you can and reach any host: learn with a command you
                trust. Use the result with -p FILE.

        Raises:
            PolicyError: no such profile, an error in it (``.field`` is
                ``"profile"``), or a bad keyword (``.field`` names it).
        """
    def run(
        self,
        argv: Sequence[_Text],
        input: bytes | str | None = None,
        capture: bool = True,
    ) -> Result:
        """Runs ``argv`` confined and waits for it.

        Args:
            argv: the command and its arguments; ``argv[0]`` is looked up
                in ``PATH``.
            input: bytes (or text, encoded as UTF-8) for the workload's
                stdin, which then ends; None inherits this process's stdin.
            capture: capture stdout and stderr into the Result, and
                sandlock's own lines into ``Result.denials`` (otherwise the
                workload writes to this process's own, and so does sandlock).

        Raises:
            CommandError: the command was not found or is not executable.
            SandboxError: the sandbox could not be set up, or is closed.
        """
    def close(self) -> None:
        """Frees the native policy; a second call does nothing. A run under
        way in another thread finishes first."""
    @property
    def closed(self) -> bool:
        """``close()`` was called (or the ``with`` block ended)."""
    def __enter__(self: _SandboxT) -> _SandboxT: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

def option_names() -> List[str]:
    """Every policy option as a Sandbox keyword (snake_case)."""
