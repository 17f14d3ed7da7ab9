"""Trained-model cache for the test-time analyses of Part II (robustness, similarity, clustering, embeddings).

Those chapters need the trained networks, not only their metrics, so each run is
saved once as two small files under ``results/models`` and reloaded afterwards:

* ``<hash>.pt``: the ``state_dict`` of the best-validation checkpoint (``torch.save``),
* ``<hash>.json``: the :class:`dagr.train.Result` of that run, without the model.

``<hash>`` is :func:`dagr.train.config_hash` of the config and of the data restricted
to the config's views, so a data object that carries extra views finds the same files.
The hash contains ``dagr.__version__``: a new version retrains.

Usage::

    data = MultiFeatures()                                    # all six views
    for key, config in analysis_configs("book"):
        model, result = load_or_train_model(config, data)

Recompute every model a profile needs (the book profile's files are committed)::

    .venv/bin/python -m dagr.checkpoints --profile book
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from .data import MultiFeatures
from .experiments import FIXED, SETTINGS
from .models import MultiViewNet, build_mfeat_model
from .train import Result, TrainConfig, config_hash, train
from .utils import PAPER_SEEDS, PROFILES, by_profile, profile

# Models live beside the package, not beside the calling notebook, because a
# book build runs each chapter from the notebooks folder.
MODEL_DIR = Path(__file__).resolve().parent.parent / "results" / "models"

# The same view sets and fixed-weight DAGR as the other Part II chapters.
DAGR_WEIGHTS: dict[str, float] = dict(FIXED)
METHODS: dict[str, dict[str, float] | None] = {"baseline": None, "DAGR": DAGR_WEIGHTS}


class _ViewSubset:
    """Stand-in for a data object whose ``describe()`` lists only some of its views."""

    def __init__(self, data: MultiFeatures, views: tuple[str, ...]):
        self._description = {**data.describe(), "views": list(views)}

    def describe(self) -> dict[str, Any]:
        return dict(self._description)


def model_key(config: TrainConfig, data: MultiFeatures) -> str:
    """Return the cache key of a run: the config hash with the data restricted to ``config.views``."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"model_key: config must be a TrainConfig, got {type(config).__name__}")
    if not hasattr(data, "describe"):
        raise TypeError(f"model_key: data must be a MultiFeatures, got {type(data).__name__}")
    return config_hash(config, _ViewSubset(data, config.views))


def build_model(config: TrainConfig, num_classes: int = 10) -> MultiViewNet:
    """Build the untrained network that ``dagr.train.train`` builds for ``config``."""
    return build_mfeat_model(
        config.views, dim=config.dim, num_classes=num_classes, hidden=config.hidden, fusion=config.fusion
    )


def _resolve(cache_dir) -> Path:
    if cache_dir is None:
        return MODEL_DIR
    if not isinstance(cache_dir, (str, Path)):
        raise TypeError(f"cache_dir must be a path, got {cache_dir!r} of type {type(cache_dir).__name__}")
    return Path(cache_dir)


def load_or_train_model(
    config: TrainConfig, data: MultiFeatures, cache_dir: str | Path | None = MODEL_DIR
) -> tuple[MultiViewNet, Result]:
    """Load the trained model of ``config`` from ``cache_dir``, or train it with ``dagr.train.train`` and save it.

    Returns ``(model, result)``: the best-validation model in evaluation mode and its
    :class:`~dagr.train.Result`, whose ``model`` field is the same model. ``cache_dir``
    defaults to ``results/models`` at the repository root; ``None`` means the same.
    Files are written to a temporary name first, so an interrupted run leaves no
    half-written entry.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    missing = [view for view in config.views if view not in getattr(data, "views", ())]
    if missing:
        raise ValueError(f"data lacks view(s) {missing} named in config.views. It has {list(data.views)}")
    directory = _resolve(cache_dir)
    key = model_key(config, data)
    weights_path, result_path = directory / f"{key}.pt", directory / f"{key}.json"

    if weights_path.is_file() and result_path.is_file():
        model = build_model(config, num_classes=data.num_classes)
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        model.eval()
        with result_path.open() as handle:
            result = Result.from_dict(json.load(handle))
        result.model = model
        return model, result

    result = train(config, data)
    model = result.model
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    partial = weights_path.with_suffix(".pt.tmp")
    torch.save(model.state_dict(), partial)
    partial.replace(weights_path)
    partial = result_path.with_suffix(".json.tmp")
    with partial.open("w") as handle:
        json.dump(result.to_dict(), handle, indent=1, sort_keys=True)
    partial.replace(result_path)
    return model, result


def analysis_configs(
    profile_name: str | None = None,
) -> Iterator[tuple[tuple[str, str, int], TrainConfig]]:
    """Yield ``((setting, method, seed), TrainConfig)`` for every model the analyses of a profile use.

    ``book`` and ``full`` use the three view settings, baseline and DAGR, and seeds
    ``PAPER_SEEDS``. ``ci`` keeps only the 2-view setting, a subset of the book's
    models, so that a checkout with the committed book models never trains under ci.
    Every run uses the ``TrainConfig`` defaults (30 epochs, AdamW, batch 64, dim 64).
    """
    name = profile() if profile_name is None else profile_name
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {name!r}")
    settings = ["2 views"] if name == "ci" else list(SETTINGS)
    for setting in settings:
        for method, weights in METHODS.items():
            for seed in PAPER_SEEDS:
                config = TrainConfig(views=SETTINGS[setting], seed=seed, regularizer=weights)
                yield (setting, method, seed), config


def active_settings() -> list[str]:
    """Return the view settings the active profile analyses (see :func:`analysis_configs`)."""
    return by_profile(ci=["2 views"], book=list(SETTINGS))


def load_models(profile_name: str | None = None, data: MultiFeatures | None = None, cache_dir=MODEL_DIR):
    """Load or train every model of :func:`analysis_configs`.

    Returns ``(data, models)`` with ``models`` a dict ``(setting, method, seed) -> (model, result)``.
    """
    data = MultiFeatures() if data is None else data
    models = {}
    for key, config in analysis_configs(profile_name):
        models[key] = load_or_train_model(config, data, cache_dir)
    return data, models


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dagr.checkpoints",
        description="Train (or load) and save every model the Part II test-time analyses use.",
    )
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="experiment profile whose models to compute (default: DAGR_PROFILE, else book)")
    parser.add_argument("--cache-dir", default=str(MODEL_DIR), help="folder of the .pt and .json files")
    parser.add_argument("--retrain", action="store_true", help="delete the cached files of these runs first")
    args = parser.parse_args(argv)

    data = MultiFeatures()
    directory = Path(args.cache_dir)
    for (setting, method, seed), config in analysis_configs(args.profile):
        if args.retrain:
            key = model_key(config, data)
            for suffix in (".pt", ".json"):
                (directory / f"{key}{suffix}").unlink(missing_ok=True)
        start = time.perf_counter()
        _, result = load_or_train_model(config, data, directory)
        print(f"{setting:8s} {method:8s} seed {seed:5d}: test accuracy {result.test_accuracy:.4f} "
              f"(best epoch {result.best_epoch}, {time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
