"""Control regularizers that DAGR is compared against (table 8 of Xia et al., arXiv 2601.21670).

Each control is called like :class:`dagr.DAGR`, on the dict of per-view
embeddings, and returns a :class:`dagr.DAGROutput`. Its ``loss`` is the term to
add to the task loss. Its ``dispersion`` and ``anchoring`` are the DAGR
quantities measured on the same batch (``t=2``, ``tau=0``, detached), so that
training logs stay comparable across methods. ``alpha`` is ``None`` for every view.

* :class:`AlwaysOnAlignment`: ``weight * mean_{m<n} mean_i ||z~_i^m - z~_i^n||^2``. On unit
  vectors this equals ``2 - 2 cos``, so it is DAGR's anchoring term with ``tau = 0``
  and without dispersion: a pull that never switches off.
* :class:`VICRegStyle`: invariance (mean squared error between paired raw
  embeddings), variance (hinge on the per-dimension standard deviation) and
  covariance (squared off-diagonal covariances), after Bardes et al. (2022).
* :class:`BarlowTwinsStyle`: the cross-correlation of each view pair pushed
  toward the identity, after Zbontar et al. (2021).
* :class:`UnitSphereOnly`: no loss. The model L2-normalizes every embedding before
  the fusion head (see :func:`normalize_encoders`), which isolates the effect of the
  normalization that DAGR's terms apply internally.

Usage::

    reg = build_control({"name": "vicreg", "weight": 0.01})
    out = reg({"pixels": z_pix, "fourier": z_fou})
    (task_loss + out.loss).backward()
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_modalities, check_number
from .dispersion import dispersion_loss
from .regularizer import DAGROutput, anchoring_loss

CONTROLS = ("alignment", "vicreg", "barlow", "sphere")


def _measured_geometry(named: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Return the detached DAGR dispersion per view and anchoring (``t=2``, ``tau=0``) for logging."""
    with torch.no_grad():
        detached = {key: z.detach() for key, z in named.items()}
        dispersion = {key: dispersion_loss(z, modality=key) for key, z in detached.items()}
        anchoring = anchoring_loss(detached)
    return dispersion, anchoring


def _output(named: dict[str, torch.Tensor], loss: torch.Tensor) -> DAGROutput:
    dispersion, anchoring = _measured_geometry(named)
    return DAGROutput(loss=loss, dispersion=dispersion, anchoring=anchoring, alpha={key: None for key in named})


def vicreg_terms(z_m: torch.Tensor, z_n: torch.Tensor, eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """Return the VICReg invariance, variance and covariance terms of one view pair.

    Variance is ``mean_j relu(1 - sqrt(Var z_j + eps))`` and covariance is the sum of
    squared off-diagonal covariances divided by ``d``, each averaged over the two views.
    """
    invariance = F.mse_loss(z_m, z_n)
    variance = 0.0
    covariance = 0.0
    for z in (z_m, z_n):
        centered = z - z.mean(dim=0)
        std = torch.sqrt(centered.var(dim=0) + eps)
        variance = variance + F.relu(1.0 - std).mean() / 2
        cov = centered.T @ centered / (z.shape[0] - 1)
        off_diagonal = cov - torch.diag(torch.diagonal(cov))
        covariance = covariance + off_diagonal.pow(2).sum() / z.shape[1] / 2
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


def barlow_twins_loss(z_m: torch.Tensor, z_n: torch.Tensor, lambda_offdiag: float = 5e-3) -> torch.Tensor:
    """Return ``sum_i (1 - C_ii)^2 + lambda_offdiag * sum_{i != j} C_ij^2`` for one view pair.

    ``C`` is the cross-correlation of the two batch-standardized embeddings.
    """
    a = (z_m - z_m.mean(dim=0)) / (z_m.std(dim=0) + 1e-5)
    b = (z_n - z_n.mean(dim=0)) / (z_n.std(dim=0) + 1e-5)
    c = a.T @ b / z_m.shape[0]
    on_diagonal = (1.0 - torch.diagonal(c)).pow(2).sum()
    off_diagonal = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on_diagonal + lambda_offdiag * off_diagonal


class _Control(nn.Module):
    """Shared call convention: ``forward(zs, params=None) -> DAGROutput``."""

    # train() reads these two attributes: no Pareto gradients, and whether the
    # model must normalize its embeddings before the head.
    pareto = None
    normalizes_embeddings = False

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = check_number("weight", weight, nonnegative=True)

    def forward(self, zs, params=None) -> DAGROutput:
        named = check_modalities(zs, "zs", min_modalities=2, same_dim=True)
        return _output(named, self.weight * self.pair_loss(named))

    def pair_loss(self, named: dict[str, torch.Tensor]) -> torch.Tensor:
        losses = [self.loss_of_pair(a, b) for a, b in itertools.combinations(named.values(), 2)]
        return torch.stack(losses).mean()

    def loss_of_pair(self, z_m: torch.Tensor, z_n: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


class AlwaysOnAlignment(_Control):
    """Always-on alignment: mean squared distance between paired normalized embeddings."""

    def loss_of_pair(self, z_m, z_n):
        return (F.normalize(z_m, dim=1) - F.normalize(z_n, dim=1)).pow(2).sum(dim=1).mean()


class VICRegStyle(_Control):
    """VICReg-style regularizer on every view pair, ``weight * (c_inv I + c_var V + c_cov C)``.

    The coefficients default to VICReg's 25, 25 and 1.
    """

    def __init__(self, weight: float = 0.01, invariance: float = 25.0, variance: float = 25.0,
                 covariance: float = 1.0):
        super().__init__(weight)
        self.coefficients = {
            "invariance": check_number("invariance", invariance, nonnegative=True),
            "variance": check_number("variance", variance, nonnegative=True),
            "covariance": check_number("covariance", covariance, nonnegative=True),
        }

    def loss_of_pair(self, z_m, z_n):
        terms = vicreg_terms(z_m, z_n)
        return sum(self.coefficients[key] * value for key, value in terms.items())


class BarlowTwinsStyle(_Control):
    """Barlow-Twins-style regularizer on every view pair."""

    def __init__(self, weight: float = 0.01, lambda_offdiag: float = 5e-3):
        super().__init__(weight)
        self.lambda_offdiag = check_number("lambda_offdiag", lambda_offdiag, nonnegative=True)

    def loss_of_pair(self, z_m, z_n):
        return barlow_twins_loss(z_m, z_n, self.lambda_offdiag)


class UnitSphereOnly(_Control):
    """No extra loss. The model normalizes its embeddings onto the unit sphere instead."""

    normalizes_embeddings = True

    def __init__(self):
        super().__init__(weight=0.0)

    def forward(self, zs, params=None) -> DAGROutput:
        named = check_modalities(zs, "zs", min_modalities=2, same_dim=True)
        reference = next(iter(named.values()))
        return _output(named, reference.new_zeros(()))

    def extra_repr(self) -> str:
        return ""


class UnitSphere(nn.Module):
    """Wrap an encoder so that it returns L2-normalized embeddings."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(x), dim=1)


def normalize_encoders(model) -> None:
    """Replace every encoder of a :class:`dagr.models.MultiViewNet` by its :class:`UnitSphere` wrapper."""
    encoders = getattr(model, "encoders", None)
    if not isinstance(encoders, nn.ModuleDict):
        raise TypeError(f"normalize_encoders needs a model with an nn.ModuleDict `encoders`, got {type(model).__name__}")
    for view in list(encoders):
        if not isinstance(encoders[view], UnitSphere):
            encoders[view] = UnitSphere(encoders[view])


_CLASSES = {
    "alignment": AlwaysOnAlignment,
    "vicreg": VICRegStyle,
    "barlow": BarlowTwinsStyle,
    "sphere": UnitSphereOnly,
}


def build_control(spec: Mapping) -> _Control:
    """Build a control from ``{"name": <one of CONTROLS>, **keyword arguments}``."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"control spec must be a dict with a 'name' key, got {spec!r} of type {type(spec).__name__}")
    options = dict(spec)
    name = options.pop("name", None)
    if name not in _CLASSES:
        raise ValueError(f"control name must be one of {CONTROLS}, got {name!r}")
    try:
        return _CLASSES[name](**options)
    except TypeError as error:
        raise TypeError(f"invalid options {options} for control {name!r}: {error}") from error
