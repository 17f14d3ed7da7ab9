"""Tests for the anchoring toys: exact gap, drift bounds, couplings and the particle explorer."""

import math

import pytest
import torch

from dagr import anchoring_loss, anchoring_toy


def test_targets_sit_at_requested_angle():
    a, b = anchoring_toy.make_targets(10, 4, 0.7, seed=0)
    cosines = (a * b).sum(dim=1)
    assert torch.allclose(cosines, torch.full((10,), math.cos(0.7), dtype=torch.float64))


def test_gap_is_exact_for_two_modalities():
    targets = anchoring_toy.make_targets(5, 3, 1.0)
    # ||a + b|| = 2 cos(theta / 2) for unit a, b at angle theta.
    assert anchoring_toy.irreducible_gap(targets) == pytest.approx(2 - 2 * math.cos(0.5))


def test_numerical_minimum_matches_1d_search():
    targets = anchoring_toy.make_targets(4, 3, 1.0, seed=0)
    zs = anchoring_toy.minimize_toy(targets, lambda_a=1.0, tau=0.25)
    distance = (zs[0] - zs[1]).norm(dim=1)
    exact = anchoring_toy.exact_pair_minimum(1.0, 1.0, 0.25)
    assert torch.allclose(distance, torch.full((4,), exact, dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize("n_modalities", [2, 3])
@pytest.mark.parametrize("tau", [0.0, 0.5])
def test_drift_bounds_hold_at_minimum(n_modalities, tau):
    result = anchoring_toy.two_modality_toy(1.0, tau, n=16, n_modalities=n_modalities)
    assert result["holds"]
    assert result["excess"] <= result["bound_excess"]
    assert result["mean_sq"] <= result["bound_sq"]
    assert result["grad_norm"] < 1e-4


def test_too_small_delta_fails_bound():
    result = anchoring_toy.two_modality_toy(0.25, 0.0, n=16, delta_scale=0.1)
    assert not result["holds"]


def test_zero_lambda_a_is_rejected():
    zs = anchoring_toy.make_targets(4, 3, 1.0)
    with pytest.raises(ValueError, match="lambda_a must be > 0, got 0.0"):
        anchoring_toy.drift_bound_check(zs, 0.1, 0.0, 0.0)
    with pytest.raises(ValueError, match="delta must be >= 0"):
        anchoring_toy.drift_bound_check(zs, -0.1, 1.0, 0.0)


def test_unanchored_pairs_break_a_bound_for_anchoring():
    # The untied optimum has excess drift ~ 2 delta, far above delta / lambda_a for lambda_a = 10.
    targets = anchoring_toy.make_targets(8, 3, 1.0)
    delta = anchoring_toy.irreducible_gap(targets)
    assert not anchoring_toy.drift_bound_check(targets, delta, 10.0, 0.0)["holds"]


def test_anchoring_gradient_is_zero_inside_tau():
    a, b = anchoring_toy.make_targets(6, 3, 0.3)
    a.requires_grad_(True)
    grad, = torch.autograd.grad(anchoring_loss([a, b], tau=0.5), a)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_couplings_shrink_differently():
    final = {c: anchoring_toy.coupling_flow(c, tau=0.5, n=16, steps=150, lr=0.02)[-1]
             for c in anchoring_toy.COUPLINGS}
    assert final["anchoring"]["min_distance"] >= 0.5 - 1e-3
    assert final["alignment"]["mean_distance"] < 0.1
    assert final["infonce"]["mean_distance"] < 0.1
    with pytest.raises(ValueError, match="coupling"):
        anchoring_toy.coupling_flow("cosine")


def test_rotation_about_axis():
    r = anchoring_toy.rotation_about([0.0, 0.0, 1.0], math.pi / 2)
    assert torch.allclose(r @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                          torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)


def test_simulation_responds_to_weights():
    base = anchoring_toy.simulate_dagr(0.0, 0.0, steps=60, n_per_class=8)
    anchored = anchoring_toy.simulate_dagr(0.0, 2.0, steps=60, n_per_class=8)
    dispersed = anchoring_toy.simulate_dagr(2.0, 0.0, steps=60, n_per_class=8)
    assert anchored["drift"] < base["drift"]
    assert dispersed["effective_rank"] > base["effective_rank"]


def test_infonce_prefers_matched_pairs():
    z = torch.eye(4, dtype=torch.float64)
    matched = anchoring_toy.infonce_loss(z, z)
    shuffled = anchoring_toy.infonce_loss(z, z.roll(1, dims=0))
    assert float(matched) < 0.01
    assert float(shuffled) > 5.0
