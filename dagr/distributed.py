"""Gather embeddings across processes, so that DAGR computes its loss on the global batch.

Dispersion compares every pair of samples, so with data parallelism each
process would otherwise see only its own B_local^2 pairs. :func:`gather_rows`
all-gathers the rows of every process; each process then computes the loss on
the same global batch and gets the same value.

Gradient convention: the backward of :func:`gather_rows` returns the rows of
this process from the incoming gradient, multiplied by the world size W.
Every process computes the identical global loss L, so that slice is exactly
dL/dz_local, and DistributedDataParallel, which averages parameter gradients
over the W processes, then leaves each parameter with
``(1/W) * sum_r W * J_r^T dL/dz_r = sum_r J_r^T dL/dz_r``, the gradient of a
single process that ran the concatenated batch. Without DDP's averaging
(e.g. a plain sum of gradients across processes), divide by W yourself.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Return the number of processes, or 1 when torch.distributed is not initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _row_counts(z: torch.Tensor) -> list[int]:
    """Return the number of rows of ``z`` on every process, in rank order."""
    size = torch.tensor([z.shape[0]], dtype=torch.int64, device=z.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(count) for count in sizes]


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0; backward returns the local rows times the world size."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, counts: list[int], start: int):
        # all_gather needs equal shapes, so shorter pieces are padded with zero rows.
        padded = z.new_zeros((max(counts), *z.shape[1:]))
        padded[: z.shape[0]] = z
        pieces = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(pieces, padded)
        ctx.span = (start, start + z.shape[0])
        ctx.scale = float(len(counts))
        return torch.cat([piece[:count] for piece, count in zip(pieces, counts)])

    @staticmethod
    def backward(ctx, grad_rows):
        start, stop = ctx.span
        return grad_rows[start:stop] * ctx.scale, None, None


def gather_rows(z: torch.Tensor) -> tuple[torch.Tensor, slice]:
    """Return ``(global_rows, local)``: the rows of ``z`` from every process, and this process's slice.

    All processes must call this together, because it runs two all-gathers.
    Rows come in rank order and the row counts may differ between processes.
    Without an initialized process group, or with one process, ``z`` itself is
    returned. Backward follows the convention of this module: the local rows of
    the gradient times the world size.
    """
    if world_size() == 1:
        return z, slice(0, z.shape[0])
    counts = _row_counts(z)
    start = sum(counts[: dist.get_rank()])
    rows = _GatherRows.apply(z.contiguous(), counts, start)
    return rows, slice(start, start + z.shape[0])


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over all processes (no-op with one process) and return it."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
