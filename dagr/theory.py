"""Numerical checks of the paper's claims on toy data (Part I of the book).

Each function measures one number that a claim predicts, so a chapter can
``assert`` on it and a test can show that the check fails when the claim
is broken on purpose:

* Proposition 3.1: :func:`null_space_rotation`, :func:`max_logit_change`;
* Theorem 3.2, part C: :func:`expected_kernel`, :func:`second_order_expansion`,
  :func:`expansion_error`, :func:`loglog_slope`;
* Lemma A.3, eqs. 36-38: :data:`POTENTIALS`, :func:`pairwise_objective`,
  :func:`repulsive_sum`, :func:`repulsion_check`;
* eqs. 10-11: :func:`brute_force_alpha`, :func:`alpha_gap`.

Equation numbers are those of Xia et al., arXiv 2601.21670. The anchoring
toys of Theorem 3.3 live in :mod:`dagr.anchoring_toy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F

from . import geometry
from .dispersion import dispersion_loss
from .models import MLPEncoder
from .pareto import min_norm_alpha
from .regularizer import DAGR, anchoring_loss
from .sphere import DTYPE, random_rotation, sample_subspace, sample_uniform, sample_vmf


def _matrix(fn: str, name: str, value, ndim: int = 2) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{fn}: {name} must be a floating-point torch.Tensor, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D, got shape {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{fn}: {name} contains NaN or inf values")
    return value.to(DTYPE)


# --- Proposition 3.1: the task head cannot see its null space -------------------------------

def null_space_basis(W: torch.Tensor) -> torch.Tensor:
    """Return an orthonormal basis (d, d - rank W) of the null space of the (C, d) head ``W``."""
    W = _matrix("null_space_basis", "W", W)
    _, s, vh = torch.linalg.svd(W, full_matrices=True)
    rank = int((s > s.max() * max(W.shape) * torch.finfo(DTYPE).eps).sum()) if s.numel() else 0
    return vh[rank:].T


def null_space_rotation(W: torch.Tensor, z: torch.Tensor, seed: int = 0,
                        target: torch.Tensor | None = None) -> torch.Tensor:
    """Apply one orthogonal map per sample that moves only the part of z_i in null(W).

    Every map keeps W z_i, so every logit, and keeps ||z_i||. With ``target``
    None each null-space part is rotated by its own Haar-random rotation of
    the null space (drawn from ``seed``). With a ``target`` direction each
    part is reflected onto that direction (a Householder reflection, also
    orthogonal), which collapses the null-space geometry to one line.
    """
    fn = "null_space_rotation"
    W = _matrix(fn, "W", W)
    z = _matrix(fn, "z", z)
    if z.shape[1] != W.shape[1]:
        raise ValueError(f"{fn}: z has {z.shape[1]} features but W expects {W.shape[1]}")
    basis = null_space_basis(W)
    if basis.shape[1] == 0:
        raise ValueError(f"{fn}: W of shape {tuple(W.shape)} has full column rank, so its null space is empty")
    coords = z @ basis
    if target is None:
        generator = torch.Generator().manual_seed(seed)
        moved = torch.stack([random_rotation(basis.shape[1], generator) @ row for row in coords])
    else:
        target = _matrix(fn, "target", target, ndim=1)
        direction = basis.T @ target
        if float(direction.norm()) < 1e-12:
            raise ValueError(f"{fn}: target has no component in the null space of W")
        moved = coords.norm(dim=1, keepdim=True) * (direction / direction.norm())
    return z + (moved - coords) @ basis.T


def max_logit_change(W: torch.Tensor, z: torch.Tensor, z_new: torch.Tensor) -> float:
    """Return max_i,c |(W z_new)_ic - (W z)_ic|."""
    W = _matrix("max_logit_change", "W", W)
    change = _matrix("max_logit_change", "z_new", z_new) - _matrix("max_logit_change", "z", z)
    return float((change @ W.T).abs().max())


def linear_head_toy(n_per_class: int = 40, d: int = 8, n_classes: int = 3, noise: float = 0.3,
                    modality_noise: float = 0.1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Build a labelled two-modality toy and a linear head that classifies it perfectly.

    Class c sits around the unit vector e_c plus Gaussian noise in every
    coordinate, so the classes also differ in the null space of the head
    ``W = 5 * [e_0; ...; e_{C-1}]``. Modality b is modality a plus small noise.
    Returns ``dict(W, y, z_a, z_b)`` with unit rows.
    """
    if n_classes >= d:
        raise ValueError(f"linear_head_toy: n_classes must be < d so W has a null space, got {n_classes} and d={d}")
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    centres = torch.eye(d, dtype=DTYPE)[:n_classes]
    # A per-class offset in the null space gives the classes structure that W cannot see.
    offsets = torch.zeros(n_classes, d, dtype=DTYPE)
    offsets[:, n_classes:] = torch.randn(n_classes, d - n_classes, generator=generator, dtype=DTYPE)
    raw = centres[y] + 0.6 * offsets[y] + noise * torch.randn(len(y), d, generator=generator, dtype=DTYPE)
    z_a = F.normalize(raw, dim=1)
    z_b = F.normalize(z_a + modality_noise * torch.randn(len(y), d, generator=generator, dtype=DTYPE), dim=1)
    return {"W": 5.0 * centres, "y": y, "z_a": z_a, "z_b": z_b}


# --- Theorem 3.2: dispersion, Renyi-2 entropy and tr(Sigma^2) -------------------------------

def expected_kernel(z: torch.Tensor, t: float) -> float:
    """Return E[exp(-t ||z - z'||^2)] for z, z' drawn independently from the rows of ``z``.

    The average runs over all B^2 ordered pairs, i = j included, so it is the
    exact expectation under the empirical distribution of the rows.
    """
    z = _matrix("expected_kernel", "z", z)
    return float(torch.exp(-t * torch.cdist(z, z).pow(2)).mean())


def second_order_expansion(z: torch.Tensor, t: float) -> float:
    """Return exp(-2t) (1 + 2t^2 tr(Sigma^2)) with Sigma = E[z z^T] (Theorem 3.2, part C)."""
    z = _matrix("second_order_expansion", "z", z)
    sigma = z.T @ z / z.shape[0]
    return math.exp(-2 * t) * (1 + 2 * t**2 * float((sigma * sigma).sum()))


def expansion_error(z: torch.Tensor, ts: Sequence[float]) -> np.ndarray:
    """Return |expected_kernel - second_order_expansion| at every ``t`` in ``ts``."""
    return np.array([abs(expected_kernel(z, t) - second_order_expansion(z, t)) for t in ts])


def loglog_slope(x, y) -> float:
    """Return the least-squares slope of log y against log x (the exponent of a power law)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2 or (x <= 0).any() or (y <= 0).any():
        raise ValueError(f"loglog_slope needs two equal-length arrays of >= 2 positive values, got {x} and {y}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def sample_family(kind: str, value, n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """Draw from one toy family: ``"vmf"`` (value = kappa), ``"subspace"`` (value = k) or ``"uniform"``."""
    if kind == "vmf":
        return sample_vmf(n, d, value, generator)
    if kind == "subspace":
        return sample_subspace(n, d, value, generator, rotate=True)
    if kind == "uniform":
        return sample_uniform(n, d, generator)
    raise ValueError(f"sample_family: kind must be 'vmf', 'subspace' or 'uniform', got {kind!r}")


def family_geometry(kind: str, values: Sequence, n: int, d: int, t: float = 2.0,
                    t_entropy: float = 10.0, seed: int = 0) -> list[dict]:
    """Measure dispersion loss, effective rank and a Renyi-2 estimate along one family.

    For every value two independent samples are drawn: the dispersion loss
    (eq. 6, scale ``t``) and the ranks come from the first, and the Renyi-2
    estimate from the second with a narrower kernel ``t_entropy``. The two
    numbers are thus not the same statistic of the same points.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for value in values:
        z = sample_family(kind, value, n, d, generator)
        z_other = sample_family(kind, value, n, d, generator)
        rows.append({
            "family": kind,
            "value": value,
            "dispersion": float(dispersion_loss(z, t)),
            "effective_rank": geometry.effective_rank(z),
            "participation_rank": geometry.participation_rank(z),
            "renyi2": geometry.renyi2_entropy(z_other, t=t_entropy),
        })
    return rows


def trend_violation(values: Sequence[float], increasing: bool) -> float:
    """Return the largest step against the expected direction (0.0 for a monotone sequence)."""
    steps = np.diff(np.asarray(values, dtype=float))
    against = -steps if increasing else steps
    return float(max(against.max(initial=0.0), 0.0))


# --- Lemma A.3: any non-increasing pairwise potential repels ---------------------------------

@dataclass(frozen=True)
class Potential:
    """A pairwise potential psi(s) of the squared distance s and its derivative psi'(s)."""

    name: str
    psi: Callable[[torch.Tensor], torch.Tensor]
    dpsi: Callable[[torch.Tensor], torch.Tensor]


def rbf_potential(t: float = 2.0) -> Potential:
    """psi(s) = exp(-t s), the RBF kernel of eq. 6."""
    return Potential(f"RBF (t={t})", lambda s: torch.exp(-t * s), lambda s: -t * torch.exp(-t * s))


def riesz_potential(p: float = 1.0, eps: float = 1e-3) -> Potential:
    """psi(s) = (s + eps)^(-p/2), the Riesz p-energy of the distance, softened by ``eps``."""
    return Potential(f"Riesz (p={p})", lambda s: (s + eps) ** (-p / 2),
                     lambda s: -(p / 2) * (s + eps) ** (-p / 2 - 1))


def log_potential(eps: float = 1e-3) -> Potential:
    """psi(s) = -log(s + eps), the logarithmic energy (half of -log of the distance squared)."""
    return Potential("logarithmic", lambda s: -torch.log(s + eps), lambda s: -1.0 / (s + eps))


POTENTIALS = {"rbf": rbf_potential(), "riesz": riesz_potential(), "log": log_potential()}


def _squared_distances(z: torch.Tensor) -> torch.Tensor:
    difference = z[:, None, :] - z[None, :, :]
    return (difference * difference).sum(dim=-1)


def pairwise_objective(z: torch.Tensor, potential: Potential) -> torch.Tensor:
    """Eq. 36: 1/(B(B-1)) sum_{i != j} psi(||z_i - z_j||^2), differentiable in ``z``."""
    batch = z.shape[0]
    off = ~torch.eye(batch, dtype=torch.bool)
    return potential.psi(_squared_distances(z)[off]).sum() / (batch * (batch - 1))


def repulsive_sum(z: torch.Tensor, potential: Potential) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 37 in closed form: the gradient of eq. 36 and the weights w_ij = -psi'(d_ij) of eq. 38.

    Returns ``(grad, weights)`` with grad_i = prefactor * sum_{j != i} psi'(d_ij)(z_i - z_j).
    The exact prefactor is 4/(B(B-1)), because the ordered sum of eq. 36
    contains both psi(d_ij) and psi(d_ji) and each contributes
    2 psi'(d_ij)(z_i - z_j). Eq. 37 as printed has 2/(B(B-1)), which holds for
    a sum over unordered pairs; the factor does not change the sign of any weight.
    """
    return _repulsive_sum(z, potential, 4.0)


def _repulsive_sum(z: torch.Tensor, potential: Potential, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    batch = z.shape[0]
    weights = -potential.dpsi(_squared_distances(z))
    weights = weights.masked_fill(torch.eye(batch, dtype=torch.bool), 0.0)
    grad = -(factor / (batch * (batch - 1))) * (weights.sum(dim=1, keepdim=True) * z - weights @ z)
    return grad, weights


def repulsive_sum_as_printed(z: torch.Tensor, potential: Potential) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 37 with the printed prefactor 2/(B(B-1)): half the gradient of the ordered sum of eq. 36."""
    return _repulsive_sum(z, potential, 2.0)


def repulsion_check(z: torch.Tensor, potential: Potential, closed_form=None, n_rows: int = 5) -> dict:
    """Compare the autograd gradient of eq. 36 with eq. 37 and test eq. 38 independently.

    ``closed_form(z, potential) -> (grad, weights)`` defaults to
    :func:`repulsive_sum`. Returns ``max_abs_error`` (autograd vs closed form),
    ``min_weight`` (eq. 38 requires >= 0) and ``nnls_residual``: for the first
    ``n_rows`` rows, the relative residual of the best non-negative
    combination of the vectors z_i - z_j that reproduces -grad_i, found by
    non-negative least squares without using psi'. That residual is
    informative only when B - 1 < d: with more points than dimensions the
    vectors z_i - z_j usually span every direction with non-negative weights.
    """
    z = _matrix("repulsion_check", "z", z)
    leaf = z.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(pairwise_objective(leaf, potential), leaf)
    grad, weights = (closed_form or repulsive_sum)(z, potential)
    off = ~torch.eye(z.shape[0], dtype=torch.bool)
    residuals = []
    for i in range(min(n_rows, z.shape[0])):
        directions = (z[i] - z[torch.arange(z.shape[0]) != i]).T.numpy()
        target = -autograd[i].numpy()
        _, residual = scipy.optimize.nnls(directions, target)
        residuals.append(residual / max(np.linalg.norm(target), 1e-300))
    return {
        "max_abs_error": float((autograd - grad).abs().max()),
        "min_weight": float(weights[off].min()),
        "nnls_residual": float(max(residuals)),
    }


# --- Eqs. 10-11: the min-norm weight, by brute force -----------------------------------------

def _combined_norm2(alpha: float, g_a: np.ndarray, g_d: np.ndarray) -> float:
    combined = alpha * g_a + (1 - alpha) * g_d
    return float(combined @ combined)


def brute_force_alpha(g_a, g_d, grid: int = 2001) -> float:
    """Minimize ||alpha g_a + (1 - alpha) g_d||^2 over [0, 1] numerically (eq. 10).

    A grid of ``grid`` points brackets the minimum, then a bounded scalar
    search refines it to about 1e-12 on the neighbouring grid cells.
    """
    g_a = np.asarray(torch.as_tensor(g_a, dtype=DTYPE).reshape(-1))
    g_d = np.asarray(torch.as_tensor(g_d, dtype=DTYPE).reshape(-1))
    alphas = np.linspace(0.0, 1.0, grid)
    values = [_combined_norm2(a, g_a, g_d) for a in alphas]
    best = int(np.argmin(values))
    low, high = alphas[max(best - 1, 0)], alphas[min(best + 1, grid - 1)]
    result = scipy.optimize.minimize_scalar(_combined_norm2, bounds=(low, high), args=(g_a, g_d),
                                            method="bounded", options={"xatol": 1e-12})
    return float(result.x) if result.fun <= values[best] else float(alphas[best])


def alpha_gap(g_a, g_d, alpha: float, min_curvature: float = 1e-2) -> dict:
    """Compare ``alpha`` with :func:`brute_force_alpha` on one gradient pair.

    Returns ``objective_gap``: the excess of ||alpha g_a + (1 - alpha) g_d||^2
    over the brute-force minimum, relative to s = max(||g_a||^2, ||g_d||^2); and
    ``alpha_error``: |alpha - brute force|. The error is NaN when the
    curvature ||g_a - g_d||^2 is below ``min_curvature * s``, because round-off
    of about eps * s in the objective then moves the numerical minimizer by
    about sqrt(eps * s / curvature), and every alpha is nearly optimal anyway.
    """
    a = np.asarray(torch.as_tensor(g_a, dtype=DTYPE).reshape(-1))
    d = np.asarray(torch.as_tensor(g_d, dtype=DTYPE).reshape(-1))
    brute = brute_force_alpha(a, d)
    scale = max(float(a @ a), float(d @ d), 1e-300)
    gap = (_combined_norm2(float(alpha), a, d) - _combined_norm2(brute, a, d)) / scale
    curvature = float((a - d) @ (a - d)) / scale
    error = abs(float(alpha) - brute) if curvature > min_curvature else float("nan")
    return {"objective_gap": gap, "alpha_error": error, "alpha_brute": brute}


def pareto_alpha_trace(features: dict, labels: torch.Tensor, steps: int = 50, batch_size: int = 128,
                       beta: float = 0.1, tau: float = 0.0, dim: int = 32, lr: float = 1e-3,
                       seed: int = 0) -> list[dict]:
    """Train small per-modality encoders with Pareto DAGR and record both kinds of alpha.

    Every modality gets a :class:`dagr.models.MLPEncoder` and its own linear
    head (the decoupled objective of Proposition 3.1). Each step applies
    ``DAGR(beta, tau, pareto="params")``, whose alpha_m comes from gradients
    with respect to the encoder parameters, and computes on the same batch
    the feature-level alpha_m from gradients with respect to the embedding.
    Features are standardized here. Returns one row per step and modality
    with ``alpha_params`` and ``alpha_features``.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    names = list(features)
    inputs = {}
    for name in names:
        x = features[name].to(torch.float32)
        inputs[name] = (x - x.mean(dim=0)) / x.std(dim=0).clamp_min(1e-6)
    n_classes = int(labels.max()) + 1
    encoders = torch.nn.ModuleDict({name: MLPEncoder(inputs[name].shape[1], dim=dim) for name in names})
    heads = torch.nn.ModuleDict({name: torch.nn.Linear(dim, n_classes) for name in names})
    optimizer = torch.optim.Adam([*encoders.parameters(), *heads.parameters()], lr=lr)
    regularizer = DAGR(beta=beta, tau=tau, pareto="params")
    rows = []
    for step in range(steps):
        index = torch.randperm(len(labels), generator=generator)[:batch_size]
        zs = {name: encoders[name](inputs[name][index]) for name in names}
        task = sum(F.cross_entropy(heads[name](zs[name]), labels[index]) for name in names)
        out = regularizer(zs, params=encoders)

        leaves = {name: z.detach().requires_grad_(True) for name, z in zs.items()}
        grads_a = torch.autograd.grad(anchoring_loss(leaves, tau), list(leaves.values()))
        for name, grad_a in zip(names, grads_a):
            (grad_d,) = torch.autograd.grad(dispersion_loss(leaves[name]), leaves[name])
            rows.append({"step": step, "modality": name, "alpha_params": float(out.alpha[name]),
                         "alpha_features": float(min_norm_alpha(grad_a, grad_d))})

        optimizer.zero_grad()
        (task + out.loss).backward()
        optimizer.step()
    return rows
