"""Geometry diagnostics for multimodal embeddings.

The definitions follow appendix C of Xia et al., "Improving Multimodal Learning
with Dispersive and Anchoring Regularization" (arXiv 2601.21670), and the
equation numbers below are that paper's. Every function L2-normalizes its
embeddings first (``torch.nn.functional.normalize`` semantics, eps 1e-12, so a
zero row stays zero), accepts ``torch.Tensor`` or ``numpy.ndarray`` input,
computes in float64 on the CPU and returns Python floats unless stated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.stats
import sklearn.cluster
import sklearn.metrics
import torch
import torch.nn.functional as F

# Rows have norm <= 1 after normalization, so covariance entries are O(1) and an
# eigenvalue below max(B, d) * _EPS is round-off, not variance.
_EPS = float(np.finfo(np.float64).eps)


def _where(modality):
    return "" if modality is None else f" (modality {modality!r})"


def _embeddings(z, fn: str, name: str = "z", modality=None) -> torch.Tensor:
    """Validate a (B, d) array and return it L2-normalized as a float64 CPU tensor."""
    suffix = _where(modality)
    if isinstance(z, np.ndarray):
        if z.dtype == np.bool_ or z.dtype.kind not in "iuf":
            raise TypeError(f"{fn}: {name} must have a real numeric dtype{suffix}, got {z.dtype}")
        z = torch.from_numpy(z)
    elif isinstance(z, torch.Tensor):
        if z.dtype == torch.bool or z.is_complex():
            raise TypeError(f"{fn}: {name} must have a real numeric dtype{suffix}, got {z.dtype}")
        z = z.detach()
    else:
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor or numpy.ndarray{suffix}, got {type(z).__name__}"
        )
    if z.dim() != 2:
        raise ValueError(f"{fn}: {name} must be 2-D with shape (B, d){suffix}, got shape {tuple(z.shape)}")
    if z.shape[0] < 2:
        raise ValueError(f"{fn} needs at least 2 samples in {name}{suffix}, got {z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError(f"{fn}: {name} has no features{suffix}, shape {tuple(z.shape)}")
    z = z.to("cpu", torch.float64)
    finite = torch.isfinite(z).all(dim=1)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0])
        raise ValueError(f"{fn}: {name} contains NaN or inf{suffix}, first in row {row}")
    return F.normalize(z, dim=1, eps=1e-12)


def _pair(z_m, z_n, fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two paired embeddings and return them normalized."""
    z_m, z_n = _embeddings(z_m, fn, "z_m"), _embeddings(z_n, fn, "z_n")
    if z_m.shape != z_n.shape:
        raise ValueError(
            f"{fn}: z_m and z_n must be paired with the same shape (B, d), "
            f"got {tuple(z_m.shape)} and {tuple(z_n.shape)}"
        )
    return z_m, z_n


def _labels(y, fn: str, name: str, n: int | None = None) -> np.ndarray:
    """Validate a 1-D label array (of length ``n`` when given) and return it as numpy."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    elif isinstance(y, (str, bytes)) or not isinstance(y, (np.ndarray, Sequence)):
        raise TypeError(f"{fn}: {name} must be a 1-D array or sequence of labels, got {type(y).__name__}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {y.shape}")
    if n is not None and len(y) != n:
        raise ValueError(f"{fn}: len({name}) must equal the number of samples {n}, got {len(y)}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{fn}: {name} contains NaN or inf labels")
    return y


def effective_rank(z) -> float:
    """Compute the entropy effective rank of the embeddings (eq. 44).

    With lambda_k the eigenvalues of the centered covariance of the normalized
    rows (clamped at 0) and p_k = lambda_k / sum(lambda), this returns
    exp(-sum_k p_k log p_k) with 0 log 0 = 0. The value lies in [1, min(B - 1, d)],
    or is 0.0 when the covariance is zero because all rows coincide. Eigenvalues
    below max(B, d) * float64 eps count as zero, because they are round-off.
    """
    z = _embeddings(z, "effective_rank")
    centered = z - z.mean(dim=0)
    sigma = centered.T @ centered / z.shape[0]
    eigenvalues = torch.linalg.eigvalsh(sigma)
    eigenvalues = eigenvalues.masked_fill(eigenvalues <= max(z.shape) * _EPS, 0.0)
    if float(eigenvalues.sum()) == 0.0:
        return 0.0
    p = eigenvalues / eigenvalues.sum()
    entropy = -torch.special.xlogy(p, p).sum()
    return float(torch.exp(entropy))


def participation_rank(z, centered: bool = False) -> float:
    """Compute the participation ratio (tr Sigma)^2 / tr(Sigma^2) of the embeddings.

    Theorem 3.2 of the paper calls this Rank_eff and uses the second moment
    Sigma = E[z z^T], the default here. ``centered=True`` uses the centered
    covariance instead. For unit rows tr Sigma = 1, so the default returns
    1 / tr(Sigma^2). Returns 0.0 when Sigma is zero up to round-off (all rows
    zero, or all rows equal with ``centered=True``).
    """
    z = _embeddings(z, "participation_rank")
    if centered:
        z = z - z.mean(dim=0)
    sigma = z.T @ z / z.shape[0]
    trace = torch.trace(sigma)
    if float(trace) <= max(z.shape) * _EPS:
        return 0.0
    return float(trace**2 / (sigma**2).sum())


def semantic_margin(z, y) -> float:
    """Compute the semantic margin Delta_sem, between-class minus within-class distance (eq. 43).

    The first term is the mean over ordered pairs of distinct classes (c, c') of
    the mean Euclidean distance between samples of c and samples of c'. The
    second is the mean over classes with at least 2 samples of the mean distance
    between distinct samples (i != j) of that class. Every class weighs the same,
    whatever its size.
    """
    z = _embeddings(z, "semantic_margin")
    y = _labels(y, "semantic_margin", "y", n=z.shape[0])
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"semantic_margin needs at least 2 classes in y, got {len(classes)}: {classes.tolist()}"
        )
    onehot = F.one_hot(torch.from_numpy(codes.reshape(-1)), len(classes)).to(torch.float64)
    dist = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    dist.fill_diagonal_(0.0)
    sums = onehot.T @ dist @ onehot  # sums[c, c'] = sum of d(z_i, z_j), i in c, j in c'
    n = onehot.sum(dim=0)

    off_diagonal = ~torch.eye(len(classes), dtype=torch.bool)
    between = (sums / torch.outer(n, n))[off_diagonal].mean()
    has_pairs = n >= 2
    if not bool(has_pairs.any()):
        raise ValueError("semantic_margin needs at least one class in y with 2 or more samples, got none")
    within = (sums.diagonal()[has_pairs] / (n[has_pairs] * (n[has_pairs] - 1))).mean()
    return float(between - within)


def cross_modal_drift(zs) -> float:
    """Compute the cross-modal drift d_drift, the mean squared paired distance (eq. 45).

    ``zs`` is a sequence of (B, d) embeddings, or a mapping modality name ->
    embedding, with M >= 2 modalities whose row i is the same sample. The
    result averages ||z_i^m - z_i^n||^2 over samples i and over the M(M-1)/2
    unordered modality pairs (m, n).
    """
    fn = "cross_modal_drift"
    if isinstance(zs, Mapping):
        named = {str(key): value for key, value in zs.items()}
    elif isinstance(zs, Sequence) and not isinstance(zs, (str, bytes)):
        named = {str(index): value for index, value in enumerate(zs)}
    else:
        raise TypeError(
            f"{fn}: zs must be a sequence or mapping of (B, d) embeddings, got {type(zs).__name__}; "
            "pass e.g. [z_audio, z_video] or {'audio': z_audio, 'video': z_video}"
        )
    if len(named) < 2:
        raise ValueError(f"{fn} needs at least 2 modalities in zs, got {len(named)}: {list(named)}")
    z = {key: _embeddings(value, fn, "zs", modality=key) for key, value in named.items()}
    first = next(iter(z))
    for key, value in z.items():
        if value.shape != z[first].shape:
            raise ValueError(
                f"{fn}: modalities must share the shape (B, d), got {tuple(z[first].shape)} "
                f"for {first!r} and {tuple(value.shape)} for {key!r}"
            )

    keys = list(z)
    pairs = [(m, n) for i, m in enumerate(keys) for n in keys[i + 1 :]]
    drift = [((z[m] - z[n]) ** 2).sum(dim=1).mean() for m, n in pairs]
    return float(torch.stack(drift).mean())


def similarity_scores(z_m, z_n) -> tuple[np.ndarray, np.ndarray]:
    """Return the positive and negative cross-modal cosine similarities as float64 arrays.

    pos[i] = cos(z_i^m, z_i^n) has B entries. neg contains cos(z_i^m, z_j^n) for
    every i != j, B(B-1) entries in row-major order. A zero row has cosine 0
    with everything.
    """
    return _similarities(z_m, z_n, "similarity_scores")


def _similarities(z_m, z_n, fn: str) -> tuple[np.ndarray, np.ndarray]:
    z_m, z_n = _pair(z_m, z_n, fn)
    sim = z_m @ z_n.T
    off_diagonal = ~torch.eye(sim.shape[0], dtype=torch.bool)
    return sim.diagonal().numpy().copy(), sim[off_diagonal].numpy()


def similarity_separation(z_m, z_n) -> tuple[float, float]:
    """Compute (delta_mu, d_ks), how far positive similarities sit from negative ones (eq. 46-47).

    delta_mu = mean(pos) - mean(neg), and d_ks is the two-sample
    Kolmogorov-Smirnov statistic sup_x |F_pos(x) - F_neg(x)| from
    ``scipy.stats.ks_2samp``, with pos and neg from ``similarity_scores``.
    """
    pos, neg = _similarities(z_m, z_n, "similarity_separation")
    # The statistic does not depend on the method, and "asymp" skips the slow exact p-value.
    d_ks = scipy.stats.ks_2samp(pos, neg, method="asymp").statistic
    return float(pos.mean() - neg.mean()), float(d_ks)


def _check_k(k, batch: int) -> int:
    if isinstance(k, bool) or not isinstance(k, Integral):
        raise TypeError(f"recall_at_k: k must be an int, got {k!r} of type {type(k).__name__}")
    if not 1 <= k <= batch:
        raise ValueError(f"recall_at_k: k must be in 1..B = 1..{batch}, got k = {k}")
    return int(k)


def recall_at_k(z_m, z_n, k):
    """Compute the retrieval hit rate Recall@k of modality n given queries from modality m.

    Query z_i^m ranks the gallery {z_j^n} by cosine similarity, and it is a hit
    when its pair z_i^n is among the k most similar. Returns the fraction of
    hits. ``k`` is an int in 1..B, or a sequence of them, which returns
    ``{k: recall}``. Ties are broken uniformly at random in expectation: with g
    gallery items strictly more similar than z_i^n and t others exactly as
    similar, a query counts min(1, max(0, (k - g) / (t + 1))). Fully collapsed
    embeddings therefore score the chance level k / B, not 1.
    """
    z_m, z_n = _pair(z_m, z_n, "recall_at_k")
    batch = z_m.shape[0]
    if isinstance(k, Sequence) and not isinstance(k, (str, bytes)):
        if len(k) == 0:
            raise ValueError("recall_at_k: k is an empty sequence; pass an int or a list of ints")
        ks = [_check_k(value, batch) for value in k]
    else:
        ks = [_check_k(k, batch)]

    sim = z_m @ z_n.T
    true = sim.diagonal().unsqueeze(1)
    greater = (sim > true).sum(dim=1).to(torch.float64)
    ties = (sim == true).sum(dim=1).to(torch.float64) - 1  # the pair itself is not a tie
    recall = {value: float(((value - greater) / (ties + 1)).clamp(0, 1).mean()) for value in ks}
    return recall if isinstance(k, Sequence) else recall[ks[0]]


def renyi2_entropy(z, t: float = 2.0, log_constant: float = 0.0) -> float:
    """Estimate the Renyi-2 entropy H_2(p) = -log integral p^2 of the embeddings (Theorem 3.2).

    The estimator is -log of the off-diagonal mean RBF kernel,
    -log(1/(B(B-1)) sum_{i != j} exp(-t ||z_i - z_j||^2)) + log_constant, which
    is the negative dispersion loss of eq. 6. For a narrow kernel (large t) the
    KDE argument gives E[k_t] ~ C(t, d) integral p^2, so H_2 ~ estimate + log C.
    C depends only on t and d, and for a smooth density on the unit sphere in
    R^d it is about (pi / t)^((d - 1) / 2). The default log_constant = 0
    returns the estimate without that additive constant, which lies in [0, 4t]
    for unit rows and is comparable only between runs with the same t and d.
    """
    fn = "renyi2_entropy"
    for name, value in (("t", t), ("log_constant", log_constant)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(
                f"{fn}: {name} must be a real number, got {value!r} of type {type(value).__name__}"
            )
        if not math.isfinite(value):
            raise ValueError(f"{fn}: {name} must be finite, got {value}")
    if t <= 0:
        raise ValueError(f"{fn}: t must be > 0, got {t}")
    z = _embeddings(z, fn)
    batch = z.shape[0]
    sq_norm = (z**2).sum(dim=1)
    sq_dist = (sq_norm[:, None] + sq_norm[None, :] - 2 * z @ z.T).clamp_min(0.0)
    off_diagonal = ~torch.eye(batch, dtype=torch.bool)
    log_mean_kernel = torch.logsumexp(-t * sq_dist[off_diagonal], dim=0) - math.log(batch * (batch - 1))
    return float(-log_mean_kernel) + float(log_constant)


def clustering_scores(y_true, y_pred) -> dict[str, float]:
    """Score a clustering against class labels: ACC, NMI and ARI (table 2 of the paper).

    ACC is the accuracy under the best one-to-one map from clusters to classes,
    found by Hungarian matching (``scipy.optimize.linear_sum_assignment``) on
    the contingency matrix. With more clusters than classes the unmatched
    clusters count as errors. NMI (arithmetic normalization) and ARI come from
    ``sklearn.metrics``.
    """
    fn = "clustering_scores"
    y_true = _labels(y_true, fn, "y_true")
    y_pred = _labels(y_pred, fn, "y_pred", n=len(y_true))
    if len(y_true) == 0:
        raise ValueError(f"{fn}: y_true is empty")
    contingency = sklearn.metrics.cluster.contingency_matrix(y_true, y_pred)
    rows, cols = scipy.optimize.linear_sum_assignment(contingency, maximize=True)
    return {
        "acc": float(contingency[rows, cols].sum() / len(y_true)),
        "nmi": float(sklearn.metrics.normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(sklearn.metrics.adjusted_rand_score(y_true, y_pred)),
    }


def kmeans_scores(z, y, n_clusters: int | None = None, seed: int = 0) -> dict[str, float]:
    """Cluster the normalized embeddings with k-means and score them with ``clustering_scores``.

    Runs ``sklearn.cluster.KMeans(n_clusters, n_init=10, random_state=seed)``.
    ``n_clusters`` defaults to the number of distinct labels in ``y``.
    """
    fn = "kmeans_scores"
    z = _embeddings(z, fn)
    y = _labels(y, fn, "y", n=z.shape[0])
    if n_clusters is None:
        n_clusters = len(np.unique(y))
    for name, value in (("n_clusters", n_clusters), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(f"{fn}: {name} must be an int, got {value!r} of type {type(value).__name__}")
    if not 1 <= n_clusters <= z.shape[0]:
        raise ValueError(f"{fn}: n_clusters must be in 1..B = 1..{z.shape[0]}, got {n_clusters}")
    if seed < 0:
        raise ValueError(f"{fn}: seed must be >= 0, got {seed}")
    kmeans = sklearn.cluster.KMeans(n_clusters=int(n_clusters), n_init=10, random_state=int(seed))
    y_pred = kmeans.fit_predict(z.numpy())
    return clustering_scores(y, y_pred)
