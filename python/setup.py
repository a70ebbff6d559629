"""Build step of the sandlock Python package: builds libsandlock_ffi.so
with cargo from the repository this directory lives in, and ships it
inside the package. Everything else is declared in pyproject.toml.

Environment:
  SANDLOCK_CARGO_PROFILE  cargo profile to build (default "ffi": release
                          optimisation, panics caught at the C boundary);
                          "dev" reuses a debug build (the test suite does).
  CARGO_TARGET_DIR        where cargo builds (default <repo>/target).
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LIB = "libsandlock_ffi.so"


class BinaryDistribution(Distribution):
    """The wheel carries a native library, so it is platform specific."""

    def has_ext_modules(self):
        return True


class BuildWithCargo(build_py):
    """Builds the C ABI library with cargo and copies it into the package."""

    def run(self):
        super().run()
        profile = os.environ.get("SANDLOCK_CARGO_PROFILE", "ffi")
        cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
        subprocess.run(
            [cargo, "build", "--locked", "-p", "sandlock-ffi", "--profile", profile],
            cwd=REPO,
            check=True,
        )
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        if not target.is_absolute():
            target = REPO / target
        built = target / ("debug" if profile == "dev" else profile) / LIB
        dest = Path(self.build_lib) / "sandlock" / LIB
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, dest)
        os.chmod(dest, 0o755)


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildWithCargo})
