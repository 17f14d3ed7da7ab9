import os
import subprocess
import sys

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from dagr import plotting


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def ci_profile(monkeypatch):
    monkeypatch.setenv("DAGR_PROFILE", "ci")


def texts_of(fig):
    return [text.get_text() for text in fig.texts]


def test_figure_single_panel_returns_axes(ci_profile):
    fig, ax = plotting.figure()

    assert isinstance(ax, matplotlib.axes.Axes)
    assert tuple(fig.get_size_inches()) == (plotting.PANEL_WIDTH, plotting.PANEL_HEIGHT)


def test_figure_grid_default_size(ci_profile):
    fig, axes = plotting.figure(nrows=2, ncols=3)

    assert axes.shape == (2, 3)
    assert tuple(fig.get_size_inches()) == (3 * plotting.PANEL_WIDTH, 2 * plotting.PANEL_HEIGHT)


def test_figure_explicit_size_and_kwargs(ci_profile):
    fig, axes = plotting.figure(1, 2, width=7, height=2.5, sharey=True)

    assert tuple(fig.get_size_inches()) == (7.0, 2.5)
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])


def test_figure_applies_style(ci_profile):
    plotting.figure()

    assert matplotlib.rcParams["axes.grid"] is True
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    assert tuple(colors) == plotting.PALETTE


def test_figure_stamps_profile(ci_profile):
    fig, _ = plotting.figure()

    assert texts_of(fig) == ["profile: ci"]


def test_figure_without_stamp(ci_profile):
    fig, _ = plotting.figure(stamp=False)

    assert texts_of(fig) == []


def test_figure_renders_png_with_tag(ci_profile, tmp_path):
    fig, ax = plotting.figure()
    ax.plot([0, 1, 2], [1.0, 0.5, 0.25], label="loss")
    ax.set(xlabel="step", ylabel="loss")
    ax.legend()
    path = tmp_path / "figure.png"

    fig.savefig(path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "profile: ci" in texts_of(fig)


def test_tag_text_is_drawn(ci_profile):
    fig, ax = plotting.figure(stamp=False)
    ax.plot([0, 1], [0, 1])
    artist = plotting.tag(fig)

    fig.canvas.draw()

    assert artist.get_text() == "profile: ci"
    assert artist.get_window_extent().width > 0
    assert matplotlib.colors.to_hex(artist.get_color()) == matplotlib.colors.to_hex(plotting.TAG_COLOR)


@pytest.mark.parametrize("name", ["ci", "book", "full"])
def test_profile_note_follows_env(monkeypatch, name):
    monkeypatch.setenv("DAGR_PROFILE", name)

    assert plotting.profile_note() == f"profile: {name}"


def test_tag_default_is_book(monkeypatch):
    monkeypatch.delenv("DAGR_PROFILE", raising=False)
    fig, _ = plotting.figure(stamp=False)

    plotting.tag(fig)

    assert texts_of(fig) == ["profile: book"]


def test_tag_replaces_existing_stamp(ci_profile):
    fig, _ = plotting.figure()

    plotting.tag(fig, "profile: ci, seeds 0, 42")

    assert texts_of(fig) == ["profile: ci, seeds 0, 42"]


def test_tag_accepts_axes(ci_profile):
    fig, axes = plotting.figure(1, 2, stamp=False)

    plotting.tag(axes[1])

    assert texts_of(fig) == ["profile: ci"]


def test_tag_on_plain_matplotlib_figure(ci_profile):
    fig = plt.figure()

    plotting.tag(fig, "profile: full")

    assert texts_of(fig) == ["profile: full"]


def test_tag_rejects_non_figure():
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure or Axes, got str"):
        plotting.tag("figure")


def test_tag_rejects_non_string_text():
    fig, _ = plotting.figure(stamp=False)

    with pytest.raises(TypeError, match="text must be a str, got 3"):
        plotting.tag(fig, 3)


def test_tag_rejects_empty_text():
    fig, _ = plotting.figure(stamp=False)

    with pytest.raises(ValueError, match="text is empty"):
        plotting.tag(fig, "  ")


def test_tag_rejects_unknown_profile(monkeypatch):
    monkeypatch.setenv("DAGR_PROFILE", "huge")
    fig = plt.figure()

    with pytest.raises(ValueError, match="DAGR_PROFILE must be one of"):
        plotting.tag(fig)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"nrows": 0}, ValueError, "nrows must be at least 1, got 0"),
        ({"ncols": -2}, ValueError, "ncols must be at least 1, got -2"),
        ({"nrows": 1.5}, TypeError, "nrows must be an int, got 1.5"),
        ({"ncols": True}, TypeError, "ncols must be an int, got True"),
        ({"width": 0}, ValueError, "width must be a positive number of inches, got 0"),
        ({"height": float("nan")}, ValueError, "height must be a positive number of inches, got nan"),
        ({"width": "4in"}, TypeError, "width must be a number of inches, got '4in'"),
        ({"figsize": (4, 3)}, TypeError, "not figsize"),
    ],
)
def test_figure_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        plotting.figure(**kwargs)


def test_figure_works_without_display(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    env["DAGR_PROFILE"] = "ci"
    script = (
        "import sys, matplotlib\n"
        "from dagr import plotting\n"
        "fig, ax = plotting.figure()\n"
        "ax.plot([0, 1], [0, 1])\n"
        "fig.savefig(sys.argv[1])\n"
        "print(matplotlib.get_backend().lower())\n"
    )
    path = tmp_path / "headless.png"

    result = subprocess.run([sys.executable, "-c", script, str(path)], env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "agg"
    assert path.stat().st_size > 0


def test_table_caption_names_profile(ci_profile):
    df = pd.DataFrame({"accuracy": [0.91234, 0.9], "seed": [0, 42]})

    styler = plotting.table(df, "Test accuracy")
    html = styler.to_html()

    assert styler.caption == "Test accuracy (profile: ci)"
    assert "Test accuracy (profile: ci)" in html
    assert "0.912" in html
    assert "0.91234" not in html


def test_table_without_caption(ci_profile):
    styler = plotting.table(pd.DataFrame({"x": [1.0]}))

    assert styler.caption == "profile: ci"


def test_table_accepts_series(ci_profile):
    styler = plotting.table(pd.Series([1.0, 2.0], name="loss"), "Loss", precision=1)

    assert list(styler.data.columns) == ["loss"]
    assert "2.0" in styler.to_html()


def test_table_rejects_non_dataframe():
    with pytest.raises(TypeError, match="df must be a pandas DataFrame or Series, got dict"):
        plotting.table({"accuracy": [0.9]}, "Accuracy")


def test_table_rejects_non_string_caption():
    with pytest.raises(TypeError, match="caption must be a str, got 5"):
        plotting.table(pd.DataFrame({"x": [1]}), 5)


def test_table_rejects_negative_precision():
    with pytest.raises(ValueError, match="precision must be non-negative, got -1"):
        plotting.table(pd.DataFrame({"x": [1]}), "x", precision=-1)


def test_table_rejects_float_precision():
    with pytest.raises(TypeError, match="precision must be an int, got 2.0 of type float"):
        plotting.table(pd.DataFrame({"x": [1]}), "x", precision=2.0)


@pytest.mark.parametrize(
    ("values", "kwargs", "expected"),
    [
        ([1.0, 2.0, 3.0], {}, "2.000 ± 1.000"),
        ((0.9, 0.92), {"digits": 2}, "0.91 ± 0.01"),
        (np.array([0.5, 0.7]), {"digits": 1, "scale": 100}, "60.0 ± 14.1"),
        (torch.tensor([2.0, 2.0]), {}, "2.000 ± 0.000"),
        ([0.25], {}, "0.250"),
        ([1, 2], {"digits": 0}, "2 ± 1"),
    ],
)
def test_mean_std_formats(values, kwargs, expected):
    assert plotting.mean_std(values, **kwargs) == expected


def test_mean_std_tensor_with_grad():
    values = torch.tensor([1.0, 3.0], requires_grad=True)

    assert plotting.mean_std(values, digits=1) == "2.0 ± 1.4"


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "message"),
    [
        ([], {}, ValueError, "values is empty"),
        ([1.0, float("nan")], {}, ValueError, r"values must be finite, got \[1.0, nan\]"),
        ([[1.0, 2.0], [3.0, 4.0]], {}, ValueError, r"1-D sequence of numbers, got shape \(2, 2\)"),
        (0.5, {}, ValueError, r"got shape \(\)"),
        (["a", "b"], {}, TypeError, "values must be a sequence of numbers"),
        ([1.0], {"digits": -1}, ValueError, "digits must be non-negative, got -1"),
        ([1.0], {"digits": 1.5}, TypeError, "digits must be an int, got 1.5 of type float"),
        ([1.0], {"scale": float("inf")}, ValueError, "scale must be finite, got inf"),
        ([1.0], {"scale": "100"}, TypeError, "scale must be a number, got '100' of type str"),
    ],
)
def test_mean_std_rejects_bad_input(values, kwargs, error, message):
    with pytest.raises(error, match=message):
        plotting.mean_std(values, **kwargs)
