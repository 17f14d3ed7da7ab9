"""Forward + backward time of dispersion_loss against the torch.pdist reference and a matmul floor.

The floor is forward + backward of ``(z @ z.T).sum()``: one B x B x d product
forward and two backward, which any method that looks at all B^2 pairs
through a Gram matrix must roughly pay. Targets for B >= 256: at most 1.5x
the floor at d = 512, at most 2x at d = 128, and faster than pdist.

    .venv/bin/python -m benchmarks.dispersion           # full grid, writes benchmarks/results/
    .venv/bin/python -m benchmarks.dispersion --quick   # correctness only, seconds
"""

from __future__ import annotations

import torch

from dagr.dispersion import dispersion_loss, dispersion_loss_reference

from .common import machine, markdown_table, median_ratio, output_folder, parser, time_interleaved, write_results

FULL_SIZES = [(64, 128), (64, 512), (256, 128), (256, 512), (1024, 128), (1024, 512), (4096, 128), (4096, 512)]
QUICK_SIZES = [(64, 32), (256, 128)]


def target_ratio(batch: int, dim: int) -> float | None:
    """Return the largest allowed time relative to the floor, or None where no target is set."""
    if batch < 256:
        return None
    return 1.5 if dim >= 512 else 2.0


def forward_backward(loss_fn, z: torch.Tensor):
    def run():
        (grad,) = torch.autograd.grad(loss_fn(z), z)
        return grad
    return run


def floor_loss(z: torch.Tensor) -> torch.Tensor:
    return (z @ z.T).sum()


def check_against_reference(batch: int, dim: int, seed: int = 0) -> dict:
    """Compare value and gradient of the fast path with the pdist reference in float64."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, dim, generator=generator, dtype=torch.float64, requires_grad=True)
    fast, reference = dispersion_loss(z), dispersion_loss_reference(z)
    grad_fast = torch.autograd.grad(fast, z)[0]
    grad_reference = torch.autograd.grad(reference, z)[0]
    return {
        "value_abs_diff": abs(float(fast.detach() - reference.detach())),
        "grad_max_abs_diff": float((grad_fast - grad_reference).abs().max()),
    }


def measure(batch: int, dim: int, repeats: int) -> dict:
    generator = torch.Generator().manual_seed(batch + dim)
    z = torch.randn(batch, dim, generator=generator, requires_grad=True)
    seconds = time_interleaved({
        "dagr": forward_backward(dispersion_loss, z),
        "pdist": forward_backward(dispersion_loss_reference, z),
        "floor": forward_backward(floor_loss, z),
    }, repeats=repeats)
    vs_floor = median_ratio(seconds, "dagr", "floor")
    vs_pdist = median_ratio(seconds, "dagr", "pdist")
    target = target_ratio(batch, dim)
    passed = None if target is None else bool(vs_floor <= target and vs_pdist < 1.0)
    return {
        "B": batch, "d": dim, "repeats": repeats,
        "median_ms": {name: 1e3 * sorted(values)[len(values) // 2] for name, values in seconds.items()},
        "ratio_vs_floor": vs_floor, "ratio_vs_pdist": vs_pdist,
        "target_vs_floor": target, "pass": passed,
    }


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    checks = [dict(B=batch, d=dim, **check_against_reference(batch, dim)) for batch, dim in sizes]
    for check in checks:
        if check["value_abs_diff"] > 1e-10 or check["grad_max_abs_diff"] > 1e-10:
            raise AssertionError(f"dispersion_loss differs from the pdist reference: {check}")
    cells = []
    for batch, dim in sizes:
        if args.quick:
            repeats = 3
        elif batch >= 4096:
            repeats = 7
        else:
            repeats = 21
        cells.append(measure(batch, dim, repeats))
        print(cells[-1])
    command = ".venv/bin/python -m benchmarks.dispersion" + (" --quick" if args.quick else "")
    payload = {"title": "Dispersion kernel: forward + backward time", "command": command,
               "machine": machine(), "checks": checks, "cells": cells}
    rows = [[cell["B"], cell["d"], cell["median_ms"]["dagr"], cell["median_ms"]["pdist"], cell["median_ms"]["floor"],
             cell["ratio_vs_floor"], cell["ratio_vs_pdist"],
             "-" if cell["target_vs_floor"] is None else f"<= {cell['target_vs_floor']}x floor, < 1x pdist",
             {True: "pass", False: "FAIL", None: "-"}[cell["pass"]]] for cell in cells]
    table = markdown_table(["B", "d", "dagr ms", "pdist ms", "floor ms", "dagr / floor", "dagr / pdist",
                            "target", "result"], rows)
    write_results("dispersion", payload, table, output_folder(args))
    return payload


if __name__ == "__main__":
    main()
