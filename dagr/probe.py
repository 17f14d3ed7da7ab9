"""Linear probes on frozen encoder embeddings.

A probe measures how much class information one view's encoder carries on its
own, independently of the fusion head it was trained with: a multinomial
logistic regression (scikit-learn) is fit on the training embeddings of one view
and scored on the test embeddings of the same view::

    accuracy = probe_accuracy(z_train, y_train, z_test, y_test)
    per_view = probe_views(model, data)          # view -> test accuracy
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def _as_array(name: str, value, ndim: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array or tensor, got {type(value).__name__}") from error
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    return array


def probe_accuracy(z_train, y_train, z_test, y_test, max_iter: int = 1000, C: float = 1.0) -> float:
    """Fit a logistic-regression probe on ``(z_train, y_train)``; return its accuracy on the test pair.

    Features are standardized with the training statistics first, so the probe
    does not depend on the scale of the embeddings.
    """
    z_train = _as_array("z_train", z_train, 2).astype(np.float64)
    z_test = _as_array("z_test", z_test, 2).astype(np.float64)
    y_train = _as_array("y_train", y_train, 1)
    y_test = _as_array("y_test", y_test, 1)
    if z_train.shape[0] != y_train.shape[0]:
        raise ValueError(f"z_train has {z_train.shape[0]} rows but y_train has {y_train.shape[0]} labels")
    if z_test.shape[0] != y_test.shape[0]:
        raise ValueError(f"z_test has {z_test.shape[0]} rows but y_test has {y_test.shape[0]} labels")
    if z_train.shape[1] != z_test.shape[1]:
        raise ValueError(f"z_train has {z_train.shape[1]} features but z_test has {z_test.shape[1]}")
    if np.unique(y_train).size < 2:
        raise ValueError(f"y_train must contain at least 2 classes, got {np.unique(y_train).tolist()}")
    if not (np.all(np.isfinite(z_train)) and np.all(np.isfinite(z_test))):
        raise ValueError("z_train and z_test must be finite")
    scaler = StandardScaler().fit(z_train)
    classifier = LogisticRegression(max_iter=max_iter, C=C)
    classifier.fit(scaler.transform(z_train), y_train)
    return float(classifier.score(scaler.transform(z_test), y_test))


@torch.no_grad()
def embed(model, split) -> dict[str, torch.Tensor]:
    """Return the dict view -> ``(N, dim)`` embeddings of a whole split, in evaluation mode."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {view: [] for view in model.views}
    for x, _ in split.batches(1024):
        zs = model.encode({view: x[view] for view in model.views})
        for view in model.views:
            parts[view].append(zs[view])
    model.train(was_training)
    return {view: torch.cat(chunks) for view, chunks in parts.items()}


def probe_views(model, data, max_iter: int = 1000) -> dict[str, float]:
    """Return view -> test accuracy of a linear probe on that view's frozen embeddings.

    ``model`` is a :class:`dagr.models.MultiViewNet`; ``data`` has ``train`` and
    ``test`` splits containing every view of the model.
    """
    missing = [view for view in model.views if view not in data.train.features]
    if missing:
        raise ValueError(f"data lacks view(s) {missing} that the model encodes; it has {list(data.train.features)}")
    train_z, test_z = embed(model, data.train), embed(model, data.test)
    return {
        view: probe_accuracy(train_z[view], data.train.labels, test_z[view], data.test.labels, max_iter=max_iter)
        for view in model.views
    }
