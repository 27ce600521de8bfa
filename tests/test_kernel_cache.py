"""The numba kernels are compiled when the package is built, and an installed copy loads them (issue 14).

One ``pip install --no-deps --no-build-isolation --target DIR`` of a copy of this checkout: the
same PEP 517 build (setup.py's ``build_py`` hook) and wheel install as ``pip install .``, less the
isolated build environment, which only changes where the build's numba comes from (here the
venv's own, the one the installed copy then runs with). Then, in fresh interpreters importing
``ncf`` from DIR with an empty ``$HOME`` (numba's per-user cache) and no ``$NUMBA_CACHE_DIR``, numba's
own accounting (``dispatcher.stats.cache_hits`` / ``cache_misses``) and the files on disk say
whether anything compiled:

* a writable install and a read-only one (``chmod -R a-w``; as root, also without the capabilities
  that let root write anyway): small fits reaching every kernel the step calls load each from the
  package (zero misses) and write no cache file;
* another CPU (``NUMBA_CPU_NAME=generic``: the shipped entries do not apply): the kernel compiles,
  is saved in the per-user cache, and where nothing is writable it still runs, unsaved.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_probe import TOP_LEVEL
from ncf.train import kernels

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed (or NCF_NO_NUMBA=1)"),
]

REPO = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("kernel_probe.py")
#: As root, chmod alone does not stop writes: drop the capabilities that override file permissions.
AS_USER = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install .`` of a copy of the checkout (no build leftovers) into a folder of its own."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "checkout"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "_numba_cache", "*.egg-info")
    shutil.copytree(REPO / "src", src / "src", ignore=ignore)
    target = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target, src]
    subprocess.run(cmd, check=True, timeout=600)
    assert list((target / "ncf" / "train" / "_numba_cache").glob("kernels._step_forward-*.nbc")), (
        "the build compiled nothing"
    )
    yield target
    _set_writable(target, True)


def _set_writable(root: Path, writable: bool) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | 0o200 if writable else mode & ~0o222)


def _cache_files(*roots: Path) -> set[Path]:
    """numba cache files outside the shipped folder."""
    return {p for r in roots for p in r.rglob("*.nb[ic]") if "_numba_cache" not in p.parts}


def _probe(site: Path, home: Path, mode: str, read_only: bool, **env: str) -> dict:
    """``kernel_probe.py mode`` with ``ncf`` from ``site`` and numba's per-user cache in ``home``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_") and k not in ("XDG_CACHE_HOME",)}
    clean.pop("NCF_NO_NUMBA", None)
    clean.update(HOME=str(home), PYTHONPATH=str(site), **env)
    cmd = [sys.executable, str(PROBE), mode]
    if read_only and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a read-only install cannot be simulated")
        cmd = AS_USER + ["--", *cmd]
    out = subprocess.run(cmd, env=clean, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.splitlines()[-1])
    assert Path(report["ncf"]).is_relative_to(site), report["ncf"]  # the installed copy, not the checkout
    return report["kernels"]


def _assert_all_shipped(report: dict) -> None:
    for name in TOP_LEVEL:
        assert report[name]["signatures"], f"the fits never called {name}: kernel_probe.FITS misses a path"
    for name, r in report.items():
        assert r["misses"] == 0, f"{name} compiled: {r}"
        assert r["hits"] == r["shipped"] == len(r["signatures"]), f"{name}: {r}"


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_an_installed_package_loads_every_kernel_it_fits_with(site, tmp_path, read_only):
    """A first fit after ``pip install .`` compiles nothing: every kernel the step calls comes
    from the package's ``ncf/train/_numba_cache``, and no cache file is written anywhere."""
    home = tmp_path / "home"
    home.mkdir()
    _set_writable(site, not read_only)
    before = _cache_files(site, home)
    report = _probe(site, home, "fit", read_only)
    _assert_all_shipped(report)
    assert _cache_files(site, home) == before


def test_on_another_cpu_a_kernel_compiles_once_into_the_user_cache(site, tmp_path):
    """Shipped entries are for the CPU that built them; elsewhere the kernel compiles on first use
    and is cached per user, as numba does (here: a read-only install, a writable home)."""
    home = tmp_path / "home"
    home.mkdir()
    _set_writable(site, False)
    report = _probe(site, home, "one", True, NUMBA_CPU_NAME="generic")
    assert report["flat_adam"]["misses"] == 1 and report["flat_adam"]["shipped"] == 0
    saved = _cache_files(home)
    assert any(p.name.startswith("kernels.flat_adam-") for p in saved), saved
    assert not _cache_files(site)


def test_with_nothing_writable_a_kernel_still_compiles_and_runs(site, tmp_path):
    """Another CPU, a read-only install and a read-only home: compiled for the process, no error."""
    home = tmp_path / "home"
    home.mkdir()
    _set_writable(site, False)
    _set_writable(home, False)
    try:
        report = _probe(site, home, "one", True, NUMBA_CPU_NAME="generic")
    finally:
        _set_writable(home, True)
    assert report["flat_adam"]["misses"] == 1
    assert not _cache_files(site, home)
