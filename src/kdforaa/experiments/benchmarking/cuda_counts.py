"""What a call costs a CUDA device beyond its time: kernel launches, host syncs and GPU busy time.

Used by the augmentation benchmarks (on CUDA only: the counts come from torch's profiler).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile


@dataclass(frozen=True)
class CudaCounts:
    launches: float  # kernel launches per call: torch's (cudaLaunchKernel) and Triton's (cuLaunchKernel*)
    syncs: float  # host waits per call: stream, event and device synchronisations
    busy_ms: float  # GPU time per call

    def __str__(self) -> str:
        return f"{self.launches:.0f} launches, {self.syncs:.0f} syncs, GPU busy {self.busy_ms:.2f} ms"


def cuda_counts(fn: Callable[[], object], calls: int = 5) -> CudaCounts:
    """Launches, syncs and GPU busy time per call of ``fn`` (warm it up first: compiling is not counted)."""
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()  # one device synchronisation of our own, taken off below
    events = prof.key_averages()
    launches = sum(e.count for e in events if "LaunchKernel" in e.key)
    syncs = sum(e.count for e in events if "Synchronize" in e.key) - 1
    busy = sum(e.self_device_time_total for e in events) / 1e3
    return CudaCounts(launches / calls, syncs / calls, busy / calls)
