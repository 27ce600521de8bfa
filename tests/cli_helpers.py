"""What the CLI and bundle tests share: running ``ncf`` in-process, the one-line-error check, and
re-saving a bundle with edited tensors or metadata (as a forger would)."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ncf.cli import main
from ncf.persist import bundle_file, tensor_digest


def run(capsys, *argv) -> tuple[int, str, str]:
    """``ncf ARGV`` in this process: (exit code, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(rc: int, err: str, *words: str) -> str:
    """Exit 2, exactly one line on stderr starting 'ncf: error:', no traceback, the key words present."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ncf: error: ")
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def rewrite(path: Path, *, tensors=None, meta=None, forge_checksum: bool = True) -> None:
    """Re-save a bundle file after editing its tensors and/or metadata (keeping the rest).

    By default the edit also recomputes the tensors' checksum where the bundle has one, as a
    deliberate forger would, so the checks behind the checksum are the ones under test.
    """
    f = bundle_file(path)
    with safe_open(str(f), framework="pt") as fh:
        md = dict(fh.metadata())
    ts = load_file(str(f))
    if tensors:
        tensors(ts)
    if forge_checksum and "tensors_sha256" in md:
        md["tensors_sha256"] = tensor_digest(ts)
    if meta:
        meta(md)
    save_file(ts, str(f), metadata=md)
