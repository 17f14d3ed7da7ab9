"""Pareto weighting of the two geometry gradients (eqs. 10-12).

For one modality, ``alpha`` minimizes ``||alpha * g_a + (1 - alpha) * g_d||^2``
over ``alpha`` in [0, 1]; the minimizer of this quadratic is eq. 11::

    alpha = clip( (||g_d||^2 - <g_a, g_d>) / ||g_a - g_d||^2, 0, 1 )
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _flatten(gradient, name: str) -> torch.Tensor:
    """Return ``gradient`` (a tensor or a list of per-parameter tensors) as one flat float64 vector."""
    if isinstance(gradient, torch.Tensor):
        parts = [gradient]
    elif isinstance(gradient, Sequence) and not isinstance(gradient, (str, bytes)):
        parts = list(gradient)
        if not parts:
            raise ValueError(f"{name} is an empty list of gradients")
        for index, part in enumerate(parts):
            if not isinstance(part, torch.Tensor):
                raise TypeError(f"{name}[{index}] must be a torch.Tensor, got {type(part).__name__}")
    else:
        raise TypeError(f"{name} must be a tensor or a list of tensors, got {type(gradient).__name__}")
    flat = torch.cat([part.detach().reshape(-1).to(torch.float64) for part in parts])
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return flat


def min_norm_alpha(g_a, g_d) -> torch.Tensor:
    """Return the weight ``alpha`` in [0, 1] on ``g_a`` that minimizes the combined gradient's norm.

    Args:
        g_a: anchoring gradient, a tensor or a list of per-parameter tensors.
        g_d: dispersion gradient, with the same shapes as ``g_a``.

    Returns:
        A 0-dim float64 tensor. When ``g_a == g_d`` every alpha gives the same
        vector and 0.5 is returned, so the result is never NaN.
    """
    flat_a = _flatten(g_a, "g_a")
    flat_d = _flatten(g_d, "g_d")
    if flat_a.shape != flat_d.shape:
        raise ValueError(
            f"g_a and g_d must have the same number of elements, got {flat_a.numel()} and {flat_d.numel()}"
        )
    if isinstance(g_a, Sequence) and isinstance(g_d, Sequence):
        if len(g_a) != len(g_d):
            raise ValueError(f"g_a and g_d must list the same parameters, got {len(g_a)} and {len(g_d)} tensors")
        for index, (part_a, part_d) in enumerate(zip(g_a, g_d)):
            if part_a.shape != part_d.shape:
                raise ValueError(
                    f"g_a[{index}] and g_d[{index}] differ in shape: {tuple(part_a.shape)} vs {tuple(part_d.shape)}"
                )
    return alpha_from_flat(flat_a, flat_d)


def alpha_from_flat(flat_a: torch.Tensor, flat_d: torch.Tensor) -> torch.Tensor:
    """Apply eq. 11 to two already validated flat vectors (no checks, no copies)."""
    difference = flat_a - flat_d
    denominator = difference.dot(difference)
    if float(denominator) == 0.0:
        return torch.tensor(0.5, dtype=torch.float64)
    numerator = -flat_d.dot(difference)
    return (numerator / denominator).clamp(0.0, 1.0).to(torch.float64)
