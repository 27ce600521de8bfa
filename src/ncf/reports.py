"""Run reports on disk (``ncf benchmark`` and its notebook preset): JSON and Markdown, written atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ncf.fsutil import atomic_write


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars, tuples and paths made JSON types; NaN/inf become None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return repr(x)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")
