"""Cost of DAGR(gather_distributed=True) in a DistributedDataParallel step (gloo, 2 CPU processes).

torchrun starts two processes on loopback. Each trains two MLP encoders
under DDP on its own rows. It times three steps side by side in round-robin
order: no regularizer, DAGR on the local rows only, and DAGR on the gathered
global batch. Rank 0 also checks that the gathered loss
equals the loss of one process on the concatenated batch.

    .venv/bin/python -m benchmarks.distributed           # full run, writes benchmarks/results/
    .venv/bin/python -m benchmarks.distributed --quick   # correctness only
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dagr import DAGR

from .common import machine, markdown_table, median_ratio, output_folder, parser, time_interleaved, write_results

FULL_BATCHES = [32, 128, 512]
QUICK_BATCHES = [16]
IN_DIM, DIM, CLASSES = 256, 128, 10


class TwoViewNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoders = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(IN_DIM, 256), nn.ReLU(), nn.Linear(256, DIM)) for name in ("a", "b")
        })
        self.head = nn.Linear(2 * DIM, CLASSES)

    def forward(self, x):
        zs = {name: encoder(x[name]) for name, encoder in self.encoders.items()}
        return self.head(torch.cat([zs["a"], zs["b"]], dim=1)), zs


def _global_batch(batch: int, world: int):
    generator = torch.Generator().manual_seed(batch)
    x = {name: torch.randn(batch * world, IN_DIM, generator=generator) for name in ("a", "b")}
    y = torch.randint(CLASSES, (batch * world,), generator=generator)
    return x, y


def worker(out: Path, batches: list[int], repeats: int) -> None:
    """Run inside torchrun: time the three variants on every batch size and write rank 0's results."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cells = []
    for batch in batches:
        x, y = _global_batch(batch, world)
        rows = slice(rank * batch, (rank + 1) * batch)
        local_x, local_y = {name: value[rows] for name, value in x.items()}, y[rows]
        torch.manual_seed(0)
        template = TwoViewNet()
        variants = {"no_dagr": None, "dagr_local": DAGR(lambda_d=0.1, lambda_a=0.1),
                    "dagr_gathered": DAGR(lambda_d=0.1, lambda_a=0.1, gather_distributed=True)}
        runs = {}
        for name, regularizer in variants.items():
            model = DistributedDataParallel(TwoViewNet())
            model.module.load_state_dict(template.state_dict())
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

            def step(model=model, optimizer=optimizer, regularizer=regularizer):
                optimizer.zero_grad(set_to_none=True)
                logits, zs = model(local_x)
                loss = F.cross_entropy(logits, local_y)
                if regularizer is not None:
                    loss = loss + regularizer(zs).loss
                loss.backward()
                optimizer.step()
            runs[name] = step
        seconds = time_interleaved(runs, repeats=repeats, warmup=2)
        gathered = DAGR(lambda_d=0.1, lambda_a=0.1, gather_distributed=True)(template(local_x)[1]).loss
        single = DAGR(lambda_d=0.1, lambda_a=0.1)(template(x)[1]).loss
        cells.append({
            "B_per_process": batch, "B_global": batch * world, "repeats": repeats,
            "median_step_ms": {name: 1e3 * sorted(values)[len(values) // 2] for name, values in seconds.items()},
            "ratio_vs_no_dagr": {name: median_ratio(seconds, name, "no_dagr") for name in ("dagr_local", "dagr_gathered")},
            "ratio_gathered_vs_local": median_ratio(seconds, "dagr_gathered", "dagr_local"),
            "loss_abs_diff_vs_single_process": abs(float(gathered - single)),
        })
    if rank == 0:
        out.write_text(json.dumps({"world_size": world, "cells": cells}), encoding="utf-8")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv=None) -> dict:
    arguments = parser(__doc__.splitlines()[0])
    arguments.add_argument("--worker", nargs=3, metavar=("OUT", "BATCHES", "REPEATS"), help="internal")
    args = arguments.parse_args(argv)
    if args.worker:
        out, batches, repeats = args.worker
        torch.set_num_threads(1)
        worker(Path(out), [int(value) for value in batches.split(",")], int(repeats))
        return {}

    batches, repeats = (QUICK_BATCHES, 3) if args.quick else (FULL_BATCHES, 30)
    launcher = Path(sys.executable).with_name("torchrun")
    prefix = [str(launcher)] if launcher.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rank0.json"
        command = prefix + ["--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                            "--master_port", str(_free_port()), "-m", "benchmarks.distributed",
                            "--worker", str(out), ",".join(map(str, batches)), str(repeats)]
        completed = subprocess.run(command, env=env, capture_output=True, text=True,
                                   cwd=Path(__file__).resolve().parent.parent, timeout=900)
        if completed.returncode != 0:
            raise RuntimeError(f"torchrun failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
        result = json.loads(out.read_text(encoding="utf-8"))
    for cell in result["cells"]:
        if cell["loss_abs_diff_vs_single_process"] > 1e-5:
            raise AssertionError(f"gathered loss differs from the single-process loss: {cell}")
    rows = [[cell["B_per_process"], cell["B_global"], cell["median_step_ms"]["no_dagr"],
             cell["ratio_vs_no_dagr"]["dagr_local"], cell["ratio_vs_no_dagr"]["dagr_gathered"],
             cell["ratio_gathered_vs_local"], cell["loss_abs_diff_vs_single_process"]] for cell in result["cells"]]
    table = markdown_table(["B per process", "B global", "no DAGR ms/step", "DAGR local / none",
                            "DAGR gathered / none", "gathered / local", "loss diff vs 1 process"], rows)
    command = ".venv/bin/python -m benchmarks.distributed" + (" --quick" if args.quick else "")
    payload = {"title": "DAGR with gather_distributed under DDP (gloo, 2 processes, 1 thread each)",
               "command": command, "machine": {**machine(), "torch_threads": 1, "processes": result["world_size"]},
               "cells": result["cells"]}
    write_results("distributed", payload, table, output_folder(args))
    return payload


if __name__ == "__main__":
    main()
