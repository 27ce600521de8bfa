"""Build hook: compile the training step's numba kernels into the package (all metadata is in pyproject.toml).

``build_py`` copies the sources as usual, then a fresh interpreter imports the built
``ncf.train.kernels`` (its parent packages stubbed: their ``__init__`` imports torch, which the
kernels do not need) and calls ``warmup()`` with ``NCF_KERNEL_CACHE_BUILD=1``, which compiles
every kernel into ``ncf/train/_numba_cache``: in the build tree for a wheel (``pip install .``,
``pip wheel``), beside the sources for ``pip install -e .``. See ``src/ncf/train/kernel_cache.py``.

numba comes from ``[build-system] requires``, so pip's isolated build has it; its version is the
one the install resolves too, and an entry made by another numba is ignored, never an error (scipy
is there too: the step's kernels call BLAS through numba's ``np.dot``, which needs it to compile). If
the compile cannot run (no numba, an odd platform), the build goes on without shipped kernels:
they then compile on the first fit, as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

COMPILE = """
import importlib, sys, types
root = sys.argv[1]
for name in ("ncf", "ncf.train"):
    package = types.ModuleType(name)
    package.__path__ = [root + "/" + name.replace(".", "/")]
    sys.modules[name] = package
sys.exit(0 if importlib.import_module("ncf.train.kernels").warmup() else 3)
"""


class BuildPyWithKernels(build_py):
    """``build_py``, then the kernels compiled into ``ncf/train/_numba_cache``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the package is imported from the sources
            root = Path(self.get_package_dir("ncf")).resolve().parent
        else:
            root = Path(self.build_lib).resolve()
        shipped = root / "ncf" / "train" / "_numba_cache"
        if not self.editable_mode:  # a stale entry is never loaded, but would ship in the wheel
            shutil.rmtree(shipped, ignore_errors=True)
        # (For -e the folder is kept: entries still valid load instead of compiling again, which
        # `make test`'s three editable installs would otherwise each pay.)
        env = dict(os.environ, NCF_KERNEL_CACHE_BUILD="1")
        env.pop("NCF_NO_NUMBA", None)
        # -P: not the working directory on sys.path, only the build's packages and the stubs.
        done = subprocess.run([sys.executable, "-P", "-c", COMPILE, str(root)], env=env, check=False)
        n = len(list(shipped.glob("*.nbc")))
        if done.returncode or not n:
            self.warn(f"ncf: numba kernels not compiled at build (exit {done.returncode}); the first fit compiles them")
        else:
            self.announce(f"ncf: {n} compiled kernels in {shipped}", level=2)


setup(cmdclass={"build_py": BuildPyWithKernels})
