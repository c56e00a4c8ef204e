"""Several processes (torchrun) train with DistributedDataParallel: the gloo backend on
CPU, nccl on GPUs; each rank takes every world_size-th batch and only rank 0 writes files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from libtbx.utils import Sorry


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return Distributed()
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def batches_for_epoch(
    keys: list, batch_size: int, seed: int, epoch: int, shuffle: bool, rank: int = 0, world: int = 1
) -> list:
    """Batches of positions, each of one shape key, in an order fixed by (seed, epoch)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    groups = {}
    for pos, key in enumerate(keys):
        groups.setdefault(key, []).append(pos)
    batches = []
    for key in sorted(groups, key=str):
        members = groups[key]
        if shuffle:
            members = [members[i] for i in torch.randperm(len(members), generator=g).tolist()]
        batches += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    if world > 1:
        n = (len(batches) // world) * world
        if n == 0:
            raise Sorry(f"Too few batches ({len(batches)}) for {world} processes; lower batch_size.")
        batches = batches[:n][rank::world]
    return batches
