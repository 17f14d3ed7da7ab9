"""Shared helpers of the benchmarks: interleaved timing, machine record, result files."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """Describe the machine a benchmark ran on: CPU model, core count, torch version and threads."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def time_interleaved(candidates: Mapping[str, Callable[[], object]], repeats: int,
                     warmup: int = 1) -> dict[str, list[float]]:
    """Time every candidate ``repeats`` times, in round-robin order, and return the seconds of each call.

    Interleaving spreads the load of other processes over all candidates, so
    ratios of medians stay meaningful on a shared machine.
    """
    for _ in range(warmup):
        for run in candidates.values():
            run()
    seconds = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def median_ratio(seconds: Mapping[str, list[float]], name: str, base: str) -> float:
    """Return the median over repeats of ``seconds[name][r] / seconds[base][r]``.

    Both lists come from the same round-robin pass, so each ratio compares two
    calls made moments apart.
    """
    return statistics.median(a / b for a, b in zip(seconds[name], seconds[base]))


def parser(description: str) -> argparse.ArgumentParser:
    """Return an argument parser with the options every benchmark shares."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--quick", action="store_true",
                        help="fixed tiny sizes and few repeats, overriding the size options: checks correctness "
                             "in seconds, timings are not meaningful")
    result.add_argument("--out", type=Path, default=None,
                        help="folder for the JSON and markdown results (default benchmarks/results, "
                             "or no files with --quick)")
    # One thread by default: on a machine shared with other jobs, a second
    # spinning thread makes timings swing far more than it speeds them up.
    result.add_argument("--threads", type=int, default=1,
                        help="torch threads to measure with (default 1; 0 keeps torch's default)")
    return result


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """Format ``rows`` as a GitHub markdown table."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict, table: str, out: Path | None) -> None:
    """Write ``NAME.json`` and ``NAME.md`` into ``out`` (nothing when ``out`` is None)."""
    print(table)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    info = payload["machine"]
    header = (f"# {payload['title']}\n\nCommand: `{payload['command']}`\n\n"
              f"Machine: {info['cpu']}, {info['cpu_count']} cores, torch {info['torch']} "
              f"with {info['torch_threads']} threads, measured {info['time_utc']} UTC.\n\n")
    (out / f"{name}.md").write_text(header + table + "\n", encoding="utf-8")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")


def output_folder(args) -> Path | None:
    if args.out is not None:
        return args.out
    return None if args.quick else RESULTS_DIR
