"""Faults during training lose nothing beyond the last checkpoint: kill -9, SIGTERM, disk full,
a damaged last.pt, a second run on the same folder."""

import errno
import signal
import subprocess
import sys
import time

import pytest
import torch

from kdforaa import checkpoint
from kdforaa.checkpoint import load_checkpoint
from kdforaa.config import build_config
from kdforaa.errors import BadInput, TrainingError
from kdforaa.train.loop import Trainer
from kdforaa.train.run_folder import RunFolder

# one thread: runs in different processes must agree bit for bit
ARGS = [
    "data.limit=1536",
    "data.test_limit=100",
    "model.name=resnet8",
    "augment.policy=randaugment",
    "augment.magnitude=12",
    "train.epochs=2",
    "train.batch_size=64",
    "train.threads=1",
    "train.checkpoint_every=2",
]


def train_cmd(out, *extra):
    return [sys.executable, "-m", "kdforaa", "train", *ARGS, *extra, "--out", str(out), "--quiet"]


def final_weights(out):
    return load_checkpoint(out / "last.pt")["model"]


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "whole"
    subprocess.run(train_cmd(out), check=True, capture_output=True)
    return final_weights(out)


def start_and_wait_for_checkpoint(out, min_step=4):
    proc = subprocess.Popen(train_cmd(out), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "last.pt").exists():
            try:
                if load_checkpoint(out / "last.pt")["global_step"] >= min_step:
                    return proc
            except BadInput:  # being replaced right now
                pass
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint within 120 s")


def resume(out):
    return subprocess.run(
        [sys.executable, "-m", "kdforaa", "train", "--resume", str(out), "--quiet"],
        capture_output=True,
        text=True,
    )


def test_kill_9_then_resume_is_bit_identical(tmp_path, reference):
    out = tmp_path / "killed"
    proc = start_and_wait_for_checkpoint(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(out / "last.pt")["global_step"] < 48  # really stopped mid-run
    result = resume(out)
    assert result.returncode == 0, result.stderr
    assert same(final_weights(out), reference)


def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path, reference):
    out = tmp_path / "term"
    proc = start_and_wait_for_checkpoint(out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in err and f"--resume {out}" in err
    state = load_checkpoint(out / "last.pt")
    assert 4 <= state["global_step"] < 48  # written at the stop, mid-run
    assert not (out / ".lock").exists()
    result = resume(out)
    assert result.returncode == 0, result.stderr
    assert same(final_weights(out), reference)


TINY = {
    "data": {"limit": 256, "test_limit": 100},
    "model": {"name": "resnet8"},
    "train": {"epochs": 2, "batch_size": 64, "threads": 1},  # bit-exact comparisons need a fixed count
}


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "full"
    trainer = Trainer(build_config(TINY), out, progress=False)
    real_save = torch.save
    calls = {"n": 0}

    def filling_save(obj, fh):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1's last.pt and best.pt succeed, then the disk is full
            fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, fh)

    monkeypatch.setattr(checkpoint.torch, "save", filling_save)
    with pytest.raises(TrainingError, match="No space left on device.*previous checkpoint is intact"):
        trainer.run()
    monkeypatch.undo()
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not (out / ".lock").exists()


def test_damaged_last_falls_back_to_previous(tmp_path):
    whole = Trainer(build_config(TINY), tmp_path / "whole", progress=False)
    whole.run()
    out = tmp_path / "damaged"
    Trainer(build_config(TINY), out, progress=False).run()
    (out / "last.pt").write_bytes((out / "last.pt").read_bytes()[:300])
    (out / "summary.json").unlink()
    with pytest.warns(UserWarning, match="resuming from previous.pt"):
        resumed = Trainer(build_config(TINY), out, resume=True, progress=False)
    assert resumed.epoch == 1
    resumed.run()
    assert same(resumed.parts.model.state_dict(), whole.parts.model.state_dict())


def test_second_run_on_a_busy_folder_is_refused(tmp_path):
    folder = RunFolder(tmp_path / "busy")
    folder.path.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        folder.file(".lock").write_text(str(sleeper.pid))
        with pytest.raises(BadInput, match=f"in use by process {sleeper.pid}"):
            Trainer(build_config(TINY), folder.path, progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "stale"
    out.mkdir()
    (out / ".lock").write_text(str(dead.pid))
    Trainer(build_config(TINY | {"train": {"epochs": 1, "batch_size": 64}}), out, progress=False).run()
    assert (out / "summary.json").exists()
    assert not (out / ".lock").exists()


class _StandInKernel32:
    """The four Win32 calls the Windows liveness probe makes, answering for one table of processes."""

    def __init__(self, processes: dict[int, int | str]):  # pid -> exit code (259: running) or "denied"
        self.processes, self.open_handles = processes, set()

    def OpenProcess(self, access, inherit, pid):  # noqa: N802 (the Win32 name)
        self.last_error = 5 if self.processes.get(pid) == "denied" else 87  # access denied / bad pid
        if pid not in self.processes or self.processes[pid] == "denied":
            return 0
        self.open_handles.add(pid)
        return pid

    def GetLastError(self):  # noqa: N802
        return self.last_error

    def GetExitCodeProcess(self, handle, code_pointer):  # noqa: N802
        code_pointer.contents.value = self.processes[handle]
        return 1

    def CloseHandle(self, handle):  # noqa: N802
        self.open_handles.remove(handle)


def test_the_windows_lock_probe_asks_windows_and_never_signals(monkeypatch):
    """On Windows os.kill(pid, 0) terminates the process: the lock's owner must be probed through the
    Win32 API instead (here a stand-in; the real one is untested on this Linux machine)."""
    from kdforaa.train import run_folder

    monkeypatch.setattr(run_folder.os, "kill", lambda *a: pytest.fail("os.kill on the Windows path"))
    kernel32 = _StandInKernel32({10: 259, 11: 0, 12: "denied"})
    assert run_folder._windows_pid_alive(10, kernel32)  # running
    assert not run_folder._windows_pid_alive(11, kernel32)  # exited, handle still around
    assert run_folder._windows_pid_alive(12, kernel32)  # another user's process
    assert not run_folder._windows_pid_alive(13, kernel32)  # no such process
    assert kernel32.open_handles == set()  # every handle opened was closed
