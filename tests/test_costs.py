"""Fast paths against their reference formulas, and the quick mode of every cost benchmark.

The quick benchmarks check correctness (values, gradients, alpha range), never speed.
"""

import math

import pytest
import torch

import dagr.dispersion as dispersion
import dagr.regularizer as regularizer
from benchmarks import common
from benchmarks import dispersion as dispersion_benchmark
from benchmarks import distributed as distributed_benchmark
from benchmarks import memory as memory_benchmark
from benchmarks import step as step_benchmark
from dagr import DAGR
from dagr.dispersion import auto_chunk_size, dispersion_loss, dispersion_loss_reference


@pytest.fixture(autouse=True)
def _restore_threads():
    # The benchmarks set torch's thread count, which is global to the process.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _value_and_grad(loss_fn, z):
    z = z.detach().clone().requires_grad_(True)
    loss = loss_fn(z)
    (grad,) = torch.autograd.grad(loss, z)
    return loss.detach(), grad


@pytest.mark.parametrize("batch, dim, t", [(2, 3, 2.0), (33, 7, 0.5), (64, 128, 2.0), (130, 16, 20.0), (50, 9, 25.0)])
def test_fast_dispersion_matches_pdist(batch, dim, t):
    z = torch.randn(batch, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(batch))
    fast, grad_fast = _value_and_grad(lambda x: dispersion_loss(x, t), z)
    reference, grad_reference = _value_and_grad(lambda x: dispersion_loss_reference(x, t), z)
    assert float(fast) == pytest.approx(float(reference), rel=1e-10, abs=1e-12)
    assert torch.allclose(grad_fast, grad_reference, rtol=1e-8, atol=1e-12)


def test_fast_dispersion_float32_close_to_float64():
    z = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    single, grad_single = _value_and_grad(dispersion_loss, z)
    double, grad_double = _value_and_grad(dispersion_loss, z.double())
    assert float(single) == pytest.approx(float(double), abs=1e-5)
    assert float((grad_single.double() - grad_double).abs().max()) < 1e-6


def test_fast_dispersion_small_rows_follow_normalize():
    # Rows below the eps of F.normalize are divided by eps, not by their norm.
    z = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z[2] = 1e-14
    z[4] = 0.0
    fast, grad_fast = _value_and_grad(dispersion_loss, z)
    reference, grad_reference = _value_and_grad(lambda x: dispersion_loss_reference(x + 0.0), z)
    assert float(fast) == pytest.approx(float(reference), rel=1e-10)
    assert torch.allclose(grad_fast[[0, 1, 3, 5]], grad_reference[[0, 1, 3, 5]], atol=1e-10)


@pytest.mark.parametrize("t, chunk_size", [(2.0, None), (2.0, 4), (30.0, None)])
def test_stacked_dispersion_matches_single(t, chunk_size):
    generator = torch.Generator().manual_seed(5)
    zs = [torch.randn(10, 6, dtype=torch.float64, generator=generator) for _ in range(4)]
    zs[2][7] = 0.0
    zs = [z.requires_grad_(True) for z in zs]
    weights = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)
    stacked = dispersion.dispersion_losses(zs, t, chunk_size)
    single = torch.stack([dispersion_loss(z, t, chunk_size) for z in zs])
    assert torch.allclose(stacked, single, rtol=1e-12, atol=0.0)
    grads_stacked = torch.autograd.grad((weights * stacked).sum(), zs)
    grads_single = torch.autograd.grad((weights * single).sum(), zs)
    for grad_stacked, grad_single in zip(grads_stacked, grads_single):
        assert torch.allclose(grad_stacked, grad_single, atol=1e-12)


def test_stacked_dispersion_gradcheck():
    generator = torch.Generator().manual_seed(6)
    zs = tuple(torch.randn(5, 3, dtype=torch.float64, generator=generator, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda *inputs: dispersion.dispersion_losses(inputs, 1.3), zs)


def test_stacked_dispersion_names_modality():
    with pytest.raises(ValueError, match="modality 'video'"):
        dispersion.dispersion_losses([torch.randn(4, 3), torch.randn(1, 3)], modalities=["audio", "video"])
    with pytest.raises(ValueError, match="zs is empty"):
        dispersion.dispersion_losses([])


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 31])
def test_chunked_matches_dense_large_t(chunk_size):
    z = torch.randn(31, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    dense, grad_dense = _value_and_grad(lambda x: dispersion_loss(x, 30.0), z)
    chunked, grad_chunked = _value_and_grad(lambda x: dispersion_loss(x, 30.0, chunk_size=chunk_size), z)
    assert float(chunked) == pytest.approx(float(dense), rel=1e-12)
    assert torch.allclose(grad_chunked, grad_dense, atol=1e-12)


def test_auto_chunk_size_threshold():
    assert auto_chunk_size(2) == 2
    assert auto_chunk_size(8192) == 8192
    assert auto_chunk_size(8193) == dispersion.CHUNK_ELEMENTS // 8193
    assert auto_chunk_size(65536) == 256
    assert auto_chunk_size(2**25) == 1


def test_auto_chunking_matches_dense(monkeypatch):
    z = torch.randn(40, 8, generator=torch.Generator().manual_seed(3))
    dense, grad_dense = _value_and_grad(lambda x: dispersion_loss(x, chunk_size=40), z)
    monkeypatch.setattr(dispersion, "AUTO_CHUNK_ELEMENTS", 100)
    monkeypatch.setattr(dispersion, "CHUNK_ELEMENTS", 280)
    assert auto_chunk_size(40) == 7
    automatic, grad_automatic = _value_and_grad(dispersion_loss, z)
    assert float(automatic) == pytest.approx(float(dense), abs=1e-6)
    assert torch.allclose(grad_automatic, grad_dense, atol=1e-6)


def _encoder_case():
    torch.manual_seed(0)
    encoders = [torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
                for _ in range(2)]
    x = torch.randn(12, 5, dtype=torch.float64)
    return encoders, x


def test_batched_vjp_matches_plain():
    encoders, x = _encoder_case()
    z = encoders[0](x)
    pairs = list(encoders[0].named_parameters())
    grad_a, grad_d = torch.randn(12, 4, dtype=torch.float64), torch.randn(12, 4, dtype=torch.float64)
    plain = torch.stack(regularizer._param_grads(z, pairs, grad_a, grad_d))
    batched = regularizer._batched_param_grads(z, pairs, grad_a, grad_d)
    assert torch.allclose(batched, plain, atol=1e-12)


def test_params_alpha_falls_back_to_plain(monkeypatch):
    encoders, x = _encoder_case()
    fast = DAGR(beta=0.1, pareto="params")
    out_fast = fast([encoder(x) for encoder in encoders], params=encoders)

    def failing(*args, **kwargs):
        raise RuntimeError("no batching rule")

    monkeypatch.setattr(regularizer, "_batched_param_grads", failing)
    fallback = DAGR(beta=0.1, pareto="params")
    out_fallback = fallback([encoder(x) for encoder in encoders], params=encoders)
    assert fallback._batched_vjp is False
    for key in out_fast.alpha:
        assert float(out_fallback.alpha[key]) == pytest.approx(float(out_fast.alpha[key]), abs=1e-12)


def test_params_alpha_matches_min_norm_formula():
    encoders, x = _encoder_case()
    zs = [encoder(x) for encoder in encoders]
    out = DAGR(beta=0.1, pareto="params")(zs, params=encoders)
    leaves = [z.detach().requires_grad_(True) for z in zs]
    anchoring = regularizer.anchoring_loss(leaves)
    for index, (z, encoder) in enumerate(zip(zs, encoders)):
        params = list(encoder.parameters())
        u_a = torch.autograd.grad(anchoring, leaves[index], retain_graph=True)[0]
        u_d = torch.autograd.grad(dispersion_loss(leaves[index]), leaves[index])[0]
        g_a = torch.autograd.grad(z, params, u_a, retain_graph=True)
        g_d = torch.autograd.grad(z, params, u_d, retain_graph=True)
        assert float(out.alpha[str(index)]) == pytest.approx(float(regularizer.alpha_from_flat(
            torch.cat([g.reshape(-1) for g in g_a]).double(), torch.cat([g.reshape(-1) for g in g_d]).double())),
            abs=1e-9)


def test_alpha_drift_of_stale_alpha():
    alphas = [{"a": 0.0}, {"a": 0.5}, {"a": 1.0}, {"a": 1.0}]
    assert step_benchmark.alpha_drift(alphas, 1) == 0.0
    # Steps 1 and 3 reuse steps 0 and 2: gaps 0, 0.5, 0, 0.
    assert step_benchmark.alpha_drift(alphas, 2) == pytest.approx(0.125)


def test_median_ratio_pairs_rounds():
    seconds = {"a": [2.0, 4.0, 9.0], "b": [1.0, 2.0, 3.0]}
    assert common.median_ratio(seconds, "a", "b") == 2.0


def test_markdown_table_layout():
    table = common.markdown_table(["x", "y"], [[1, 0.5], ["z", 1234.5]])
    assert table.splitlines() == ["| x | y |", "|---|---|", "| 1 | 0.5 |", "| z | 1234 |"]


def test_quick_dispersion_benchmark():
    payload = dispersion_benchmark.main(["--quick"])
    assert [(cell["B"], cell["d"]) for cell in payload["cells"]] == dispersion_benchmark.QUICK_SIZES
    for cell in payload["cells"]:
        assert math.isfinite(cell["ratio_vs_floor"])
        assert math.isfinite(cell["ratio_vs_pdist"])
    for check in payload["checks"]:
        assert check["grad_max_abs_diff"] < 1e-10


def test_quick_step_benchmark():
    payload = step_benchmark.main(["--quick"])
    assert {cell["model_name"] for cell in payload["cells"]} == {"mfeat", "audio_visual"}
    for cell in payload["cells"]:
        assert all(math.isfinite(value) for value in cell["ratio_vs_baseline"].values())
        assert cell["alpha_steps"] > 0


def test_quick_memory_benchmark():
    payload = memory_benchmark.main(["--quick"])
    for cell in payload["cells"]:
        assert cell["value_abs_diff"] <= memory_benchmark.TOLERANCE
        assert cell["grad_max_abs_diff"] <= memory_benchmark.TOLERANCE


def test_quick_distributed_benchmark():
    payload = distributed_benchmark.main(["--quick"])
    for cell in payload["cells"]:
        assert cell["loss_abs_diff_vs_single_process"] < 1e-5
        assert math.isfinite(cell["ratio_gathered_vs_local"])


def _anchoring_pair_loop(zs, tau):
    normalized = [torch.nn.functional.normalize(z, dim=1) for z in zs]
    penalties = []
    for m in range(len(zs)):
        for n in range(m + 1, len(zs)):
            distance = (normalized[m] - normalized[n]).norm(dim=1)
            penalties.append((distance - tau).clamp_min(0.0).pow(2).mean())
    return torch.stack(penalties).mean()


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_vectorized_anchoring_matches_pair_loop(tau):
    generator = torch.Generator().manual_seed(4)
    zs = [torch.randn(9, 5, dtype=torch.float64, generator=generator) for _ in range(6)]
    zs[3][2] = 0.0
    zs = [z.requires_grad_(True) for z in zs]
    fast = regularizer.anchoring_loss(zs, tau)
    loop = _anchoring_pair_loop(zs, tau)
    assert fast.item() == pytest.approx(loop.item(), rel=1e-12)
    for grad_fast, grad_loop in zip(torch.autograd.grad(fast, zs), torch.autograd.grad(loop, zs)):
        assert torch.allclose(grad_fast, grad_loop, atol=1e-12)
