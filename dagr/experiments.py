"""The experiment matrix of Part II on UCI Multiple Features, with a result cache.

Five analyses, each over three view settings (2, 3 and 6 views):

* ``main``: joint and DGL backbones, each without DAGR, with fixed-weight DAGR and
  with Pareto DAGR (table 1 of Xia et al., arXiv 2601.21670).
* ``geometry``: semantic margin, effective rank and drift per epoch for the DGL
  baseline, dispersion only and DAGR (table 4, figure 2).
* ``ablation``: none, dispersion only, anchoring only, both (table 5).
* ``controls``: always-on alignment, VICReg-style, Barlow-Twins-style and unit-sphere
  normalization only, next to the baseline and DAGR (table 8).
* ``sensitivity``: a (lambda_d, lambda_a) grid with tau = 0 and a (beta, tau) grid in
  Pareto mode (figures 8 and 9).

Every run is one JSON file ``results/runs/<key>.json``; ``<key>`` hashes the training
configuration, the data description, ``dagr.__version__`` and :data:`RESULTS_VERSION`.
A chapter calls :func:`run_analysis`, which loads cached runs and trains only the
missing ones. Recompute (or resume) everything a profile needs with::

    .venv/bin/python -m dagr.experiments --profile book
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from . import geometry
from .data import VIEW_NAMES, MultiFeatures
from .plotting import mean_std
from .probe import embed, probe_views
from .stats import compare
from .train import TrainConfig, train
from .utils import PAPER_SEEDS, PROFILES, profile as active_profile, progress

# Bump when the meaning of a stored run changes (training loop, metrics, record layout).
RESULTS_VERSION = 1
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results" / "runs"

SETTINGS: dict[str, tuple[str, ...]] = {
    "2 views": ("pixels", "fourier"),
    "3 views": ("pixels", "fourier", "zernike"),
    "6 views": VIEW_NAMES,
}
ANALYSES = ("main", "geometry", "ablation", "controls", "sensitivity")

# Default DAGR settings of every analysis except the sensitivity grids.
TAU = 0.25
FIXED = {"lambda_d": 0.1, "lambda_a": 0.1, "tau": TAU}
PARETO = {"beta": 0.1, "tau": TAU, "pareto": "features"}
PARETO_PARAMS = {"beta": 0.1, "tau": TAU, "pareto": "params"}

# variant name -> (regularizer keyword arguments, control spec)
VARIANTS: dict[str, tuple[dict | None, dict | None]] = {
    "baseline": (None, None),
    "DAGR (fixed)": (FIXED, None),
    "DAGR (Pareto)": (PARETO, None),
    "DAGR (Pareto, params)": (PARETO_PARAMS, None),
    "dispersion only": ({"lambda_d": 0.1, "lambda_a": 0.0, "tau": TAU}, None),
    "anchoring only": ({"lambda_d": 0.0, "lambda_a": 0.1, "tau": TAU}, None),
    "always-on alignment": (None, {"name": "alignment", "weight": 0.1}),
    "VICReg-style": (None, {"name": "vicreg", "weight": 0.01}),
    "Barlow-Twins-style": (None, {"name": "barlow", "weight": 0.01}),
    "unit sphere only": (None, {"name": "sphere"}),
}


@dataclass(frozen=True)
class Profile:
    """Sizes of one experiment profile."""

    seeds: tuple[int, ...]
    epochs: int
    settings: tuple[str, ...]
    sensitivity_settings: tuple[str, ...]
    lambda_grid: tuple[float, ...]
    beta_grid: tuple[float, ...]
    tau_grid: tuple[float, ...]


# The ci profile trains only the 2-view setting and small grids, so that every Part II
# chapter runs under nbval in about a minute from the stored results.
PROFILE_SIZES = {
    "ci": Profile(PAPER_SEEDS, 4, ("2 views",), ("2 views",), (0.1, 1.0), (0.1, 0.2), (0.0, 0.5)),
    "book": Profile(PAPER_SEEDS, 8, tuple(SETTINGS), tuple(SETTINGS), (0.01, 0.1, 1.0),
                    (0.1, 0.15, 0.2), (0.0, 0.25, 0.5)),
    "full": Profile(PAPER_SEEDS + (1, 2), 30, tuple(SETTINGS), tuple(SETTINGS), (0.01, 0.1, 1.0),
                    (0.1, 0.15, 0.2), (0.0, 0.25, 0.5)),
}


@dataclass
class RunSpec:
    """One cell of the matrix: labels for the tables plus the training configuration."""

    analysis: str
    setting: str
    backbone: str
    variant: str
    seed: int
    config: TrainConfig
    params: dict[str, float] = field(default_factory=dict)


def _sizes(profile: str | None) -> tuple[str, Profile]:
    name = active_profile() if profile is None else profile
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {name!r}")
    return name, PROFILE_SIZES[name]


def _spec(analysis, setting, backbone, variant, seed, sizes, regularizer=None, control=None, params=None):
    if variant in VARIANTS and regularizer is None and control is None:
        regularizer, control = VARIANTS[variant]
    config = TrainConfig(views=SETTINGS[setting], epochs=sizes.epochs, seed=seed, backbone=backbone,
                         regularizer=regularizer, control=control)
    return RunSpec(analysis, setting, backbone, variant, seed, config, dict(params or {}))


def plan(analysis: str, profile: str | None = None) -> list[RunSpec]:
    """Return every run that ``analysis`` needs under ``profile`` (default: the active one)."""
    if analysis not in ANALYSES:
        raise ValueError(f"analysis must be one of {ANALYSES}, got {analysis!r}")
    _, sizes = _sizes(profile)
    groups = {
        "main": [(b, v) for b in ("joint", "dgl")
                 for v in ("baseline", "DAGR (fixed)", "DAGR (Pareto)", "DAGR (Pareto, params)")],
        "geometry": [("dgl", v) for v in ("baseline", "dispersion only", "DAGR (fixed)")],
        "ablation": [("dgl", v) for v in ("baseline", "dispersion only", "anchoring only", "DAGR (fixed)")],
        "controls": [("dgl", v) for v in ("baseline", "DAGR (fixed)", "DAGR (Pareto)", "always-on alignment",
                                          "VICReg-style", "Barlow-Twins-style", "unit sphere only")],
    }
    specs = []
    settings = sizes.sensitivity_settings if analysis == "sensitivity" else sizes.settings
    for setting in settings:
        for seed in sizes.seeds:
            if analysis != "sensitivity":
                specs += [_spec(analysis, setting, b, v, seed, sizes) for b, v in groups[analysis]]
                continue
            for lambda_d in sizes.lambda_grid:
                for lambda_a in sizes.lambda_grid:
                    reg = {"lambda_d": lambda_d, "lambda_a": lambda_a, "tau": 0.0}
                    specs.append(_spec(analysis, setting, "dgl", "lambda grid", seed, sizes, regularizer=reg,
                                       params={"lambda_d": lambda_d, "lambda_a": lambda_a}))
            for beta in sizes.beta_grid:
                for tau in sizes.tau_grid:
                    reg = {"beta": beta, "tau": tau, "pareto": "features"}
                    specs.append(_spec(analysis, setting, "dgl", "beta-tau grid", seed, sizes, regularizer=reg,
                                       params={"beta": beta, "tau": tau}))
    return specs


def run_key(config: TrainConfig, data: MultiFeatures) -> str:
    """Return the cache key of a run: sha256 of config, data, package and results versions."""
    import dagr

    payload = {"config": config.to_dict(), "data": data.describe(), "version": dagr.__version__,
               "results_version": RESULTS_VERSION}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def geometry_of(model, split) -> dict[str, Any]:
    """Measure semantic margin and effective rank per view and the drift on one split."""
    zs = {view: F.normalize(z, dim=1) for view, z in embed(model, split).items()}
    return {
        "semantic_margin": {view: geometry.semantic_margin(z, split.labels) for view, z in zs.items()},
        "effective_rank": {view: geometry.effective_rank(z) for view, z in zs.items()},
        "drift": geometry.cross_modal_drift(zs) if len(zs) >= 2 else None,
    }


def train_record(config: TrainConfig, data: MultiFeatures, probe: bool = True) -> dict[str, Any]:
    """Train one run and return its JSON record: the result, test geometry, per-epoch geometry.

    With ``probe=True`` the record also contains the linear-probe test accuracy of every view
    (``probe_accuracy``); otherwise that entry is ``None``.
    """
    result = train(config, data, epoch_callback=lambda model, epoch: {"val_geometry": geometry_of(model, data.val)})
    record = result.to_dict()
    record["test_geometry"] = geometry_of(result.model, data.test)
    record["probe_accuracy"] = probe_views(result.model, data) if probe else None
    record["results_version"] = RESULTS_VERSION
    return record


_DATA: dict[tuple[str, ...], MultiFeatures] = {}


def _data(views: tuple[str, ...]) -> MultiFeatures:
    if views not in _DATA:
        _DATA[views] = MultiFeatures(views=views)
    return _DATA[views]


def _cache_path(spec: RunSpec, cache_dir=None) -> Path:
    cache_dir = RESULTS_DIR if cache_dir is None else Path(cache_dir)
    return cache_dir / f"{run_key(spec.config, _data(tuple(spec.config.views)))}.json"


def load_or_train(spec: RunSpec, cache_dir: str | os.PathLike | None = None, train_missing: bool = True):
    """Return the record of ``spec`` from the cache, training and storing it when missing.

    Only the ``main`` analysis needs linear probes. A cached run of the same
    configuration stored without them is retrained once with probes and overwritten.
    With ``train_missing=False`` a missing run raises ``FileNotFoundError``.
    """
    data = _data(tuple(spec.config.views))
    path = _cache_path(spec, cache_dir)
    needs_probe = spec.analysis == "main"
    if path.is_file():
        with path.open() as handle:
            record = json.load(handle)
        if record["probe_accuracy"] is not None or not needs_probe:
            return record
    if not train_missing:
        raise FileNotFoundError(
            f"no cached run {path.name} for {spec.analysis}/{spec.setting}/{spec.variant}/seed {spec.seed}; "
            f"run `python -m dagr.experiments --profile {active_profile()}` to compute it"
        )
    record = train_record(spec.config, data, probe=needs_probe)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    with partial.open("w") as handle:
        json.dump(record, handle, sort_keys=True, separators=(",", ":"))
    partial.replace(path)
    return record


def run_analysis(analysis: str, profile: str | None = None, cache_dir=None, train_missing: bool = True):
    """Return ``(spec, record)`` pairs for every run of ``analysis``, loading cached runs."""
    specs = plan(analysis, profile)
    # A progress bar only when something trains, so chapters that load the cache print none.
    if all(_cache_path(spec, cache_dir).is_file() for spec in specs):
        iterator = specs
    else:
        iterator = progress(specs, desc=f"{analysis} runs")
    return [(spec, load_or_train(spec, cache_dir, train_missing)) for spec in iterator]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def metrics_of(record: dict[str, Any]) -> dict[str, float]:
    """Flatten a record into named test metrics (accuracies in [0, 1])."""
    row = {"multimodal": record["test_accuracy"]}
    row.update({f"unimodal/{v}": a for v, a in record["unimodal_accuracy"].items()})
    row["unimodal (mean)"] = _mean(record["unimodal_accuracy"].values())
    if record["probe_accuracy"] is not None:
        row.update({f"probe/{v}": a for v, a in record["probe_accuracy"].items()})
        row["probe (mean)"] = _mean(record["probe_accuracy"].values())
    test = record["test_geometry"]
    row["semantic margin"] = _mean(test["semantic_margin"].values())
    row["effective rank"] = _mean(test["effective_rank"].values())
    if test["drift"] is not None:
        row["drift"] = test["drift"]
    return row


def frame(runs):
    """Return a long pandas DataFrame: setting, backbone, variant, seed, params, metric, value."""
    rows = []
    for spec, record in runs:
        for metric, value in metrics_of(record).items():
            rows.append({"setting": spec.setting, "backbone": spec.backbone, "variant": spec.variant,
                         "seed": spec.seed, **spec.params, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def history_frame(runs):
    """Return per-epoch validation geometry (means over views) as a long DataFrame."""
    rows = []
    for spec, record in runs:
        for row in record["history"]:
            measured = row["val_geometry"]
            values = {"semantic margin": _mean(measured["semantic_margin"].values()),
                      "effective rank": _mean(measured["effective_rank"].values()),
                      "drift": measured["drift"], "validation accuracy": row["val_accuracy"]}
            for metric, value in values.items():
                rows.append({"setting": spec.setting, "backbone": spec.backbone, "variant": spec.variant,
                             "seed": spec.seed, "epoch": row["epoch"], "metric": metric, "value": value})
    return pd.DataFrame(rows)


def is_accuracy(metric: str) -> bool:
    """Return True when ``metric`` (a name from :func:`metrics_of`) is an accuracy in [0, 1]."""
    return metric == "multimodal" or metric.startswith(("unimodal", "probe"))


def summary(runs, metrics=None, index=("setting", "backbone", "variant")):
    """Return a table of ``"mean ± std"`` strings over seeds, one column per metric.

    Columns follow ``metrics`` when given. Accuracies are shown in percent with 2
    decimals, geometry numbers with 3.
    """
    table = frame(runs)
    order = list(dict.fromkeys(table["metric"]))
    if metrics is not None:
        missing = [metric for metric in metrics if metric not in order]
        if missing:
            raise ValueError(f"metrics {missing} are not in the runs; available metrics: {order}")
        order = list(metrics)
        table = table[table["metric"].isin(order)]
    cells = {}
    for keys, group in table.groupby([*index, "metric"], sort=False):
        metric = keys[-1]
        digits, scale = (2, 100.0) if is_accuracy(metric) else (3, 1.0)
        cells[keys] = mean_std(group["value"].to_numpy(), digits=digits, scale=scale)
    series = pd.Series(cells)
    series.index.names = [*index, "metric"]
    return series.unstack("metric")[order].loc[list(dict.fromkeys(series.index.droplevel(-1)))]


def comparisons(runs, metric, baseline="baseline", by=("setting", "backbone")):
    """Compare every variant with ``baseline`` on ``metric``, paired by seed, within each group.

    Returns one row per (group, variant): the mean difference (percentage points for
    accuracies), the paired t-test p-value, the bootstrap interval, whether the
    difference is significant at 5% and a plain-language statement.
    """
    table = frame(runs)
    table = table[table["metric"] == metric]
    scale, unit = (100.0, " points") if is_accuracy(metric) else (1.0, "")
    label = "the baseline" if baseline == "baseline" else baseline
    rows = []
    for keys, group in table.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        base = group[group["variant"] == baseline].groupby("seed")["value"].first()
        if base.empty:
            raise ValueError(f"no {baseline!r} runs in group {dict(zip(by, keys))} to compare {metric!r} against")
        for variant, runs_of_variant in group[group["variant"] != baseline].groupby("variant", sort=False):
            values = runs_of_variant.groupby("seed")["value"].first()
            seeds = sorted(set(base.index) & set(values.index))
            result = compare(values.loc[seeds].to_numpy(), base.loc[seeds].to_numpy())
            rows.append({**dict(zip(by, keys)), "variant": variant, "metric": metric,
                         "difference": result.difference * scale, "p": result.p,
                         "ci_low": result.ci_low * scale, "ci_high": result.ci_high * scale,
                         "significant": result.significant, "seeds": result.n,
                         "statement": result.statement(variant, label, scale, unit)})
    return pd.DataFrame(rows)


def difference_cells(tests: dict, index=("setting", "variant"), digits: int = 2):
    """Return one table of ``"+d (p=...)"`` cells from :func:`comparisons` outputs keyed by metric.

    A ``*`` marks a difference significant at 5%, and ``p=n/a`` an undefined test.
    """
    cells = None
    for metric, tested in tests.items():
        column = []
        for row in tested.itertuples():
            p = "n/a" if pd.isna(row.p) else f"{row.p:.3f}"
            column.append(f"{row.difference:+.{digits}f} (p={p}){'*' if row.significant else ''}")
        if cells is None:
            cells = tested[list(index)].copy()
        cells[metric] = column
    return cells.set_index(list(index))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train (or load from results/runs) every run of a profile.")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="experiment size; default: DAGR_PROFILE, else 'book'")
    parser.add_argument("--analysis", choices=ANALYSES, action="append",
                        help="analysis to run (repeatable); default: all five")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.profile is not None:
        os.environ["DAGR_PROFILE"] = args.profile
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    for analysis in args.analysis or ANALYSES:
        runs = run_analysis(analysis)
        print(f"{analysis}: {len(runs)} runs, {time.perf_counter() - start:.0f} s elapsed", flush=True)


if __name__ == "__main__":
    main()
