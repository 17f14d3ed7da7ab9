"""Training loop for multi-view classifiers, with or without DAGR.

One call of :func:`train` seeds everything through :func:`dagr.utils.set_seed`,
trains for ``epochs`` epochs and evaluates on the validation split after every
epoch. It keeps the checkpoint with the best validation accuracy (the earliest
on ties) and reports that checkpoint's test metrics: multimodal accuracy,
unimodal accuracy per view, effective rank per view and cross-modal drift.

Two backbones:

* ``"joint"``: the task loss is the cross-entropy of the fused logits, and it
  trains encoders and head together.
* ``"dgl"``: the decoupled scheme of DGL (shicaiwei123/ICCV2025-GDL, ``main_dgl.py``).
  The fusion head trains on detached embeddings, so the fused loss never reaches
  the encoders. Each encoder learns only from its unimodal cross-entropy
  (shared head, other views zeroed), and that loss does not update the head.

In both, DAGR acts on the encoders' embeddings: ``loss = task + reg(zs).loss``.

Usage::

    data = MultiFeatures()
    config = TrainConfig(epochs=20, regularizer={"lambda_d": 0.1, "lambda_a": 0.5, "tau": 0.2})
    result = train(config, data)
    result.test_accuracy, result.effective_rank["pixels"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import geometry
from .controls import build_control, normalize_encoders
from .data import VIEW_NAMES, MultiFeatures, MultiViewSplit, check_views
from .dispersion import dispersion_loss
from .models import FUSIONS, MultiViewNet, build_mfeat_model
from .regularizer import DAGR, anchoring_loss
from .utils import progress, set_seed

BACKBONES = ("joint", "dgl")
OPTIMIZERS = ("adamw", "sgd")


@dataclass
class TrainConfig:
    """Everything that defines one training run (the data split is set by the data object).

    Attributes:
        views: view names the model uses, in order.
        epochs, batch_size: training length and mini-batch size. Training batches drop
            the last incomplete batch, so every DAGR call receives ``batch_size`` samples.
        lr, weight_decay: optimizer settings.
        optimizer: ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        seed: training seed (model initialization and batch order).
        dim, hidden, fusion: model size and fusion head, see :func:`dagr.models.build_mfeat_model`.
        regularizer: keyword arguments of :class:`dagr.DAGR`, or ``None`` for no regularizer.
        backbone: ``"joint"`` or ``"dgl"``.
        unimodal_weight: factor on the summed unimodal losses in the ``"dgl"`` backbone.
        control: a control regularizer in place of DAGR, ``{"name": ..., **options}`` as
            accepted by :func:`dagr.controls.build_control`, or ``None``. It cannot be
            combined with ``regularizer``. ``to_dict`` leaves it out when it is ``None``,
            so configurations without a control keep their hash.
    """

    views: tuple[str, ...] = VIEW_NAMES
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    optimizer: str = "adamw"
    seed: int = 0
    dim: int = 64
    hidden: int = 128
    fusion: str = "concat"
    regularizer: dict[str, Any] | None = None
    backbone: str = "joint"
    unimodal_weight: float = 1.0
    control: dict[str, Any] | None = None

    def __post_init__(self):
        self.views = check_views(self.views)
        for name in ("epochs", "batch_size", "dim", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"TrainConfig.seed must be a non-negative int, got {self.seed!r}")
        for name in ("lr", "weight_decay", "unimodal_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"TrainConfig.{name} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        if self.weight_decay < 0 or self.unimodal_weight < 0:
            raise ValueError(
                f"TrainConfig.weight_decay and unimodal_weight must be >= 0, "
                f"got {self.weight_decay!r} and {self.unimodal_weight!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"TrainConfig.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"TrainConfig.fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.regularizer is not None:
            if not isinstance(self.regularizer, dict):
                raise TypeError(
                    f"TrainConfig.regularizer must be a dict of DAGR keyword arguments or None, "
                    f"got {type(self.regularizer).__name__}"
                )
            if len(self.views) < 2:
                raise ValueError(f"DAGR needs at least 2 views, got views={list(self.views)}")
            self.regularizer = dict(self.regularizer)
            DAGR(**self.regularizer)  # raises on invalid keyword arguments
        if self.control is not None:
            if self.regularizer is not None:
                raise ValueError(
                    f"TrainConfig takes a regularizer or a control, not both; got regularizer="
                    f"{self.regularizer!r} and control={self.control!r}"
                )
            if len(self.views) < 2:
                raise ValueError(f"a control regularizer needs at least 2 views, got views={list(self.views)}")
            build_control(self.control)  # raises on an unknown name or invalid options
            self.control = dict(self.control)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-serialisable values."""
        values = dataclasses.asdict(self)
        values["views"] = list(self.views)
        if values["control"] is None:
            del values["control"]
        return values


@dataclass
class Result:
    """Test metrics of the best-validation checkpoint and the per-epoch history of one run.

    Attributes:
        config: the :class:`TrainConfig` as a dict.
        data: :meth:`MultiFeatures.describe` of the data the run used.
        best_epoch: 1-based epoch of the selected checkpoint.
        val_accuracy: validation accuracy of that checkpoint.
        test_accuracy: multimodal test accuracy.
        unimodal_accuracy: view -> test accuracy of the shared head with the other views zeroed.
        effective_rank: view -> effective rank of the normalized test embeddings.
        drift: cross-modal drift of the normalized test embeddings (``None`` for one view).
        history: one dict per epoch with ``train_loss``, ``task_loss``, ``regularizer_loss``,
            ``val_accuracy``, ``dispersion`` (view -> value), ``anchoring`` and ``alpha``
            (view -> value, ``None`` with fixed weights or without DAGR). Without DAGR the
            dispersion and anchoring entries are still measured, with ``t=2`` and ``tau=0``.
        train_seconds: wall-clock time of the run.
        version: ``dagr.__version__`` of the code that trained it.
        model: the trained model with the selected weights; not serialised, ``None`` when
            the result was loaded from a cache.
    """

    config: dict[str, Any]
    data: dict[str, Any]
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    unimodal_accuracy: dict[str, float]
    effective_rank: dict[str, float]
    drift: float | None
    history: list[dict[str, Any]]
    train_seconds: float
    version: str
    model: MultiViewNet | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return every field except ``model`` as JSON-serialisable values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Result":
        return cls(**values)

    def metrics(self) -> dict[str, float]:
        """Flatten the test metrics into one row: ``test_accuracy``, ``unimodal/<view>``, ..."""
        row = {"test_accuracy": self.test_accuracy, "val_accuracy": self.val_accuracy}
        row.update({f"unimodal/{view}": value for view, value in self.unimodal_accuracy.items()})
        row.update({f"effective_rank/{view}": value for view, value in self.effective_rank.items()})
        if self.drift is not None:
            row["drift"] = self.drift
        return row


def _version() -> str:
    import dagr

    return dagr.__version__


def config_hash(config: TrainConfig, data: MultiFeatures | None = None) -> str:
    """Return the sha256 hex digest of the sorted JSON of the config and ``dagr.__version__``.

    When ``data`` is given, its :meth:`~MultiFeatures.describe` output is part of the
    hash too, so a different split or subset never reuses a cached run.
    """
    payload = {"config": config.to_dict(), "version": _version()}
    if data is not None:
        payload["data"] = data.describe()
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@torch.no_grad()
def predict(model: MultiViewNet, split: MultiViewSplit, batch_size: int = 1024):
    """Return ``(logits, zs)`` of the whole split in evaluation mode; ``zs`` are unnormalized."""
    was_training = model.training
    model.eval()
    logits, zs = [], {view: [] for view in model.views}
    for x, _ in split.batches(batch_size):
        batch_logits, batch_zs = model({view: x[view] for view in model.views})
        logits.append(batch_logits)
        for view in model.views:
            zs[view].append(batch_zs[view])
    model.train(was_training)
    return torch.cat(logits), {view: torch.cat(parts) for view, parts in zs.items()}


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).double().mean())


@torch.no_grad()
def evaluate(model: MultiViewNet, split: MultiViewSplit) -> dict[str, Any]:
    """Measure accuracy, unimodal accuracy, effective rank and drift on one split.

    Unimodal logits apply the shared head with every other view zeroed. The
    geometry numbers use the L2-normalized embeddings (``dagr.geometry``).
    """
    logits, zs = predict(model, split)
    was_training = model.training
    model.eval()
    unimodal = {view: _accuracy(model.unimodal_logits(view, zs), split.labels) for view in model.views}
    model.train(was_training)
    normalized = {view: F.normalize(z, dim=1) for view, z in zs.items()}
    return {
        "accuracy": _accuracy(logits, split.labels),
        "unimodal_accuracy": unimodal,
        "effective_rank": {view: geometry.effective_rank(z) for view, z in normalized.items()},
        "drift": geometry.cross_modal_drift(normalized) if len(normalized) >= 2 else None,
    }


def task_loss(
    model: MultiViewNet, x, y: torch.Tensor, backbone: str = "joint", unimodal_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Return the task loss of one batch and the embeddings ``zs`` it was computed from.

    ``"joint"``: cross-entropy of the fused logits. ``"dgl"``: cross-entropy of the head
    applied to detached embeddings, plus ``unimodal_weight`` times the sum over views of
    the unimodal cross-entropies, computed with the head's parameters held constant.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if backbone == "joint":
        logits, zs = model(x)
        return F.cross_entropy(logits, y), zs
    zs = model.encode(x)
    fused = model.fuse({view: z.detach() for view, z in zs.items()})
    unimodal = sum(
        F.cross_entropy(model.unimodal_logits(view, zs, detach_head=True), y) for view in model.views
    )
    return F.cross_entropy(fused, y) + unimodal_weight * unimodal, zs


def _geometry_terms(reg, zs, params):
    """Return the DAGR output, or a loss-free measurement of its parts without DAGR."""
    if reg is not None:
        return reg(zs, params=params) if params is not None else reg(zs)
    with torch.no_grad():
        detached = {view: z.detach() for view, z in zs.items()}
        dispersion = {view: dispersion_loss(z) for view, z in detached.items()}
        anchoring = anchoring_loss(detached) if len(detached) >= 2 else None
    return dispersion, anchoring


def _make_optimizer(model, config):
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def _select_views(split: MultiViewSplit, views) -> MultiViewSplit:
    return MultiViewSplit({view: split.features[view] for view in views}, split.labels, split.indices)


def train(config: TrainConfig, data: MultiFeatures, epoch_callback=None) -> Result:
    """Train one model and return the test metrics of its best-validation checkpoint.

    ``epoch_callback(model, epoch)``, when given, runs after each epoch's validation
    and returns a dict that is merged into that epoch's history row (for example
    extra diagnostics). It must leave the model's weights unchanged.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    missing = [view for view in config.views if view not in data.views]
    if missing:
        raise ValueError(f"data lacks view(s) {missing} named in config.views, it has {list(data.views)}")
    if config.batch_size > len(data.train):
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} exceeds the {len(data.train)} training samples"
        )
    if (config.regularizer is not None or config.control is not None) and config.batch_size < 2:
        raise ValueError(f"DAGR needs batches of at least 2 samples, got batch_size={config.batch_size}")
    train_split, val_split, test_split = (
        _select_views(split, config.views) for split in (data.train, data.val, data.test)
    )

    start = time.perf_counter()
    generator = set_seed(config.seed)
    model = build_mfeat_model(
        config.views, dim=config.dim, num_classes=data.num_classes, hidden=config.hidden, fusion=config.fusion
    )
    reg = None if config.regularizer is None else DAGR(**config.regularizer)
    if config.control is not None:
        reg = build_control(config.control)
        if reg.normalizes_embeddings:
            normalize_encoders(model)
    pareto_params = reg is not None and reg.pareto == "params"
    optimizer = _make_optimizer(model, config)

    history = []
    best_accuracy, best_epoch, best_state = -1.0, 0, None
    for epoch in progress(range(1, config.epochs + 1), desc="epochs"):
        model.train()
        sums = {"train_loss": 0.0, "task_loss": 0.0, "regularizer_loss": 0.0, "anchoring": 0.0}
        dispersion_sums = {view: 0.0 for view in config.views}
        alpha_sums: dict[str, float | None] = {view: None for view in config.views}
        batches = 0
        for x, y in train_split.batches(config.batch_size, shuffle=True, generator=generator, drop_last=True):
            task, zs = task_loss(model, x, y, config.backbone, config.unimodal_weight)
            params = {view: model.encoders[view] for view in config.views} if pareto_params else None
            terms = _geometry_terms(reg, zs, params)
            if reg is not None:
                loss = task + terms.loss
                dispersion, anchoring = terms.dispersion, terms.anchoring
                for view, alpha in terms.alpha.items():
                    if alpha is not None:
                        alpha_sums[view] = (alpha_sums[view] or 0.0) + float(alpha)
                sums["regularizer_loss"] += float(terms.loss.detach())
            else:
                loss = task
                dispersion, anchoring = terms
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            batches += 1
            sums["train_loss"] += float(loss.detach())
            sums["task_loss"] += float(task.detach())
            sums["anchoring"] += float(anchoring) if anchoring is not None else math.nan
            for view, value in dispersion.items():
                dispersion_sums[view] += float(value)

        val_accuracy = evaluate(model, val_split)["accuracy"]
        row = {key: value / batches for key, value in sums.items()}
        if math.isnan(row["anchoring"]):
            row["anchoring"] = None
        row.update(
            epoch=epoch,
            val_accuracy=val_accuracy,
            dispersion={view: value / batches for view, value in dispersion_sums.items()},
            alpha={view: None if value is None else value / batches for view, value in alpha_sums.items()},
        )
        if epoch_callback is not None:
            row.update(epoch_callback(model, epoch))
        history.append(row)
        if val_accuracy > best_accuracy:
            best_accuracy, best_epoch = val_accuracy, epoch
            best_state = {key: value.detach().clone() for key, value in model.state_dict().items()}

    model.load_state_dict(best_state)
    model.eval()
    test = evaluate(model, test_split)
    return Result(
        config=config.to_dict(),
        data=data.describe(),
        best_epoch=best_epoch,
        val_accuracy=best_accuracy,
        test_accuracy=test["accuracy"],
        unimodal_accuracy=test["unimodal_accuracy"],
        effective_rank=test["effective_rank"],
        drift=test["drift"],
        history=history,
        train_seconds=time.perf_counter() - start,
        version=_version(),
        model=model,
    )


def run_cached(config: TrainConfig, data: MultiFeatures, cache_dir: str | os.PathLike) -> Result:
    """Load ``<cache_dir>/<hash>.json`` if it exists, else train and write it (load-or-train).

    The hash is :func:`config_hash` of the config and the data description. A loaded
    result has ``model=None``.
    """
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{config_hash(config, data)}.json"
    if path.is_file():
        with path.open() as handle:
            return Result.from_dict(json.load(handle))
    result = train(config, data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    with partial.open("w") as handle:
        json.dump(result.to_dict(), handle, indent=1, sort_keys=True)
    partial.replace(path)
    return result
