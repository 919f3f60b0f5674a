"""The thread count follows the cores other processes leave free; a requested count is kept as is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdforaa.train import threads as threads_module
from kdforaa.train.threads import Threads

BUSY = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


@pytest.fixture(autouse=True)
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class FakeMachine:
    """/proc/stat and our own CPU time, advanced by hand: ``others`` busy cores, ``ours`` our cores."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clock, self.busy, self.own = 0.0, 0.0, 0.0
        self.others, self.ours = 0.0, 2.0
        monkeypatch.setattr(threads_module, "_machine_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(threads_module, "_own_seconds", lambda: self.own)
        monkeypatch.setattr(threads_module.time, "perf_counter", lambda: self.clock)
        monkeypatch.setattr(threads_module.time, "sleep", self.advance)

    def advance(self, seconds: float) -> None:
        self.clock += seconds
        self.busy += (self.others + self.ours) * seconds
        self.own += self.ours * seconds


def test_a_requested_count_is_set_at_once_and_kept(monkeypatch):
    machine = FakeMachine(monkeypatch)
    chooser = Threads(1, cores=2)
    assert torch.get_num_threads() == 1 and not chooser.adaptive
    machine.others = 0.0
    machine.advance(10)
    assert chooser.start() == 1 and chooser.update() == 1


def test_the_free_cores_follow_the_neighbours(monkeypatch):
    machine = FakeMachine(monkeypatch)
    chooser = Threads(0, cores=2, check_every=2.0)
    assert chooser.adaptive
    assert chooser.start() == 2  # quiet: every core, as torch would choose
    machine.others, machine.ours = 1.0, 1.0  # one busy neighbour arrives
    machine.advance(1.0)
    assert chooser.update() == 2  # not measured again before check_every
    machine.advance(1.1)
    assert chooser.update() == 1
    machine.others, machine.ours = 1.33, 0.67  # two neighbours: three busy threads share two cores
    machine.advance(2.1)
    assert chooser.update() == 1  # never fewer than one
    machine.others, machine.ours = 0.05, 1.0  # they are gone
    machine.advance(2.1)
    assert chooser.update() == 2


def test_a_neighbour_sharing_the_core_of_our_second_thread_counts_as_busy(monkeypatch):
    """With 2 threads next to one busy process, each gets 2/3 of a core: the neighbour measures 0.67."""
    machine = FakeMachine(monkeypatch)
    chooser = Threads(0, cores=2)
    chooser.start()
    machine.others, machine.ours = 0.67, 1.33
    machine.advance(2.1)
    assert chooser.update() == 1


def test_without_proc_stat_the_count_stays_at_torchs_default(monkeypatch):
    monkeypatch.setattr(threads_module, "_machine_busy_seconds", lambda: None)
    before = torch.get_num_threads()
    chooser = Threads(0)
    assert not chooser.adaptive
    assert chooser.start() == before and chooser.update() == before


@pytest.mark.skipif(threads_module._machine_busy_seconds() is None, reason="no /proc/stat (not Linux)")
def test_our_own_worker_processes_are_not_counted_as_neighbours():
    """DataLoader workers are ours: a busy child's CPU time is added to our own."""
    own = threads_module._own_seconds()
    child = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=1.0)])
    time.sleep(0.8)
    busy_child = threads_module._own_seconds() - own
    child.wait()
    assert busy_child > 0.4


def _cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(threads_module._machine_busy_seconds() is None, reason="no /proc/stat (not Linux)")
def test_a_real_busy_neighbour_is_counted_among_the_others():
    """A busy process that is not ours (started through a shell that exits, so it is no child of ours)
    is counted: the others' busy cores measured are at least the share of a core it actually got,
    whatever else the machine runs meanwhile."""
    started = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c '{BUSY.format(seconds=5.0)}' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    neighbour = int(started.stdout)
    try:
        time.sleep(0.2)
        chooser = Threads(0)
        chooser._mark()
        cpu, wall = _cpu_seconds(neighbour), time.perf_counter()
        time.sleep(1.0)
        free = chooser._free_cores()
        share = (_cpu_seconds(neighbour) - cpu) / (time.perf_counter() - wall)
    finally:
        os.kill(neighbour, signal.SIGKILL)
    assert share > 0.2  # it did run
    assert chooser.cores - free >= share - 0.25, (free, share)
