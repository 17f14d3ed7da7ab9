"""Worker started by torchrun from tests/test_distributed.py (not a test module itself).

Every process builds the same global batch and the same encoders, keeps its own
rows, and runs DAGR(gather_distributed=True) under DistributedDataParallel. Rank 0
also runs a plain DAGR on the concatenated batch. Each rank writes what it
measured to ``OUT/rank<r>.json`` for the test to compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dagr import DAGR

MODES = {
    "fixed": dict(lambda_d=0.7, lambda_a=0.3, tau=0.1),
    "features": dict(beta=0.2, pareto="features", tau=0.1),
    "params": dict(beta=0.2, pareto="params", tau=0.1),
}


class TwoEncoders(nn.Module):
    def __init__(self):
        super().__init__()
        self.audio = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4))
        self.video = nn.Linear(3, 4)

    def forward(self, x):
        return {"audio": self.audio(x["audio"]), "video": self.video(x["video"])}


def build(seed: int) -> TwoEncoders:
    torch.manual_seed(seed)
    return TwoEncoders().double()


def global_batch(counts: list[int]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    total = sum(counts)
    return {"audio": torch.randn(total, 5, generator=generator, dtype=torch.float64),
            "video": torch.randn(total, 3, generator=generator, dtype=torch.float64)}


def run_case(mode: str, counts: list[int]) -> dict:
    rank, world = dist.get_rank(), dist.get_world_size()
    start = sum(counts[:rank])
    local = slice(start, start + counts[rank])
    x = global_batch(counts)

    model = DistributedDataParallel(build(0))
    regularizer = DAGR(**MODES[mode], gather_distributed=True)
    zs = model({key: value[local] for key, value in x.items()})
    local_grads = {}
    for key, z in zs.items():
        z.register_hook(lambda grad, key=key: local_grads.__setitem__(key, grad.detach().clone()))
    params = [model.module.audio, model.module.video] if mode == "params" else None
    out = regularizer(zs, params=params)
    out.loss.backward()
    result = {
        "loss": float(out.loss.detach()),
        "dispersion": {key: float(value) for key, value in out.dispersion.items()},
        "alpha": {key: None if value is None else float(value) for key, value in out.alpha.items()},
        "param_grads": {name: param.grad.reshape(-1).tolist() for name, param in model.module.named_parameters()},
        "local_z_grads": {key: grad.tolist() for key, grad in local_grads.items()},
        "rows": [local.start, local.stop],
        "world_size": world,
    }

    if rank == 0:
        single = build(0)
        reference = DAGR(**MODES[mode])
        zs_single = single(x)
        # A hook, not retain_grad, because in params mode the embeddings also take
        # part in the vector-Jacobian products for alpha. The last call is the real backward.
        single_grads = {}
        for key, z in zs_single.items():
            z.register_hook(lambda grad, key=key: single_grads.__setitem__(key, grad.detach().clone()))
        out_single = reference(zs_single, params=[single.audio, single.video] if mode == "params" else None)
        out_single.loss.backward()
        result["reference"] = {
            "loss": float(out_single.loss.detach()),
            "dispersion": {key: float(value) for key, value in out_single.dispersion.items()},
            "alpha": {key: None if value is None else float(value) for key, value in out_single.alpha.items()},
            "param_grads": {name: param.grad.reshape(-1).tolist() for name, param in single.named_parameters()},
            "z_grads": {key: grad.tolist() for key, grad in single_grads.items()},
        }
    return result


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    results = {}
    for counts_name, counts in {"equal": [4, 4], "unequal": [3, 6]}.items():
        for mode in MODES:
            results[f"{mode}/{counts_name}"] = run_case(mode, counts)
    (out / f"rank{rank}.json").write_text(json.dumps(results), encoding="utf-8")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
