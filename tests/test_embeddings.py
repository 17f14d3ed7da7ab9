import math

import numpy as np
import pytest
import torch

from dagr.data import MultiViewSplit
from dagr.embeddings import (
    describe_difference,
    extract_embeddings,
    paired_difference,
    project,
    project_together,
)
from dagr.models import build_mfeat_model


def _split_and_model(n=40):
    torch.manual_seed(0)
    features = {"fourier": torch.randn(n, 76), "zernike": torch.randn(n, 47)}
    split = MultiViewSplit(features, torch.arange(n) % 4, range(n))
    return split, build_mfeat_model(["fourier", "zernike"], dim=8, hidden=16)


def test_extract_shapes_and_norms():
    split, model = _split_and_model()
    zs, labels = extract_embeddings(model, split, batch_size=16)
    assert set(zs) == {"fourier", "zernike", "joint"}
    assert zs["fourier"].shape == (40, 8)
    assert zs["joint"].shape == (40, 16)
    for z in zs.values():
        assert np.allclose(np.linalg.norm(z, axis=1), 1.0)
    assert np.array_equal(labels, split.labels.numpy())


def test_extract_matches_model_encoder():
    split, model = _split_and_model()
    zs, _ = extract_embeddings(model, split)
    with torch.no_grad():
        raw = model.eval().encode(split.features)["zernike"].double()
    expected = torch.nn.functional.normalize(raw, dim=1).numpy()
    assert np.allclose(zs["zernike"], expected)
    joint = np.concatenate([zs["fourier"], zs["zernike"]], axis=1) / math.sqrt(2)
    assert np.allclose(zs["joint"], joint)


def test_extract_rejects_bad_inputs():
    split, model = _split_and_model()
    with pytest.raises(TypeError, match="model must be a dagr.models.MultiViewNet"):
        extract_embeddings(object(), split)
    with pytest.raises(TypeError, match="split must be a MultiViewSplit"):
        extract_embeddings(model, split.features)
    narrow = MultiViewSplit({"fourier": split.features["fourier"]}, split.labels, range(40))
    with pytest.raises(ValueError, match=r"split lacks view\(s\) \['zernike'\]"):
        extract_embeddings(model, narrow)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_project_is_deterministic(method):
    z = np.random.default_rng(0).normal(size=(30, 5))
    first = project(z, method, seed=3)
    assert first.shape == (30, 2)
    assert np.allclose(first, project(z, method, seed=3))


def test_pca_keeps_main_axis():
    rng = np.random.default_rng(0)
    z = np.zeros((50, 4))
    z[:, 2] = rng.normal(size=50) * 10
    z[:, 0] = rng.normal(size=50) * 0.1
    xy = project(z, "pca")
    assert abs(np.corrcoef(xy[:, 0], z[:, 2])[0, 1]) > 0.99


def test_project_rejects_bad_inputs():
    z = np.ones((10, 3))
    with pytest.raises(ValueError, match="method must be one of"):
        project(z, "umap")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        project(z, "pca", seed=-1)
    with pytest.raises(ValueError, match="perplexity must be a positive number"):
        project(z, "tsne", perplexity=0)
    with pytest.raises(ValueError, match=r"2-D \(N, d\) array, got shape \(10,\)"):
        project(np.ones(10))
    with pytest.raises(ValueError, match="at least 3 samples"):
        project(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        project(np.full((5, 3), np.nan))


def test_project_together_shares_coordinates():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 4))
    zs = {"a": a, "b": a.copy()}
    out = project_together(zs, ["a", "b"], "pca")
    assert np.allclose(out["a"], out["b"])
    with pytest.raises(ValueError, match="unknown view 'c'"):
        project_together(zs, ["a", "c"])
    with pytest.raises(ValueError, match="must share one"):
        project_together({"a": a, "b": a[:10]}, ["a", "b"])
    with pytest.raises(ValueError, match="non-empty list of view names"):
        project_together(zs, "a")


def test_paired_difference_matches_ttest():
    result = paired_difference([0.9, 0.8, 0.85], [0.7, 0.65, 0.6])
    assert result["mean"] == pytest.approx(0.2)
    assert result["n"] == 3
    assert 0 < result["p_value"] < 0.05
    assert result["significant"]


def test_paired_difference_constant_shift_has_no_test():
    result = paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert math.isnan(result["p_value"])
    assert not result["significant"]


def test_paired_difference_rejects_bad_inputs():
    with pytest.raises(ValueError, match="equal length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([np.nan], [1.0])
    with pytest.raises(ValueError, match="alpha must lie in"):
        paired_difference([1.0, 2.0], [1.0, 1.5], alpha=1.5)


def test_describe_difference_says_not_significant():
    text = describe_difference("delta_mu", paired_difference([0.1, 0.3, 0.2], [0.2, 0.1, 0.25]))
    assert "not significant" in text
    assert text.startswith("delta_mu: DAGR minus baseline")
