"""ncf.fsutil: the one atomic write."""

from __future__ import annotations

import os
import stat

import pytest

from ncf.fsutil import atomic_path, atomic_write


def test_writes_text_and_bytes_and_creates_the_folder(tmp_path):
    target = tmp_path / "new" / "a.txt"
    assert atomic_write(target, "héllo\n") == target
    assert target.read_bytes() == "héllo\n".encode()
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.listdir(target.parent) == ["a.txt"]  # no temporary file left


def test_mode_follows_the_umask_not_mkstemp(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "m", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o644


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "keep.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="half-way"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("half")
        raise RuntimeError("half-way")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["keep.csv"]
