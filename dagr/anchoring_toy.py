"""Toys on the sphere for the anchoring chapter (Theorem 3.3, corollaries A.1 and A.2).

In the toy each sample i has one target direction per modality, a_i^m, and
the non-anchoring objective is a task-like pull towards the targets::

    L~({z^m}) = mean_i sum_m -<z~_i^m, a_i^m>

Untied, every modality sits on its own target and L~ = -M. Tied
(z^1 = ... = z^M = z), the best z is the normalized sum of the targets and
L~ = -||sum_m a_i^m||. The irreducible gap of eq. 26 is therefore exact::

    delta = mean_i ( M - ||sum_m a_i^m|| )

:func:`two_modality_toy` minimizes ``L~ + lambda_a * L_a`` numerically and
returns the measured drift next to the bounds of eq. 27 and eq. 33.
:func:`coupling_flow` compares the bounded anchoring with always-on
alignment and InfoNCE (eq. 48) under plain gradient flow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import geometry
from .checks import check_number
from .regularizer import DAGR, anchoring_loss
from .sphere import DTYPE, sample_uniform, sphere_flow, tangent_projection

COUPLINGS = ("anchoring", "alignment", "infonce")


def rotate_towards(a: torch.Tensor, angles: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return unit rows at angle ``angles[i]`` from ``a[i]``, each in a random direction."""
    direction = torch.randn(a.shape, generator=generator, dtype=DTYPE)
    direction = F.normalize(tangent_projection(a, direction), dim=1)
    return torch.cos(angles)[:, None] * a + torch.sin(angles)[:, None] * direction


def make_targets(n: int, d: int, angles, n_modalities: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """Draw per-modality targets: a_i^1 uniform on S^(d-1), the others at ``angles`` from it.

    ``angles`` is a scalar or a length-``n`` tensor of angles in radians. Each
    further modality gets its own random direction, so for M = 3 the three
    targets are not on one great circle.
    """
    generator = torch.Generator().manual_seed(seed)
    angles = torch.as_tensor(angles, dtype=DTYPE).expand(n).clone()
    first = sample_uniform(n, d, generator)
    return [first] + [rotate_towards(first, angles, generator) for _ in range(n_modalities - 1)]


def task_objective(zs, targets) -> torch.Tensor:
    """L~ = mean_i sum_m -<z~_i^m, a_i^m>, the task-like pull of the toy."""
    return -sum((F.normalize(z, dim=1) * a).sum(dim=1).mean() for z, a in zip(zs, targets))


def irreducible_gap(targets) -> float:
    """Return the exact gap delta = mean_i (M - ||sum_m a_i^m||) of eq. 26 for the toy."""
    return float((len(targets) - torch.stack(list(targets)).sum(dim=0).norm(dim=1)).mean())


def minimize_toy(targets, lambda_a: float, tau: float, max_iter: int = 200) -> list[torch.Tensor]:
    """Minimize L~ + lambda_a * L_a over the unit rows, starting from the untied optimum.

    L-BFGS runs on unconstrained rows that are normalized inside the
    objective, so its iterates always describe points on the sphere.
    """
    raw = [a.clone().requires_grad_(True) for a in targets]
    optimizer = torch.optim.LBFGS(raw, lr=1.0, max_iter=max_iter, tolerance_grad=1e-12,
                                  tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = task_objective(raw, targets) + lambda_a * anchoring_loss(raw, tau)
        loss.backward()
        return loss

    optimizer.step(closure)
    return [F.normalize(z.detach(), dim=1) for z in raw]


def drift_bound_check(zs, delta: float, lambda_a: float, tau: float) -> dict:
    """Measure the drift of ``zs`` against the bounds of Theorem 3.3 and corollaries A.1, A.2.

    ``excess`` is the anchoring loss (mean over samples and modality pairs of
    (||z~^m - z~^n|| - tau)_+^2), bounded by delta / lambda_a (eq. 27);
    ``mean_sq`` is the mean squared paired distance, bounded by
    2 tau^2 + 2 delta / lambda_a (eq. 33, and its pair average for M > 2).
    ``holds`` is true when both bounds hold.
    """
    lambda_a = check_number("lambda_a", lambda_a, positive=True)
    delta = check_number("delta", delta, nonnegative=True)
    tau = check_number("tau", tau, nonnegative=True)
    excess = float(anchoring_loss(zs, tau))
    normalized = [F.normalize(z, dim=1) for z in zs]
    pairs = [(m, n) for m in range(len(zs)) for n in range(m + 1, len(zs))]
    mean_sq = float(torch.stack([(normalized[m] - normalized[n]).pow(2).sum(dim=1).mean() for m, n in pairs]).mean())
    bound_excess = delta / lambda_a
    bound_sq = 2 * tau**2 + 2 * delta / lambda_a
    return {"excess": excess, "bound_excess": bound_excess, "mean_sq": mean_sq, "bound_sq": bound_sq,
            "holds": excess <= bound_excess and mean_sq <= bound_sq}


def two_modality_toy(lambda_a: float, tau: float, n: int = 64, d: int = 3, max_angle: float = 1.2,
                     n_modalities: int = 2, seed: int = 0, delta_scale: float = 1.0) -> dict:
    """Minimize the toy for one (lambda_a, tau) and check it against the drift bounds.

    The angle between the targets of sample i is drawn uniformly from
    [0.2, ``max_angle``] radians, so samples have different gaps.
    ``delta_scale`` multiplies the exact gap before the check (values < 1
    make the bound deliberately too small, which the tests use). Returns the
    fields of :func:`drift_bound_check` plus ``delta``, ``lambda_a``, ``tau``,
    ``grad_norm`` (the largest Riemannian gradient row norm at the solution)
    and ``zs``.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    angles = 0.2 + (max_angle - 0.2) * torch.rand(n, generator=generator, dtype=DTYPE)
    targets = make_targets(n, d, angles, n_modalities, seed)
    delta = irreducible_gap(targets)
    zs = minimize_toy(targets, lambda_a, tau)
    leaves = [z.clone().requires_grad_(True) for z in zs]
    loss = task_objective(leaves, targets) + lambda_a * anchoring_loss(leaves, tau)
    grads = torch.autograd.grad(loss, leaves)
    grad_norm = max(float(tangent_projection(z, g).norm(dim=1).max()) for z, g in zip(zs, grads)) * n
    result = drift_bound_check(zs, delta * delta_scale, lambda_a, tau)
    result.update({"delta": delta, "lambda_a": lambda_a, "tau": tau, "grad_norm": grad_norm, "zs": zs})
    return result


def exact_pair_minimum(theta: float, lambda_a: float, tau: float, grid: int = 20001) -> float:
    """Return the paired distance at the minimizer of one toy sample, by a 1-D search.

    By symmetry both points move towards each other along the great circle
    through the two targets by the same angle e, which leaves the distance
    2 sin((theta - 2e) / 2) and the cost -2 cos(e) + lambda_a (distance - tau)_+^2.
    """
    e = torch.linspace(0.0, theta / 2, grid, dtype=DTYPE)
    distance = 2 * torch.sin((theta - 2 * e) / 2)
    cost = -2 * torch.cos(e) + lambda_a * (distance - tau).clamp_min(0).pow(2)
    return float(distance[int(cost.argmin())])


def infonce_loss(z_m: torch.Tensor, z_n: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE of eq. 48: -mean_i log softmax_j(cos(z_i^m, z_j^n) / temperature) at j = i."""
    logits = F.normalize(z_m, dim=1) @ F.normalize(z_n, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(z_m.shape[0]))


def coupling_loss(coupling: str, z_m: torch.Tensor, z_n: torch.Tensor, tau: float = 0.0,
                  temperature: float = 0.1) -> torch.Tensor:
    """One cross-modal coupling term: bounded anchoring (eq. 7), always-on alignment or InfoNCE."""
    if coupling == "anchoring":
        return anchoring_loss([z_m, z_n], tau)
    if coupling == "alignment":
        return (F.normalize(z_m, dim=1) - F.normalize(z_n, dim=1)).pow(2).sum(dim=1).mean()
    if coupling == "infonce":
        return infonce_loss(z_m, z_n, temperature)
    raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")


def coupling_flow(coupling: str, tau: float = 0.5, n: int = 64, d: int = 3, angle: float = math.pi / 3,
                  steps: int = 300, lr: float = 0.5, record_every: int = 10, seed: int = 0) -> list[dict]:
    """Run gradient flow of one coupling term alone on paired particles and record their distance.

    The pairs start ``angle`` radians apart (distance 2 sin(angle / 2), 1.0
    for the default). Returns rows with ``step``, ``loss``, ``mean_distance``
    and ``min_distance``.
    """
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
    z_m, z_n = make_targets(n, d, angle, 2, seed)

    def loss_fn(z):
        return coupling_loss(coupling, z[:n], z[n:], tau)

    def record(z):
        distance = (z[:n] - z[n:]).norm(dim=1)
        return {"mean_distance": float(distance.mean()), "min_distance": float(distance.min())}

    _, history = sphere_flow(torch.cat([z_m, z_n]), loss_fn, steps, lr * n, record, record_every)
    return history


def rotation_about(axis, angle: float) -> torch.Tensor:
    """Return the 3 x 3 rotation by ``angle`` radians about ``axis`` (Rodrigues' formula)."""
    k = F.normalize(torch.as_tensor(axis, dtype=DTYPE), dim=0)
    cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=DTYPE)
    return torch.eye(3, dtype=DTYPE) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def simulate_dagr(lambda_d: float, lambda_a: float, tau: float = 0.0, t: float = 2.0,
                  n_per_class: int = 20, n_classes: int = 3, gap_angle: float = 0.8,
                  steps: int = 150, lr: float = 0.05, seed: int = 0) -> dict:
    """Move two modalities' particles on S^2 under a task pull plus the DAGR loss.

    Sample i of class c is pulled towards e_c in modality a and towards e_c
    rotated by ``gap_angle`` about (1, 1, 1) in modality b, which models a
    modality gap. The DAGR term is ``dagr.DAGR(lambda_d, lambda_a, t, tau)``.
    Both start uniform and independent. Returns the final particles
    ``z_a``, ``z_b``, the labels ``y``, the mean ``effective_rank`` of the
    two modalities and the cross-modal ``drift`` (eq. 45).
    """
    generator = torch.Generator().manual_seed(seed)
    n = n_per_class * n_classes
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    centres = torch.eye(3, dtype=DTYPE)[torch.arange(n_classes) % 3]
    targets_a = centres[y]
    targets_b = targets_a @ rotation_about([1.0, 1.0, 1.0], gap_angle).T
    regularizer = DAGR(lambda_d=lambda_d, lambda_a=lambda_a, t=t, tau=tau)

    def loss_fn(z):
        task = -((z[:n] * targets_a).sum(dim=1).mean() + (z[n:] * targets_b).sum(dim=1).mean())
        return task + regularizer([z[:n], z[n:]]).loss

    z0 = torch.cat([sample_uniform(n, 3, generator), sample_uniform(n, 3, generator)])
    z, _ = sphere_flow(z0, loss_fn, steps, lr * n)
    z_a, z_b = z[:n], z[n:]
    return {
        "z_a": z_a, "z_b": z_b, "y": y,
        "effective_rank": (geometry.effective_rank(z_a) + geometry.effective_rank(z_b)) / 2,
        "drift": geometry.cross_modal_drift([z_a, z_b]),
    }
