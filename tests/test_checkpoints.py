import json

import pytest
import torch

from dagr.checkpoints import (
    DAGR_WEIGHTS,
    MODEL_DIR,
    SETTINGS,
    analysis_configs,
    build_model,
    load_or_train_model,
    main,
    model_key,
)
from dagr.data import MultiFeatures
from dagr.train import TrainConfig
from dagr.utils import PAPER_SEEDS


@pytest.fixture(scope="module")
def data():
    return MultiFeatures(views=["fourier", "zernike", "karhunen"]).take(train=96, val=32, test=32)


def _config(**kwargs):
    values = dict(views=("fourier", "zernike"), epochs=2, batch_size=32, dim=8, hidden=16)
    values.update(kwargs)
    return TrainConfig(**values)


def test_train_then_load_same_weights(data, tmp_path):
    config = _config(regularizer=DAGR_WEIGHTS)
    model, result = load_or_train_model(config, data, tmp_path)
    key = model_key(config, data)
    assert (tmp_path / f"{key}.pt").is_file()
    assert (tmp_path / f"{key}.json").is_file()
    assert result.model is model
    assert not model.training

    loaded, loaded_result = load_or_train_model(config, data, tmp_path)
    assert loaded is not model
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    assert loaded_result.test_accuracy == result.test_accuracy
    assert loaded_result.model is loaded


def test_loaded_model_reproduces_test_accuracy(data, tmp_path):
    config = _config()
    load_or_train_model(config, data, tmp_path)
    model, result = load_or_train_model(config, data, tmp_path)
    with torch.no_grad():
        logits, _ = model({view: data.test.features[view] for view in config.views})
    accuracy = float((logits.argmax(1) == data.test.labels).double().mean())
    assert accuracy == pytest.approx(result.test_accuracy)


def test_key_ignores_extra_views(data):
    config = _config()
    narrow = MultiFeatures(views=["fourier", "zernike"]).take(train=96, val=32, test=32)
    assert model_key(config, data) == model_key(config, narrow)


def test_key_depends_on_seed_and_regularizer(data):
    keys = {model_key(_config(), data), model_key(_config(seed=1), data),
            model_key(_config(regularizer=DAGR_WEIGHTS), data)}
    assert len(keys) == 3


def test_cache_file_holds_result_json(data, tmp_path):
    config = _config(seed=5)
    _, result = load_or_train_model(config, data, tmp_path)
    with (tmp_path / f"{model_key(config, data)}.json").open() as handle:
        stored = json.load(handle)
    assert stored["test_accuracy"] == result.test_accuracy
    assert "model" not in stored


def test_rejects_missing_view(data, tmp_path):
    config = _config(views=("fourier", "pixels"))
    with pytest.raises(ValueError, match=r"lacks view\(s\) \['pixels'\]"):
        load_or_train_model(config, data, tmp_path)


def test_rejects_bad_config_and_cache_dir(data):
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        load_or_train_model({"views": ["fourier"]}, data)
    with pytest.raises(TypeError, match="cache_dir must be a path, got 3"):
        load_or_train_model(_config(), data, cache_dir=3)
    with pytest.raises(TypeError, match="data must be a MultiFeatures"):
        model_key(_config(), object())


def test_build_model_matches_config():
    model = build_model(_config())
    assert model.views == ("fourier", "zernike")
    assert model.dim == 8


def test_analysis_configs_by_profile():
    book = list(analysis_configs("book"))
    assert len(book) == len(SETTINGS) * 2 * len(PAPER_SEEDS)
    ci = list(analysis_configs("ci"))
    assert {key for key, _ in ci} <= {key for key, _ in book}
    assert {key[0] for key, _ in ci} == {"2 views"}
    methods = {key[1]: config.regularizer for key, config in book}
    assert methods == {"baseline": None, "DAGR": DAGR_WEIGHTS}
    with pytest.raises(ValueError, match="profile must be one of"):
        list(analysis_configs("huge"))


def test_model_dir_is_repository_results():
    assert MODEL_DIR.parts[-2:] == ("results", "models")


def test_cli_rejects_unknown_profile():
    with pytest.raises(SystemExit):
        main(["--profile", "huge"])
