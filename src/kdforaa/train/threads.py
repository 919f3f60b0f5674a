"""How many CPU threads a run uses: a count fixed from the machine's cores and the config, never from load.

Torch's reductions (a convolution's weight gradient, a BatchNorm's statistics) split their work by thread
count, so the bits a run produces depend on it: the same config and seed give identical weights only at
the same count. The count is therefore decided once, before anything is computed, from what does not
change while a run trains or when it is resumed on the same machine: ``train.threads: N`` (> 0) is N;
``train.threads: 0`` (the default) is the cores this process may run on (its CPU affinity), shared
evenly between the processes of one data-parallel group on this machine (torchrun's
``LOCAL_WORLD_SIZE``). A busy neighbour therefore never changes the bits.

What it does change is the speed: torch splits each op statically between its threads and waits for the
slowest, so the thread that shares its core with a neighbour holds every op up. The cost of that wait
depends mostly on how the idle threads wait; :mod:`kdforaa.openmp` sets the OpenMP spin count that keeps
most of the speed (measured: docs/results.md, "Training on a shared CPU: bits and speed").
"""

from __future__ import annotations

import os

import torch


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_processes() -> int:
    """Processes of this run on this machine: torchrun's ``LOCAL_WORLD_SIZE``, 1 outside torchrun."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def thread_count(requested: int, cores: int | None = None, processes: int | None = None) -> int:
    """``requested`` if > 0, else this process's share of the usable cores (at least 1)."""
    if requested > 0:
        return requested
    cores = usable_cores() if cores is None else cores
    processes = local_processes() if processes is None else processes
    return max(1, cores // processes)


def set_threads(requested: int) -> int:
    """Set torch's intra-op thread count to :func:`thread_count` of ``requested``; returns it.

    Call it once, before the first computation whose bits matter (building a live teacher folds its
    BatchNorms, so before that too).
    """
    count = thread_count(requested)
    torch.set_num_threads(count)
    return count
