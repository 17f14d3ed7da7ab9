"""Tests for the numerical claim checks, including cases where each check must fail."""

import math

import numpy as np
import pytest
import torch

from dagr import geometry, min_norm_alpha, sphere, theory


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


# --- Proposition 3.1 ---

@pytest.fixture
def toy():
    return theory.linear_head_toy(n_per_class=20, seed=0)


def test_null_space_basis_is_orthogonal_to_rows(toy):
    basis = theory.null_space_basis(toy["W"])
    assert basis.shape == (8, 5)
    assert float((toy["W"] @ basis).abs().max()) < 1e-12


@pytest.mark.parametrize("use_target", [False, True])
def test_null_space_rotation_keeps_logits_and_norms(toy, use_target):
    target = torch.eye(8, dtype=torch.float64)[6] if use_target else None
    rotated = theory.null_space_rotation(toy["W"], toy["z_a"], seed=1, target=target)
    assert theory.max_logit_change(toy["W"], toy["z_a"], rotated) <= 1e-12
    assert torch.allclose(rotated.norm(dim=1), toy["z_a"].norm(dim=1))
    assert abs(geometry.semantic_margin(rotated, toy["y"]) - geometry.semantic_margin(toy["z_a"], toy["y"])) > 0.1


def test_collapse_lowers_effective_rank(toy):
    target = torch.eye(8, dtype=torch.float64)[6]
    rotated = theory.null_space_rotation(toy["W"], toy["z_a"], target=target)
    assert geometry.effective_rank(rotated) < geometry.effective_rank(toy["z_a"]) - 0.5


def test_logit_check_detects_a_full_rotation(toy):
    # A rotation that is not confined to the null space changes the logits.
    q = sphere.random_rotation(8, generator())
    assert theory.max_logit_change(toy["W"], toy["z_a"], toy["z_a"] @ q.T) > 0.1


def test_null_space_rotation_rejects_full_rank_head():
    with pytest.raises(ValueError, match="null space is empty"):
        theory.null_space_rotation(torch.eye(3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="z has 4 features but W expects 3"):
        theory.null_space_rotation(torch.ones(1, 3, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="W"):
        theory.null_space_rotation([[1.0]], torch.ones(2, 3, dtype=torch.float64))


# --- Theorem 3.2 ---

def test_expected_kernel_of_one_point_is_one():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert theory.expected_kernel(z, 3.0) == pytest.approx(1.0)


def test_expansion_error_scales_like_t_cubed():
    z = sphere.sample_centered(10, 5, generator())
    ts = np.logspace(-3, -1, 7)
    assert 2.7 <= theory.loglog_slope(ts, theory.expansion_error(z, ts)) <= 3.3


def test_expansion_slope_check_fails_off_centre():
    # Without centring the first-order term 2t E[z^T z'] survives, so the error is O(t).
    z = sphere.sample_vmf(60, 5, 5.0, generator())
    ts = np.logspace(-3, -1, 7)
    assert theory.loglog_slope(ts, theory.expansion_error(z, ts)) < 1.5


def test_loglog_slope_of_power_law():
    assert theory.loglog_slope([1, 2, 4], [3, 24, 192]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="positive"):
        theory.loglog_slope([1, 2], [0, 1])


def test_family_geometry_trends():
    rows = theory.family_geometry("subspace", [1, 3, 5], n=200, d=5)
    assert theory.trend_violation([row["dispersion"] for row in rows], increasing=False) == 0.0
    assert theory.trend_violation([row["effective_rank"] for row in rows], increasing=True) == 0.0
    with pytest.raises(ValueError, match="kind"):
        theory.sample_family("gauss", 1, 10, 3, generator())


def test_trend_violation_measures_largest_wrong_step():
    assert theory.trend_violation([1.0, 3.0, 2.5, 4.0], increasing=True) == pytest.approx(0.5)
    assert theory.trend_violation([3.0, 2.0, 1.0], increasing=False) == 0.0


# --- Lemma A.3 ---

@pytest.mark.parametrize("name", sorted(theory.POTENTIALS))
def test_closed_form_matches_autograd(name):
    z = sphere.sample_uniform(6, 16, generator())
    result = theory.repulsion_check(z, theory.POTENTIALS[name])
    assert result["max_abs_error"] <= 1e-10
    assert result["min_weight"] >= 0.0
    assert result["nnls_residual"] <= 1e-8


@pytest.mark.parametrize("name", sorted(theory.POTENTIALS))
def test_printed_prefactor_fails_gradient_check(name):
    z = sphere.sample_uniform(6, 16, generator())
    result = theory.repulsion_check(z, theory.POTENTIALS[name], closed_form=theory.repulsive_sum_as_printed)
    assert result["max_abs_error"] > 1e-3


def test_increasing_potential_attracts():
    # psi(s) = s is increasing: the weights turn negative and -grad is no repulsive combination.
    attract = theory.Potential("attractive", lambda s: s, lambda s: torch.ones_like(s))
    result = theory.repulsion_check(sphere.sample_uniform(6, 16, generator()), attract)
    assert result["max_abs_error"] <= 1e-10
    assert result["min_weight"] < 0.0
    assert result["nnls_residual"] > 0.5


# --- eqs. 10-11 ---

def test_brute_force_finds_interior_minimum():
    g_a = np.array([1.0, 0.0])
    g_d = np.array([-1.0, 1.0])
    # f(alpha) = (2 alpha - 1)^2 + (1 - alpha)^2 is minimal at alpha = 0.6.
    assert theory.brute_force_alpha(g_a, g_d) == pytest.approx(0.6, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_closed_form_alpha_matches_brute_force(seed):
    g = torch.randn(2, 50, dtype=torch.float64, generator=generator(seed))
    result = theory.alpha_gap(g[0], g[1], float(min_norm_alpha(g[0], g[1])))
    assert result["objective_gap"] <= 1e-9
    assert result["alpha_error"] <= 1e-6


def test_wrong_alpha_fails_min_norm_check():
    g = torch.randn(2, 50, dtype=torch.float64, generator=generator(3))
    alpha = float(min_norm_alpha(g[0], g[1]))
    result = theory.alpha_gap(g[0], g[1], 1.0 - alpha if abs(alpha - 0.5) > 0.05 else alpha + 0.2)
    assert result["objective_gap"] > 1e-6
    assert result["alpha_error"] > 1e-6


def test_alpha_error_is_nan_for_equal_gradients():
    g = torch.ones(4, dtype=torch.float64)
    result = theory.alpha_gap(g, g, 0.5)
    assert result["objective_gap"] == pytest.approx(0.0, abs=1e-15)
    assert math.isnan(result["alpha_error"])


def test_pareto_alpha_trace_rows():
    data = torch.randn(64, 6, generator=generator())
    features = {"left": data[:, :3], "right": data[:, 3:]}
    labels = torch.arange(64) % 2
    rows = theory.pareto_alpha_trace(features, labels, steps=3, batch_size=32, dim=4)
    assert len(rows) == 6
    for row in rows:
        assert 0.0 <= row["alpha_params"] <= 1.0
        assert 0.0 <= row["alpha_features"] <= 1.0


def test_linear_head_toy_needs_null_space():
    with pytest.raises(ValueError, match="n_classes must be < d"):
        theory.linear_head_toy(n_classes=4, d=4)
