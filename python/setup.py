"""Build step of the sandlock Python package: setuptools-rust builds
libsandlock_ffi (the C ABI, sandlock-ffi/ in the repository this directory
lives in) with cargo and ships it inside the package, where the ctypes
binding loads it. Everything else is declared in pyproject.toml.

cargo's own output (what it compiles, warnings, errors) is shown with
``pip install -v ./python``; pip hides build output without -v.

Environment:
  SANDLOCK_CARGO_PROFILE         cargo profile to build (default "ffi":
                                 release optimisation, panics caught at the
                                 C boundary); "dev" reuses a debug build
                                 (the test suite does).
  SETUPTOOLS_RUST_CARGO_PROFILE  setuptools-rust's own spelling; wins.
  CARGO_TARGET_DIR               where cargo builds (default <repo>/target).
"""

import os
from pathlib import Path

from setuptools import setup
from setuptools_rust import Binding, RustExtension

REPO = Path(__file__).resolve().parent.parent
PROFILE = os.environ.get("SANDLOCK_CARGO_PROFILE", "ffi")

setup(
    rust_extensions=[
        RustExtension(
            # Installed as sandlock/libsandlock_ffi<EXT_SUFFIX>: a plain C
            # library (no Python binding), loaded by sandlock/_lib.py.
            "sandlock.libsandlock_ffi",
            path=str(REPO / "sandlock-ffi" / "Cargo.toml"),
            binding=Binding.NoBinding,
            args=["--profile", PROFILE],
            cargo_manifest_args=["--locked"],
            py_limited_api=False,
        )
    ],
)
