"""Sharding a run across processes started by `torchrun`: one process per GPU (or CPU with gloo).

Each process takes a contiguous slice of the images, in order, so concatenating the processes' results
by rank gives the single-process order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's rank among `size` processes, and its rank on its own machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> Sequence[T]:
        """This rank's contiguous slice of `items` (sizes differ by at most one)."""
        n = len(items)
        return items[self.rank * n // self.size : (self.rank + 1) * n // self.size]

    def run_id(self) -> str:
        """A name all processes of this run share and no concurrent run does: the process id, or under
        torchrun the rendezvous address every rank knows."""
        if self.size == 1:
            return str(os.getpid())
        return f"{os.environ.get('MASTER_ADDR', '')}-{os.environ.get('MASTER_PORT', '')}".replace(".", "_")

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def device(self, choice: str) -> str:
        """'auto'/'cuda' become this process's own GPU when several processes share a machine."""
        if self.size > 1 and choice in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return choice


def init_world() -> World:
    """Join the process group torchrun set up (env WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU.
    Without torchrun this is a world of one and nothing is initialised."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank % torch.cuda.device_count())
    # Shards of a huge folder can finish far apart; the final barrier must not time out first.
    dist.init_process_group(backend, timeout=timedelta(hours=48))
    return world


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
