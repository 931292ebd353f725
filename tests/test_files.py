"""Atomic writes: all or nothing, nothing left behind, ordinary permissions."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from dpe_tutorial.running.files import atomic_write


def test_writes_text_bytes_and_through_a_writer(tmp_path):
    atomic_write(tmp_path / "a" / "t.txt", "héllo")
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    atomic_write(tmp_path / "c.npy", lambda handle: np.save(handle, np.arange(3)))
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), [0, 1, 2])


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    atomic_write(target, "old")

    def crash(handle):
        handle.write(b"half a row")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError, match="crash mid-write"):
        atomic_write(target, crash)
    with pytest.raises(TypeError, match="give str, bytes or a writer"):
        atomic_write(target, 12345)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_files_get_the_permissions_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "x.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644
