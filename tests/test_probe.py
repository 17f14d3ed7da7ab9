import numpy as np
import pytest
import torch

from dagr.data import MultiFeatures
from dagr.models import build_mfeat_model
from dagr.probe import embed, probe_accuracy, probe_views


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    centers = rng.normal(0, 5, size=(4, 6))
    return centers[y] + rng.normal(0, 0.5, size=(n, 6)), y


def test_probe_separable_blobs():
    z, y = _blobs()
    assert probe_accuracy(z[:150], y[:150], z[150:], y[150:]) > 0.95


def test_probe_random_labels_near_chance():
    z, _ = _blobs(400)
    y = np.random.default_rng(1).integers(0, 4, size=400)
    assert probe_accuracy(z[:300], y[:300], z[300:], y[300:]) < 0.5


def test_probe_accepts_tensors():
    z, y = _blobs()
    value = probe_accuracy(torch.from_numpy(z[:150]), torch.from_numpy(y[:150]), torch.from_numpy(z[150:]),
                           torch.from_numpy(y[150:]))
    assert 0.0 <= value <= 1.0


def test_probe_rejects_row_mismatch():
    z, y = _blobs()
    with pytest.raises(ValueError, match="z_train has 150 rows"):
        probe_accuracy(z[:150], y[:149], z[150:], y[150:])


def test_probe_rejects_feature_mismatch():
    z, y = _blobs()
    with pytest.raises(ValueError, match="features"):
        probe_accuracy(z[:150], y[:150], z[150:, :3], y[150:])


def test_probe_rejects_one_class():
    z, _ = _blobs()
    with pytest.raises(ValueError, match="at least 2 classes"):
        probe_accuracy(z[:150], np.zeros(150), z[150:], np.zeros(50))


def test_probe_rejects_wrong_rank():
    z, y = _blobs()
    with pytest.raises(ValueError, match="z_test must be 2-D"):
        probe_accuracy(z[:150], y[:150], z[150:, 0], y[150:])


def test_probe_rejects_nan():
    z, y = _blobs()
    z[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        probe_accuracy(z[:150], y[:150], z[150:], y[150:])


@pytest.fixture(scope="module")
def small_data():
    return MultiFeatures(views=["fourier", "zernike", "pixels"]).take(train=200, val=50, test=100)


def test_probe_views_untrained_model(small_data):
    torch.manual_seed(0)
    model = build_mfeat_model(["fourier", "zernike"], dim=16, hidden=32)
    scores = probe_views(model, small_data)
    assert set(scores) == {"fourier", "zernike"}
    for value in scores.values():
        assert 0.1 < value <= 1.0  # random features of mfeat still beat chance


def test_embed_shapes_and_mode(small_data):
    model = build_mfeat_model(["fourier", "zernike"], dim=16, hidden=32)
    model.train()
    zs = embed(model, small_data.test)
    assert zs["fourier"].shape == (100, 16)
    assert model.training


def test_probe_views_rejects_missing_view(small_data):
    model = build_mfeat_model(["fourier", "karhunen"], dim=8, hidden=16)
    with pytest.raises(ValueError, match="karhunen"):
        probe_views(model, small_data)
