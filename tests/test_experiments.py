import json

import pytest

import dagr.experiments as experiments
from dagr.data import MultiFeatures
from dagr.experiments import (
    ANALYSES,
    PROFILE_SIZES,
    RunSpec,
    frame,
    history_frame,
    load_or_train,
    metrics_of,
    plan,
    run_key,
    train_record,
)
from dagr.train import TrainConfig
from dagr.utils import PAPER_SEEDS

VIEWS = ("pixels", "fourier")


@pytest.mark.parametrize("profile", ["ci", "book", "full"])
def test_plan_sizes(profile):
    sizes = PROFILE_SIZES[profile]
    per_setting = {"main": 8, "geometry": 3, "ablation": 4, "controls": 7}
    for analysis, count in per_setting.items():
        assert len(plan(analysis, profile)) == count * len(sizes.settings) * len(sizes.seeds)
    grid = len(sizes.lambda_grid) ** 2 + len(sizes.beta_grid) * len(sizes.tau_grid)
    assert len(plan("sensitivity", profile)) == grid * len(sizes.sensitivity_settings) * len(sizes.seeds)


def test_plan_seeds_by_profile():
    assert PROFILE_SIZES["ci"].seeds == PAPER_SEEDS
    assert PROFILE_SIZES["book"].seeds == PAPER_SEEDS
    assert len(PROFILE_SIZES["full"].seeds) >= 5


def test_plan_variants_and_backbones():
    specs = plan("main", "book")
    assert {spec.backbone for spec in specs} == {"joint", "dgl"}
    assert {spec.setting for spec in specs} == {"2 views", "3 views", "6 views"}
    pareto = [spec for spec in specs if spec.variant == "DAGR (Pareto)"]
    assert all(spec.config.regularizer["pareto"] == "features" for spec in pareto)
    exact = [spec for spec in specs if spec.variant == "DAGR (Pareto, params)"]
    assert len(exact) == len(pareto)
    assert all(spec.config.regularizer["pareto"] == "params" for spec in exact)
    controls = {spec.variant: spec.config.control for spec in plan("controls", "ci")}
    assert controls["unit sphere only"] == {"name": "sphere"}
    assert controls["baseline"] is None


def test_plan_sensitivity_params():
    specs = plan("sensitivity", "ci")
    lambdas = [spec for spec in specs if spec.variant == "lambda grid"]
    assert all(spec.config.regularizer["tau"] == 0.0 for spec in lambdas)
    assert all(set(spec.params) == {"lambda_d", "lambda_a"} for spec in lambdas)
    betas = [spec for spec in specs if spec.variant == "beta-tau grid"]
    assert all(spec.config.regularizer["pareto"] == "features" for spec in betas)


def test_plan_rejects_unknown_analysis():
    with pytest.raises(ValueError, match="'tables'"):
        plan("tables", "ci")


def test_plan_rejects_unknown_profile():
    with pytest.raises(ValueError, match="'huge'"):
        plan("main", "huge")


def test_all_analyses_listed():
    assert ANALYSES == ("main", "geometry", "ablation", "controls", "sensitivity")


@pytest.fixture(scope="module")
def tiny_data():
    return MultiFeatures(views=VIEWS).take(train=128, val=60, test=60)


def _tiny_config(**overrides):
    values = dict(views=VIEWS, epochs=2, batch_size=32, dim=8, hidden=16, seed=0, backbone="dgl")
    values.update(overrides)
    return TrainConfig(**values)


def test_run_key_depends_on_results_version(tiny_data, monkeypatch):
    config = _tiny_config()
    key = run_key(config, tiny_data)
    assert key == run_key(_tiny_config(), tiny_data)
    assert key != run_key(_tiny_config(seed=1), tiny_data)
    monkeypatch.setattr(experiments, "RESULTS_VERSION", experiments.RESULTS_VERSION + 1)
    assert key != run_key(config, tiny_data)


@pytest.fixture(scope="module")
def record(tiny_data):
    return train_record(_tiny_config(regularizer={"lambda_d": 0.1, "lambda_a": 0.1}), tiny_data)


def test_record_fields(record):
    assert set(record["probe_accuracy"]) == set(VIEWS)
    assert len(record["history"]) == 2
    geometry = record["history"][0]["val_geometry"]
    assert set(geometry) == {"semantic_margin", "effective_rank", "drift"}
    assert json.loads(json.dumps(record)) == record


def test_record_bounds(record):
    metrics = metrics_of(record)
    for name, value in metrics.items():
        if name == "multimodal" or "/" in name:
            assert 0.0 <= value <= 1.0, name
    assert metrics["multimodal"] > 0.1
    assert 0.0 <= metrics["effective rank"] <= 8
    assert 0.0 <= metrics["drift"] <= 4.0


def test_record_without_probe(tiny_data):
    record = train_record(_tiny_config(epochs=1), tiny_data, probe=False)
    assert record["probe_accuracy"] is None
    assert not any(name.startswith("probe/") for name in metrics_of(record))


def test_frames(record):
    spec = RunSpec("main", "2 views", "dgl", "DAGR (fixed)", 0, _tiny_config())
    table = frame([(spec, record)])
    assert {"setting", "backbone", "variant", "seed", "metric", "value"} <= set(table.columns)
    assert not table["value"].isna().any()
    history = history_frame([(spec, record)])
    assert sorted(history["epoch"].unique()) == [1, 2]
    assert set(history["metric"]) == {"semantic margin", "effective rank", "drift", "validation accuracy"}


def test_load_or_train_caches(tmp_path, monkeypatch):
    config = TrainConfig(views=VIEWS, epochs=1, batch_size=128, dim=8, hidden=16, seed=0, backbone="joint")
    spec = RunSpec("geometry", "2 views", "joint", "baseline", 0, config)
    with pytest.raises(FileNotFoundError, match="python -m dagr.experiments"):
        load_or_train(spec, tmp_path, train_missing=False)
    first = load_or_train(spec, tmp_path)
    assert first["probe_accuracy"] is None
    assert len(list(tmp_path.glob("*.json"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("a cached run must not train again")

    monkeypatch.setattr(experiments, "train_record", fail)
    assert load_or_train(spec, tmp_path) == first


def test_load_or_train_adds_missing_probe(tmp_path):
    config = TrainConfig(views=VIEWS, epochs=1, batch_size=128, dim=8, hidden=16, seed=0, backbone="joint")
    load_or_train(RunSpec("geometry", "2 views", "joint", "baseline", 0, config), tmp_path)
    with_probe = load_or_train(RunSpec("main", "2 views", "joint", "baseline", 0, config), tmp_path)
    assert set(with_probe["probe_accuracy"]) == set(VIEWS)


def test_summary_and_differences(record):
    import copy

    runs = []
    for seed, shift in zip((0, 42, 3407), (0.0, 0.01, 0.02)):
        for variant, offset in (("baseline", 0.0), ("DAGR (fixed)", 0.05)):
            changed = copy.deepcopy(record)
            changed["test_accuracy"] = min(1.0, 0.5 + shift + offset)
            runs.append((RunSpec("main", "2 views", "dgl", variant, seed, _tiny_config()), changed))
    table = experiments.summary(runs, ["drift", "multimodal"])
    assert list(table.columns) == ["drift", "multimodal"]
    assert table.loc[("2 views", "dgl", "baseline"), "multimodal"] == "51.00 ± 1.00"
    tested = experiments.comparisons(runs, "multimodal")
    assert len(tested) == 1
    assert tested.iloc[0]["difference"] == pytest.approx(5.0)
    assert "identical in all 3 seeds" in tested.iloc[0]["statement"]
    cells = experiments.difference_cells({"multimodal": tested})
    assert cells.loc[("2 views", "DAGR (fixed)"), "multimodal"] == "+5.00 (p=n/a)"
    with pytest.raises(ValueError, match="'accuracy'"):
        experiments.summary(runs, ["accuracy"])
    with pytest.raises(ValueError, match="'control'"):
        experiments.comparisons(runs, "multimodal", baseline="control")
