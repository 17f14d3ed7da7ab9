"""The UCI Multiple Features data set (mfeat): six views of 2,000 handwritten digits.

The data ship with the package as gzip-compressed CSVs in ``dagr/datasets/mfeat``
(source, license and citations in the README there). Each view describes the same
2,000 digits, 200 per class, in the same row order:

==============  =====  ==============================================================
view            dims   content
==============  =====  ==============================================================
``fourier``        76  Fourier coefficients of the character shapes
``profile``       216  profile correlations
``karhunen``       64  Karhunen-Loeve coefficients
``pixels``        240  pixel averages in 2x3 windows (integers 0-6), a 16x15 image
``zernike``        47  Zernike moments
``morphology``      6  morphological features
==============  =====  ==============================================================

Usage::

    data = MultiFeatures(views=["fourier", "pixels"])       # fixed split, split_seed=0
    for x, y in data.train.batches(64, shuffle=True, generator=g):
        logits, zs = model(x)                               # x: dict view -> (B, dims)
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from sklearn.model_selection import train_test_split

VENDORED_ROOT = Path(__file__).resolve().parent / "datasets" / "mfeat"

# view name -> (file stem, number of features)
VIEW_FILES: dict[str, tuple[str, int]] = {
    "fourier": ("mfeat-fou", 76),
    "profile": ("mfeat-fac", 216),
    "karhunen": ("mfeat-kar", 64),
    "pixels": ("mfeat-pix", 240),
    "zernike": ("mfeat-zer", 47),
    "morphology": ("mfeat-mor", 6),
}
VIEW_NAMES: tuple[str, ...] = tuple(VIEW_FILES)
VIEW_DIMS: dict[str, int] = {name: dims for name, (_, dims) in VIEW_FILES.items()}
PIXEL_SHAPE = (16, 15)  # rows, columns; the 240 pixel features are row-major
NUM_CLASSES = 10
NUM_SAMPLES = 2000


def check_views(views: Sequence[str] | None) -> tuple[str, ...]:
    """Validate a selection of view names; ``None`` selects all six in the standard order."""
    if views is None:
        return VIEW_NAMES
    if isinstance(views, str):
        raise TypeError(
            f"views must be a sequence of view names such as [{views!r}], got the string {views!r}"
        )
    views = tuple(views)
    if not views:
        raise ValueError(f"views must name at least one view out of {list(VIEW_NAMES)}, got none")
    for name in views:
        if name not in VIEW_FILES:
            raise ValueError(f"unknown mfeat view {name!r}, valid view names are {list(VIEW_NAMES)}")
    duplicates = sorted({name for name in views if views.count(name) > 1})
    if duplicates:
        raise ValueError(f"views must be distinct, got {duplicates} more than once in {list(views)}")
    return views


def _read_csv(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return np.loadtxt(handle, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)


def _view_path(root: Path, name: str) -> Path:
    stem = VIEW_FILES[name][0]
    for candidate in (root / f"{stem}.csv.gz", root / f"{stem}.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {stem}.csv.gz or {stem}.csv in {root} (view {name!r})")


def load_mfeat(
    views: Sequence[str] | None = None, root: str | Path | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Load the raw (unstandardized) mfeat views and the digit labels.

    Args:
        views: view names to load, in the order wanted; ``None`` loads all six.
        root: folder with ``mfeat-<code>.csv.gz`` or ``mfeat-<code>.csv`` files. Each
            file has one header row and the label in the last column. ``None`` reads
            the copy vendored in the package.

    Returns:
        ``(features, labels)``: a dict view name -> float32 tensor ``(N, dims)`` and
        an int64 tensor ``(N,)``. On the vendored data N = 2000 and the label of
        row ``i`` is ``i // 200``.

    Raises:
        ValueError: for an unknown view name, a file with the wrong number of
            columns, or views whose rows or labels disagree.
        FileNotFoundError: when ``root`` lacks a view's file.
    """
    views = check_views(views)
    root = VENDORED_ROOT if root is None else Path(root)
    features: dict[str, torch.Tensor] = {}
    labels: np.ndarray | None = None
    first_view = None
    for name in views:
        path = _view_path(root, name)
        table = _read_csv(path)
        expected = VIEW_DIMS[name] + 1
        if table.shape[1] != expected:
            raise ValueError(
                f"{path} has {table.shape[1]} columns, expected {expected} "
                f"({VIEW_DIMS[name]} features and the label) for view {name!r}"
            )
        view_labels = table[:, -1]
        if not np.array_equal(view_labels, np.round(view_labels)):
            raise ValueError(f"{path}: the last column must hold integer labels (view {name!r})")
        if labels is None:
            labels, first_view = view_labels.astype(np.int64), name
        elif view_labels.shape != labels.shape or not np.array_equal(view_labels, labels):
            raise ValueError(
                f"labels of view {name!r} differ from those of view {first_view!r}, but "
                f"all views must list the same samples in the same order"
            )
        features[name] = torch.from_numpy(table[:, :-1].astype(np.float32))
    return features, torch.from_numpy(labels)


class MultiViewSplit(torch.utils.data.Dataset):
    """One split (train, validation or test) of a multi-view data set.

    Attributes:
        features: dict view name -> float32 tensor ``(N, dims)``.
        labels: int64 tensor ``(N,)``.
        indices: row numbers of these samples in the full data set.

    Indexing returns ``(dict view -> (dims,) tensor, label)``, so the split also works
    with ``torch.utils.data.DataLoader``; :meth:`batches` is the faster path for the
    small tensors here.
    """

    def __init__(self, features: Mapping[str, torch.Tensor], labels: torch.Tensor, indices):
        self.features = dict(features)
        self.labels = labels
        self.indices = np.asarray(indices, dtype=np.int64)
        for name, x in self.features.items():
            if x.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"view {name!r} has {x.shape[0]} rows but there are {labels.shape[0]} labels"
                )

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(self.features)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i):
        return {name: x[i] for name, x in self.features.items()}, self.labels[i]

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Yield ``(dict view -> (b, dims) tensor, labels)`` mini-batches.

        ``shuffle`` draws a new order from ``generator`` on every call, so a seeded
        generator gives the same sequence of epochs on every run.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            yield {name: x[idx] for name, x in self.features.items()}, self.labels[idx]

    def take(self, n: int) -> "MultiViewSplit":
        """Return the first ``n`` samples (the split order is already a stratified shuffle)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        n = min(n, len(self))
        return MultiViewSplit(
            {name: x[:n] for name, x in self.features.items()}, self.labels[:n], self.indices[:n]
        )


@dataclass
class _Standardizer:
    mean: dict[str, torch.Tensor]
    std: dict[str, torch.Tensor]

    @classmethod
    def fit(cls, features: Mapping[str, torch.Tensor]) -> "_Standardizer":
        mean, std = {}, {}
        for name, x in features.items():
            x64 = x.double()
            scale = x64.std(dim=0, unbiased=False)
            # A feature that is constant on the training rows (blank border pixels) keeps scale 1.
            scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
            mean[name], std[name] = x64.mean(dim=0), scale
        return cls(mean, std)

    def apply(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            name: ((x.double() - self.mean[name]) / self.std[name]).float()
            for name, x in features.items()
        }


class MultiFeatures:
    """The mfeat data with a fixed, stratified train/validation/test split.

    The split depends only on ``split_seed`` (scikit-learn ``train_test_split`` with
    ``stratify`` on the labels), not on any training seed, so runs that vary the
    training seed are all evaluated on the same test digits. Every feature is
    standardized with the mean and standard deviation of the training rows only.
    The default fractions give 1,400 / 300 / 300 samples, 140 / 30 / 30 per digit.

    Args:
        views: view names, in order; ``None`` selects all six.
        split_seed: seed of the split (default 0).
        val_fraction, test_fraction: shares of the full data set, each in (0, 1),
            with a sum below 1.
        standardize: standardize features with training statistics (default True).
        root: folder with the CSVs, see :func:`load_mfeat`; ``None`` uses the vendored copy.

    Attributes:
        train, val, test: :class:`MultiViewSplit` objects.
        views, dims (dict view -> number of features), num_classes, mean, std.
    """

    def __init__(
        self,
        views: Sequence[str] | None = None,
        split_seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        standardize: bool = True,
        root: str | Path | None = None,
    ):
        for arg, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 < float(value) < 1.0:
                raise ValueError(f"{arg} must lie strictly between 0 and 1, got {value!r}")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}"
            )
        if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)):
            raise TypeError(f"split_seed must be an int, got {split_seed!r}")

        self.views = check_views(views)
        self.split_seed = int(split_seed)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.standardize = bool(standardize)
        self.root = None if root is None else str(root)

        features, labels = load_mfeat(self.views, root)
        self.num_classes = int(labels.max()) + 1
        rows = np.arange(labels.shape[0])
        y = labels.numpy()
        rest, test_rows = train_test_split(
            rows, test_size=self.test_fraction, stratify=y, random_state=self.split_seed
        )
        val_share = self.val_fraction / (1.0 - self.test_fraction)
        train_rows, val_rows = train_test_split(
            rest, test_size=val_share, stratify=y[rest], random_state=self.split_seed
        )

        def select(split_rows):
            index = torch.from_numpy(split_rows)
            return {name: x[index] for name, x in features.items()}, labels[index]

        train_x, train_y = select(train_rows)
        val_x, val_y = select(val_rows)
        test_x, test_y = select(test_rows)
        if self.standardize:
            scaler = _Standardizer.fit(train_x)
            self.mean = {name: m.float() for name, m in scaler.mean.items()}
            self.std = {name: s.float() for name, s in scaler.std.items()}
            train_x, val_x, test_x = scaler.apply(train_x), scaler.apply(val_x), scaler.apply(test_x)
        else:
            self.mean = self.std = None
        self.train = MultiViewSplit(train_x, train_y, train_rows)
        self.val = MultiViewSplit(val_x, val_y, val_rows)
        self.test = MultiViewSplit(test_x, test_y, test_rows)

    @property
    def dims(self) -> dict[str, int]:
        return {name: int(x.shape[1]) for name, x in self.train.features.items()}

    def describe(self) -> dict:
        """Return a JSON-serialisable description that identifies this data (used in cache keys)."""
        return {
            "dataset": "mfeat",
            "views": list(self.views),
            "split_seed": self.split_seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "standardize": self.standardize,
            "root": self.root,
            "sizes": [len(self.train), len(self.val), len(self.test)],
        }

    def take(self, train: int | None = None, val: int | None = None, test: int | None = None):
        """Return a copy that keeps only the first ``train``/``val``/``test`` samples of each split.

        Meant for quick runs and tests; the statistics used for standardization stay those
        of the full training split.
        """
        reduced = object.__new__(MultiFeatures)
        reduced.__dict__.update(self.__dict__)
        reduced.train = self.train if train is None else self.train.take(train)
        reduced.val = self.val if val is None else self.val.take(val)
        reduced.test = self.test if test is None else self.test.take(test)
        return reduced

    def __repr__(self) -> str:
        return (
            f"MultiFeatures(views={list(self.views)}, split_seed={self.split_seed}, "
            f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)})"
        )


def mfeat_splits(
    seed: int = 0,
    views: Sequence[str] | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    **kwargs,
) -> MultiFeatures:
    """Build :class:`MultiFeatures` with split seed ``seed`` (independent of any training seed)."""
    return MultiFeatures(
        views=views, split_seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, **kwargs
    )
