"""Training-step time with and without DAGR, side by side, and the alpha drift of alpha_every=k.

Variants: baseline (cross-entropy only), DAGR with fixed weights, Pareto
"features", Pareto "params" with alpha every step, and Pareto "params" with
alpha refreshed every k steps. Two timing passes run per batch size. In the
first, each timed unit is one optimizer step of baseline, fixed, features and
params. In the second, each unit is k steps of baseline and of the refresh
variant, so that the refresh variant pays its one alpha step in every unit.
Units run in round-robin order, and each ratio is the median over repeats of
unit time / baseline unit time from the same round.

Models: (i) the six-view mfeat network of dagr.models on real mfeat batches,
(ii) the two-stream ResNet-18 of dagr.backbones on random tensors with the
CREMA-D shapes, reduced for a CPU (width and input scale below).

    .venv/bin/python -m benchmarks.step            # full run, writes benchmarks/results/
    .venv/bin/python -m benchmarks.step --quick    # correctness only, seconds
"""

from __future__ import annotations

import copy
import itertools
import statistics

import torch
import torch.nn.functional as F

from dagr import DAGR
from dagr.backbones import AudioVisualNet, crema_d_shapes, random_crema_d_batch
from dagr.data import MultiFeatures
from dagr.models import build_mfeat_model

from .common import machine, markdown_table, median_ratio, output_folder, parser, time_interleaved, write_results

# Targets on the audio-visual model at B = 64, as time relative to the baseline step.
TARGETS = {"fixed": 1.03, "features": 1.05, "params_every_k": 1.15}
# Time per epoch with DAGR relative to the baseline, measured on an H100 on CREMA-D
# (Xia et al., arXiv 2601.21670, Table 6).
PAPER_OVERHEAD = {32: 1.154, 64: 1.125, 128: 1.120, 256: 1.092}


def regularizers(k: int) -> dict[str, DAGR | None]:
    return {
        "baseline": None,
        "fixed": DAGR(lambda_d=0.1, lambda_a=0.1),
        "features": DAGR(beta=0.1, pareto="features"),
        "params": DAGR(beta=0.1, pareto="params"),
        "params_every_k": DAGR(beta=0.1, pareto="params", alpha_every=k),
    }


class Trainer:
    """One model copy, its optimizer and regularizer, stepping through a fixed list of batches."""

    def __init__(self, model, regularizer, batches, lr: float = 1e-3):
        self.model = model
        self.regularizer = regularizer
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        self.batches = itertools.cycle(batches)
        self.alphas: list[dict[str, float]] = []
        self.losses: list[float] = []

    def step(self) -> None:
        x, y = next(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        logits, zs = self.model(x)
        loss = F.cross_entropy(logits, y)
        if self.regularizer is not None:
            params = dict(self.model.encoders) if self.regularizer.pareto == "params" else None
            out = self.regularizer(zs, params=params)
            loss = loss + out.loss
            if out.alpha and None not in out.alpha.values():
                self.alphas.append({key: float(value) for key, value in out.alpha.items()})
        loss.backward()
        self.optimizer.step()
        self.losses.append(float(loss.detach()))

    def run(self, steps: int):
        def unit():
            for _ in range(steps):
                self.step()
        return unit


def alpha_drift(alphas: list[dict[str, float]], k: int) -> float:
    """Return the mean |alpha_t - alpha_{k floor(t/k)}| over steps and modalities.

    ``alphas`` is the trajectory of alpha recomputed at every step; the value
    ``alpha_{k floor(t/k)}`` is what alpha_every=k would still be using at step t
    on that same trajectory.
    """
    gaps = [abs(row[key] - alphas[(index // k) * k][key]) for index, row in enumerate(alphas) for key in row]
    return statistics.fmean(gaps) if gaps else 0.0


def mfeat_setup(batch: int, num_batches: int, seed: int):
    data = MultiFeatures()
    generator = torch.Generator().manual_seed(seed)
    batches = list(itertools.islice(data.train.batches(batch, shuffle=True, generator=generator, drop_last=True),
                                    num_batches))
    torch.manual_seed(seed)
    return build_mfeat_model(None, dim=64), batches, "six-view mfeat network (dagr.models, dim 64), real mfeat batches"


def audio_visual_setup(batch: int, num_batches: int, seed: int, width: int, scale: float, frames: int):
    generator = torch.Generator().manual_seed(seed)
    batches = [random_crema_d_batch(batch, scale, frames, generator=generator) for _ in range(num_batches)]
    torch.manual_seed(seed)
    shapes = crema_d_shapes(scale, frames)
    description = (f"two-stream ResNet-18 (dagr.backbones, width {width}, embedding {8 * width}), random inputs "
                   f"audio {shapes['audio']}, video {shapes['video']}")
    return AudioVisualNet(num_classes=6, width=width), batches, description


def measure(setup, batch: int, k: int, repeats: int, refresh_repeats: int) -> dict:
    model, batches, description = setup(batch)
    trainers = {name: Trainer(copy.deepcopy(model), regularizer, batches)
                for name, regularizer in regularizers(k).items()}
    single = time_interleaved({name: trainer.run(1) for name, trainer in trainers.items()
                               if name != "params_every_k"}, repeats=repeats)
    refresh = time_interleaved({name: trainers[name].run(k) for name in ("baseline", "params_every_k")},
                               repeats=refresh_repeats)
    ratios = {name: median_ratio(single, name, "baseline") for name in single if name != "baseline"}
    ratios["params_every_k"] = median_ratio(refresh, "params_every_k", "baseline")
    step_ms = {name: 1e3 * statistics.median(values) for name, values in single.items()}
    step_ms["params_every_k"] = 1e3 * statistics.median(refresh["params_every_k"]) / k
    for name, trainer in trainers.items():
        if not all(map(torch.isfinite, map(torch.tensor, trainer.losses))):
            raise AssertionError(f"variant {name} produced a non-finite loss at B={batch}")
        for row in trainer.alphas:
            if not all(0.0 <= value <= 1.0 for value in row.values()):
                raise AssertionError(f"variant {name} produced alpha outside [0, 1]: {row}")
    # Extend the every-step trajectory, untimed, so that the drift covers at least three refreshes.
    while len(trainers["params"].alphas) < 3 * k:
        trainers["params"].step()
    trajectory = trainers["params"].alphas
    return {
        "B": batch, "k": k, "repeats": repeats, "refresh_repeats": refresh_repeats, "model": description,
        "median_step_ms": step_ms,
        "ratio_vs_baseline": ratios,
        "alpha_steps": len(trajectory),
        "alpha_drift": {str(every): alpha_drift(trajectory, every) for every in sorted({2, 5, 10, k})},
    }


def main(argv=None) -> dict:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--k", type=int, default=20, help="alpha_every of the refresh variant (default 20)")
    arguments.add_argument("--width", type=int, default=16, help="ResNet-18 first-stage channels (default 16, a quarter of the full 64)")
    arguments.add_argument("--scale", type=float, default=0.125, help="input size factor of the CREMA-D shapes (default 0.125)")
    arguments.add_argument("--frames", type=int, default=2, help="video frames per clip (default 2)")
    args = arguments.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        sizes, k, width, scale, frames = [8], 2, 4, 0.06, 1
    else:
        sizes, k, width, scale, frames = [32, 64, 128, 256], args.k, args.width, args.scale, args.frames

    models = {
        "mfeat": lambda batch: mfeat_setup(batch, num_batches=8, seed=0),
        "audio_visual": lambda batch: audio_visual_setup(batch, num_batches=4, seed=0, width=width, scale=scale,
                                                         frames=frames),
    }
    cells = []
    for model_name, setup in models.items():
        for batch in sizes:
            if args.quick:
                counts = (2, 2)
            elif batch <= 64:
                counts = (31, 7)
            else:
                counts = (15, 5)
            cell = measure(setup, batch, k, *counts)
            cell["model_name"] = model_name
            if model_name == "audio_visual" and batch == 64:
                cell["targets"] = TARGETS
                cell["pass"] = {name: bool(cell["ratio_vs_baseline"][name] <= target)
                                for name, target in TARGETS.items()}
            cells.append(cell)
            print(model_name, batch, cell["ratio_vs_baseline"], cell["alpha_drift"])

    command = ".venv/bin/python -m benchmarks.step" + (" --quick" if args.quick else f" --k {k}")
    payload = {"title": "Training-step overhead of DAGR", "command": command, "machine": machine(),
               "paper_overhead_h100_crema_d": PAPER_OVERHEAD, "cells": cells}
    rows = []
    for cell in cells:
        ratio = cell["ratio_vs_baseline"]
        verdict = "-"
        if "pass" in cell:
            verdict = ", ".join(f"{name} {'pass' if ok else 'FAIL'}" for name, ok in cell["pass"].items())
        rows.append([cell["model_name"], cell["B"], cell["median_step_ms"]["baseline"], ratio["fixed"],
                     ratio["features"], ratio["params"], ratio["params_every_k"], cell["alpha_drift"][str(k)],
                     PAPER_OVERHEAD.get(cell["B"], "-") if cell["model_name"] == "audio_visual" else "-", verdict])
    table = markdown_table(["model", "B", "baseline ms/step", "fixed", "features", "params (k=1)",
                            f"params (k={k})", f"alpha drift k={k}", "paper (H100)", "targets at B=64"], rows)
    write_results("step", payload, table, output_folder(args))
    return payload


if __name__ == "__main__":
    main()
