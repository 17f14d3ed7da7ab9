"""Figure and table helpers shared by every chapter of the book.

Every figure goes through :func:`figure`, so all chapters share one style and
one palette, and every figure carries a small "profile: ci|book|full" stamp
that names the experiment size behind it::

    from dagr import plotting

    fig, ax = plotting.figure()
    ax.plot(steps, loss)
    ax.set(xlabel="step", ylabel="dispersion loss")

No backend is selected here. Matplotlib falls back to Agg when no display is
available, and a Jupyter kernel keeps its inline backend.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from .stats import as_values
from .utils import profile

# The "colorblind" palette of seaborn 0.13, so colors stay distinguishable
# under the common forms of color blindness. Chapters pick colors by index.
PALETTE = (
    "#0173b2",
    "#de8f05",
    "#029e73",
    "#d55e00",
    "#cc78bc",
    "#ca9161",
    "#fbafe4",
    "#949494",
    "#ece133",
    "#56b4e9",
)

# A light grid on white, close to seaborn's "whitegrid" theme.
STYLE = {
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.facecolor": "white",
    "axes.edgecolor": "0.8",
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "grid.color": "0.9",
    "grid.linestyle": "-",
    "font.size": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.8,
    "figure.facecolor": "white",
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "savefig.dpi": 150,
    # The profile stamp sits below the axes; a tight box keeps it in saved files.
    "savefig.bbox": "tight",
    "image.cmap": "viridis",
}

# Size of one panel in inches when figure() is called without width or height.
PANEL_WIDTH = 4.0
PANEL_HEIGHT = 3.0

TAG_COLOR = "0.5"
TAG_FONTSIZE = 7
_TAG_ATTRIBUTE = "_dagr_tag"


def set_style() -> None:
    """Apply the book's style to matplotlib's global ``rcParams``.

    :func:`figure` calls this, because properties such as line width are read
    from ``rcParams`` when an artist is created, after the figure exists.
    """
    mpl.rcParams.update(STYLE)


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"figure: {name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"figure: {name} must be at least 1, got {value}")
    return int(value)


def _check_inches(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(
            f"figure: {name} must be a number of inches, got {value!r} of type {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"figure: {name} must be a positive number of inches, got {value}")
    return float(value)


def figure(nrows: int = 1, ncols: int = 1, width: float | None = None, height: float | None = None,
           *, stamp: bool = True, **kwargs):
    """Create a figure in the book's style, stamped with the active profile.

    Args:
        nrows, ncols: grid of panels.
        width, height: figure size in inches. The default gives each panel
            4 x 3 inches.
        stamp: add the "profile: ..." stamp of :func:`tag`. Call :func:`tag`
            again to change its text.
        **kwargs: passed to ``matplotlib.pyplot.subplots`` (``sharex``,
            ``squeeze``, ``gridspec_kw``, ...).

    Returns:
        ``(fig, axes)`` as ``plt.subplots`` returns them: one ``Axes`` for a
        single panel, otherwise a NumPy array of ``Axes``.
    """
    nrows = _check_count("nrows", nrows)
    ncols = _check_count("ncols", ncols)
    width = PANEL_WIDTH * ncols if width is None else _check_inches("width", width)
    height = PANEL_HEIGHT * nrows if height is None else _check_inches("height", height)
    if "figsize" in kwargs:
        raise TypeError("figure: pass width and height in inches, not figsize")

    set_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)
    if stamp:
        tag(fig)
    return fig, axes


def profile_note() -> str:
    """Return the stamp text for the active profile, such as ``"profile: book"``."""
    return f"profile: {profile()}"


def tag(fig, text: str | None = None) -> Artist:
    """Stamp a small grey note under the bottom-right corner of a figure.

    ``fig`` is a ``Figure`` (or subfigure) or an ``Axes``, whose figure is
    stamped. ``text`` defaults to :func:`profile_note`. A figure carries one
    stamp: calling ``tag`` again replaces its text. Returns the text artist.
    """
    if isinstance(fig, Axes):
        fig = fig.figure
    if not isinstance(fig, FigureBase):
        raise TypeError(
            f"tag: fig must be a matplotlib Figure or Axes, got {type(fig).__name__}; "
            "pass the figure returned by dagr.plotting.figure()"
        )
    if text is None:
        text = profile_note()
    if not isinstance(text, str):
        raise TypeError(f"tag: text must be a str, got {text!r} of type {type(text).__name__}")
    if not text.strip():
        raise ValueError("tag: text is empty; pass None for the default profile note")

    artist = getattr(fig, _TAG_ATTRIBUTE, None)
    if artist is not None and artist.figure is fig:
        artist.set_text(text)
        return artist
    # Just below the figure's bottom edge, so it never covers an axis label. The
    # inline backend and savefig (with the style's tight box) grow to include it.
    artist = fig.text(0.995, -0.01, text, ha="right", va="top",
                      fontsize=TAG_FONTSIZE, color=TAG_COLOR)
    setattr(fig, _TAG_ATTRIBUTE, artist)
    return artist


def _check_digits(function: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{function}: {name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{function}: {name} must be non-negative, got {value}")


def table(df, caption: str | None = None, precision: int = 3):
    """Return ``df`` as a pandas ``Styler`` whose caption ends with the profile note.

    ``caption`` describes the table, for example ``"Test accuracy over 3
    seeds"``. Floats are shown with ``precision`` decimals.
    """
    import pandas as pd

    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"table: df must be a pandas DataFrame or Series, got {type(df).__name__}"
        )
    if caption is not None and not isinstance(caption, str):
        raise TypeError(f"table: caption must be a str, got {caption!r} of type {type(caption).__name__}")
    _check_digits("table", "precision", precision)

    note = profile_note()
    full_caption = note if not caption else f"{caption} ({note})"
    return df.style.set_caption(full_caption).format(precision=int(precision))


def mean_std(values, digits: int = 3, scale: float = 1.0) -> str:
    """Format the mean and standard deviation of ``values`` as ``"m ± s"``.

    The standard deviation is the sample one (``ddof=1``), as for results over
    a few seeds. A single value is returned alone, without ``± s``. ``scale``
    multiplies every value first, for example 100 to print percentages.
    """
    _check_digits("mean_std", "digits", digits)
    if isinstance(scale, bool) or not isinstance(scale, Real):
        raise TypeError(f"mean_std: scale must be a number, got {scale!r} of type {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"mean_std: scale must be finite, got {scale}")
    array = as_values("mean_std: values", values)

    array = array * scale
    mean = f"{array.mean():.{digits}f}"
    if array.size == 1:
        return mean
    return f"{mean} ± {array.std(ddof=1):.{digits}f}"
