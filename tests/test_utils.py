import io
import random
import sys

import numpy as np
import pytest
import torch

from dagr import utils


@pytest.fixture(autouse=True)
def restore_determinism():
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("DAGR_PROFILE", "DAGR_PROGRESS", "DAGR_BUILDING_BOOK", "CI"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


# set_seed


def test_set_seed_repeats_draws():
    utils.set_seed(7)
    first = draws()
    utils.set_seed(7)
    second = draws()

    assert first == second


def test_set_seed_different_seeds_differ():
    utils.set_seed(0)
    first = draws()
    utils.set_seed(1)
    second = draws()

    assert first[0] != second[0]
    assert first[1] != second[1]
    assert first[2] != second[2]


def test_set_seed_returns_seeded_generator():
    generator = utils.set_seed(42)

    assert isinstance(generator, torch.Generator)
    assert generator.initial_seed() == 42
    expected = torch.rand(3, generator=torch.Generator().manual_seed(42))
    assert torch.equal(torch.rand(3, generator=generator), expected)


def test_set_seed_generator_own_stream():
    generator = utils.set_seed(3)
    torch.rand(5)  # consume the global stream only

    expected = torch.rand(2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.rand(2, generator=generator), expected)


def test_set_seed_enables_deterministic_algorithms():
    torch.use_deterministic_algorithms(False)

    utils.set_seed(0)

    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()


@pytest.mark.parametrize("seed", [np.int64(5), 2**32 + 5, 2**64 - 1])
def test_set_seed_accepts_numpy_and_large_ints(seed):
    generator = utils.set_seed(seed)

    assert generator.initial_seed() == int(seed)


def test_set_seed_accepts_paper_seeds():
    assert utils.PAPER_SEEDS == (0, 42, 3407)
    for seed in utils.PAPER_SEEDS:
        assert utils.set_seed(seed).initial_seed() == seed


@pytest.mark.parametrize(
    ("seed", "error", "message"),
    [
        (True, TypeError, "seed must be an int, got True of type bool"),
        (1.0, TypeError, "seed must be an int, got 1.0 of type float"),
        ("0", TypeError, "seed must be an int, got '0' of type str"),
        (None, TypeError, "seed must be an int, got None of type NoneType"),
        (-1, ValueError, "seed must be non-negative, got -1"),
        (2**64, ValueError, "seed must be below 2\\*\\*64, got 18446744073709551616"),
    ],
)
def test_set_seed_rejects_bad_seed(seed, error, message):
    with pytest.raises(error, match=message):
        utils.set_seed(seed)


# profile and by_profile


def test_profile_defaults_to_book(clean_env):
    assert utils.profile() == "book"


@pytest.mark.parametrize(("value", "expected"), [("ci", "ci"), ("book", "book"), ("full", "full"),
                                                 (" CI ", "ci"), ("Full", "full")])
def test_profile_reads_env(clean_env, value, expected):
    clean_env.setenv("DAGR_PROFILE", value)

    assert utils.profile() == expected


@pytest.mark.parametrize("value", ["large", "", "c i"])
def test_profile_rejects_unknown_value(clean_env, value):
    clean_env.setenv("DAGR_PROFILE", value)

    with pytest.raises(ValueError, match=r"DAGR_PROFILE must be one of \('ci', 'book', 'full'\)"):
        utils.profile()


@pytest.mark.parametrize(("name", "expected"), [("ci", 1), ("book", 10), ("full", 100)])
def test_by_profile_picks_value(clean_env, name, expected):
    clean_env.setenv("DAGR_PROFILE", name)

    assert utils.by_profile(ci=1, book=10, full=100) == expected


def test_by_profile_full_falls_back_to_book(clean_env):
    clean_env.setenv("DAGR_PROFILE", "full")

    assert utils.by_profile(ci=1, book=10) == 10


def test_by_profile_keeps_falsy_full(clean_env):
    clean_env.setenv("DAGR_PROFILE", "full")

    assert utils.by_profile(ci=1, book=10, full=0) == 0


def test_by_profile_rejects_unknown_profile(clean_env):
    clean_env.setenv("DAGR_PROFILE", "tiny")

    with pytest.raises(ValueError, match="got 'tiny'"):
        utils.by_profile(ci=1, book=2)


# progress bars


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("0", False), ("false", False),
                                                 ("False", False), ("NO", False), ("", False)])
def test_progress_env_override(clean_env, value, expected):
    clean_env.setenv("DAGR_PROFILE", "ci")  # the override wins over the ci profile
    clean_env.setenv("DAGR_PROGRESS", value)

    assert utils.progress_enabled() is expected


def test_progress_off_under_ci_profile(clean_env):
    clean_env.setenv("DAGR_PROFILE", "ci")

    assert utils.progress_enabled() is False


def test_progress_off_on_ci_machine(clean_env):
    clean_env.setenv("CI", "true")

    assert utils.progress_enabled() is False


def test_progress_in_kernel_on_unless_building_book(clean_env):
    clean_env.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel", object()))

    assert utils.progress_enabled() is True
    clean_env.setenv("DAGR_BUILDING_BOOK", "1")
    assert utils.progress_enabled() is False


def test_progress_follows_terminal_outside_kernel(clean_env):
    clean_env.delitem(sys.modules, "ipykernel", raising=False)

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    clean_env.setattr(sys, "stderr", Stream(True))
    assert utils.progress_enabled() is True
    clean_env.setattr(sys, "stderr", Stream(False))
    assert utils.progress_enabled() is False


def test_progress_yields_all_items(clean_env):
    clean_env.setenv("DAGR_PROFILE", "ci")

    bar = utils.progress(range(4), desc="epochs")

    assert list(bar) == [0, 1, 2, 3]
    assert bar.disable is True
    assert bar.leave is False


def test_progress_respects_explicit_kwargs(clean_env):
    clean_env.setenv("DAGR_PROGRESS", "0")

    bar = utils.progress([1, 2], disable=False, leave=True, file=io.StringIO())

    assert bar.disable is False
    assert bar.leave is True
    assert list(bar) == [1, 2]
