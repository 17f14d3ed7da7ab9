import pytest
import torch

from dagr.corruptions import (
    corrupt,
    corrupted_accuracy,
    degradation_curve,
    feature_dropout,
    gaussian_noise,
    missing,
    view_scales,
)
from dagr.data import MultiViewSplit
from dagr.models import build_mfeat_model


def _features(n=50):
    torch.manual_seed(0)
    return {"fourier": torch.randn(n, 76) + 1.0, "zernike": torch.randn(n, 47) * 3.0}


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_missing_extremes():
    x = _features()["fourier"]
    assert torch.equal(missing(x, 0.0, _generator()), x)
    assert torch.count_nonzero(missing(x, 1.0, _generator())) == 0


def test_missing_zeroes_whole_rows():
    x = _features(2000)["fourier"]
    out = missing(x, 0.3, _generator())
    zero_rows = (out == 0).all(dim=1)
    kept = ~zero_rows
    assert torch.equal(out[kept], x[kept])
    assert 0.25 < float(zero_rows.double().mean()) < 0.35


def test_noise_strength_scales_with_sigma_and_scale():
    x = torch.zeros(4000, 10)
    out = gaussian_noise(x, 0.5, 2.0, _generator())
    assert float(out.std()) == pytest.approx(1.0, rel=0.05)
    assert torch.equal(gaussian_noise(x, 0.0, 2.0, _generator()), x)


def test_dropout_removes_exact_fraction():
    x = torch.ones(30, 40)
    out = feature_dropout(x, 0.25, _generator())
    assert torch.all((out == 0).sum(dim=1) == 10)
    assert torch.count_nonzero(feature_dropout(x, 1.0, _generator())) == 0
    assert torch.equal(feature_dropout(x, 0.0, _generator()), x)


def test_dropout_picks_different_features_per_row():
    out = feature_dropout(torch.ones(20, 40), 0.5, _generator())
    assert len({tuple((row == 0).nonzero().flatten().tolist()) for row in out}) > 1


def test_corrupt_touches_only_named_view():
    features = _features()
    scales = {"fourier": 1.0, "zernike": 3.0}
    for kind in ("missing", "noise", "dropout"):
        out = corrupt(features, "fourier", kind, 0.5, seed=1, scales=scales)
        assert out["zernike"] is features["zernike"]
        assert not torch.equal(out["fourier"], features["fourier"]), kind
    assert torch.equal(features["fourier"], _features()["fourier"])


def test_corrupt_is_seeded():
    features = _features()
    first = corrupt(features, "fourier", "dropout", 0.3, seed=7)
    again = corrupt(features, "fourier", "dropout", 0.3, seed=7)
    other = corrupt(features, "fourier", "dropout", 0.3, seed=8)
    assert torch.equal(first["fourier"], again["fourier"])
    assert not torch.equal(first["fourier"], other["fourier"])


def test_corrupt_several_views():
    out = corrupt(_features(), ["fourier", "zernike"], "missing", 1.0)
    assert all(torch.count_nonzero(x) == 0 for x in out.values())


def test_corrupt_rejects_bad_inputs():
    features = _features()
    with pytest.raises(ValueError, match="kind must be one of"):
        corrupt(features, "fourier", "blur", 0.1)
    with pytest.raises(ValueError, match="unknown view 'pixels'"):
        corrupt(features, "pixels", "missing", 0.1)
    with pytest.raises(ValueError, match=r"p is a probability in \[0, 1\], got 1.5"):
        corrupt(features, "fourier", "missing", 1.5)
    with pytest.raises(ValueError, match="rho must be >= 0, got -0.1"):
        corrupt(features, "fourier", "dropout", -0.1)
    with pytest.raises(ValueError, match="sigma must be a finite number"):
        corrupt(features, "fourier", "noise", float("nan"), scales={"fourier": 1.0})
    with pytest.raises(ValueError, match="needs scales"):
        corrupt(features, "fourier", "noise", 0.1)
    with pytest.raises(ValueError, match=r"scales lacks view\(s\) \['fourier'\]"):
        corrupt(features, "fourier", "noise", 0.1, scales={"zernike": 1.0})
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        corrupt(features, "fourier", "missing", 0.1, seed=-1)
    with pytest.raises(ValueError, match="views is empty"):
        corrupt(features, [], "missing", 0.1)
    with pytest.raises(TypeError, match="features must be a dict"):
        corrupt([1, 2], "fourier", "missing", 0.1)
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        gaussian_noise(features["fourier"], 0.1, 0.0, _generator())


def test_view_scales_is_feature_std():
    features = _features(4000)
    split = MultiViewSplit(features, torch.zeros(4000, dtype=torch.long), range(4000))
    scales = view_scales(split)
    assert scales["fourier"] == pytest.approx(1.0, rel=0.05)
    assert scales["zernike"] == pytest.approx(3.0, rel=0.05)


def _split_and_model():
    features = _features(60)
    labels = torch.arange(60) % 10
    split = MultiViewSplit(features, labels, range(60))
    torch.manual_seed(0)
    return split, build_mfeat_model(["fourier", "zernike"], dim=8, hidden=16)


def test_accuracy_at_level_zero_is_clean():
    split, model = _split_and_model()
    with torch.no_grad():
        logits, _ = model.eval()(split.features)
    clean = float((logits.argmax(1) == split.labels).double().mean())
    for kind in ("missing", "noise", "dropout"):
        value = corrupted_accuracy(model, split, "fourier", kind, 0.0, scales={"fourier": 1.0})
        assert value == clean


def test_all_views_missing_gives_one_class():
    split, model = _split_and_model()
    accuracy = corrupted_accuracy(model, split, ["fourier", "zernike"], "missing", 1.0)
    assert accuracy == pytest.approx(0.1)


def test_degradation_curve_in_unit_interval():
    split, model = _split_and_model()
    curve = degradation_curve(model, split, "zernike", "dropout", [0.0, 0.5, 1.0])
    assert len(curve) == 3
    assert all(0.0 <= value <= 1.0 for value in curve)
    with pytest.raises(ValueError, match="levels must be a non-empty sequence"):
        degradation_curve(model, split, "zernike", "dropout", [])


def test_corrupted_accuracy_rejects_bad_model_and_split():
    split, model = _split_and_model()
    with pytest.raises(TypeError, match="model must be a dagr.models.MultiViewNet"):
        corrupted_accuracy(object(), split, "fourier", "missing", 0.1)
    narrow = MultiViewSplit({"fourier": split.features["fourier"]}, split.labels, range(60))
    with pytest.raises(ValueError, match=r"split lacks view\(s\) \['zernike'\]"):
        corrupted_accuracy(model, narrow, "fourier", "missing", 0.1)


def test_robustness_sweep_rows():
    from dagr.corruptions import robustness_sweep

    split, model = _split_and_model()
    models = {("2 views", "baseline", 0): (model, None)}
    rows = robustness_sweep(models, split, {"missing": [0.0, 1.0], "noise": [0.0, 2.0]},
                            scales={"fourier": 1.0, "zernike": 3.0})
    assert len(rows) == 2 * 2 * 2
    assert {row["view"] for row in rows} == {"fourier", "zernike"}
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)
    with pytest.raises(ValueError, match=r"unknown corruption kind\(s\) \['blur'\]"):
        robustness_sweep(models, split, {"blur": [0.1]}, scales={})
