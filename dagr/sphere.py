"""Samplers and particle gradient flows on the unit sphere S^(d-1) in R^d.

The toy chapters of the book draw embeddings from three families whose
geometry is known in advance:

* :func:`sample_vmf`, the von Mises-Fisher distribution, concentrated around a
  mean direction with concentration ``kappa`` (``kappa = 0`` is uniform);
* :func:`sample_subspace`, uniform on the great sphere of a rank-``k``
  subspace, a model of dimensional collapse;
* :func:`sample_uniform`, uniform on the whole sphere.

:func:`sphere_flow` moves particles along the Riemannian gradient of a loss,
that is the Euclidean gradient projected on the tangent space, and puts them
back on the sphere after every step.

All samplers return float64 tensors of shape ``(n, d)`` with unit rows and
take a ``torch.Generator`` so an experiment is reproducible from one seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real

import torch

from .checks import check_embedding

DTYPE = torch.float64


def _check_int(fn: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(fn: str, name: str, value, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{fn}: {name} must be a finite number >= {minimum}, got {value}")
    return value


def _check_generator(fn: str, generator) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{fn}: generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def sample_uniform(n: int, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` points uniformly from S^(d-1) by normalizing standard Gaussians."""
    n = _check_int("sample_uniform", "n", n, 1)
    d = _check_int("sample_uniform", "d", d, 1)
    _check_generator("sample_uniform", generator)
    gaussian = torch.randn(n, d, generator=generator, dtype=DTYPE)
    return gaussian / gaussian.norm(dim=1, keepdim=True)


def random_rotation(d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw a Haar-distributed orthogonal ``(d, d)`` matrix (QR of a Gaussian, signs fixed)."""
    d = _check_int("random_rotation", "d", d, 1)
    _check_generator("random_rotation", generator)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=DTYPE))
    # Multiplying column j by sign(R_jj) makes the distribution exactly Haar.
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return q * signs


def sample_subspace(n: int, d: int, k: int, generator: torch.Generator | None = None,
                    rotate: bool = False) -> torch.Tensor:
    """Draw ``n`` points uniformly from the unit sphere of a ``k``-dimensional subspace of R^d.

    The subspace is spanned by the first ``k`` coordinate axes, or by ``k``
    random orthonormal directions when ``rotate`` is true. ``k = d`` is the
    uniform distribution on S^(d-1); ``k = 1`` puts every point at one of two
    antipodes.
    """
    d = _check_int("sample_subspace", "d", d, 1)
    k = _check_int("sample_subspace", "k", k, 1)
    if k > d:
        raise ValueError(f"sample_subspace: k must be <= d = {d}, got {k}")
    points = torch.zeros(_check_int("sample_subspace", "n", n, 1), d, dtype=DTYPE)
    points[:, :k] = sample_uniform(n, k, generator)
    if rotate:
        points = points @ random_rotation(d, generator).T
    return points


def _wood_cosines(n: int, d: int, kappa: float, generator) -> torch.Tensor:
    """Draw w = <x, mu> for a vMF sample by Wood's rejection sampler."""
    b = (d - 1) / (2 * kappa + math.sqrt(4 * kappa**2 + (d - 1) ** 2))
    x0 = (1 - b) / (1 + b)
    c = kappa * x0 + (d - 1) * math.log(1 - x0**2)
    accepted: list[torch.Tensor] = []
    count = 0
    while count < n:
        size = max(2 * (n - count), 16)
        # Beta((d-1)/2, (d-1)/2) as X / (X + Y) with X, Y chi-squared with d - 1 degrees of freedom.
        chi_x = torch.randn(size, d - 1, generator=generator, dtype=DTYPE).pow(2).sum(dim=1)
        chi_y = torch.randn(size, d - 1, generator=generator, dtype=DTYPE).pow(2).sum(dim=1)
        eps = chi_x / (chi_x + chi_y)
        w = (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
        u = torch.rand(size, generator=generator, dtype=DTYPE)
        keep = kappa * w + (d - 1) * torch.log(1 - x0 * w) - c >= torch.log(u)
        accepted.append(w[keep])
        count += int(keep.sum())
    return torch.cat(accepted)[:n]


def sample_vmf(n: int, mu, kappa: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` points from the von Mises-Fisher distribution vMF(mu, kappa) on S^(d-1).

    Wood's algorithm draws the cosine w = <x, mu> by rejection, then places
    the point at angle arccos(w) from ``mu`` in a uniform random direction
    of the tangent space. ``mu`` is a length-``d`` vector (normalized here,
    d >= 2) or an int ``d`` for the mean direction e_1. ``kappa = 0`` gives
    the uniform distribution; the mean cosine grows towards 1 with ``kappa``.
    """
    fn = "sample_vmf"
    n = _check_int(fn, "n", n, 1)
    kappa = _check_real(fn, "kappa", kappa)
    _check_generator(fn, generator)
    if isinstance(mu, Integral) and not isinstance(mu, bool):
        d = _check_int(fn, "mu", mu, 2)
        mu = torch.zeros(d, dtype=DTYPE)
        mu[0] = 1.0
    elif isinstance(mu, torch.Tensor) and mu.dim() == 1 and mu.is_floating_point():
        if mu.numel() < 2 or not bool(torch.isfinite(mu).all()) or float(mu.norm()) == 0.0:
            raise ValueError(f"{fn}: mu must be a finite non-zero vector of length >= 2, got {mu.tolist()}")
        mu = mu.to(DTYPE) / mu.to(DTYPE).norm()
        d = mu.numel()
    else:
        raise TypeError(f"{fn}: mu must be an int dimension or a 1-D float tensor, got {mu!r}")
    if kappa == 0.0:
        return sample_uniform(n, d, generator)

    w = _wood_cosines(n, d, kappa, generator)
    # A uniform direction orthogonal to mu, then the point at cosine w from mu.
    v = torch.randn(n, d, generator=generator, dtype=DTYPE)
    v = v - (v @ mu)[:, None] * mu
    v = v / v.norm(dim=1, keepdim=True)
    points = w[:, None] * mu + torch.sqrt((1 - w**2).clamp_min(0))[:, None] * v
    return points / points.norm(dim=1, keepdim=True)


def sample_centered(n_simplices: int, d: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return ``n_simplices`` randomly rotated regular simplices, ``n_simplices * (d + 1)`` unit rows.

    Each simplex has mean zero, so the set is exactly centred, yet it is not
    symmetric under z -> -z, so its odd moments E[(z^T z')^3] do not vanish.
    """
    fn = "sample_centered"
    n_simplices = _check_int(fn, "n_simplices", n_simplices, 1)
    d = _check_int(fn, "d", d, 2)
    _check_generator(fn, generator)
    # The d + 1 vertices of a regular simplex: centred basis vectors of R^(d+1), in their d-dim span.
    corners = torch.eye(d + 1, dtype=DTYPE) - 1.0 / (d + 1)
    basis = torch.linalg.svd(corners, full_matrices=False).Vh[:d]
    simplex = corners @ basis.T
    simplex = simplex / simplex.norm(dim=1, keepdim=True)
    return torch.cat([simplex @ random_rotation(d, generator).T for _ in range(n_simplices)])


def tangent_projection(z: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Project Euclidean gradients onto the tangent spaces of the sphere at the unit rows ``z``."""
    return grad - (grad * z).sum(dim=1, keepdim=True) * z


def sphere_flow(z0: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], steps: int,
                lr: float = 0.1, record: Callable[[torch.Tensor], dict] | None = None,
                record_every: int = 1) -> tuple[torch.Tensor, list[dict]]:
    """Run Riemannian gradient descent of ``loss_fn`` for particles on the sphere.

    Each step takes the Euclidean gradient of ``loss_fn(z)`` at the unit rows
    ``z``, projects it on the tangent space, moves ``lr`` against it and
    renormalizes every row (the retraction back onto the sphere).

    Args:
        z0: (n, d) starting particles, normalized here.
        loss_fn: maps (n, d) unit rows to a scalar tensor.
        steps: number of steps, >= 0.
        lr: step size, > 0.
        record: optional function of the current particles returning a dict
            of numbers, stored with the step index and the loss every
            ``record_every`` steps and after the last step.

    Returns:
        ``(z, history)``: the final (n, d) particles and the recorded rows.
    """
    fn = "sphere_flow"
    check_embedding(z0, "z0", min_samples=1)
    steps = _check_int(fn, "steps", steps, 0)
    lr = _check_real(fn, "lr", lr)
    if lr == 0.0:
        raise ValueError(f"{fn}: lr must be > 0, got {lr}")
    record_every = _check_int(fn, "record_every", record_every, 1)
    z = z0.detach().to(DTYPE)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    history: list[dict] = []
    for step in range(steps + 1):
        leaf = z.clone().requires_grad_(True)
        loss = loss_fn(leaf)
        if record is not None and (step % record_every == 0 or step == steps):
            history.append({"step": step, "loss": float(loss.detach()), **record(z)})
        if step == steps:
            break
        (grad,) = torch.autograd.grad(loss, leaf)
        z = z - lr * tangent_projection(z, grad)
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return z, history


def lonlat(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return longitude and latitude in degrees of points on S^2, for flat maps of the sphere."""
    check_embedding(z, "z", min_samples=1)
    if z.shape[1] != 3:
        raise ValueError(f"lonlat needs points in R^3, got {z.shape[1]} coordinates")
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    longitude = torch.rad2deg(torch.atan2(z[:, 1], z[:, 0]))
    latitude = torch.rad2deg(torch.asin(z[:, 2].clamp(-1.0, 1.0)))
    return longitude, latitude
