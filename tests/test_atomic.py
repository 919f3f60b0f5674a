"""kdforaa.atomic, the one way a file is replaced: all or nothing, no temporary file left, modes as before."""

from __future__ import annotations

import os

import pytest

from kdforaa import atomic


def test_a_replaced_file_is_whole_and_keeps_the_modes_of_before(tmp_path):
    target = tmp_path / "w.bin"
    atomic.write_with(target, lambda fh: fh.write(b"new"))
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600  # like mkstemp
    umask = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "summary.json", "{}\n")  # like open(path, "w")
    finally:
        os.umask(umask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644
    atomic.write_with(target, lambda fh: fh.write(b"newer"), keep_previous=tmp_path / "previous.bin")
    assert target.read_bytes() == b"newer" and (tmp_path / "previous.bin").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous.bin", "summary.json", "w.bin"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(failure, tmp_path):
    target = tmp_path / "w.bin"
    target.write_bytes(b"old")

    def write(fh) -> None:
        fh.write(b"half")
        raise failure

    with pytest.raises(type(failure)):
        atomic.write_with(target, write)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["w.bin"]
