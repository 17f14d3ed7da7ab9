"""Seeding, experiment profiles and progress bars shared by the package and the book."""

from __future__ import annotations

import os
import random
import sys
from typing import Iterable, TypeVar

import numpy as np
import torch

T = TypeVar("T")

PROFILES = ("ci", "book", "full")
PAPER_SEEDS = (0, 42, 3407)


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and make CPU kernels deterministic.

    Returns a ``torch.Generator`` seeded with the same value, for code that
    wants its own stream (data splits, samplers) without touching global state.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r} of type {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if seed >= 2**64:
        # torch.manual_seed accepts at most 2**64 - 1.
        raise ValueError(f"seed must be below 2**64, got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def profile() -> str:
    """Return the experiment size set by ``DAGR_PROFILE``: ``ci``, ``book`` (default) or ``full``.

    ``ci`` keeps every notebook to a minute or two under nbval, ``book`` gives
    real results at CPU scale, and ``full`` is the GPU scale of the paper.
    """
    value = os.environ.get("DAGR_PROFILE", "book").strip().lower()
    if value not in PROFILES:
        raise ValueError(f"DAGR_PROFILE must be one of {PROFILES}, got {value!r}")
    return value


def by_profile(ci, book, full=None):
    """Pick the value for the active profile; ``full`` falls back to ``book``."""
    return {"ci": ci, "book": book, "full": book if full is None else full}[profile()]


def progress_enabled() -> bool:
    """Whether progress bars should draw.

    They are off when ``DAGR_PROGRESS=0``, under the ``ci`` profile (nbval and
    CI compare outputs), and when standard error is not a terminal outside a
    Jupyter kernel, so logs and rendered pages stay free of bar residue.
    """
    setting = os.environ.get("DAGR_PROGRESS")
    if setting is not None:
        return setting.strip().lower() not in ("0", "false", "no", "")
    if profile() == "ci" or os.environ.get("CI"):
        return False
    if "ipykernel" in sys.modules:
        # A kernel run by jupyter-book or nbclient has no user to watch it.
        return os.environ.get("DAGR_BUILDING_BOOK") is None
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a ``tqdm.auto`` bar when bars are enabled."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
