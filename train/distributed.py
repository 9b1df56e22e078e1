"""Where this process sits in a (possibly one-process) distributed run, and the few
collective operations the training loop needs.

Under ``torchrun`` every process trains on its own share of each step's data and
DistributedDataParallel averages the gradients (NCCL on GPUs, gloo on CPU); rank 0 alone
writes checkpoints, previews, metrics and the export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    """This process's rank among ``world`` processes, and the device it trains on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """The process that writes files (rank 0)."""
        return self.rank == 0


def setup_distributed() -> Ranks:
    """Read torchrun's environment; join the process group when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Ranks(rank, world, local_rank, device)


def teardown_distributed(ranks: Ranks, finished: bool) -> None:
    """Leave the process group. After a finished run every rank first waits for the others
    (rank 0 is still exporting when the rest are done): a rank that tears gloo down while
    its peer is busy can abort at exit, and torchrun then kills the peer mid-export."""
    if ranks.world > 1 and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def all_true(flag: bool, ranks: Ranks) -> bool:
    """True when ``flag`` holds on every rank (a NaN on one rank stops them all)."""
    if ranks.world == 1:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=ranks.device)
    dist.all_reduce(t)
    return t.item() == 0.0


def mean_over_ranks(values: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    if ranks.world > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= ranks.world
    return values


def wrap_for_ranks(model: torch.nn.Module, ranks: Ranks) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when there are several processes."""
    if ranks.world == 1:
        return model
    ids = [ranks.device.index] if ranks.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
