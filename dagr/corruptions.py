"""Test-time corruption of one view: missing samples, Gaussian noise and feature dropout.

The three stress tests follow appendix D.2 of the DAGR paper (Xia et al., 2026,
arXiv 2601.21670), applied to standardized mfeat inputs. Each corrupts only the
views it is given and leaves every other view untouched:

* ``"missing"``: each test sample loses the view with probability ``p``. A missing
  view is a zeroed input row. The features are standardized with training
  statistics, so zero is the training mean of every feature: a neutral placeholder
  at the input, not a zeroed embedding (the encoder still maps it to some vector).
* ``"noise"``: ``x + sigma * s * eps`` with ``eps ~ N(0, 1)`` per entry, where ``s`` is
  the view's scale, the standard deviation of all its training features
  (:func:`view_scales`), so one ``sigma`` means the same relative strength in every view.
* ``"dropout"``: each sample loses ``round(rho * dims)`` of the view's features,
  chosen at random per sample and set to zero, without rescaling the rest.

Every corruption draws from its own ``torch.Generator`` seeded by ``seed``, so a
curve is reproducible and does not touch the global random state. Level 0 returns
the input unchanged, so the accuracy at level 0 is the clean accuracy.

Usage::

    x_bad = corrupt(data.test.features, "pixels", "noise", 0.5, scales=view_scales(data.train))
    curve = degradation_curve(model, data.test, "pixels", "missing", [0, 0.5, 1])
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Mapping, Sequence

import torch

from .data import MultiViewSplit

KINDS = ("missing", "noise", "dropout")
LEVEL_NAMES = {"missing": "p", "noise": "sigma", "dropout": "rho"}


def _check_level(kind: str, level) -> float:
    name = LEVEL_NAMES[kind]
    if isinstance(level, bool) or not isinstance(level, Real) or not math.isfinite(level):
        raise ValueError(f"{kind} corruption: {name} must be a finite number, got {level!r}")
    if level < 0:
        raise ValueError(f"{kind} corruption: {name} must be >= 0, got {level}")
    if kind != "noise" and level > 1:
        raise ValueError(f"{kind} corruption: {name} is a probability in [0, 1], got {level}")
    return float(level)


def _check_views(features: Mapping[str, torch.Tensor], views) -> list[str]:
    if not isinstance(features, Mapping):
        raise TypeError(f"features must be a dict view -> (N, dims) tensor, got {type(features).__name__}")
    views = [views] if isinstance(views, str) else list(views)
    if not views:
        raise ValueError("views is empty. Name at least one view to corrupt")
    for view in views:
        if view not in features:
            raise ValueError(f"unknown view {view!r} to corrupt, the features have views {list(features)}")
        x = features[view]
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError(f"view {view!r} must be a 2-D (N, dims) tensor, got {type(x).__name__} "
                             f"of shape {tuple(getattr(x, 'shape', ()))}")
    return views


def view_scales(split: MultiViewSplit) -> dict[str, float]:
    """Return the noise scale ``s`` of each view: the standard deviation of all its features in ``split``.

    Pass the training split, so the scale never looks at test data.
    """
    return {view: float(x.double().std(unbiased=False)) for view, x in split.features.items()}


def missing(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Zero each row of ``x`` independently with probability ``p``."""
    p = _check_level("missing", p)
    drop = torch.rand(x.shape[0], generator=generator) < p
    return torch.where(drop[:, None], torch.zeros_like(x), x)


def gaussian_noise(x: torch.Tensor, sigma: float, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Return ``x + sigma * scale * eps`` with ``eps`` standard normal, one draw per entry."""
    sigma = _check_level("noise", sigma)
    if isinstance(scale, bool) or not isinstance(scale, Real) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"noise corruption: scale must be a positive finite number, got {scale!r}")
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x + sigma * float(scale) * eps


def feature_dropout(x: torch.Tensor, rho: float, generator: torch.Generator) -> torch.Tensor:
    """Zero ``round(rho * dims)`` randomly chosen features of every row of ``x``, a new choice per row."""
    rho = _check_level("dropout", rho)
    dims = x.shape[1]
    n_drop = int(round(rho * dims))
    if n_drop == 0:
        return x.clone()
    # The n_drop smallest of dims uniform draws pick a uniformly random subset per row.
    ranks = torch.rand(x.shape, generator=generator).argsort(dim=1).argsort(dim=1)
    return torch.where(ranks < n_drop, torch.zeros_like(x), x)


def corrupt(
    features: Mapping[str, torch.Tensor],
    views: str | Sequence[str],
    kind: str,
    level: float,
    seed: int = 0,
    scales: Mapping[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """Return a copy of ``features`` with ``views`` corrupted by ``kind`` at ``level``.

    Args:
        features: dict view -> ``(N, dims)`` tensor (for example ``split.features``).
        views: the view to corrupt, or several views, each corrupted independently.
        kind: ``"missing"`` (level ``p``), ``"noise"`` (level ``sigma``) or ``"dropout"``
            (level ``rho``); see the module docstring.
        level: ``p`` or ``rho`` in [0, 1], or ``sigma >= 0``.
        seed: seed of the corruption's own generator.
        scales: view -> noise scale, required for ``"noise"`` (use :func:`view_scales`).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    views = _check_views(features, views)
    level = _check_level(kind, level)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if kind == "noise":
        if scales is None:
            raise ValueError("noise corruption needs scales, the dict view -> scale from view_scales(train split)")
        absent = [view for view in views if view not in scales]
        if absent:
            raise ValueError(f"scales lacks view(s) {absent}. It has {list(scales)}")

    generator = torch.Generator().manual_seed(seed)
    out = dict(features)
    for view in views:
        x = features[view]
        if kind == "missing":
            out[view] = missing(x, level, generator)
        elif kind == "noise":
            out[view] = gaussian_noise(x, level, scales[view], generator)
        else:
            out[view] = feature_dropout(x, level, generator)
    return out


@torch.no_grad()
def corrupted_accuracy(model, split: MultiViewSplit, views, kind: str, level: float, seed: int = 0,
                       scales: Mapping[str, float] | None = None) -> float:
    """Return the multimodal accuracy of ``model`` on ``split`` with ``views`` corrupted.

    The split's features are restricted to the model's views first, so a split with
    extra views works. The model runs in evaluation mode on the whole split at once.
    """
    model_views = getattr(model, "views", None)
    if model_views is None:
        raise TypeError(f"model must be a dagr.models.MultiViewNet, got {type(model).__name__}")
    absent = [view for view in model_views if view not in split.features]
    if absent:
        raise ValueError(f"split lacks view(s) {absent} that the model needs")
    features = {view: split.features[view] for view in model_views}
    x = corrupt(features, views, kind, level, seed=seed, scales=scales)
    was_training = model.training
    model.eval()
    logits, _ = model(x)
    model.train(was_training)
    return float((logits.argmax(dim=1) == split.labels).double().mean())


def degradation_curve(model, split: MultiViewSplit, view: str, kind: str, levels: Sequence[float],
                      seed: int = 0, scales: Mapping[str, float] | None = None) -> list[float]:
    """Return the accuracy at each level of ``levels``, corrupting one view.

    Every level uses the same ``seed``, so the random draws are shared: the samples or
    features removed at a lower ``p`` or ``rho`` are a subset of those removed at a
    higher one, and the noise at every ``sigma`` is one draw scaled.
    """
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or len(levels) == 0:
        raise ValueError(f"levels must be a non-empty sequence of numbers, got {levels!r}")
    return [corrupted_accuracy(model, split, view, kind, level, seed=seed, scales=scales) for level in levels]


def robustness_sweep(models: Mapping, split: MultiViewSplit, levels: Mapping[str, Sequence[float]],
                     scales: Mapping[str, float], seed: int = 0) -> list[dict]:
    """Measure degradation curves of many models: every view, every kind, every level.

    Args:
        models: dict ``(setting, method, training_seed) -> (model, result)``, as
            :func:`dagr.checkpoints.load_models` returns it.
        split: the test split (it may hold more views than a model uses).
        levels: kind -> levels, for example ``{"missing": [0, 0.5, 1]}``.
        scales: view -> noise scale (:func:`view_scales` of the training split).
        seed: corruption seed, the same for every curve, so baseline and DAGR see
            the same corrupted samples.

    Returns:
        One dict per point with keys ``setting``, ``method``, ``seed``, ``view``,
        ``kind``, ``level`` and ``accuracy``, ready for ``pandas.DataFrame``.
    """
    unknown = [kind for kind in levels if kind not in KINDS]
    if unknown:
        raise ValueError(f"levels has unknown corruption kind(s) {unknown}; valid kinds are {KINDS}")
    rows = []
    for (setting, method, training_seed), (model, _) in models.items():
        for view in model.views:
            for kind, kind_levels in levels.items():
                curve = degradation_curve(model, split, view, kind, list(kind_levels), seed=seed, scales=scales)
                for level, accuracy in zip(kind_levels, curve):
                    rows.append(dict(setting=setting, method=method, seed=training_seed, view=view,
                                     kind=kind, level=float(level), accuracy=accuracy))
    return rows
