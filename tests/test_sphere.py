"""Tests for the samplers and the particle flow on the unit sphere."""

import math

import pytest
import torch

from dagr import dispersion_loss, geometry, sphere


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_uniform_unit_rows_and_mean():
    z = sphere.sample_uniform(4000, 5, generator())
    assert z.shape == (4000, 5)
    assert z.dtype == torch.float64
    assert torch.allclose(z.norm(dim=1), torch.ones(4000, dtype=torch.float64))
    assert float(z.mean(dim=0).norm()) < 0.06


def test_uniform_is_reproducible():
    assert torch.equal(sphere.sample_uniform(10, 3, generator(7)), sphere.sample_uniform(10, 3, generator(7)))


@pytest.mark.parametrize("kappa", [1.0, 5.0, 20.0])
def test_vmf_mean_cosine_matches_langevin(kappa):
    # In d = 3 the mean cosine to mu is coth(kappa) - 1/kappa.
    z = sphere.sample_vmf(20000, 3, kappa, generator())
    expected = 1 / math.tanh(kappa) - 1 / kappa
    assert abs(float(z[:, 0].mean()) - expected) < 0.01


def test_vmf_uses_given_mean_direction():
    mu = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    z = sphere.sample_vmf(2000, mu, 50.0, generator())
    assert float(z[:, 2].mean()) > 0.95
    assert torch.allclose(z.norm(dim=1), torch.ones(2000, dtype=torch.float64))


def test_vmf_zero_kappa_is_uniform():
    z = sphere.sample_vmf(4000, 4, 0.0, generator())
    assert float(z.mean(dim=0).norm()) < 0.06


def test_vmf_concentration_grows_with_kappa_in_high_dimension():
    means = [float(sphere.sample_vmf(3000, 16, kappa, generator())[:, 0].mean()) for kappa in (1, 10, 100)]
    assert means[0] < means[1] < means[2]


def test_vmf_rejects_bad_inputs():
    with pytest.raises(ValueError, match="kappa"):
        sphere.sample_vmf(10, 3, -1.0)
    with pytest.raises(ValueError, match="mu"):
        sphere.sample_vmf(10, torch.zeros(3, dtype=torch.float64), 1.0)
    with pytest.raises(TypeError, match="mu"):
        sphere.sample_vmf(10, "three", 1.0)
    with pytest.raises(TypeError, match="generator"):
        sphere.sample_vmf(10, 3, 1.0, generator=0)
    with pytest.raises(ValueError, match="n"):
        sphere.sample_vmf(0, 3, 1.0)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_subspace_has_rank_k(k):
    z = sphere.sample_subspace(500, 6, k, generator(), rotate=True)
    assert torch.linalg.matrix_rank(z).item() == k
    assert torch.allclose(z.norm(dim=1), torch.ones(500, dtype=torch.float64))
    assert abs(geometry.effective_rank(z) - k) < 0.1


def test_subspace_rejects_k_above_d():
    with pytest.raises(ValueError, match="k must be <= d = 3, got 4"):
        sphere.sample_subspace(10, 3, 4)


def test_random_rotation_is_orthogonal():
    q = sphere.random_rotation(5, generator())
    assert torch.allclose(q @ q.T, torch.eye(5, dtype=torch.float64), atol=1e-12)


def test_centered_sample_is_centred_not_symmetric():
    z = sphere.sample_centered(10, 4, generator())
    assert z.shape == (50, 4)
    assert float(z.mean(dim=0).norm()) < 1e-12
    third_moment = float(((z @ z.T) ** 3).mean())
    assert abs(third_moment) > 1e-3


def test_tangent_projection_is_orthogonal_to_z():
    z = sphere.sample_uniform(20, 3, generator())
    grad = torch.randn(20, 3, dtype=torch.float64, generator=generator(1))
    projected = sphere.tangent_projection(z, grad)
    assert float((projected * z).sum(dim=1).abs().max()) < 1e-12


def test_flow_keeps_unit_rows_and_lowers_dispersion():
    z0 = sphere.sample_vmf(60, 3, 20.0, generator())
    z, history = sphere.sphere_flow(z0, lambda z: dispersion_loss(z), steps=50, lr=5.0,
                                    record=lambda z: {"rank": geometry.effective_rank(z)}, record_every=10)
    assert torch.allclose(z.norm(dim=1), torch.ones(60, dtype=torch.float64))
    assert [row["step"] for row in history] == [0, 10, 20, 30, 40, 50]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["rank"] > history[0]["rank"]


def test_flow_rejects_bad_step_size():
    z0 = sphere.sample_uniform(5, 3, generator())
    with pytest.raises(ValueError, match="lr must be > 0"):
        sphere.sphere_flow(z0, lambda z: dispersion_loss(z), steps=1, lr=0.0)
    with pytest.raises(TypeError, match="steps"):
        sphere.sphere_flow(z0, lambda z: dispersion_loss(z), steps=1.5)


def test_lonlat_of_axes():
    points = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    longitude, latitude = sphere.lonlat(points)
    assert torch.allclose(longitude[:2], torch.tensor([0.0, 90.0], dtype=torch.float64))
    assert torch.allclose(latitude, torch.tensor([0.0, 0.0, 90.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="R\\^3"):
        sphere.lonlat(torch.ones(2, 4, dtype=torch.float64))
