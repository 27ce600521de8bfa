"""tools/import_cycles.py: no import cycles in ncf, counting imports inside functions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "import_cycles.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=60)


def _cycles(stdout: str) -> list[str]:
    return [line.removeprefix("cycle: ") for line in stdout.splitlines() if line.startswith("cycle: ")]


def test_ncf_has_no_import_cycles():
    res = _run(str(ROOT / "src" / "ncf"))
    assert res.returncode == 0, (
        f"import cycles (break them; STYLE.md: dependencies point one way):\n{res.stdout}{res.stderr}"
    )
    assert _cycles(res.stdout) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_finder_catches_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    _write(
        pkg,
        {
            "__init__.py": "from pkg.a import A\n",
            "a.py": "from pkg import b\nA = 1\n",
            # the cycle back to a hides inside a function
            "b.py": "def f():\n    from pkg.a import A\n    return A\n",
            # under TYPE_CHECKING: not an edge
            "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import D\n",
            "d.py": "import pkg.c\nD = 1\n",
            # importing a submodule does not count its parent package (a name from it does: next test)
            "sub/__init__.py": "from pkg.sub.e import E\n",
            "sub/e.py": "from .f import F\nE = 1\n",
            "sub/f.py": "import pkg.sub.e as _e\nF = 1\n",
        },
    )
    res = _run(str(pkg))
    assert res.returncode == 1, res.stdout + res.stderr
    assert _cycles(res.stdout) == ["pkg.a, pkg.b", "pkg.sub.e, pkg.sub.f"]
    assert "pkg.b -> pkg.a  (pkg/b.py:2)" in res.stdout


def test_finder_counts_a_name_imported_from_the_package(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, {"__init__.py": "from pkg.v import V\n", "v.py": "def f():\n    import pkg\n    return pkg.V\n"})
    res = _run(str(pkg))
    assert res.returncode == 1
    assert _cycles(res.stdout) == ["pkg, pkg.v"]


def test_finder_passes_a_package_without_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    _write(
        pkg,
        {"__init__.py": "from pkg.a import A\n", "a.py": "import os\nfrom pkg import b\nA = b.B\n", "b.py": "B = 1\n"},
    )
    res = _run(str(pkg))
    assert res.returncode == 0, res.stdout
    assert "0 cycle(s)" in res.stdout
