"""Intra-modal dispersion: the RBF uniformity loss on the unit hypersphere (eq. 6).

``L_disp = log( 1/(B(B-1)) * sum_{i != j} exp(-t * ||z~_i - z~_j||^2) )``

With ``W_ij = exp(-t ||z~_i - z~_j||^2)`` for ``i != j`` (``W_ii = 0``) and
``T = sum_ij W_ij``, the gradient with respect to the normalized rows is one
matrix product::

    dL/dz~ = -(4t / T) * (diag(W 1) - W) z~

so :class:`_Dispersion` computes it directly, and also applies the backward
of the normalization itself, instead of letting autograd walk through the
B x B graph. The forward costs one (B x d) @ (d x B) product and one
elementwise ``exp`` over B x B entries, and the backward one
(B x B) @ (B x d) product.

Because ``||z~_i - z~_j||^2 = s_i + s_j - 2 z~_i . z~_j`` with ``s_i = ||z~_i||^2``,
the weights factor as ``W_ij = a_i a_j exp(2t z~_i . z~_j)`` with
``a_i = exp(-t s_i)``. While ``4t <= 80`` every factor is a normal float32
and the kernel needs no max-shift. Above that, the log-sum-exp is shifted by
the largest off-diagonal exponent, computed from the augmented matrices
``[sqrt(2t) z~, -t s, 1] @ [sqrt(2t) z~, 1, -t s]^T``.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from .checks import check_embedding, check_number

# exp(-80) is still a normal float32, so while 4t <= 80 every off-diagonal
# weight exp(-t ||z~_i - z~_j||^2) >= exp(-4t) is representable and no
# max-shift is needed.
_SHIFT_FREE_LIMIT = 80.0

# The eps of torch.nn.functional.normalize: rows are divided by max(||z_i||, eps).
_NORM_EPS = 1e-12

# With chunk_size=None, batches whose B x B weight matrix has at most this many
# entries (B <= 8192, 256 MiB in float32) use one dense block. Larger batches
# are split into blocks of about CHUNK_ELEMENTS entries (64 MiB in float32)
# that backward recomputes, with the same value and gradient.
AUTO_CHUNK_ELEMENTS = 8192 * 8192
CHUNK_ELEMENTS = 2**24


def auto_chunk_size(batch: int) -> int:
    """Return the rows per block that ``chunk_size=None`` uses for a batch of ``batch`` rows."""
    if batch * batch <= AUTO_CHUNK_ELEMENTS:
        return batch
    return max(1, CHUNK_ELEMENTS // batch)


def _augmented(zn: torch.Tensor, sq: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(left, right)`` with ``(left @ right.T)_ij == -t ||z~_i - z~_j||^2``."""
    column = sq.unsqueeze(1)
    ones = torch.ones_like(column)
    scaled = zn * math.sqrt(2.0 * t)
    left = torch.cat([scaled, -t * column, ones], dim=1)
    right = torch.cat([scaled, ones, -t * column], dim=1)
    return left, right


class _Kernel:
    """The weight matrix of one batch, block by block.

    In the shift-free case a block holds ``exp(2t z~_rows . z~^T)`` and the row
    factors ``a`` turn it into ``W``; otherwise a block holds ``W`` itself times
    ``exp(-shift)`` and ``a`` is None. Diagonal entries are set to 0 either way.
    """

    def __init__(self, zn: torch.Tensor, sq: torch.Tensor, t: float, chunk: int):
        self.zn, self.t, self.chunk = zn, t, chunk
        self.batch = zn.shape[0]
        if 4.0 * t <= _SHIFT_FREE_LIMIT:
            self.factors = torch.exp(-t * sq)
            self.shift = 0.0
            self.left = self.right = None
        else:
            self.factors = None
            self.left, self.right = _augmented(zn, sq, t)
            self.shift = self._max_offdiagonal()
        self._zero = zn.new_zeros(())

    def _raw(self, start: int, stop: int) -> torch.Tensor:
        if self.factors is not None:
            return torch.addmm(self._zero, self.zn[start:stop], self.zn.T, beta=0.0, alpha=2.0 * self.t)
        return self.left[start:stop] @ self.right.T

    def _max_offdiagonal(self) -> float:
        best = -math.inf
        for start in range(0, self.batch, self.chunk):
            block = self._raw(start, min(start + self.chunk, self.batch))
            block.diagonal(offset=start).fill_(-math.inf)
            best = max(best, float(block.max()))
        return best

    def block(self, start: int, stop: int) -> torch.Tensor:
        """Return the kernel rows ``start:stop`` with their diagonal entries set to 0."""
        block = self._raw(start, stop)
        if self.shift != 0.0:
            block.sub_(self.shift)
        block.exp_()
        block.diagonal(offset=start).zero_()
        return block

    def spans(self):
        for start in range(0, self.batch, self.chunk):
            yield start, min(start + self.chunk, self.batch)

    def row_sums(self, block: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Return ``(W 1)`` for the rows of ``block``."""
        if self.factors is None:
            return block.sum(dim=1)
        return self.factors[start:stop] * (block @ self.factors)

    def pulled(self, block: torch.Tensor, start: int, stop: int, weighted: torch.Tensor) -> torch.Tensor:
        """Return ``(W z~)`` for the rows of ``block``; ``weighted`` is ``a * z~`` (or ``z~``)."""
        product = block @ weighted
        if self.factors is None:
            return product
        return product.mul_(self.factors[start:stop].unsqueeze(1))

    def weighted_rows(self) -> torch.Tensor:
        if self.factors is None:
            return self.zn
        return self.zn * self.factors.unsqueeze(1)


class _Dispersion(torch.autograd.Function):
    """Normalization plus log-sum-exp over off-diagonal RBF similarities, with an analytic backward.

    ``chunk`` rows are processed at a time. When ``chunk >= B`` the kernel
    block is kept for backward; otherwise it is recomputed block by block,
    so memory stays O(chunk * B).
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, t: float, chunk: int):
        batch = z.shape[0]
        work = z if z.dtype in (torch.float32, torch.float64) else z.float()
        norms = torch.linalg.vector_norm(work, dim=1)
        denominators = norms.clamp_min(_NORM_EPS)
        zn = work / denominators.unsqueeze(1)
        # ||z~_i||^2 is 1, or 0 for a zero row, or (||z_i|| / eps)^2 for a row below eps.
        sq = (norms / denominators).square()

        kernel = _Kernel(zn, sq, t, chunk)
        dense = chunk >= batch
        if dense:
            block = kernel.block(0, batch)
            row_sums = kernel.row_sums(block, 0, batch)
        else:
            block = None
            row_sums = torch.cat([kernel.row_sums(kernel.block(start, stop), start, stop)
                                  for start, stop in kernel.spans()])
        total = row_sums.sum()
        loss = torch.log(total) + kernel.shift - math.log(batch * (batch - 1))

        ctx.kernel = kernel
        ctx.in_dtype = z.dtype
        ctx.save_for_backward(norms, denominators, row_sums, total, block)
        return loss.to(z.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        norms, denominators, row_sums, total, block = ctx.saved_tensors
        kernel = ctx.kernel
        zn = kernel.zn
        weighted = kernel.weighted_rows()
        if block is not None:
            pulled = kernel.pulled(block, 0, kernel.batch, weighted)
        else:
            pulled = torch.cat([kernel.pulled(kernel.block(start, stop), start, stop, weighted)
                                for start, stop in kernel.spans()])
        scale = (-4.0 * kernel.t) * grad_loss.to(zn.dtype) / total
        # Gradient with respect to z~, then through z~ = z / max(||z||, eps):
        # rows above eps lose their radial component, rows below eps are only divided by eps.
        grad_zn = torch.addcmul(pulled, zn, row_sums.unsqueeze(1), value=-1.0).mul_(-scale)
        radial = (zn * grad_zn).sum(dim=1).masked_fill_(norms <= _NORM_EPS, 0.0)
        grad = torch.addcmul(grad_zn, zn, radial.unsqueeze(1), value=-1.0).div_(denominators.unsqueeze(1))
        return grad.to(ctx.in_dtype), None, None


def dispersion_loss(z: torch.Tensor, t: float = 2.0, chunk_size: int | None = None,
                    modality: str | None = None) -> torch.Tensor:
    """Compute the dispersion loss of one modality's embeddings (eq. 6).

    Args:
        z: (B, d) embeddings, B >= 2. They are L2-normalized here with
            ``torch.nn.functional.normalize`` semantics, so a zero row stays zero.
        t: RBF scale, > 0. The value lies in [-4t, 0] for unit vectors and is 0
            when all embeddings coincide.
        chunk_size: rows per block. ``None`` (default) picks
            :func:`auto_chunk_size`: one dense block up to B = 8192, blocks of
            about 2**24 entries above. A value below B bounds memory to
            O(chunk_size * B) and recomputes the blocks in backward. Every
            choice gives the same value and gradient up to float rounding.
        modality: name used in error messages.

    Returns:
        A scalar tensor, differentiable with respect to ``z`` (first order only).
    """
    check_embedding(z, "z", modality)
    t = check_number("t", t, positive=True)
    return _Dispersion.apply(z, t, _rows_per_block(chunk_size, z.shape[0]))


def _rows_per_block(chunk_size: int | None, batch: int) -> int:
    """Validate ``chunk_size`` and resolve ``None`` to :func:`auto_chunk_size`."""
    if chunk_size is None:
        return auto_chunk_size(batch)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"chunk_size must be an int or None, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return chunk_size


class _DispersionStack(torch.autograd.Function):
    """:class:`_Dispersion` for M modalities at once: (M, B, d) in, the M losses out.

    Dense and shift-free only (``4t <= 80``, one block per modality), with
    batched matrix products, so M modalities cost one set of kernel launches.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, t: float):
        batch = z.shape[1]
        work = z if z.dtype in (torch.float32, torch.float64) else z.float()
        norms = torch.linalg.vector_norm(work, dim=2)
        denominators = norms.clamp_min(_NORM_EPS)
        zn = work / denominators.unsqueeze(2)
        factors = torch.exp(-t * (norms / denominators).square())
        kernel = torch.baddbmm(zn.new_zeros(()), zn, zn.transpose(1, 2), beta=0.0, alpha=2.0 * t)
        kernel.exp_()
        kernel.diagonal(dim1=1, dim2=2).zero_()
        row_sums = factors * torch.bmm(kernel, factors.unsqueeze(2)).squeeze(2)
        totals = row_sums.sum(dim=1)
        losses = torch.log(totals) - math.log(batch * (batch - 1))
        ctx.t, ctx.in_dtype = t, z.dtype
        ctx.save_for_backward(zn, factors, norms, denominators, row_sums, totals, kernel)
        return losses.to(z.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_losses):
        zn, factors, norms, denominators, row_sums, totals, kernel = ctx.saved_tensors
        weights = factors.unsqueeze(2)
        pulled = torch.bmm(kernel, zn * weights).mul_(weights)
        scale = (4.0 * ctx.t) * grad_losses.to(zn.dtype) / totals
        grad_zn = torch.addcmul(pulled, zn, row_sums.unsqueeze(2), value=-1.0).mul_(scale.view(-1, 1, 1))
        radial = (zn * grad_zn).sum(dim=2).masked_fill_(norms <= _NORM_EPS, 0.0)
        grad = torch.addcmul(grad_zn, zn, radial.unsqueeze(2), value=-1.0).div_(denominators.unsqueeze(2))
        return grad.to(ctx.in_dtype), None


def dispersion_losses(zs, t: float = 2.0, chunk_size: int | None = None, modalities=None) -> torch.Tensor:
    """Compute :func:`dispersion_loss` of several modalities and return the M values as one tensor.

    Equal to ``torch.stack([dispersion_loss(z, t, chunk_size) for z in zs])`` up to
    float rounding. All modalities share one batched kernel when four conditions
    hold: every z has the same shape and dtype, ``chunk_size`` is None, the batch
    fits one dense block, and ``4t <= 80``. Otherwise each is computed on its own.

    Args:
        zs: sequence of (B, d) embeddings.
        t, chunk_size: as in :func:`dispersion_loss`.
        modalities: names of the modalities, for error messages.
    """
    zs = list(zs)
    names = list(modalities) if modalities is not None else [None] * len(zs)
    if not zs:
        raise ValueError("zs is empty: expected at least one (B, d) embedding")
    for z, name in zip(zs, names):
        check_embedding(z, "z", name)
    t = check_number("t", t, positive=True)
    return checked_dispersion_losses(zs, t, chunk_size)


def checked_dispersion_losses(zs: list[torch.Tensor], t: float, chunk_size: int | None) -> torch.Tensor:
    """:func:`dispersion_losses` for inputs that the caller has already validated (no input checks)."""
    first = zs[0]
    stackable = (
        chunk_size is None
        and 4.0 * t <= _SHIFT_FREE_LIMIT
        and auto_chunk_size(first.shape[0]) >= first.shape[0]
        and all(z.shape == first.shape and z.dtype == first.dtype and z.device == first.device for z in zs)
    )
    if stackable:
        return _DispersionStack.apply(torch.stack(zs), t)
    # The inputs are validated already, so only chunk_size is checked here.
    return torch.stack([_Dispersion.apply(z, t, _rows_per_block(chunk_size, z.shape[0])) for z in zs])


def dispersion_loss_reference(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Compute the same loss directly from the formula, with autograd through ``torch.pdist``.

    Kept as the reference that the fast path is tested and benchmarked against.
    Its gradient is NaN when two rows coincide (``pdist`` differentiates a
    square root at 0), which the fast path avoids.
    """
    zn = torch.nn.functional.normalize(z, dim=1)
    batch = zn.shape[0]
    squared = torch.pdist(zn).pow(2)
    # pdist lists each unordered pair once; the sum over i != j counts it twice.
    return torch.logsumexp(-t * squared, dim=0) + math.log(2.0) - math.log(batch * (batch - 1))
