"""DAGR(gather_distributed=True) under torch.distributed (gloo, 2 CPU processes on loopback).

One torchrun launch runs every case; each test then compares one case with a
single process that ran the concatenated batch.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from dagr import DAGR
from dagr.distributed import all_reduce_sum, gather_rows, world_size

WORKER = Path(__file__).with_name("_distributed_worker.py")
CASES = [f"{mode}/{counts}" for counts in ("equal", "unequal") for mode in ("fixed", "features", "params")]
TOLERANCE = 1e-6


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun() -> list[str]:
    launcher = Path(sys.executable).with_name("torchrun")
    if launcher.exists():
        return [str(launcher)]
    return [sys.executable, "-m", "torch.distributed.run"]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    out = tmp_path_factory.mktemp("distributed")
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    command = _torchrun() + ["--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                             "--master_port", str(_free_port()), str(WORKER), str(out)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, f"torchrun failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return [json.loads((out / f"rank{rank}.json").read_text(encoding="utf-8")) for rank in (0, 1)]


def _close(first, second) -> bool:
    return torch.allclose(torch.as_tensor(first, dtype=torch.float64), torch.as_tensor(second, dtype=torch.float64),
                          rtol=0.0, atol=TOLERANCE)


@pytest.mark.parametrize("case", CASES)
def test_gathered_loss_equals_global(ranks, case):
    reference = ranks[0][case]["reference"]
    for rank in ranks:
        assert rank[case]["loss"] == pytest.approx(reference["loss"], abs=TOLERANCE)
        for key, value in reference["dispersion"].items():
            assert rank[case]["dispersion"][key] == pytest.approx(value, abs=TOLERANCE)


@pytest.mark.parametrize("case", CASES)
def test_gathered_alpha_equals_global(ranks, case):
    reference = ranks[0][case]["reference"]
    for rank in ranks:
        for key, value in reference["alpha"].items():
            if value is None:
                assert rank[case]["alpha"][key] is None
            else:
                assert rank[case]["alpha"][key] == pytest.approx(value, abs=TOLERANCE)


@pytest.mark.parametrize("case", CASES)
def test_ddp_param_grads_equal_single_process(ranks, case):
    reference = ranks[0][case]["reference"]["param_grads"]
    for rank in ranks:
        for name, grad in reference.items():
            assert _close(rank[case]["param_grads"][name], grad), f"parameter {name}"


@pytest.mark.parametrize("case", CASES)
def test_local_rows_get_world_size_times_grad(ranks, case):
    reference = ranks[0][case]["reference"]["z_grads"]
    for rank in ranks:
        start, stop = rank[case]["rows"]
        scale = rank[case]["world_size"]
        for key, grad in reference.items():
            local = torch.tensor(rank[case]["local_z_grads"][key], dtype=torch.float64) / scale
            assert _close(local, torch.tensor(grad, dtype=torch.float64)[start:stop]), f"modality {key}"


def test_single_process_gather_is_identity():
    z = torch.randn(5, 3, requires_grad=True)
    rows, local = gather_rows(z)
    assert rows is z
    assert local == slice(0, 5)
    assert world_size() == 1


def test_single_process_all_reduce_is_identity():
    values = torch.arange(4.0)
    assert torch.equal(all_reduce_sum(values.clone()), values)


def test_gather_flag_without_process_group():
    torch.manual_seed(0)
    zs = [torch.randn(6, 4, requires_grad=True) for _ in range(2)]
    plain = DAGR(lambda_d=0.5, lambda_a=0.5)(zs)
    gathered = DAGR(lambda_d=0.5, lambda_a=0.5, gather_distributed=True)(zs)
    assert gathered.loss.item() == pytest.approx(plain.loss.item(), abs=1e-7)


def test_gather_flag_rejects_non_bool():
    with pytest.raises(TypeError, match="gather_distributed must be True or False, got 'yes'"):
        DAGR(gather_distributed="yes")
