"""Dispersion, anchoring and the min-norm alpha against their formulas and edge cases."""

import itertools
import math

import pytest
import torch

from dagr import anchoring_loss, dispersion_loss, min_norm_alpha
from dagr.dispersion import dispersion_loss_reference


def _brute_dispersion(z, t):
    zn = torch.nn.functional.normalize(z, dim=1)
    batch = zn.shape[0]
    terms = [torch.exp(-t * (zn[i] - zn[j]).pow(2).sum()) for i in range(batch) for j in range(batch) if i != j]
    return torch.log(torch.stack(terms).sum() / (batch * (batch - 1)))


def _brute_anchoring(zs, tau):
    normalized = [torch.nn.functional.normalize(z, dim=1) for z in zs]
    modalities, batch = len(zs), zs[0].shape[0]
    total = 0.0
    for i in range(batch):
        for m, n in itertools.permutations(range(modalities), 2):
            distance = (normalized[m][i] - normalized[n][i]).norm()
            total += torch.clamp(distance - tau, min=0) ** 2 / (modalities * (modalities - 1))
    return total / batch


@pytest.mark.parametrize("t", [0.5, 2.0, 30.0])
def test_dispersion_matches_brute_force(t):
    torch.manual_seed(0)
    z = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    fast = dispersion_loss(z, t)
    brute = _brute_dispersion(z, t)
    assert fast.item() == pytest.approx(brute.item(), rel=1e-12, abs=1e-12)
    (grad_fast,) = torch.autograd.grad(fast, z)
    (grad_brute,) = torch.autograd.grad(brute, z)
    assert torch.allclose(grad_fast, grad_brute, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100])
def test_dispersion_chunked_equals_dense(chunk_size):
    torch.manual_seed(1)
    z = torch.randn(7, 5, requires_grad=True)
    dense = dispersion_loss(z, 2.0)
    chunked = dispersion_loss(z, 2.0, chunk_size=chunk_size)
    assert chunked.item() == pytest.approx(dense.item(), abs=1e-6)
    (grad_dense,) = torch.autograd.grad(dense, z)
    (grad_chunked,) = torch.autograd.grad(chunked, z)
    assert torch.allclose(grad_dense, grad_chunked, atol=1e-6)


def test_dispersion_matches_pdist_reference():
    torch.manual_seed(2)
    z = torch.randn(32, 16, dtype=torch.float64, requires_grad=True)
    fast, reference = dispersion_loss(z, 1.0), dispersion_loss_reference(z, 1.0)
    assert fast.item() == pytest.approx(reference.item(), rel=1e-12)
    assert torch.allclose(torch.autograd.grad(fast, z)[0], torch.autograd.grad(reference, z)[0], atol=1e-12)


def test_dispersion_gradcheck():
    torch.manual_seed(3)
    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: dispersion_loss(x, 1.3), (z,))
    assert torch.autograd.gradcheck(lambda x: dispersion_loss(x, 1.3, chunk_size=2), (z,))


def test_dispersion_range_and_collapse():
    t = 2.0
    collapsed = torch.ones(6, 3)
    assert dispersion_loss(collapsed, t).item() == pytest.approx(0.0, abs=1e-6)
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert dispersion_loss(antipodal, t).item() == pytest.approx(-4 * t, abs=1e-5)
    spread = torch.randn(50, 8)
    assert -4 * t <= dispersion_loss(spread, t).item() <= 0.0


def test_dispersion_finite_for_identical_and_zero_rows():
    z = torch.randn(5, 4)
    z[1] = z[0]
    z[3] = 0.0
    z.requires_grad_()
    loss = dispersion_loss(z)
    (grad,) = torch.autograd.grad(loss, z)
    assert math.isfinite(loss.item())
    assert bool(torch.isfinite(grad).all())


def test_dispersion_all_zero_batch():
    z = torch.zeros(4, 3, requires_grad=True)
    loss = dispersion_loss(z)
    (grad,) = torch.autograd.grad(loss, z)
    assert loss.item() == 0.0
    assert bool((grad == 0).all())


def test_dispersion_keeps_dtype():
    assert dispersion_loss(torch.randn(4, 3, dtype=torch.float64)).dtype == torch.float64
    assert dispersion_loss(torch.randn(4, 3)).dtype == torch.float32


@pytest.mark.parametrize("z, error, match", [
    (torch.randn(1, 3), ValueError, "at least 2 samples, got batch size 1"),
    (torch.randn(0, 3), ValueError, "at least 2 samples, got batch size 0"),
    (torch.randn(4), ValueError, "must be 2-D .* got shape \\(4,\\)"),
    (torch.randn(4, 3, 2), ValueError, "must be 2-D"),
    (torch.tensor([[0.0, float("inf")], [1.0, 0.0]]), ValueError, "1 NaN or inf"),
    (torch.tensor([[0.0, float("nan")], [1.0, 0.0]]), ValueError, "1 NaN or inf"),
    (torch.ones(3, 2, dtype=torch.int64), TypeError, "floating-point"),
    ([[1.0, 0.0], [0.0, 1.0]], TypeError, "torch.Tensor, got list"),
])
def test_dispersion_rejects_bad_embeddings(z, error, match):
    with pytest.raises(error, match=match):
        dispersion_loss(z)


def test_dispersion_names_modality():
    with pytest.raises(ValueError, match="\\(modality 'audio'\\)"):
        dispersion_loss(torch.randn(1, 3), modality="audio")


@pytest.mark.parametrize("t", [0.0, -1.0, float("inf"), float("nan")])
def test_dispersion_rejects_bad_t(t):
    with pytest.raises(ValueError, match="t must be"):
        dispersion_loss(torch.randn(4, 3), t)


def test_dispersion_rejects_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        dispersion_loss(torch.randn(4, 3), chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        dispersion_loss(torch.randn(4, 3), chunk_size=2.5)


@pytest.mark.parametrize("modalities, tau", [(2, 0.0), (2, 0.4), (3, 0.2), (4, 1.0)])
def test_anchoring_matches_brute_force(modalities, tau):
    torch.manual_seed(modalities)
    zs = [torch.randn(6, 3, dtype=torch.float64, requires_grad=True) for _ in range(modalities)]
    fast, brute = anchoring_loss(zs, tau), _brute_anchoring(zs, tau)
    assert fast.item() == pytest.approx(brute.item(), rel=1e-12, abs=1e-15)
    for grad_fast, grad_brute in zip(torch.autograd.grad(fast, zs), torch.autograd.grad(brute, zs)):
        assert torch.allclose(grad_fast, grad_brute, atol=1e-12)


def test_anchoring_zero_gradient_inside_tau():
    base = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    near = base + 0.01 * torch.randn(5, 4)
    zs = [base.clone().requires_grad_(), near.requires_grad_()]
    loss = anchoring_loss(zs, tau=0.5)
    grads = torch.autograd.grad(loss, zs)
    assert loss.item() == 0.0
    assert all(bool((grad == 0).all()) for grad in grads)


@pytest.mark.parametrize("tau", [0.0, 0.3])
def test_anchoring_identical_pairs_have_zero_gradient(tau):
    z = torch.randn(5, 4)
    zs = [z.clone().requires_grad_(), z.clone().requires_grad_()]
    loss = anchoring_loss(zs, tau)
    grads = torch.autograd.grad(loss, zs)
    assert loss.item() == 0.0
    assert all(bool(torch.isfinite(grad).all()) and bool((grad == 0).all()) for grad in grads)


def test_anchoring_zero_row_is_finite():
    first, second = torch.randn(4, 3), torch.randn(4, 3)
    first[0] = 0.0
    second[0] = 0.0
    first[1] = 0.0
    zs = [first.requires_grad_(), second.requires_grad_()]
    loss = anchoring_loss(zs)
    assert math.isfinite(loss.item())
    assert all(bool(torch.isfinite(grad).all()) for grad in torch.autograd.grad(loss, zs))


def test_anchoring_rejects_bad_input():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="at least 2 modalities, got 1"):
        anchoring_loss([z])
    with pytest.raises(ValueError, match="batch size, got 4 for 'a' and 3 for 'b'"):
        anchoring_loss({"a": z, "b": torch.randn(3, 3)})
    with pytest.raises(ValueError, match="embedding width, got 3 for 'a' and 5 for 'b'"):
        anchoring_loss({"a": z, "b": torch.randn(4, 5)})
    with pytest.raises(ValueError, match="tau must be >= 0, got -0.1"):
        anchoring_loss([z, z], tau=-0.1)
    with pytest.raises(ValueError, match="NaN or inf values \\(modality 'b'\\)"):
        anchoring_loss({"a": z, "b": torch.full((4, 3), float("nan"))})
    with pytest.raises(ValueError, match="is empty"):
        anchoring_loss([])
    with pytest.raises(TypeError, match="sequence or mapping"):
        anchoring_loss(3)


def _brute_alpha(g_a, g_d, steps=200001):
    alphas = torch.linspace(0, 1, steps, dtype=torch.float64)
    combined = alphas[:, None] * g_a[None] + (1 - alphas[:, None]) * g_d[None]
    return float(alphas[combined.pow(2).sum(1).argmin()])


def test_min_norm_alpha_matches_grid_search():
    torch.manual_seed(4)
    for _ in range(20):
        g_a, g_d = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
        assert float(min_norm_alpha(g_a, g_d)) == pytest.approx(_brute_alpha(g_a, g_d), abs=2e-5)


def test_min_norm_alpha_cases():
    g = torch.tensor([1.0, 2.0, -1.0])
    assert float(min_norm_alpha(g, g)) == 0.5
    assert float(min_norm_alpha(g, -g)) == pytest.approx(0.5)
    assert float(min_norm_alpha(torch.zeros(3), g)) == 1.0
    assert float(min_norm_alpha(g, torch.zeros(3))) == 0.0
    assert float(min_norm_alpha(torch.zeros(3), torch.zeros(3))) == 0.5
    assert float(min_norm_alpha(2 * g, g)) == 0.0


def test_min_norm_alpha_accepts_parameter_lists():
    torch.manual_seed(5)
    g_a = [torch.randn(3, 2), torch.randn(4)]
    g_d = [torch.randn(3, 2), torch.randn(4)]
    flat = min_norm_alpha(torch.cat([g.reshape(-1) for g in g_a]), torch.cat([g.reshape(-1) for g in g_d]))
    assert float(min_norm_alpha(g_a, g_d)) == pytest.approx(float(flat))


def test_min_norm_alpha_rejects_bad_input():
    with pytest.raises(ValueError, match="same number of elements, got 3 and 4"):
        min_norm_alpha(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="g_a\\[0\\] and g_d\\[0\\] differ in shape"):
        min_norm_alpha([torch.ones(2, 3)], [torch.ones(3, 2)])
    with pytest.raises(ValueError, match="g_d contains NaN"):
        min_norm_alpha(torch.ones(3), torch.tensor([1.0, float("nan"), 0.0]))
    with pytest.raises(TypeError, match="g_a must be a tensor or a list"):
        min_norm_alpha(3.0, torch.ones(1))
    with pytest.raises(TypeError, match="g_d\\[1\\] must be a torch.Tensor"):
        min_norm_alpha([torch.ones(1), torch.ones(1)], [torch.ones(1), 1.0])
    with pytest.raises(ValueError, match="empty list"):
        min_norm_alpha([], [])
