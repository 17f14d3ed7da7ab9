"""Test-set embeddings of a trained model, their 2-D pictures and paired seed comparisons.

:func:`extract_embeddings` returns the L2-normalized embedding of every view and a
``"joint"`` embedding: the concatenation of the normalized per-view embeddings,
normalized again, so each view weighs the same in it. :func:`project` maps
embeddings to 2-D with PCA or t-SNE (scikit-learn, fixed ``random_state``), and
:func:`project_together` fits one projection on several views stacked, so paired
samples of different views share one coordinate system.

:func:`paired_difference` compares a metric of two methods trained with the same
seeds: mean and standard deviation of the per-seed differences and a paired t-test.

Usage::

    zs, y = extract_embeddings(model, data.test)      # zs["pixels"], zs["joint"]: (N, d) arrays
    xy = project(zs["joint"], "tsne", seed=0)         # (N, 2)
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Mapping, Sequence

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from .data import MultiViewSplit

METHODS = ("pca", "tsne")
JOINT = "joint"


@torch.no_grad()
def extract_embeddings(model, split: MultiViewSplit, batch_size: int = 1024) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Return ``(zs, labels)``: view -> normalized ``(N, d)`` float64 array, plus ``"joint"``, and the labels.

    The model runs in evaluation mode on the views it was built for, in ``batch_size`` chunks.
    """
    views = getattr(model, "views", None)
    if views is None or not hasattr(model, "encode"):
        raise TypeError(f"model must be a dagr.models.MultiViewNet, got {type(model).__name__}")
    if not isinstance(split, MultiViewSplit):
        raise TypeError(f"split must be a MultiViewSplit, got {type(split).__name__}")
    absent = [view for view in views if view not in split.features]
    if absent:
        raise ValueError(f"split lacks view(s) {absent} that the model needs. It has {list(split.features)}")

    was_training = model.training
    model.eval()
    parts = {view: [] for view in views}
    for x, _ in split.batches(batch_size):
        zs = model.encode({view: x[view] for view in views})
        for view in views:
            parts[view].append(zs[view])
    model.train(was_training)

    normalized = {view: F.normalize(torch.cat(chunks).double(), dim=1) for view, chunks in parts.items()}
    joint = F.normalize(torch.cat([normalized[view] for view in views], dim=1), dim=1)
    out = {view: z.numpy() for view, z in normalized.items()}
    out[JOINT] = joint.numpy()
    return out, split.labels.numpy().copy()


def _check_points(z, name: str = "z") -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, d) array, got shape {z.shape}")
    if z.shape[0] < 3:
        raise ValueError(f"{name} needs at least 3 samples for a 2-D projection, got {z.shape[0]}")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return z


def project(z, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """Project ``(N, d)`` embeddings to ``(N, 2)`` with PCA or t-SNE.

    t-SNE uses ``init="pca"`` and ``random_state=seed``; its perplexity is capped at
    ``(N - 1) / 3`` so small samples work. PCA is deterministic up to the sign of each
    axis, which scikit-learn fixes.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float)) or not perplexity > 0:
        raise ValueError(f"perplexity must be a positive number, got {perplexity!r}")
    z = _check_points(z)
    # A few hundred points gain nothing from BLAS or OpenMP threads, and on a busy
    # machine oversubscribed threads made t-SNE over 20 times slower, so run on one.
    with threadpool_limits(limits=1):
        if method == "pca":
            return PCA(n_components=2, random_state=int(seed)).fit_transform(z)
        perplexity = min(float(perplexity), (z.shape[0] - 1) / 3.0)
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=int(seed))
        return tsne.fit_transform(z)


def project_together(zs: Mapping[str, np.ndarray], views: Sequence[str], method: str = "pca",
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Fit one 2-D projection on the stacked embeddings of ``views`` and return view -> ``(N, 2)``.

    All views must have the same number of rows and the same dimension, so that row
    ``i`` of every view is the same sample.
    """
    if isinstance(views, str) or len(views) < 1:
        raise ValueError(f"views must be a non-empty list of view names, got {views!r}")
    arrays = []
    for view in views:
        if view not in zs:
            raise ValueError(f"unknown view {view!r}, the embeddings have views {list(zs)}")
        arrays.append(_check_points(zs[view], name=f"zs[{view!r}]"))
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1:
        raise ValueError(f"views {list(views)} must share one (N, d) shape, got {sorted(shapes)}")
    stacked = project(np.concatenate(arrays), method=method, seed=seed)
    n = arrays[0].shape[0]
    return {view: stacked[i * n:(i + 1) * n] for i, view in enumerate(views)}


def paired_difference(treated: Sequence[float], control: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Compare two methods run with the same seeds: ``treated[i] - control[i]`` per seed.

    Returns ``mean``, ``std`` (sample, ddof=1), ``n``, the two-sided paired t-test
    ``p_value`` (``scipy.stats.ttest_rel``; NaN when all differences are equal or
    n < 2) and ``significant``: whether ``p_value < alpha``. With three seeds a
    t-test has 2 degrees of freedom, so only large, consistent differences pass.
    """
    a = np.asarray(treated, dtype=np.float64)
    b = np.asarray(control, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"treated and control must be 1-D and of equal length, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("treated and control are empty. Pass one value per seed")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("treated and control must be finite numbers")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    diff = a - b
    std = float(diff.std(ddof=1)) if diff.size > 1 else math.nan
    if diff.size < 2 or np.allclose(diff, diff[0]):
        p_value = math.nan
    else:
        p_value = float(scipy.stats.ttest_rel(a, b).pvalue)
    return {
        "mean": float(diff.mean()),
        "std": std,
        "n": int(diff.size),
        "p_value": p_value,
        "significant": bool(p_value < alpha) if not math.isnan(p_value) else False,
    }


def describe_difference(name: str, result: Mapping[str, float], digits: int = 3) -> str:
    """Write one sentence on a :func:`paired_difference` result, for computed chapter text."""
    mean, std, p_value = result["mean"], result["std"], result["p_value"]
    if mean > 0:
        direction = "higher"
    elif mean < 0:
        direction = "lower"
    else:
        direction = "equal"
    spread = "" if math.isnan(std) else f" ± {std:.{digits}f}"
    if math.isnan(p_value):
        verdict = "no t-test possible (identical differences or a single seed)"
    elif result["significant"]:
        verdict = f"significant at the 5% level (paired t-test, p = {p_value:.3f})"
    else:
        verdict = f"not significant (paired t-test, p = {p_value:.3f})"
    return (f"{name}: DAGR minus baseline = {mean:+.{digits}f}{spread} over {result['n']} seeds "
            f"(DAGR {direction}), {verdict}.")
