"""Data-parallel fine-tuning across processes: `torchrun` or `accelerate launch` start them.

Usage: ``torchrun --standalone --nproc_per_node 2 -m triage_cli.main train --spec ...``
(or ``accelerate launch --num_processes 2 -m triage_cli.main train ...``; on several
machines, torchrun's ``--nnodes`` and ``--rdzv-endpoint``). The launcher sets ``WORLD_SIZE``,
``RANK`` and the rendezvous address; `triage train` sees them and trains one replica per
process with DistributedDataParallel over gloo (CPU). Every replica starts from the same
weights, takes its own share of each epoch's batches, and gradients are averaged before every
step, so the replicas stay identical; the first process (rank 0) alone validates, decides on
early stopping and writes checkpoints. Without ``WORLD_SIZE`` nothing here does anything.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replicas:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start() -> Replicas:
    """Join the launcher's process group when there is one (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Replicas()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    replicas = Replicas(dist.get_rank(), dist.get_world_size())
    logger.info("training replica %d of %d", replicas.rank, replicas.world_size)
    return replicas


def stop(replicas: Replicas) -> None:
    if replicas.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, replicas: Replicas) -> nn.Module:
    """The model to train: DDP around it when distributed (rank 0's weights are broadcast to
    every replica here). A batch may carry no escalation label, leaving that head unused."""
    if not replicas.distributed:
        return model
    return DistributedDataParallel(model, find_unused_parameters=True)


def shard(batches: list, replicas: Replicas) -> list:
    """This replica's share of an epoch's batches (every replica computes the same list).

    Every replica gets the same number of steps, or one would wait forever for the others'
    gradients: the last few batches that do not fill a round are dropped.
    """
    if not replicas.distributed:
        return batches
    steps = len(batches) // replicas.world_size
    return batches[replicas.rank :: replicas.world_size][:steps]


def agree(value: bool, replicas: Replicas) -> bool:
    """Rank 0's `value` on every replica (early stopping is decided once, by rank 0)."""
    if not replicas.distributed:
        return value
    flag = torch.tensor([1 if value else 0], dtype=torch.int64)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def parameter_digest(model: nn.Module) -> str:
    """A SHA-256 of every parameter's bytes: equal digests mean identical replicas."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def replica_digests(model: nn.Module, replicas: Replicas) -> list[str]:
    """Every replica's parameter digest, in rank order; raises if they differ."""
    own = parameter_digest(model)
    if not replicas.distributed:
        return [own]
    digests: list[str | None] = [None] * replicas.world_size
    dist.all_gather_object(digests, own)
    if len(set(digests)) != 1:
        raise RuntimeError(
            f"training replicas diverged: parameter digests {digests}; the run's weights "
            "cannot be trusted"
        )
    return [str(d) for d in digests]
