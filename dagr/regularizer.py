"""The DAGR regularizer: dispersion within each modality, anchoring across modalities.

Fixed weights (eq. 8): ``L_DAGR = lambda_d * L_d + lambda_a * L_a`` with
``L_d = mean_m L_disp^m``. Pareto weights (eqs. 10-12, Algorithm 1): encoder m
receives ``beta * (alpha_m * g_a^m + (1 - alpha_m) * g_d^m)`` on top of its
task gradient, with ``alpha_m`` from :func:`dagr.min_norm_alpha`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .checks import as_named, check_modalities, check_number
from .dispersion import checked_dispersion_losses, dispersion_loss
from .distributed import all_reduce_sum, gather_rows, world_size
from .pareto import alpha_from_flat

PARETO_MODES = ("params", "features")


def _pair_distance(difference: torch.Tensor) -> torch.Tensor:
    """Norms over the last dim whose gradient is 0, not NaN, where the row is exactly zero."""
    squared = (difference * difference).sum(dim=-1)
    positive = squared > 0
    root = squared.clamp_min(torch.finfo(squared.dtype).tiny).sqrt()
    return torch.where(positive, root, torch.zeros_like(root))


def anchoring_loss(zs, tau: float = 0.0) -> torch.Tensor:
    """Compute the anchoring loss across modalities (eq. 7).

    ``L_a = 1/B * sum_i 1/(M(M-1)) * sum_{m != n} (||z~_i^m - z~_i^n|| - tau)_+^2``

    Args:
        zs: per-modality (B, d) embeddings, a sequence or a mapping from
            modality name to tensor, with M >= 2 modalities of equal B and d.
            They are L2-normalized here (a zero row stays zero).
        tau: tolerance radius, >= 0. A pair closer than ``tau`` contributes
            nothing and receives an exactly zero gradient.
    """
    named = check_modalities(zs, "zs", min_modalities=2, same_dim=True)
    return _anchoring(named, check_number("tau", tau, nonnegative=True))


def _anchoring(named: dict[str, torch.Tensor], tau: float) -> torch.Tensor:
    """Eq. 7 on embeddings that :func:`check_modalities` has already validated."""
    # All M(M-1)/2 unordered pairs at once, as a (pairs, B, d) tensor of differences.
    # The ordered sum over m != n counts every unordered pair twice, as does M(M-1),
    # and every pair has B rows, so the mean over pairs and rows is eq. 7.
    normalized = F.normalize(torch.stack(list(named.values())), dim=2)
    first, second = torch.triu_indices(len(named), len(named), offset=1, device=normalized.device)
    distances = _pair_distance(normalized[first] - normalized[second])
    return (distances - tau).clamp_min(0.0).pow(2).mean()


@dataclass
class DAGROutput:
    """Result of one call of :class:`DAGR`.

    Attributes:
        loss: scalar to add to the task loss before ``backward()``.
        dispersion: detached ``L_disp^m`` of every modality.
        anchoring: detached ``L_a``.
        alpha: detached ``alpha_m`` of every modality in Pareto mode, ``None`` in fixed mode.
            A call without gradients (evaluation, ``torch.no_grad``) computes no
            new alpha: it reports the last one, or 0.5 before the first training call.
    """

    loss: torch.Tensor
    dispersion: dict[str, torch.Tensor]
    anchoring: torch.Tensor
    alpha: dict[str, torch.Tensor | None] = field(default_factory=dict)

    def as_floats(self) -> dict[str, float]:
        """Flatten the logged parts into ``{"dispersion/audio": ..., "alpha/audio": ...}``."""
        row = {"loss": float(self.loss.detach()), "anchoring": float(self.anchoring)}
        row.update({f"dispersion/{key}": float(value) for key, value in self.dispersion.items()})
        row.update({f"alpha/{key}": float(value) for key, value in self.alpha.items() if value is not None})
        return row


class DAGR(nn.Module):
    """Dispersive and Anchoring Geometry Regularization (Xia et al., arXiv 2601.21670).

    Fixed weights, eq. 8::

        reg = DAGR(lambda_d=0.1, lambda_a=0.1, t=2.0, tau=0.0)

    Pareto weights, eqs. 10-12, with ``alpha_m`` computed from gradients with
    respect to each encoder's parameters (``"params"``, Algorithm 1) or, more
    cheaply, with respect to each embedding (``"features"``)::

        reg = DAGR(beta=0.1, tau=0.25, pareto="params")
        out = reg({"audio": z_a, "video": z_v}, params={"audio": enc_a, "video": enc_v})
        (task_loss + out.loss).backward()

    The regularizer has no trainable parameters and never changes the forward
    pass; the embeddings are normalized only inside the loss. In Pareto mode
    the value of ``out.loss`` is ``beta * sum_m (alpha_m L_a + (1 - alpha_m) L_disp^m)``,
    for logging, and its gradient reaches encoder m as exactly
    ``beta * (alpha_m g_a^m + (1 - alpha_m) g_d^m)``. This assumes every
    embedding comes from its own encoder, as in Algorithm 1.

    Args:
        lambda_d, lambda_a: fixed weights (default 0.1 each when ``pareto`` is None).
        beta: total geometry weight in Pareto mode (default 0.1).
        t: RBF scale of the dispersion loss, > 0.
        tau: anchoring tolerance, >= 0.
        pareto: ``None`` (fixed weights), ``"params"`` or ``"features"``.
        alpha_every: recompute ``alpha_m`` every this many training calls and
            reuse it in between (1 recomputes every call, as in Algorithm 1).
        chunk_size: rows per block in the dispersion loss (see :func:`dispersion_loss`).
        gather_distributed: under torch.distributed, all-gather the embeddings of
            every process and compute both terms on the global batch, so every
            process gets the same loss. Gradients of the local rows are scaled
            by the world size, so that after DistributedDataParallel averages
            them each encoder receives the gradient of a single process that
            ran the whole batch (see :mod:`dagr.distributed`). Every process
            must call the regularizer together.
    """

    def __init__(self, lambda_d: float | None = None, lambda_a: float | None = None, *,
                 beta: float | None = None, t: float = 2.0, tau: float = 0.0,
                 pareto: str | None = None, alpha_every: int = 1, chunk_size: int | None = None,
                 gather_distributed: bool = False):
        super().__init__()
        if pareto is not None and (not isinstance(pareto, str) or pareto not in PARETO_MODES):
            raise ValueError(f"pareto must be None, 'params' or 'features', got {pareto!r}")
        if pareto is None and beta is not None:
            raise ValueError(f"beta={beta!r} is a Pareto weight: pass pareto='params' or 'features', or use lambda_d/lambda_a")
        if pareto is not None and (lambda_d is not None or lambda_a is not None):
            fixed_weights = ", ".join(f"{name}={value!r}" for name, value in (("lambda_d", lambda_d),
                                                                              ("lambda_a", lambda_a))
                                      if value is not None)
            raise ValueError(f"{fixed_weights}: fixed weights do not apply with pareto={pareto!r}; set beta instead")
        self.pareto = pareto
        self.lambda_d = check_number("lambda_d", 0.1 if lambda_d is None else lambda_d, nonnegative=True)
        self.lambda_a = check_number("lambda_a", 0.1 if lambda_a is None else lambda_a, nonnegative=True)
        self.beta = check_number("beta", 0.1 if beta is None else beta, nonnegative=True)
        self.t = check_number("t", t, positive=True)
        self.tau = check_number("tau", tau, nonnegative=True)
        if isinstance(alpha_every, bool) or not isinstance(alpha_every, int) or alpha_every < 1:
            raise ValueError(f"alpha_every must be an int >= 1, got {alpha_every!r}")
        self.alpha_every = alpha_every
        self.chunk_size = chunk_size
        if not isinstance(gather_distributed, bool):
            raise TypeError(f"gather_distributed must be True or False, got {gather_distributed!r}")
        self.gather_distributed = gather_distributed
        # Cleared the first time a batched vector-Jacobian product fails for this model.
        self._batched_vjp = True
        self._calls = 0
        self._alpha: dict[str, torch.Tensor] = {}

    def extra_repr(self) -> str:
        if self.pareto is None:
            weights = f"lambda_d={self.lambda_d}, lambda_a={self.lambda_a}"
        else:
            weights = f"beta={self.beta}, pareto={self.pareto!r}, alpha_every={self.alpha_every}"
        return f"{weights}, t={self.t}, tau={self.tau}"

    def forward(self, zs, params=None) -> DAGROutput:
        named = check_modalities(zs, "zs", min_modalities=2, same_dim=True)
        gather = self.gather_distributed and world_size() > 1
        if self.pareto is None:
            if gather:
                named, _ = _gather_modalities(named)
            return self._fixed(named)
        return self._pareto(named, params, gather)

    def _fixed(self, named: dict[str, torch.Tensor]) -> DAGROutput:
        # check_modalities in forward has validated every embedding already.
        values = checked_dispersion_losses(list(named.values()), self.t, self.chunk_size)
        dispersion = dict(zip(named, values.unbind()))
        anchoring = _anchoring(named, self.tau)
        loss = self.lambda_d * values.mean() + self.lambda_a * anchoring
        return DAGROutput(
            loss=loss,
            dispersion={key: value.detach() for key, value in dispersion.items()},
            anchoring=anchoring.detach(),
            alpha={key: None for key in named},
        )

    def _pareto(self, named: dict[str, torch.Tensor], params, gather: bool = False) -> DAGROutput:
        if self.pareto == "params":
            param_lists = _resolve_params(params, named)
        # The geometry terms are built on detached copies, so the gradients with
        # respect to the embeddings never walk back through the encoders. With
        # gather, the copies hold the global batch and `local` picks this process's rows.
        local = slice(None)
        if gather:
            gathered, local = _gather_modalities({key: z.detach() for key, z in named.items()})
            leaves = {key: rows.requires_grad_(True) for key, rows in gathered.items()}
        else:
            leaves = {key: z.detach().requires_grad_(True) for key, z in named.items()}
        with torch.enable_grad():
            keys = list(leaves)
            values = checked_dispersion_losses([leaves[key] for key in keys], self.t, self.chunk_size)
            dispersion = dict(zip(keys, values.unbind()))
            anchoring = _anchoring(leaves, self.tau)
            grads_a = torch.autograd.grad(anchoring, [leaves[key] for key in keys])
            # L_disp^m depends only on modality m, so one backward of the sum gives every g_d^m.
            grads_d = torch.autograd.grad(values.sum(), [leaves[key] for key in keys])

        training = any(z.requires_grad for z in named.values()) and torch.is_grad_enabled()
        refresh = training and (self._calls % self.alpha_every == 0 or not self._alpha)
        if training:
            self._calls += 1
        if refresh:
            for key, grad_a, grad_d in zip(keys, grads_a, grads_d):
                if self.pareto == "features":
                    self._alpha[key] = alpha_from_flat(grad_a.reshape(-1).double(), grad_d.reshape(-1).double())
                else:
                    try:
                        self._alpha[key] = self._param_alpha(named[key], param_lists[key], grad_a[local],
                                                             grad_d[local], reduce=gather)
                    except ValueError as error:
                        raise ValueError(f"{error} (modality {key!r})") from None
        alpha = {key: self._alpha.get(key, torch.tensor(0.5, dtype=torch.float64)) for key in keys}

        value = self.beta * sum(
            float(alpha[key]) * anchoring.detach() + (1.0 - float(alpha[key])) * dispersion[key].detach()
            for key in keys
        )
        loss = value
        if training:
            # A linear surrogate <w_m, z_m> whose gradient on encoder m is J_m^T w_m,
            # that is beta * (alpha_m g_a^m + (1 - alpha_m) g_d^m); its value is removed.
            # With gather, the world-size factor follows the convention of dagr.distributed.
            weight = self.beta * (world_size() if gather else 1)
            surrogate = sum(
                (weight * (float(alpha[key]) * grad_a[local] + (1.0 - float(alpha[key])) * grad_d[local])
                 .to(named[key].dtype) * named[key]).sum()
                for key, grad_a, grad_d in zip(keys, grads_a, grads_d)
            )
            loss = value + surrogate - surrogate.detach()
        return DAGROutput(
            loss=loss,
            dispersion={key: value.detach() for key, value in dispersion.items()},
            anchoring=anchoring.detach(),
            alpha={key: value.detach().clone() for key, value in alpha.items()},
        )

    def _param_alpha(self, z: torch.Tensor, pairs, grad_a: torch.Tensor, grad_d: torch.Tensor,
                     reduce: bool = False) -> torch.Tensor:
        """Eq. 11 on parameter gradients ``g = J^T u``, from one batched vector-Jacobian product.

        Both products ``J^T g_a`` and ``J^T g_d`` go through the encoder's graph
        in one vmapped backward (``is_grads_batched``). An encoder with an
        operation that has no batching rule falls back to two plain products,
        which give the same alpha. With ``reduce``, the per-process products
        are summed over all processes first, so alpha belongs to the global batch.

        NOTE: hooks and ``retain_grad`` on the embeddings also fire during these
        products (inside vmap for the batched one), not only in the final backward.
        """
        flat = None
        if self._batched_vjp:
            try:
                flat = _batched_param_grads(z, pairs, grad_a, grad_d)
            except (RuntimeError, NotImplementedError):
                self._batched_vjp = False
        if flat is None:
            flat = torch.stack(_param_grads(z, pairs, grad_a, grad_d))
        if reduce:
            all_reduce_sum(flat)
        return alpha_from_flat(flat[0], flat[1])


def _gather_modalities(named: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], slice]:
    """All-gather every modality's rows in one collective (side by side along dim 1)."""
    keys = list(named)
    rows, local = gather_rows(torch.cat([named[key] for key in keys], dim=1))
    parts = rows.split(rows.shape[1] // len(keys), dim=1)
    return dict(zip(keys, parts)), local


def _parameters_of(entry, key: str) -> list[tuple[str, torch.Tensor]]:
    """Return ``[(name, parameter), ...]`` of one modality's encoder, trainable ones only."""
    if isinstance(entry, nn.Module):
        pairs = list(entry.named_parameters())
    elif isinstance(entry, torch.Tensor):
        pairs = [("0", entry)]
    elif isinstance(entry, Iterable) and not isinstance(entry, (str, bytes)):
        pairs = []
        for index, item in enumerate(entry):
            if not isinstance(item, torch.Tensor):
                raise TypeError(
                    f"params[{key!r}] must contain tensors, got {type(item).__name__} at position {index}"
                )
            pairs.append((str(index), item))
    else:
        raise TypeError(
            f"params[{key!r}] must be an nn.Module or an iterable of parameters, got {type(entry).__name__}"
        )
    trainable = [(name, tensor) for name, tensor in pairs if tensor.requires_grad]
    if not trainable:
        raise ValueError(f"params[{key!r}] has no parameter that requires grad (modality {key!r})")
    return trainable


def _resolve_params(params, named: dict[str, torch.Tensor]) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """Match ``params`` to the modalities of ``zs`` by name (mapping) or position (sequence)."""
    if params is None:
        raise ValueError(
            "pareto='params' needs each modality's encoder: call reg(zs, params=[encoder_1, encoder_2, ...])"
        )
    if isinstance(params, nn.ModuleList):
        params = list(params)
    if isinstance(params, nn.Module) and not isinstance(params, nn.ModuleDict):
        raise TypeError("params must list one encoder per modality, got a single nn.Module")
    if isinstance(params, (Mapping, nn.ModuleDict)):
        given = {str(key): value for key, value in params.items()}
    elif isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
        given = {key: value for key, value in zip(named, params)}
        if len(params) != len(named):
            raise ValueError(f"params lists {len(params)} encoders but zs has {len(named)} modalities")
    else:
        raise TypeError(f"params must be a sequence or mapping of encoders, got {type(params).__name__}")
    missing = [key for key in named if key not in given]
    if missing:
        raise ValueError(f"params has no encoder for modalities {missing}; it has {list(given)}")
    return {key: _parameters_of(given[key], key) for key in named}


def _check_used(pairs, parts) -> None:
    for (name, _), part in zip(pairs, parts):
        if part is None:
            raise ValueError(
                f"params: the embedding does not depend on parameter {name!r}; pass only that modality's encoder"
            )


def _param_grads(z: torch.Tensor, pairs, grad_a: torch.Tensor, grad_d: torch.Tensor) -> list[torch.Tensor]:
    """Return the flat float64 ``[J^T g_a, J^T g_d]`` from two vector-Jacobian products."""
    tensors = [tensor for _, tensor in pairs]
    if not z.requires_grad:
        raise ValueError("pareto='params' needs embeddings that require grad; call it inside the training step")
    flat = []
    for grad in (grad_a, grad_d):
        vjp = torch.autograd.grad(z, tensors, grad_outputs=grad.to(z.dtype), retain_graph=True, allow_unused=True)
        _check_used(pairs, vjp)
        flat.append(torch.cat([part.reshape(-1).double() for part in vjp]))
    return flat


def _batched_param_grads(z: torch.Tensor, pairs, grad_a: torch.Tensor, grad_d: torch.Tensor) -> torch.Tensor:
    """Return ``[J^T g_a, J^T g_d]`` as a (2, P) float64 tensor from one vmapped backward."""
    tensors = [tensor for _, tensor in pairs]
    if not z.requires_grad:
        raise ValueError("pareto='params' needs embeddings that require grad; call it inside the training step")
    stacked = torch.stack([grad_a, grad_d]).to(z.dtype)
    vjp = torch.autograd.grad(z, tensors, grad_outputs=stacked, retain_graph=True, allow_unused=True,
                              is_grads_batched=True)
    _check_used(pairs, vjp)
    return torch.cat([part.reshape(2, -1).double() for part in vjp], dim=1)


def _param_alpha(z: torch.Tensor, pairs, grad_a: torch.Tensor, grad_d: torch.Tensor) -> torch.Tensor:
    """Eq. 11 on parameter gradients ``g = J^T u``, from two plain vector-Jacobian products."""
    flat = _param_grads(z, pairs, grad_a, grad_d)
    return alpha_from_flat(flat[0], flat[1])
