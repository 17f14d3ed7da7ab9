"""Peak memory of dispersion_loss (forward + backward), dense against chunked, one process per size.

Each measurement runs in a fresh Python process. It creates z, records its
peak resident set size (``ru_maxrss``), runs forward and backward, and records
the peak again. The increase is the memory the loss needed beyond what the
process had already touched. The parent compares the values and gradients of
the two modes. With ``--quick`` everything runs in this process, which checks
chunked against dense but gives no meaningful memory numbers. The full run ends with B = 65,536 at d = 128 in the default
mode (automatically chunked), which has to stay within 8 GiB.

    .venv/bin/python -m benchmarks.memory            # full run (the largest size takes minutes)
    .venv/bin/python -m benchmarks.memory --quick    # correctness only, seconds
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dagr.dispersion import auto_chunk_size, dispersion_loss

from .common import machine, markdown_table, output_folder, parser, write_results

FULL_SIZES = [1024, 4096, 8192, 16384]
QUICK_SIZES = [256, 512]
DIM = 128
CHUNK = 1024
QUICK_CHUNK = 64
LARGEST = 65536
LIMIT_BYTES = 8 * 2**30
TOLERANCE = 1e-5


def _peak_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_once(batch: int, dim: int, chunk: str, threads: int) -> tuple[dict, dict]:
    """Run one forward + backward; return peak memory and time, and the value and gradient."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(batch)
    z = torch.randn(batch, dim, generator=generator, requires_grad=True)
    dispersion_loss(z[:8].detach().requires_grad_(True)).backward()
    before = _peak_bytes()
    start = time.perf_counter()
    loss = dispersion_loss(z, chunk_size=None if chunk == "auto" else int(chunk))
    loss.backward()
    seconds = time.perf_counter() - start
    after = _peak_bytes()
    info = {"peak_bytes": after, "increase_bytes": after - before, "seconds": seconds}
    return info, {"loss": loss.detach(), "grad": z.grad}


def worker(batch: int, dim: int, chunk: str, threads: int, out: Path) -> None:
    """Run :func:`measure_once` and write its results next to ``out`` for the parent process."""
    info, tensors = measure_once(batch, dim, chunk, threads)
    torch.save(tensors, out.with_suffix(".pt"))
    out.write_text(json.dumps(info))


def run_worker(batch: int, dim: int, chunk: str, threads: int, folder: Path | None) -> tuple[dict, dict]:
    """Measure in a fresh process, or in this one when ``folder`` is None (quick mode, memory not meaningful)."""
    if folder is None:
        return measure_once(batch, dim, chunk, threads)
    out = folder / f"b{batch}_{chunk}.json"
    command = [sys.executable, "-m", "benchmarks.memory", "--worker", str(batch), str(dim), chunk, str(threads),
               str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if completed.returncode != 0:
        raise RuntimeError(f"memory worker for B={batch}, chunk={chunk} failed:\n{completed.stderr[-2000:]}")
    return json.loads(out.read_text()), torch.load(out.with_suffix(".pt"))


def main(argv=None) -> dict:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--worker", nargs=5, metavar=("B", "D", "CHUNK", "THREADS", "OUT"), help="internal")
    arguments.add_argument("--skip-largest", action="store_true", help=f"leave out B = {LARGEST:,} in a full run")
    args = arguments.parse_args(argv)
    if args.worker:
        batch, dim, chunk, threads, out = args.worker
        worker(int(batch), int(dim), chunk, int(threads), Path(out))
        return {}

    sizes, chunk = (QUICK_SIZES, QUICK_CHUNK) if args.quick else (FULL_SIZES, CHUNK)
    threads = args.threads or torch.get_num_threads()
    rows, cells = [], []
    with tempfile.TemporaryDirectory() as temporary:
        folder = None if args.quick else Path(temporary)
        for batch in sizes:
            dense, dense_tensors = run_worker(batch, DIM, str(batch), threads, folder)
            chunked, chunked_tensors = run_worker(batch, DIM, str(chunk), threads, folder)
            value_diff = abs(float(dense_tensors["loss"] - chunked_tensors["loss"]))
            grad_diff = float((dense_tensors["grad"] - chunked_tensors["grad"]).abs().max())
            if value_diff > TOLERANCE or grad_diff > TOLERANCE:
                raise AssertionError(f"chunked differs from dense at B={batch}: value {value_diff}, grad {grad_diff}")
            cells.append({"B": batch, "d": DIM, "chunk_size": chunk, "auto_chunk_size": auto_chunk_size(batch),
                          "dense": dense, "chunked": chunked, "value_abs_diff": value_diff,
                          "grad_max_abs_diff": grad_diff})
            print(cells[-1])
        largest = None
        if not args.quick and not args.skip_largest:
            result, tensors = run_worker(LARGEST, DIM, "auto", threads, folder)
            largest = {"B": LARGEST, "d": DIM, "chunk_size": auto_chunk_size(LARGEST), **result,
                       "loss": float(tensors["loss"]), "grad_finite": bool(torch.isfinite(tensors["grad"]).all()),
                       "limit_bytes": LIMIT_BYTES, "pass": bool(result["peak_bytes"] <= LIMIT_BYTES)}
            print(largest)

    mib = 2.0**20
    for cell in cells:
        rows.append([cell["B"], cell["d"], cell["dense"]["increase_bytes"] / mib, cell["chunked"]["increase_bytes"] / mib,
                     4 * cell["B"] ** 2 / mib, cell["dense"]["seconds"], cell["chunked"]["seconds"],
                     max(cell["value_abs_diff"], cell["grad_max_abs_diff"])])
    if largest is not None:
        rows.append([LARGEST, DIM, "not run", largest["increase_bytes"] / mib, 4 * LARGEST**2 / mib, "-",
                     largest["seconds"], f"peak RSS {largest['peak_bytes'] / 2**30:.2f} GiB "
                     f"({'pass' if largest['pass'] else 'FAIL'}, limit 8 GiB)"])
    table = markdown_table(["B", "d", "dense MiB", f"chunked MiB (chunk {chunk})", "one B x B float32 matrix MiB",
                            "dense s", "chunked s", "max abs diff, chunked vs dense"], rows)
    command = ".venv/bin/python -m benchmarks.memory" + (" --quick" if args.quick else "")
    payload = {"title": "Peak memory of dispersion_loss, forward + backward", "command": command,
               "machine": {**machine(), "torch_threads": threads}, "cells": cells, "largest": largest,
               "tolerance": TOLERANCE}
    write_results("memory", payload, table, output_folder(args))
    return payload


if __name__ == "__main__":
    main()
