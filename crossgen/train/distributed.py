"""torchrun / DistributedDataParallel plumbing: process group, rank-0 helpers, sharded sums, mixed precision.

Launch with ``torchrun --nproc_per_node=N -m crossgen.train ...`` (add ``--nnodes``/``--rdzv-endpoint``
for several machines). Without torchrun's environment everything runs as a single process.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..device import get_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Only rank 0 logs, writes checkpoints and resumable state."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str = "auto") -> Dist:
    """Join torchrun's process group when launched by it (nccl on CUDA, gloo on CPU); one GPU per process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=get_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = get_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """DDP around `model` when distributed (gradients all-reduced in backward), else the model itself."""
    if not d.enabled:
        return model
    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def all_sum(values: list[float], d: Dist) -> list[float]:
    """Element-wise sum over ranks (e.g. [loss * n, n] of each shard)."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.tolist()


def all_min(value: int, d: Dist) -> int:
    if not d.enabled:
        return value
    t = torch.tensor([value], dtype=torch.long, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


class Precision:
    """Mixed precision on CUDA only: bf16 autocast where supported, else fp16 with a grad scaler."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.on = enabled and device.type == "cuda"
        self.dtype = torch.bfloat16 if self.on and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.on and self.dtype == torch.float16)
        self.device_type = device.type

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.on)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params, clip: float | None = None) -> None:
        """backward, optional gradient clipping, optimizer step (scaled in fp16)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if clip:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)
        self.scaler.update()
