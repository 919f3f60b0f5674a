"""How many CPU threads training uses: by default, as many as there are cores no other process is using.

Torch's CPU thread pool splits every op statically between its threads and waits for the slowest. When
another busy process shares a core, the thread on that core gets only its time slices, every op waits
for it, and a 2-thread run on 2 cores falls to about a quarter of its quiet speed (measured:
docs/results.md, "Training on a shared CPU") — below what one thread alone would do. So, with
``train.threads: 0`` (the default), the run counts the cores that *other* processes keep busy and uses
the rest: all of them on a quiet machine (what torch would choose), fewer next to a busy neighbour. It
measures again every few seconds while it trains (the CPU time the whole machine spent, from
``/proc/stat``, minus its own and its worker processes'), so it follows neighbours that come and go.
The native augmentation kernels split their batches over the same number of threads.

Torch's reductions split their work by thread count, so the bits a run produces depend on it: two runs
give identical weights only with the same thread counts. ``train.threads: N`` fixes the count (the
tests and bit-exact comparisons do that); the count each epoch used is recorded in ``metrics.jsonl``.
Where ``/proc/stat`` does not exist (not Linux), the count stays at torch's default.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

# Seconds between two measurements while training: long enough that one sample of /proc/stat (kept in
# 1/100 s) is precise to a few per cent, short enough to follow a neighbour within a few seconds.
CHECK_EVERY = 2.0
# Seconds the first measurement watches the machine before training starts.
FIRST_LOOK = 0.3
# A core counts as free when others leave at least this much of it: one busy neighbour on 2 cores
# measures about 0.7-1.0 core busy (it shares its core with our threads), which must give 1 thread.
FREE_MARGIN = 0.3
_PROC_STAT = Path("/proc/stat")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine has spent on anything but idling (None without /proc/stat).

    From the first line of /proc/stat: user, nice, system, irq, softirq and steal (time the hypervisor
    gave to someone else is not ours either); idle and iowait are not busy.
    """
    try:
        fields = _PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _children_seconds(pid: int) -> float:
    """CPU seconds of this process's live children (e.g. DataLoader workers decoding images)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (name) ": state, ppid, ...
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
    return total


def _own_seconds() -> float:
    return time.process_time() + _children_seconds(os.getpid())


class Threads:
    """Sets torch's intra-op thread count for a run: ``requested`` (> 0) as is, from construction on, or,
    for 0, the free cores.

    Call :meth:`start` once before training and :meth:`update` after every step; both return the count
    in use. ``count`` is the count now.
    """

    def __init__(self, requested: int, cores: int | None = None, check_every: float = CHECK_EVERY) -> None:
        self.requested = requested
        self.cores = cores or usable_cores()
        self.check_every = check_every
        self.adaptive = requested == 0 and _machine_busy_seconds() is not None
        self._last: tuple[float, float, float] | None = None  # wall, machine busy, own CPU seconds
        if requested:
            torch.set_num_threads(requested)

    @property
    def count(self) -> int:
        return torch.get_num_threads()

    def start(self) -> int:
        """Watch the machine briefly and take the cores others leave free (a requested count stays)."""
        if self.adaptive:
            self._mark()
            time.sleep(FIRST_LOOK)
            torch.set_num_threads(self._threads(self._free_cores()))  # set even when unchanged, as N is
        return self.count

    def update(self) -> int:
        """Measure again when ``check_every`` seconds have passed since the last measurement."""
        if self.adaptive and self._last and time.perf_counter() - self._last[0] >= self.check_every:
            self._apply(self._free_cores())
        return self.count

    def _mark(self) -> tuple[float, float, float]:
        self._last = (time.perf_counter(), _machine_busy_seconds() or 0.0, _own_seconds())
        return self._last

    def _free_cores(self) -> float:
        """Cores others left free since the last mark (and mark now): cores minus others' busy cores."""
        assert self._last is not None, "start() marks first"
        wall, busy, own = self._last
        now, busy_now, own_now = self._mark()
        others = ((busy_now - busy) - (own_now - own)) / max(now - wall, 1e-3)
        return self.cores - max(0.0, others)

    def _threads(self, free: float) -> int:
        return min(self.cores, max(1, int(free + FREE_MARGIN)))

    def _apply(self, free: float) -> None:
        threads = self._threads(free)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
