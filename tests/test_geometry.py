"""Tests for dagr.geometry against brute-force references on small inputs."""

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch

from dagr import geometry


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# effective_rank and participation_rank


def test_effective_rank_isotropic_near_d(rng):
    z = rng.standard_normal((4000, 5))
    assert geometry.effective_rank(z) == pytest.approx(5.0, abs=0.05)


def test_effective_rank_rank_one_is_one():
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    z = np.array([a, b] * 5)
    assert geometry.effective_rank(z) == pytest.approx(1.0, abs=1e-9)


def test_effective_rank_collapsed_is_zero():
    z = np.tile([[0.3, -1.2, 2.0, 0.7]], (16, 1))
    assert geometry.effective_rank(z) == 0.0
    assert geometry.effective_rank(np.zeros((4, 3))) == 0.0


def test_effective_rank_matches_formula(rng):
    z = rng.standard_normal((50, 6)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    u = unit(z)
    lam = np.clip(np.linalg.eigvalsh(np.cov(u.T, bias=True)), 0, None)
    p = lam / lam.sum()
    expected = math.exp(-sum(pk * math.log(pk) for pk in p if pk > 0))
    assert geometry.effective_rank(torch.tensor(z, dtype=torch.float32)) == pytest.approx(expected, rel=1e-5)


def test_effective_rank_scale_invariant_rows(rng):
    z = rng.standard_normal((30, 4))
    scaled = z * rng.uniform(0.1, 10.0, size=(30, 1))
    assert geometry.effective_rank(scaled) == pytest.approx(geometry.effective_rank(z), rel=1e-10)


def test_participation_rank_second_moment(rng):
    z = rng.standard_normal((40, 5))
    u = unit(z)
    sigma = u.T @ u / len(u)
    assert geometry.participation_rank(z) == pytest.approx(np.trace(sigma) ** 2 / np.trace(sigma @ sigma))
    assert geometry.participation_rank(z) == pytest.approx(1.0 / np.trace(sigma @ sigma))


def test_participation_rank_centered(rng):
    z = rng.standard_normal((40, 5))
    u = unit(z)
    c = u - u.mean(axis=0)
    sigma = c.T @ c / len(c)
    expected = np.trace(sigma) ** 2 / np.trace(sigma @ sigma)
    assert geometry.participation_rank(z, centered=True) == pytest.approx(expected)


def test_participation_rank_extremes():
    basis = np.eye(4)
    assert geometry.participation_rank(basis) == pytest.approx(4.0)
    assert geometry.participation_rank(np.tile([[1.0, 2.0]], (5, 1))) == pytest.approx(1.0)
    assert geometry.participation_rank(np.zeros((3, 2))) == 0.0
    assert geometry.participation_rank(np.tile([[1.0, 2.0]], (5, 1)), centered=True) == 0.0


# semantic_margin


def semantic_margin_loop(z, y):
    u = unit(z)
    classes = sorted(set(y))
    members = {c: [i for i in range(len(y)) if y[i] == c] for c in classes}

    def dist(i, j):
        return float(np.linalg.norm(u[i] - u[j]))

    between = [
        np.mean([dist(i, j) for i in members[a] for j in members[b]])
        for a, b in itertools.permutations(classes, 2)
    ]
    within = [
        np.mean([dist(i, j) for i in members[c] for j in members[c] if i != j])
        for c in classes
        if len(members[c]) >= 2
    ]
    return np.mean(between) - np.mean(within)


def test_semantic_margin_matches_loop(rng):
    z = rng.standard_normal((23, 4))
    y = [0] * 3 + [1] * 7 + [2] * 12 + [5]  # class 5 has a single sample
    assert geometry.semantic_margin(z, y) == pytest.approx(semantic_margin_loop(z, y), rel=1e-12)


def test_semantic_margin_label_types(rng):
    z = rng.standard_normal((12, 3))
    y = np.array(["cat", "dog", "bird"] * 4)
    expected = semantic_margin_loop(z, list(y))
    assert geometry.semantic_margin(z, y) == pytest.approx(expected, rel=1e-12)
    codes = torch.tensor([0, 1, 2] * 4)
    assert geometry.semantic_margin(torch.tensor(z), codes) == pytest.approx(expected, rel=1e-12)


def test_semantic_margin_separated_classes():
    z = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    assert geometry.semantic_margin(z, [0, 0, 1, 1]) == pytest.approx(2.0)
    assert geometry.semantic_margin(np.zeros((4, 2)), [0, 0, 1, 1]) == 0.0


# cross_modal_drift


def test_cross_modal_drift_matches_loop(rng):
    zs = [rng.standard_normal((9, 4)) for _ in range(3)]
    units = [unit(z) for z in zs]
    terms = [
        np.sum((units[m][i] - units[n][i]) ** 2)
        for m, n in itertools.combinations(range(3), 2)
        for i in range(9)
    ]
    assert geometry.cross_modal_drift(zs) == pytest.approx(np.mean(terms), rel=1e-12)
    named = {"audio": zs[0], "video": torch.tensor(zs[1]), "text": zs[2]}
    assert geometry.cross_modal_drift(named) == pytest.approx(np.mean(terms), rel=1e-12)


def test_cross_modal_drift_extremes(rng):
    z = rng.standard_normal((6, 3))
    assert geometry.cross_modal_drift([z, 2 * z]) == pytest.approx(0.0, abs=1e-15)
    assert geometry.cross_modal_drift([z, -z]) == pytest.approx(4.0)
    assert geometry.cross_modal_drift((z, np.zeros_like(z))) == pytest.approx(1.0)


# similarity_scores and similarity_separation


def test_similarity_scores_match_loop(rng):
    z_m, z_n = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    u_m, u_n = unit(z_m), unit(z_n)
    pos, neg = geometry.similarity_scores(z_m, z_n)
    assert isinstance(pos, np.ndarray)
    assert isinstance(neg, np.ndarray)
    np.testing.assert_allclose(pos, [u_m[i] @ u_n[i] for i in range(5)])
    expected_neg = [u_m[i] @ u_n[j] for i in range(5) for j in range(5) if i != j]
    np.testing.assert_allclose(neg, expected_neg)


def test_similarity_separation_matches_scipy(rng):
    z_m = rng.standard_normal((30, 8))
    z_n = z_m + 0.8 * rng.standard_normal((30, 8))
    pos, neg = geometry.similarity_scores(z_m, z_n)
    delta_mu, d_ks = geometry.similarity_separation(z_m, z_n)
    assert isinstance(delta_mu, float)
    assert isinstance(d_ks, float)
    assert delta_mu == pytest.approx(pos.mean() - neg.mean())
    assert d_ks == pytest.approx(scipy.stats.ks_2samp(pos, neg).statistic)
    assert delta_mu > 0


def test_similarity_separation_identical_pairs():
    z = np.eye(4)
    delta_mu, d_ks = geometry.similarity_separation(z, z)
    assert delta_mu == pytest.approx(1.0)
    assert d_ks == pytest.approx(1.0)


# recall_at_k


def test_recall_identity_is_one(rng):
    z = rng.standard_normal((10, 6))
    assert geometry.recall_at_k(z, z, 1) == 1.0


def test_recall_known_permutation():
    # Samples 0 and 1 swap their second-modality embeddings, so queries 0 and 1
    # find an orthogonal pair behind one perfect match, while queries 2 and 3 hit.
    z_m = np.eye(4)
    z_n = np.eye(4)[[1, 0, 2, 3]]
    assert geometry.recall_at_k(z_m, z_n, 1) == pytest.approx(0.5)
    assert geometry.recall_at_k(z_m, z_n, 4) == pytest.approx(1.0)


def test_recall_matches_rank_loop(rng):
    z_m, z_n = rng.standard_normal((12, 5)), rng.standard_normal((12, 5))
    sim = unit(z_m) @ unit(z_n).T
    ranks = [(sim[i] > sim[i, i]).sum() for i in range(12)]
    curve = geometry.recall_at_k(z_m, z_n, [1, 3, 12])
    assert list(curve) == [1, 3, 12]
    for k, value in curve.items():
        assert value == pytest.approx(np.mean([rank < k for rank in ranks]))
    assert curve[12] == 1.0


def test_recall_ties_give_chance_level():
    collapsed = np.ones((5, 3))
    assert geometry.recall_at_k(collapsed, collapsed, 1) == pytest.approx(1 / 5)
    assert geometry.recall_at_k(collapsed, collapsed, 2) == pytest.approx(2 / 5)
    assert geometry.recall_at_k(np.zeros((5, 3)), np.zeros((5, 3)), 5) == pytest.approx(1.0)


# renyi2_entropy


def test_renyi2_matches_kernel_mean(rng):
    z = rng.standard_normal((15, 4))
    u = unit(z)
    kernel = [math.exp(-3.0 * np.sum((u[i] - u[j]) ** 2)) for i in range(15) for j in range(15) if i != j]
    expected = -math.log(np.mean(kernel))
    assert geometry.renyi2_entropy(z, t=3.0) == pytest.approx(expected, rel=1e-12)
    assert geometry.renyi2_entropy(z, t=3.0, log_constant=1.5) == pytest.approx(expected + 1.5, rel=1e-12)


def test_renyi2_extremes():
    assert geometry.renyi2_entropy(np.ones((6, 3))) == pytest.approx(0.0, abs=1e-12)
    antipodal = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert geometry.renyi2_entropy(antipodal, t=2.0) == pytest.approx(8.0)


def test_renyi2_higher_when_spread(rng):
    spread = rng.standard_normal((200, 3))
    narrow = np.array([5.0, 0.0, 0.0]) + rng.standard_normal((200, 3))
    assert geometry.renyi2_entropy(spread) > geometry.renyi2_entropy(narrow)


# clustering_scores and kmeans_scores


def test_clustering_permuted_labels_perfect():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([2, 2, 0, 0, 1, 1, 1])
    scores = geometry.clustering_scores(y_true, y_pred)
    assert scores == {"acc": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}


def test_clustering_acc_brute_force(rng):
    y_true = rng.integers(0, 3, size=40)
    y_pred = rng.integers(0, 3, size=40)
    best = max(
        np.mean([perm[p] == t for t, p in zip(y_true, y_pred)])
        for perm in itertools.permutations(range(3))
    )
    assert geometry.clustering_scores(y_true, y_pred)["acc"] == pytest.approx(best)


def test_clustering_more_clusters_than_classes():
    scores = geometry.clustering_scores([0, 0, 1, 1], [0, 1, 2, 3])
    assert scores["acc"] == pytest.approx(0.5)
    assert all(isinstance(value, float) for value in scores.values())


def test_kmeans_separated_blobs(rng):
    centers = np.eye(3) * 5
    y = np.repeat([0, 1, 2], 20)
    z = centers[y] + 0.1 * rng.standard_normal((60, 3))
    scores = geometry.kmeans_scores(torch.tensor(z), y)
    assert scores["acc"] == 1.0
    assert scores["nmi"] == pytest.approx(1.0)
    assert geometry.kmeans_scores(z, y, seed=0) == geometry.kmeans_scores(z, y, seed=0)


# zero rows and input validation


def test_zero_rows_give_finite_results(rng):
    z = rng.standard_normal((8, 3))
    z[[1, 4]] = 0.0
    other = rng.standard_normal((8, 3))
    values = [
        geometry.effective_rank(z),
        geometry.participation_rank(z),
        geometry.semantic_margin(z, [0, 1] * 4),
        geometry.cross_modal_drift([z, other]),
        *geometry.similarity_separation(z, other),
        geometry.recall_at_k(z, other, 2),
        geometry.renyi2_entropy(z),
    ]
    assert all(math.isfinite(value) for value in values)


def test_accepts_tensor_requiring_grad(rng):
    z = torch.tensor(rng.standard_normal((6, 3)), requires_grad=True)
    assert geometry.effective_rank(z) == pytest.approx(geometry.effective_rank(z.detach().numpy()))
    assert isinstance(geometry.renyi2_entropy(z), float)


ONE_ARG = {
    "effective_rank": lambda z: geometry.effective_rank(z),
    "participation_rank": lambda z: geometry.participation_rank(z),
    "semantic_margin": lambda z: geometry.semantic_margin(z, [0, 1] * 2),
    "cross_modal_drift": lambda z: geometry.cross_modal_drift({"audio": z, "video": np.ones((4, 3))}),
    "similarity_scores": lambda z: geometry.similarity_scores(z, np.ones((4, 3))),
    "similarity_separation": lambda z: geometry.similarity_separation(np.ones((4, 3)), z),
    "recall_at_k": lambda z: geometry.recall_at_k(z, np.ones((4, 3)), 1),
    "renyi2_entropy": lambda z: geometry.renyi2_entropy(z),
    "kmeans_scores": lambda z: geometry.kmeans_scores(z, [0, 1] * 2),
}

BAD_VALUES = [
    (np.ones(4), "2-D"),
    (np.ones((4, 3, 1)), "2-D"),
    (np.ones((1, 3)), "at least 2 samples"),
    (np.ones((4, 0)), "no features"),
    (np.array([[1.0, 0.0, 0.0]] * 3 + [[np.nan, 0.0, 0.0]]), "NaN or inf"),
    (torch.tensor([[1.0, 0.0, 0.0]] * 3 + [[0.0, math.inf, 0.0]]), "NaN or inf"),
]


@pytest.mark.parametrize("fn", list(ONE_ARG))
@pytest.mark.parametrize("bad, message", BAD_VALUES)
def test_bad_embedding_raises_value_error(fn, bad, message):
    with pytest.raises(ValueError, match=message) as info:
        ONE_ARG[fn](bad)
    assert fn in str(info.value)
    if fn == "cross_modal_drift":
        assert "'audio'" in str(info.value)


WRONG_TYPES = ["abc", [[1.0, 2.0], [3.0, 4.0]], np.array([["a", "b"], ["c", "d"]]), torch.ones(4, 3).bool()]


@pytest.mark.parametrize("fn", list(ONE_ARG))
@pytest.mark.parametrize("bad", WRONG_TYPES)
def test_wrong_type_raises_type_error(fn, bad):
    with pytest.raises(TypeError, match=fn):
        ONE_ARG[fn](bad)


def test_pair_shape_mismatch():
    for fn in (geometry.similarity_scores, geometry.similarity_separation):
        with pytest.raises(ValueError, match=r"z_m and z_n .*\(4, 3\) and \(5, 3\)"):
            fn(np.ones((4, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(4, 2\)"):
        geometry.recall_at_k(np.ones((4, 3)), np.ones((4, 2)), 1)


def test_drift_bad_modalities():
    with pytest.raises(ValueError, match=r"'audio'.*'video'"):
        geometry.cross_modal_drift({"audio": np.ones((4, 3)), "video": np.ones((5, 3))})
    with pytest.raises(ValueError, match=r"at least 2 modalities in zs, got 1: \['audio'\]"):
        geometry.cross_modal_drift({"audio": np.ones((4, 3))})
    with pytest.raises(ValueError, match="got 0"):
        geometry.cross_modal_drift([])
    with pytest.raises(TypeError, match="zs must be a sequence or mapping"):
        geometry.cross_modal_drift(torch.ones(2, 4, 3))
    with pytest.raises(TypeError, match="zs must be a sequence or mapping"):
        geometry.cross_modal_drift("audio")


def test_recall_bad_k():
    z = np.eye(4)
    for k in (0, 5, -1):
        with pytest.raises(ValueError, match=rf"k must be in 1..B = 1..4, got k = {k}"):
            geometry.recall_at_k(z, z, k)
    for k in (1.0, True, "1", None):
        with pytest.raises(TypeError, match="k must be an int"):
            geometry.recall_at_k(z, z, k)
    with pytest.raises(ValueError, match="got k = 7"):
        geometry.recall_at_k(z, z, [1, 7])
    with pytest.raises(ValueError, match="empty"):
        geometry.recall_at_k(z, z, [])
    assert geometry.recall_at_k(z, z, np.int64(2)) == 1.0


def test_semantic_margin_bad_labels():
    z = np.eye(4)
    with pytest.raises(ValueError, match=r"at least 2 classes in y, got 1: \[7\]"):
        geometry.semantic_margin(z, [7, 7, 7, 7])
    with pytest.raises(ValueError, match=r"len\(y\) must equal the number of samples 4, got 3"):
        geometry.semantic_margin(z, [0, 1, 1])
    with pytest.raises(ValueError, match="2 or more samples"):
        geometry.semantic_margin(z, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="y must be 1-D"):
        geometry.semantic_margin(z, [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="NaN"):
        geometry.semantic_margin(z, [0.0, 1.0, np.nan, 1.0])
    with pytest.raises(TypeError, match="y must be"):
        geometry.semantic_margin(z, "0011")
    with pytest.raises(TypeError, match="y must be"):
        geometry.semantic_margin(z, 3)


def test_renyi2_bad_t():
    z = np.eye(3)
    for t in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="t must be"):
            geometry.renyi2_entropy(z, t=t)
    for t in ("2", True, None):
        with pytest.raises(TypeError, match="t must be a real number"):
            geometry.renyi2_entropy(z, t=t)
    with pytest.raises(ValueError, match="log_constant must be finite"):
        geometry.renyi2_entropy(z, log_constant=math.inf)


def test_clustering_bad_labels():
    with pytest.raises(ValueError, match=r"len\(y_pred\) must equal the number of samples 3, got 2"):
        geometry.clustering_scores([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true is empty"):
        geometry.clustering_scores([], [])
    with pytest.raises(TypeError, match="y_true must be"):
        geometry.clustering_scores("011", [0, 1, 1])


def test_kmeans_bad_arguments():
    z, y = np.eye(4), [0, 0, 1, 1]
    with pytest.raises(ValueError, match="n_clusters must be in 1..B = 1..4, got 5"):
        geometry.kmeans_scores(z, y, n_clusters=5)
    with pytest.raises(TypeError, match="n_clusters must be an int"):
        geometry.kmeans_scores(z, y, n_clusters=2.0)
    with pytest.raises(TypeError, match="seed must be an int"):
        geometry.kmeans_scores(z, y, seed="0")
    with pytest.raises(ValueError, match="seed must be >= 0"):
        geometry.kmeans_scores(z, y, seed=-1)
    with pytest.raises(ValueError, match=r"len\(y\)"):
        geometry.kmeans_scores(z, [0, 1])
