import json
import math

import pytest
import torch

import dagr
import dagr.train as train_module
from dagr.data import MultiFeatures
from dagr.models import build_mfeat_model
from dagr.train import Result, TrainConfig, config_hash, evaluate, run_cached, task_loss, train

VIEWS = ("fourier", "karhunen")


@pytest.fixture(scope="module")
def small_data():
    return MultiFeatures(views=VIEWS).take(train=240, val=100, test=100)


def _config(**overrides):
    values = dict(views=VIEWS, epochs=2, batch_size=32, lr=3e-3, dim=16, hidden=32, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def baseline(small_data):
    return train(_config(), small_data)


def test_tiny_run_beats_chance(baseline):
    assert baseline.test_accuracy > 0.3
    assert baseline.val_accuracy > 0.3
    assert 1 <= baseline.best_epoch <= 2


def test_result_fields(baseline):
    assert set(baseline.unimodal_accuracy) == set(VIEWS)
    assert set(baseline.effective_rank) == set(VIEWS)
    for value in baseline.effective_rank.values():
        assert 1.0 <= value <= 16.0
    assert 0.0 <= baseline.drift <= 4.0
    assert len(baseline.history) == 2
    row = baseline.history[0]
    assert set(row["dispersion"]) == set(VIEWS)
    assert all(-8.0 <= value <= 0.0 for value in row["dispersion"].values())
    assert math.isfinite(row["anchoring"])
    assert row["alpha"] == {"fourier": None, "karhunen": None}
    assert row["regularizer_loss"] == 0.0
    assert baseline.model is not None


def test_best_checkpoint_is_selected(baseline):
    accuracies = [row["val_accuracy"] for row in baseline.history]
    assert baseline.val_accuracy == max(accuracies)
    assert baseline.best_epoch == accuracies.index(max(accuracies)) + 1


def test_reported_metrics_match_model(baseline, small_data):
    again = evaluate(baseline.model, small_data.test)
    assert again["accuracy"] == baseline.test_accuracy
    assert again["unimodal_accuracy"] == baseline.unimodal_accuracy
    assert evaluate(baseline.model, small_data.val)["accuracy"] == baseline.val_accuracy


def test_same_seed_same_metrics(baseline, small_data):
    repeat = train(_config(), small_data).to_dict()
    first = baseline.to_dict()
    repeat.pop("train_seconds")
    first.pop("train_seconds")
    assert repeat == first


def test_result_is_json_serialisable(baseline):
    text = json.dumps(baseline.to_dict())
    loaded = Result.from_dict(json.loads(text))
    assert loaded.test_accuracy == baseline.test_accuracy
    assert loaded.history == baseline.history
    assert loaded.model is None
    assert loaded.version == dagr.__version__


def test_metrics_row(baseline):
    row = baseline.metrics()
    assert row["test_accuracy"] == baseline.test_accuracy
    assert row["unimodal/fourier"] == baseline.unimodal_accuracy["fourier"]
    assert row["effective_rank/karhunen"] == baseline.effective_rank["karhunen"]
    assert row["drift"] == baseline.drift


def test_fixed_dagr_run_logs_parts(small_data):
    result = train(_config(epochs=1, regularizer={"lambda_d": 0.1, "lambda_a": 0.5, "tau": 0.2}), small_data)
    row = result.history[0]
    assert row["regularizer_loss"] != 0.0
    assert row["train_loss"] == pytest.approx(row["task_loss"] + row["regularizer_loss"])
    assert row["alpha"] == {"fourier": None, "karhunen": None}
    assert math.isfinite(result.drift)


def test_pareto_params_run_logs_alpha(small_data):
    result = train(_config(epochs=1, regularizer={"beta": 0.1, "pareto": "params"}), small_data)
    alpha = result.history[0]["alpha"]
    assert set(alpha) == set(VIEWS)
    assert all(0.0 <= value <= 1.0 for value in alpha.values())


def test_dgl_run_beats_chance(small_data):
    result = train(_config(backbone="dgl"), small_data)
    assert result.test_accuracy > 0.3
    assert all(value > 0.2 for value in result.unimodal_accuracy.values())


def _batch(small_data, n=16):
    return next(small_data.train.batches(n))


def _grads(module):
    return [p.grad for p in module.parameters()]


def test_dgl_fused_loss_skips_encoders(small_data):
    torch.manual_seed(0)
    model = build_mfeat_model(VIEWS, dim=16, hidden=32)
    x, y = _batch(small_data)
    loss, _ = task_loss(model, x, y, backbone="dgl", unimodal_weight=0.0)
    loss.backward()
    for view in VIEWS:
        assert all(g is None or torch.count_nonzero(g) == 0 for g in _grads(model.encoders[view])), view
    assert torch.count_nonzero(model.head.linear.weight.grad) > 0


def test_dgl_unimodal_loss_skips_head(small_data):
    torch.manual_seed(0)
    model = build_mfeat_model(VIEWS, dim=16, hidden=32)
    x, y = _batch(small_data)
    loss, zs = task_loss(model, x, y, backbone="dgl")
    loss.backward()
    head_grad = model.head.linear.weight.grad.clone()
    for view in VIEWS:
        assert all(torch.count_nonzero(g) > 0 for g in _grads(model.encoders[view])), view

    model.zero_grad(set_to_none=True)
    fused_only = torch.nn.functional.cross_entropy(model.fuse({v: z.detach() for v, z in zs.items()}), y)
    fused_only.backward()
    assert torch.allclose(head_grad, model.head.linear.weight.grad)


def test_joint_loss_reaches_encoders(small_data):
    torch.manual_seed(0)
    model = build_mfeat_model(VIEWS, dim=16, hidden=32)
    x, y = _batch(small_data)
    loss, zs = task_loss(model, x, y, backbone="joint")
    loss.backward()
    assert set(zs) == set(VIEWS)
    assert torch.count_nonzero(model.encoders["fourier"].net[0].weight.grad) > 0


def test_task_loss_rejects_bad_backbone(small_data):
    model = build_mfeat_model(VIEWS, dim=16, hidden=32)
    x, y = _batch(small_data)
    with pytest.raises(ValueError, match="backbone must be one of.*'late'"):
        task_loss(model, x, y, backbone="late")


def test_run_cached_reuses_result(small_data, tmp_path, monkeypatch):
    config = _config(epochs=1)
    first = run_cached(config, small_data, tmp_path)
    path = tmp_path / f"{config_hash(config, small_data)}.json"
    assert path.is_file()
    assert first.model is not None

    def fail(*args, **kwargs):
        raise AssertionError("train() ran although the result was cached")

    monkeypatch.setattr(train_module, "train", fail)
    second = run_cached(config, small_data, tmp_path)
    assert second.model is None
    assert second.to_dict() == json.loads(json.dumps(first.to_dict()))


def test_config_hash_tracks_inputs(small_data):
    base = config_hash(_config())
    assert base == config_hash(_config())
    assert len(base) == 64
    assert config_hash(_config(seed=1)) != base
    assert config_hash(_config(regularizer={"lambda_d": 0.1})) != base
    assert config_hash(_config(), small_data) != base
    assert config_hash(_config(), small_data.take(train=100)) != config_hash(_config(), small_data)


def test_config_to_dict_is_json():
    values = json.loads(json.dumps(_config(regularizer={"lambda_a": 0.5}).to_dict()))
    assert values["views"] == list(VIEWS)
    assert values["regularizer"] == {"lambda_a": 0.5}


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive int, got 0"),
        ({"batch_size": 1.5}, ValueError, "batch_size must be a positive int"),
        ({"lr": 0.0}, ValueError, "lr must be positive"),
        ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay and unimodal_weight must be >= 0"),
        ({"seed": -3}, ValueError, "seed must be a non-negative int, got -3"),
        ({"optimizer": "adam"}, ValueError, "optimizer must be one of.*'adam'"),
        ({"backbone": "late"}, ValueError, "backbone must be one of.*'late'"),
        ({"fusion": "film"}, ValueError, "fusion must be one of.*'film'"),
        ({"views": ("fourier", "audio")}, ValueError, "unknown mfeat view 'audio'"),
        ({"regularizer": [0.1, 0.5]}, TypeError, "regularizer must be a dict"),
        ({"regularizer": {"lambda_d": -1.0}}, ValueError, "lambda_d"),
        ({"views": ("fourier",), "regularizer": {}}, ValueError, "DAGR needs at least 2 views"),
    ],
)
def test_config_rejects_bad_values(overrides, error, pattern):
    with pytest.raises(error, match=pattern):
        _config(**overrides)


def test_train_rejects_mismatched_data(small_data):
    with pytest.raises(ValueError, match=r"data lacks view\(s\) \['pixels'\]"):
        train(_config(views=("fourier", "pixels")), small_data)
    with pytest.raises(ValueError, match="batch_size=512 exceeds the 240 training samples"):
        train(_config(batch_size=512), small_data)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train({"epochs": 1}, small_data)


def test_sgd_single_view_run(small_data):
    result = train(_config(views=("fourier",), optimizer="sgd", lr=0.05, epochs=1), small_data)
    assert result.drift is None
    assert result.history[0]["anchoring"] is None
    assert "drift" not in result.metrics()
