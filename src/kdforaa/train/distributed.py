"""Data parallelism under torchrun: process group set-up, per-rank shards, metric reduction.

Each global batch of the epoch order is cut into ``world_size`` equal contiguous parts, one per rank.
Augmentation keys are per sample, so every sample is augmented exactly as in a single-process run;
DDP averages the gradients, so the update is that of the global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from kdforaa.errors import BadInput


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def torchrun_world() -> World:
    """The world torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK (one process when unset)."""
    return World(
        rank=int(os.environ.get("RANK", 0)),
        size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def restarted_by_torchrun() -> bool:
    """True in a worker that torchrun restarted after a failure (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) > 0


def init_process_group(world: World, device: torch.device) -> None:
    """gloo on CPU, NCCL on CUDA; a no-op for a single process.

    The rendezvous keys live under a prefix per torchrun attempt: a group restarted by
    ``--max-restarts`` must not read the addresses its dead predecessors left in the store.
    """
    if not world.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world.size,
        is_master=world.is_main and not agent_store,
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        store=dist.PrefixStore(f"kdforaa/attempt{attempt}", store),
        rank=world.rank,
        world_size=world.size,
    )


def local_batch_size(global_batch: int, world: World) -> int:
    if global_batch % world.size:
        raise BadInput(
            f"train.batch_size={global_batch} is not divisible by the {world.size} processes: "
            f"choose a multiple of {world.size}"
        )
    return global_batch // world.size


def shard(order: torch.Tensor, global_batch: int, world: World) -> torch.Tensor:
    """This rank's part of every global batch of ``order`` (whose length is a multiple of the batch)."""
    if not world.distributed:
        return order
    local = global_batch // world.size
    return order.view(-1, global_batch)[:, world.rank * local : (world.rank + 1) * local].reshape(-1)


def all_reduce_sum(values: dict[str, float], world: World) -> dict[str, float]:
    """Sum a dict of numbers over all ranks (same keys on every rank)."""
    if not world.distributed:
        return dict(values)
    keys = sorted(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def any_rank(flag: bool, world: World) -> bool:
    """True on every rank when ``flag`` is true on any rank (so all ranks stop at the same step)."""
    if not world.distributed:
        return flag
    return bool(all_reduce_sum({"flag": float(flag)}, world)["flag"] > 0)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def destroy(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
