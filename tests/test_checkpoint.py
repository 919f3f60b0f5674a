import os
import pickle

import pytest
import torch

from kdforaa.checkpoint import load_checkpoint, save_checkpoint
from kdforaa.errors import BadInput


def test_round_trip(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.arange(3.0)}, "epoch": 2}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 2
    assert torch.equal(state["model"]["w"], torch.arange(3.0))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_overwrite_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {}, "epoch": 1}, path)

    def broken_save(obj, fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"model": {}, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"kdforaa": "0", "model": {}, "x": _Payload()}, path)
    with pytest.raises(BadInput, match="refusing to unpickle"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_raw_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(BadInput, match="refusing to unpickle|unreadable"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"", "unreadable"), (b"not a checkpoint at all", "unreadable")],
)
def test_garbage_is_bad_input(tmp_path, content, message):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.randn(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(BadInput, match="unreadable or truncated"):
        load_checkpoint(path)


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(BadInput, match="not a kdforaa checkpoint"):
        load_checkpoint(path)


def test_missing(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
