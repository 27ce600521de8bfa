"""Does the first `ncf train` after a fresh install compile any numba kernel? (issue 14)

    python benchmarks/install_compile.py [--json benchmarks/install_compile.json]

A copy of this checkout (git's tracked and untracked-but-not-ignored files: what a clone of
this branch holds) is installed two ways, each into a new venv:

* ``make``: the README's set-up, ``make data`` (the Makefile's core install: ``python -m venv
  .venv``, the CPU torch wheel, ``pip install -e .``, its warm-up line; then ML-100k; ``make
  quickstart`` is this plus ``ncf quickstart``);
* ``pip install .``: ``python -m venv``, ``pip install torch==2.13.0``, ``pip install .``
  (default build isolation: pip brings setuptools, wheel and numba into the build's own env).

Then the first ``ncf train --data ml-100k --seed 0`` in each, run as ``ncf.cli.main`` in a
process that prints numba's accounting per kernel afterwards (``stats.cache_hits`` /
``cache_misses``, and the hits served by the package's ``_numba_cache``), with
``NUMBA_DEBUG_CACHE=1`` to count numba's own "data loaded from" / "data saved to" lines, and an
empty ``$HOME`` (numba's per-user cache; ML-100k comes from ``$NCF_DATA_DIR``). The ``pip
install .`` venv trains twice: first with its ``ncf`` folder read-only (``chmod -R a-w``; as
root also without the capabilities that let root write anyway), then writable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--data", "ml-100k", "--seed", "0", "--quiet"]
AS_USER = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]

WRAP = """
import json, sys
import ncf, ncf.train.kernels as k
from ncf.cli import main
rc = main(sys.argv[1:])
stats = {}
for name, d in sorted(vars(k).items()):
    if hasattr(d, "signatures") and hasattr(d, "py_func") and (d.stats.cache_hits or d.stats.cache_misses):
        shipped = sum(getattr(d._cache, "shipped_hits", {}).values())
        stats[name] = [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()), shipped]
print("KERNELS " + json.dumps({"rc": rc, "ncf": ncf.__file__, "kernels": stats}))
"""


def sh(cmd: list, **kw) -> float:
    t = time.perf_counter()
    subprocess.run([str(c) for c in cmd], check=True, **kw)
    return round(time.perf_counter() - t, 1)


def copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)


def first_train(python: Path, out: Path, home: Path, read_only: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(
        HOME=str(home), NUMBA_DEBUG_CACHE="1", NCF_DATA_DIR=env.get("NCF_DATA_DIR", str(Path.home() / ".cache/ncf"))
    )
    cmd = [str(python), "-c", WRAP, *TRAIN, "--out", str(out)]
    if read_only and os.geteuid() == 0:
        cmd = AS_USER + ["--", *cmd]
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = round(time.perf_counter() - t, 1)
    report = json.loads(p.stdout.split("KERNELS ", 1)[1])
    k = report["kernels"]
    return {
        "ncf": report["ncf"],
        "wall_s": wall,
        "kernels": len(k),
        "hits": sum(v[0] for v in k.values()),
        "misses": sum(v[1] for v in k.values()),
        "hits_from_package": sum(v[2] for v in k.values()),
        "debug_loaded": p.stdout.count("[cache] data loaded from"),
        "debug_saved": p.stdout.count("[cache] data saved to"),
        "per_kernel": k,
    }


def cache_files(root: Path) -> set[str]:
    """numba cache files under ``root`` outside the package's ``_numba_cache``."""
    return {str(p) for p in root.rglob("*.nb[ic]") if "_numba_cache" not in p.parts}


def measure(python: Path, package: Path, out: Path, home: Path, read_only: bool = False) -> dict:
    """The first ``ncf train``, and the cache files it wrote (in the package or the empty ``home``)."""
    home.mkdir()
    before = cache_files(package)
    row = first_train(python, out, home, read_only)
    row["shipped_entries"] = len([p for p in package.rglob("*.nbc") if "_numba_cache" in p.parts])
    row["cache_files_before_train"] = sorted(before)
    row["cache_files_written_by_train"] = sorted((cache_files(package) | cache_files(home)) - before)
    return row


def set_writable(root: Path, writable: bool) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | 0o200 if writable else mode & ~0o222)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--python", default=getattr(sys, "_base_executable", sys.executable))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PYTHON=args.python)
        env.setdefault("NCF_DATA_DIR", str(Path.home() / ".cache/ncf"))

        clone = tmp / "clone"
        copy_checkout(clone)
        install = sh(["make", "-C", clone, "data", f"PYTHON={args.python}"], env=env)
        row = measure(clone / ".venv/bin/python", clone / "src/ncf", tmp / "run-make", tmp / "home-make")
        rows.append({"path": "make data (pip install -e . + warm-up)", "install_s": install, **row})

        src, venv = tmp / "src", tmp / "venv"
        copy_checkout(src)
        sh([args.python, "-m", "venv", venv])
        pip = [venv / "bin/python", "-m", "pip", "install", "-q"]
        torch_s = sh([*pip, "torch==2.13.0"])
        install = sh([*pip, src])
        purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        package = Path(subprocess.check_output([venv / "bin/python", "-c", purelib], text=True).strip()) / "ncf"
        for read_only in (True, False):
            set_writable(package, not read_only)
            home = tmp / f"home-pip-{read_only}"
            row = measure(venv / "bin/python", package, tmp / f"run-pip-{read_only}", home, read_only)
            path = "pip install ." + (" (ncf read-only)" if read_only else "")
            rows.append({"path": path, "install_s": install, "torch_s": torch_s, **row})
        set_writable(package, True)
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if k != "per_kernel"}), flush=True)
    print(
        "\n| install | entries shipped | kernels used | cache hits (from the package) | misses | numba debug: loaded / saved | cache files the train wrote | train wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['path']} | {r['shipped_entries']} | {r['kernels']} | {r['hits']} ({r['hits_from_package']}) "
            f"| {r['misses']} | {r['debug_loaded']} / {r['debug_saved']} | {len(r['cache_files_written_by_train'])} "
            f"| {r['wall_s']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
