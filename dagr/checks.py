"""Input validation shared by the regularizer and the diagnostics.

Every check raises ``TypeError`` or ``ValueError`` naming the argument, the
offending value and, where there is one, the modality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real

import torch


def modality_suffix(modality: str | None) -> str:
    """Return the ``" (modality 'x')"`` suffix used in messages, or an empty string."""
    return "" if modality is None else f" (modality {modality!r})"


def check_number(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> float:
    """Return ``value`` as a float after checking that it is a finite real number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_embedding(z, name: str = "z", modality: str | None = None, min_samples: int = 2) -> torch.Tensor:
    """Check that ``z`` is a finite floating-point (B, d) tensor with B >= ``min_samples``."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{modality_suffix(modality)}, got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor{modality_suffix(modality)}, got dtype {z.dtype}")
    if z.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D (batch, features){modality_suffix(modality)}, got shape {tuple(z.shape)}"
        )
    if z.shape[0] < min_samples:
        raise ValueError(
            f"{name} needs at least {min_samples} samples{modality_suffix(modality)}, got batch size {z.shape[0]}"
        )
    if z.shape[1] == 0:
        raise ValueError(f"{name} has no features{modality_suffix(modality)}: shape {tuple(z.shape)}")
    if not bool(torch.isfinite(z).all()):
        bad = int((~torch.isfinite(z)).sum())
        raise ValueError(f"{name} contains {bad} NaN or inf values{modality_suffix(modality)}")
    return z


def as_named(zs, name: str = "zs") -> dict[str, torch.Tensor]:
    """Return the per-modality embeddings as an ordered ``{modality: tensor}`` dict.

    ``zs`` is a mapping from modality name to tensor, or a sequence of tensors
    (named ``"0"``, ``"1"``, ... in messages).
    """
    if isinstance(zs, torch.Tensor):
        raise TypeError(
            f"{name} must be a sequence or mapping of per-modality tensors, got a single tensor of "
            f"shape {tuple(zs.shape)}; pass e.g. [z_audio, z_video] or {{'audio': z_audio, 'video': z_video}}"
        )
    if isinstance(zs, Mapping):
        named = {str(key): value for key, value in zs.items()}
    elif isinstance(zs, Sequence) and not isinstance(zs, (str, bytes)):
        named = {str(index): value for index, value in enumerate(zs)}
    else:
        raise TypeError(f"{name} must be a sequence or mapping of tensors, got {type(zs).__name__}")
    if not named:
        raise ValueError(f"{name} is empty: expected at least one modality")
    return named


def check_modalities(zs, name: str = "zs", min_modalities: int = 1, same_dim: bool = False) -> dict[str, torch.Tensor]:
    """Validate every modality's embedding and their agreement on batch size (and width)."""
    named = as_named(zs, name)
    if len(named) < min_modalities:
        raise ValueError(
            f"{name} needs at least {min_modalities} modalities, got {len(named)} ({list(named)})"
        )
    first_key, first = None, None
    for key, z in named.items():
        check_embedding(z, name, modality=key)
        if first is None:
            first_key, first = key, z
            continue
        if z.shape[0] != first.shape[0]:
            raise ValueError(
                f"{name}: modalities must share the batch size, got {first.shape[0]} for "
                f"{first_key!r} and {z.shape[0]} for {key!r}"
            )
        if same_dim and z.shape[1] != first.shape[1]:
            raise ValueError(
                f"{name}: modalities must share the embedding width, got {first.shape[1]} for "
                f"{first_key!r} and {z.shape[1]} for {key!r}"
            )
    return named
