"""Per-view encoders, fusion heads and the multi-view classifier.

A :class:`MultiViewNet` maps a dict of views to class logits and returns the
per-view embeddings ``z^m`` as well, before any normalization, because the DAGR
terms normalize inside. Unimodal logits follow the convention of DGL
(shicaiwei123/ICCV2025-GDL): the shared fusion head is applied to one view's
embedding with every other view's embedding replaced by zeros.

Usage::

    net = build_mfeat_model(["fourier", "pixels"], dim=64)
    logits, zs = net({"fourier": x_fou, "pixels": x_pix})   # zs: dict view -> (B, 64)
    logits_fou = net.unimodal_logits("fourier", zs)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import PIXEL_SHAPE, VIEW_DIMS, check_views

FUSIONS = ("concat", "sum")


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class MLPEncoder(nn.Module):
    """Two-layer perceptron encoder: ``Linear(in_dim, hidden) -> ReLU -> Linear(hidden, dim)``."""

    def __init__(self, in_dim: int, dim: int = 64, hidden: int = 128):
        super().__init__()
        self.in_dim = _check_positive("in_dim", in_dim)
        self.dim = _check_positive("dim", dim)
        _check_positive("hidden", hidden)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLPEncoder expects input of shape (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x)


class PixelCNN(nn.Module):
    """Small CNN for the 16x15 mfeat pixel image.

    Accepts ``(B, 240)`` (row-major pixels) or ``(B, 1, 16, 15)``. Two 3x3 convolution
    blocks (16 and 32 channels, ReLU, 2x2 max pooling) shrink the image to 32 x 4 x 3,
    and a linear layer maps the flattened result to ``dim``.
    """

    def __init__(self, dim: int = 64, channels: tuple[int, int] = (16, 32)):
        super().__init__()
        self.dim = _check_positive("dim", dim)
        c1, c2 = (_check_positive("channels", c) for c in channels)
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 16x15 -> 8x7
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x7 -> 4x3
        )
        rows, cols = PIXEL_SHAPE[0] // 4, PIXEL_SHAPE[1] // 4
        self.proj = nn.Linear(c2 * rows * cols, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_pixels = PIXEL_SHAPE[0] * PIXEL_SHAPE[1]
        if x.ndim == 2 and x.shape[1] == n_pixels:
            x = x.reshape(x.shape[0], 1, *PIXEL_SHAPE)
        elif x.ndim != 4 or tuple(x.shape[1:]) != (1, *PIXEL_SHAPE):
            raise ValueError(
                f"PixelCNN expects input of shape (B, {n_pixels}) or (B, 1, {PIXEL_SHAPE[0]}, "
                f"{PIXEL_SHAPE[1]}), got {tuple(x.shape)}"
            )
        return self.proj(self.features(x).flatten(1))


class ConcatFusion(nn.Module):
    """One linear head on the concatenation ``[z^1, ..., z^M]`` in view order."""

    def __init__(self, views: Sequence[str], dim: int, num_classes: int):
        super().__init__()
        self.views = tuple(views)
        self.dim = _check_positive("dim", dim)
        self.linear = nn.Linear(dim * len(self.views), _check_positive("num_classes", num_classes))

    def forward(self, zs: Mapping[str, torch.Tensor], detach_head: bool = False) -> torch.Tensor:
        z = torch.cat([zs[name] for name in self.views], dim=1)
        weight, bias = self.linear.weight, self.linear.bias
        if detach_head:
            weight, bias = weight.detach(), bias.detach()
        return F.linear(z, weight, bias)


class SumFusion(nn.Module):
    """One linear head per view, logits added: ``sum_m (W_m z^m + b_m)``."""

    def __init__(self, views: Sequence[str], dim: int, num_classes: int):
        super().__init__()
        self.views = tuple(views)
        self.dim = _check_positive("dim", dim)
        _check_positive("num_classes", num_classes)
        self.heads = nn.ModuleDict({name: nn.Linear(dim, num_classes) for name in self.views})

    def forward(self, zs: Mapping[str, torch.Tensor], detach_head: bool = False) -> torch.Tensor:
        logits = 0
        for name in self.views:
            weight, bias = self.heads[name].weight, self.heads[name].bias
            if detach_head:
                weight, bias = weight.detach(), bias.detach()
            logits = logits + F.linear(zs[name], weight, bias)
        return logits


class MultiViewNet(nn.Module):
    """Per-view encoders followed by one fusion head.

    Args:
        encoders: dict view name -> module mapping that view's input to ``(B, dim)``.
        num_classes: number of classes of the head.
        dim: embedding size every encoder produces.
        fusion: ``"concat"`` (one linear head on the concatenated embeddings) or
            ``"sum"`` (one linear head per view, logits added).

    ``forward(x)`` returns ``(logits, zs)`` with ``zs`` a dict view -> ``(B, dim)``
    embedding, unnormalized.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, dim: int, fusion: str = "concat"):
        super().__init__()
        if not isinstance(encoders, Mapping) or not encoders:
            raise TypeError(f"encoders must be a non-empty dict view name -> nn.Module, got {encoders!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.views = tuple(encoders)
        self.dim = _check_positive("dim", dim)
        self.num_classes = _check_positive("num_classes", num_classes)
        self.fusion = fusion
        self.encoders = nn.ModuleDict(dict(encoders))
        head_class = ConcatFusion if fusion == "concat" else SumFusion
        self.head = head_class(self.views, dim, num_classes)

    def _check_views(self, names, source: str) -> None:
        missing = [name for name in self.views if name not in names]
        if missing:
            raise ValueError(f"{source} lacks view(s) {missing}, but the model expects {list(self.views)}")
        unknown = [name for name in names if name not in self.views]
        if unknown:
            raise ValueError(
                f"{source} has view(s) {unknown} that the model has no encoder for. It expects {list(self.views)}"
            )

    def encode(self, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return the dict view -> ``(B, dim)`` embedding of each encoder."""
        self._check_views(x, "input")
        zs = {}
        for name in self.views:
            z = self.encoders[name](x[name])
            if z.ndim != 2 or z.shape[1] != self.dim:
                raise ValueError(f"encoder of view {name!r} returned shape {tuple(z.shape)}, expected (B, {self.dim})")
            zs[name] = z
        return zs

    def fuse(self, zs: Mapping[str, torch.Tensor], detach_head: bool = False) -> torch.Tensor:
        """Apply the fusion head to a full dict of embeddings.

        With ``detach_head=True`` the head's parameters are used as constants, so the
        loss reaches the embeddings but not the head.
        """
        self._check_views(zs, "embeddings")
        return self.head(zs, detach_head=detach_head)

    def forward(self, x: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        zs = self.encode(x)
        return self.head(zs), zs

    def unimodal_logits(
        self, view: str, z: torch.Tensor | Mapping[str, torch.Tensor], detach_head: bool = False
    ) -> torch.Tensor:
        """Logits of the shared head for one view with every other view's embedding zeroed.

        ``z`` is that view's ``(B, dim)`` embedding or a dict containing it.
        """
        if view not in self.views:
            raise ValueError(f"unknown view {view!r}, the model has views {list(self.views)}")
        if isinstance(z, Mapping):
            if view not in z:
                raise ValueError(f"embeddings lack view {view!r}, got views {list(z)}")
            z = z[view]
        zs = {name: z if name == view else torch.zeros_like(z) for name in self.views}
        return self.head(zs, detach_head=detach_head)


def build_mfeat_encoder(view: str, dim: int = 64, hidden: int = 128) -> nn.Module:
    """Return the default encoder of an mfeat view: :class:`PixelCNN` for ``pixels``, else an MLP."""
    (view,) = check_views([view])
    if view == "pixels":
        return PixelCNN(dim=dim)
    return MLPEncoder(VIEW_DIMS[view], dim=dim, hidden=hidden)


def build_mfeat_model(
    views: Sequence[str] | None = None,
    dim: int = 64,
    num_classes: int = 10,
    hidden: int = 128,
    fusion: str = "concat",
) -> MultiViewNet:
    """Build a :class:`MultiViewNet` for mfeat views (``None`` selects all six)."""
    views = check_views(views)
    encoders = {name: build_mfeat_encoder(name, dim=dim, hidden=hidden) for name in views}
    return MultiViewNet(encoders, num_classes=num_classes, dim=dim, fusion=fusion)
