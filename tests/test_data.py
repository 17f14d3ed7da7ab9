import gzip

import numpy as np
import pytest
import torch

from dagr.data import (
    NUM_SAMPLES,
    VIEW_DIMS,
    VIEW_NAMES,
    MultiFeatures,
    MultiViewSplit,
    check_views,
    load_mfeat,
    mfeat_splits,
)


@pytest.fixture(scope="module")
def raw():
    return load_mfeat()


@pytest.fixture(scope="module")
def data():
    return MultiFeatures()


def test_load_shapes_and_dtypes(raw):
    features, labels = raw
    assert list(features) == list(VIEW_NAMES)
    assert labels.shape == (NUM_SAMPLES,)
    assert labels.dtype == torch.int64
    for name, x in features.items():
        assert x.shape == (NUM_SAMPLES, VIEW_DIMS[name]), name
        assert x.dtype == torch.float32, name
        assert torch.isfinite(x).all(), name


def test_load_view_dims():
    assert VIEW_DIMS == {
        "fourier": 76, "profile": 216, "karhunen": 64,
        "pixels": 240, "zernike": 47, "morphology": 6,
    }


def test_labels_follow_row_blocks(raw):
    _, labels = raw
    assert torch.equal(labels, torch.arange(NUM_SAMPLES) // 200)


def test_pixels_are_16x15_image(raw):
    pixels = raw[0]["pixels"]
    assert pixels.min() == 0
    assert pixels.max() == 6
    assert torch.equal(pixels, pixels.round())
    image = pixels.reshape(-1, 16, 15)
    assert image.shape == (NUM_SAMPLES, 16, 15)


def test_load_selected_views_in_order():
    features, labels = load_mfeat(["morphology", "fourier"])
    assert list(features) == ["morphology", "fourier"]
    assert labels.shape == (NUM_SAMPLES,)


def test_load_unknown_view_lists_valid_names():
    with pytest.raises(ValueError, match="unknown mfeat view 'audio'.*fourier.*morphology"):
        load_mfeat(["fourier", "audio"])


def test_check_views_rejects_bad_input():
    with pytest.raises(TypeError, match="got the string 'pixels'"):
        check_views("pixels")
    with pytest.raises(ValueError, match="at least one view"):
        check_views([])
    with pytest.raises(ValueError, match="distinct.*'pixels'"):
        check_views(["pixels", "fourier", "pixels"])


def _write_csv(path, table, compress):
    header = ",".join(str(i) for i in range(table.shape[1]))
    body = "\n".join(",".join(f"{v:g}" for v in row) for row in table)
    text = header + "\n" + body + "\n"
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)


def test_load_from_root_folder(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 4)
    fou = np.column_stack([rng.normal(size=(12, 76)), labels])
    mor = np.column_stack([rng.normal(size=(12, 6)), labels])
    _write_csv(tmp_path / "mfeat-fou.csv", fou, compress=False)
    _write_csv(tmp_path / "mfeat-mor.csv.gz", mor, compress=True)

    features, loaded_labels = load_mfeat(["fourier", "morphology"], root=tmp_path)
    assert torch.equal(loaded_labels, torch.from_numpy(labels))
    np.testing.assert_allclose(features["fourier"].numpy(), fou[:, :-1], rtol=1e-5)
    np.testing.assert_allclose(features["morphology"].numpy(), mor[:, :-1], rtol=1e-5)


def test_load_from_root_rejects_bad_files(tmp_path):
    labels = np.repeat(np.arange(2), 3)
    _write_csv(tmp_path / "mfeat-mor.csv", np.column_stack([np.zeros((6, 5)), labels]), False)
    with pytest.raises(ValueError, match="6 columns, expected 7.*'morphology'"):
        load_mfeat(["morphology"], root=tmp_path)

    _write_csv(tmp_path / "mfeat-mor.csv", np.column_stack([np.zeros((6, 6)), labels]), False)
    _write_csv(tmp_path / "mfeat-zer.csv", np.column_stack([np.zeros((6, 47)), labels[::-1]]), False)
    with pytest.raises(ValueError, match="labels of view 'zernike' differ"):
        load_mfeat(["morphology", "zernike"], root=tmp_path)

    with pytest.raises(FileNotFoundError, match="mfeat-fou.*'fourier'"):
        load_mfeat(["fourier"], root=tmp_path)


def test_split_sizes_and_stratification(data):
    assert (len(data.train), len(data.val), len(data.test)) == (1400, 300, 300)
    for split, per_class in ((data.train, 140), (data.val, 30), (data.test, 30)):
        counts = torch.bincount(split.labels, minlength=10)
        assert torch.equal(counts, torch.full((10,), per_class))


def test_splits_are_disjoint_and_cover(data):
    train, val, test = (set(s.indices.tolist()) for s in (data.train, data.val, data.test))
    assert not train & val
    assert not train & test
    assert not val & test
    assert train | val | test == set(range(NUM_SAMPLES))


def test_split_labels_match_rows(data):
    for split in (data.train, data.val, data.test):
        assert torch.equal(split.labels, torch.from_numpy(split.indices) // 200)


def test_split_depends_only_on_split_seed(data):
    again = MultiFeatures(split_seed=0)
    other = mfeat_splits(seed=1)
    assert np.array_equal(again.test.indices, data.test.indices)
    assert not np.array_equal(other.test.indices, data.test.indices)


def test_standardized_on_train_only(data):
    raw_features, _ = load_mfeat()
    for name in VIEW_NAMES:
        x = data.train.features[name].double()
        assert torch.allclose(x.mean(0), torch.zeros(x.shape[1], dtype=torch.float64), atol=1e-5), name
        train_raw = raw_features[name][torch.from_numpy(data.train.indices)].double()
        expected_mean = train_raw.mean(0).float()
        assert torch.allclose(data.mean[name], expected_mean, rtol=1e-5, atol=1e-5), name
        test_raw = raw_features[name][torch.from_numpy(data.test.indices)]
        rebuilt = data.test.features[name] * data.std[name] + data.mean[name]
        assert torch.allclose(rebuilt, test_raw, rtol=1e-4, atol=1e-3), name


def test_constant_features_keep_unit_scale(data):
    assert torch.all(data.std["pixels"] > 0)
    assert torch.isfinite(data.train.features["pixels"]).all()


def test_unstandardized_keeps_raw_values():
    plain = MultiFeatures(views=["morphology"], standardize=False)
    raw_features, _ = load_mfeat(["morphology"])
    rows = torch.from_numpy(plain.test.indices)
    assert torch.equal(plain.test.features["morphology"], raw_features["morphology"][rows])
    assert plain.mean is None


def test_bad_fractions_rejected():
    with pytest.raises(ValueError, match="val_fraction.*1.2"):
        MultiFeatures(views=["morphology"], val_fraction=1.2)
    with pytest.raises(ValueError, match="test_fraction.*0"):
        MultiFeatures(views=["morphology"], test_fraction=0.0)
    with pytest.raises(ValueError, match="below 1"):
        MultiFeatures(views=["morphology"], val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(TypeError, match="split_seed"):
        MultiFeatures(views=["morphology"], split_seed=0.5)


def test_unknown_view_in_splits():
    with pytest.raises(ValueError, match="valid view names"):
        mfeat_splits(views=["pixel"])


def test_batches_cover_split_once(data):
    g = torch.Generator().manual_seed(0)
    seen = []
    for x, y in data.val.batches(64, shuffle=True, generator=g):
        assert set(x) == set(VIEW_NAMES)
        assert all(v.shape[0] == y.shape[0] for v in x.values())
        seen.append(y)
    assert sum(len(y) for y in seen) == len(data.val)
    assert torch.equal(torch.cat(seen).sort().values, data.val.labels.sort().values)


def test_batches_drop_last_and_order():
    split = MultiViewSplit({"a": torch.arange(10.0).reshape(10, 1)}, torch.arange(10), np.arange(10))
    sizes = [len(y) for _, y in split.batches(4, drop_last=True)]
    assert sizes == [4, 4]
    first_x, first_y = next(split.batches(4))
    assert torch.equal(first_y, torch.arange(4))
    assert torch.equal(first_x["a"][:, 0], torch.arange(4.0))


def test_batches_seeded_shuffle_repeats():
    split = MultiViewSplit({"a": torch.zeros(20, 1)}, torch.arange(20), np.arange(20))
    orders = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        orders.append(torch.cat([y for _, y in split.batches(5, shuffle=True, generator=g)]))
    assert torch.equal(orders[0], orders[1])
    assert not torch.equal(orders[0], torch.arange(20))


def test_batches_rejects_bad_size(data):
    with pytest.raises(ValueError, match="batch_size.*0"):
        next(data.val.batches(0))


def test_dataset_indexing(data):
    x, y = data.test[3]
    assert set(x) == set(VIEW_NAMES)
    assert x["fourier"].shape == (76,)
    assert int(y) == int(data.test.labels[3])


def test_split_rows_must_match_labels():
    with pytest.raises(ValueError, match="view 'a' has 3 rows but there are 4 labels"):
        MultiViewSplit({"a": torch.zeros(3, 1)}, torch.zeros(4, dtype=torch.long), np.arange(4))


def test_take_keeps_prefix(data):
    small = data.take(train=50, test=20)
    assert len(small.train) == 50
    assert len(small.val) == len(data.val)
    assert len(small.test) == 20
    assert torch.equal(small.train.labels, data.train.labels[:50])
    assert small.describe()["sizes"] == [50, 300, 20]
    assert data.describe()["sizes"] == [1400, 300, 300]
    with pytest.raises(ValueError, match="n must be a positive int"):
        data.train.take(0)
