"""Intra-modal dispersion: the RBF uniformity loss on the unit hypersphere (eq. 6).

``L_disp = log( 1/(B(B-1)) * sum_{i != j} exp(-t * ||z~_i - z~_j||^2) )``

With ``S_ij = -t ||z~_i - z~_j||^2`` and ``P = softmax`` over the off-diagonal
entries of ``S``, the gradient is one matrix product::

    dL/dz~ = -4t * (diag(P 1) - P) z~

so :class:`_Dispersion` computes it directly instead of letting autograd walk
through the B x B graph. ``S`` itself is one matrix product of augmented
matrices, ``S = [sqrt(2t) z~, -t|z~|^2, 1] @ [sqrt(2t) z~, 1, -t|z~|^2]^T``,
so no B x B elementwise pass is spent on forming distances.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .checks import check_embedding, check_number

# exp(-80) is still a normal float32, so while 4t <= 80 every off-diagonal
# term exp(S_ij) >= exp(-4t) is representable and no max-shift is needed.
_SHIFT_FREE_LIMIT = 80.0


def _augmented(zn: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(left, right)`` with ``left @ right.T == S`` (diagonal included, equal to 0)."""
    sq = (zn * zn).sum(dim=1, keepdim=True)
    ones = torch.ones_like(sq)
    scaled = zn * math.sqrt(2.0 * t)
    left = torch.cat([scaled, -t * sq, ones], dim=1)
    right = torch.cat([scaled, ones, -t * sq], dim=1)
    return left, right


def _block_exp(left_rows, right, row_start: int, shift: float) -> torch.Tensor:
    """Return ``exp(S[rows] - shift)`` with the diagonal entries of those rows set to 0."""
    block = left_rows @ right.T
    if shift != 0.0:
        block.sub_(shift)
    block.exp_()
    rows = torch.arange(block.shape[0], device=block.device)
    block[rows, rows + row_start] = 0.0
    return block


def _max_offdiagonal(left, right, chunk: int) -> float:
    """Return the largest off-diagonal ``S_ij`` (only needed when 4t exceeds the shift-free limit)."""
    best = -math.inf
    for start in range(0, left.shape[0], chunk):
        block = left[start:start + chunk] @ right.T
        rows = torch.arange(block.shape[0], device=block.device)
        block[rows, rows + start] = -math.inf
        best = max(best, float(block.max()))
    return best


class _Dispersion(torch.autograd.Function):
    """log-sum-exp over off-diagonal RBF similarities, with an analytic backward.

    ``chunk`` rows are processed at a time. When ``chunk >= B`` the weight
    matrix is kept for backward; otherwise it is recomputed block by block,
    so memory stays O(chunk * B).
    """

    @staticmethod
    def forward(ctx, zn: torch.Tensor, t: float, chunk: int):
        batch = zn.shape[0]
        work = zn if zn.dtype in (torch.float32, torch.float64) else zn.float()
        left, right = _augmented(work, t)
        shift = 0.0 if 4.0 * t <= _SHIFT_FREE_LIMIT else _max_offdiagonal(left, right, chunk)

        dense = chunk >= batch
        if dense:
            weights = _block_exp(left, right, 0, shift)
            row_sums = weights.sum(dim=1)
        else:
            weights = None
            row_sums = torch.cat([
                _block_exp(left[start:start + chunk], right, start, shift).sum(dim=1)
                for start in range(0, batch, chunk)
            ])
        total = row_sums.sum()
        loss = torch.log(total) + shift - math.log(batch * (batch - 1))

        ctx.t, ctx.chunk, ctx.shift, ctx.in_dtype = t, chunk, shift, zn.dtype
        ctx.save_for_backward(work, row_sums, total, weights if dense else None)
        return loss.to(zn.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        work, row_sums, total, weights = ctx.saved_tensors
        scale = (-4.0 * ctx.t) * grad_loss.to(work.dtype) / total
        if weights is not None:
            pulled = weights @ work
        else:
            left, right = _augmented(work, ctx.t)
            pulled = torch.cat([
                _block_exp(left[start:start + ctx.chunk], right, start, ctx.shift) @ work
                for start in range(0, work.shape[0], ctx.chunk)
            ])
        grad = scale * (row_sums.unsqueeze(1) * work - pulled)
        return grad.to(ctx.in_dtype), None, None


def dispersion_loss(z: torch.Tensor, t: float = 2.0, chunk_size: int | None = None,
                    modality: str | None = None) -> torch.Tensor:
    """Compute the dispersion loss of one modality's embeddings (eq. 6).

    Args:
        z: (B, d) embeddings, B >= 2. They are L2-normalized here with
            ``torch.nn.functional.normalize`` semantics, so a zero row stays zero.
        t: RBF scale, > 0. The value lies in [-4t, 0] for unit vectors and is 0
            when all embeddings coincide.
        chunk_size: rows per block. ``None`` (default) uses one dense block;
            a smaller value bounds memory to O(chunk_size * B) and recomputes
            the blocks in backward. Both give the same value and gradient.
        modality: name used in error messages.

    Returns:
        A scalar tensor, differentiable with respect to ``z``.
    """
    check_embedding(z, "z", modality)
    t = check_number("t", t, positive=True)
    batch = z.shape[0]
    if chunk_size is None:
        chunk = batch
    else:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise TypeError(f"chunk_size must be an int or None, got {chunk_size!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        chunk = chunk_size
    zn = F.normalize(z, dim=1)
    return _Dispersion.apply(zn, t, chunk)


def dispersion_loss_reference(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """The same loss written directly from the formula, with autograd through ``torch.pdist``.

    Kept as the reference that the fast path is tested and benchmarked against.
    Its gradient is NaN when two rows coincide (``pdist`` differentiates a
    square root at 0), which the fast path avoids.
    """
    zn = F.normalize(z, dim=1)
    batch = zn.shape[0]
    squared = torch.pdist(zn).pow(2)
    # pdist lists each unordered pair once; the sum over i != j counts it twice.
    return torch.logsumexp(-t * squared, dim=0) + math.log(2.0) - math.log(batch * (batch - 1))
