"""Atomic writes: nothing under the final name until the block succeeds, and the file the user
gets has the permissions any new file of theirs has (mkstemp's are private)."""

import os

import pytest

from pocketfit.files import staged, write_text_atomic


def test_a_written_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.json", "{}")
        os.umask(0o077)
        write_text_atomic(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


def test_a_failed_block_leaves_nothing(tmp_path):
    final = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError):
        with staged(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("the export failed")
    assert list(tmp_path.iterdir()) == []
