"""One colour-blind-safe palette and figure sizes that fit the book's text column.

The book's HTML text column is about 690 px wide and matplotlib's inline
backend draws at 100 dpi, so a figure :data:`COLUMN_WIDTH` inches wide is shown
at (about) its natural size and its 10-point text reads like body text. A
figure drawn 15 inches wide is shrunk to less than half, and its tick labels
to a few pixels.

=============================== ===============================================
``OKABE_ITO``                   the eight colours of Okabe and Ito (2008),
                                distinguishable with the common forms of
                                colour blindness, by name
``CLASSES``                     class 0 and class 1 of the two-class toys
``SERIES``                      an ordered cycle of the palette (no yellow,
                                which is hard to see on white)
``colour(name)``                a colour by role (``"dpe"``, ``"plain"``,
                                ``"exclusive"``, ...) or by Okabe-Ito name
``series(n)``                   the first ``n`` colours of :data:`SERIES`
``categories(n)``               ``n`` <= 10 colours for the classes of a data
                                set (Paul Tol's colour-blind-safe "muted"
                                scheme, its pale grey last)
``line_style(i)``                marker, dash, marker size and line width of
                                the ``i``-th line of a comparison, so
                                coinciding lines show
``figsize(columns, rows, ...)`` a ``(width, height)`` in inches that fits the
                                text column
``row_width(panels)``           the width of a row of panels, at most
                                :data:`PANEL_WIDTH` each
=============================== ===============================================
"""

from __future__ import annotations

import math

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}

SERIES = tuple(
    OKABE_ITO[name]
    for name in (
        "blue",
        "vermillion",
        "bluish green",
        "orange",
        "reddish purple",
        "sky blue",
        "black",
    )
)

CLASSES = (OKABE_ITO["blue"], OKABE_ITO["orange"])

# what a colour stands for, the same in every chapter
ROLES = {
    "dpe": OKABE_ITO["blue"],
    "plain": OKABE_ITO["vermillion"],
    "exclusive": OKABE_ITO["blue"],
    "inclusive": OKABE_ITO["vermillion"],
    "paper": OKABE_ITO["bluish green"],
    "prior": OKABE_ITO["blue"],
    "likelihood": OKABE_ITO["orange"],
    "posterior": OKABE_ITO["bluish green"],
    "q": OKABE_ITO["reddish purple"],
    "predictive_entropy": OKABE_ITO["vermillion"],
    "random": OKABE_ITO["bluish green"],
    "pick": OKABE_ITO["reddish purple"],
    "pool": "#BBBBBB",
}

# inches at 100 dpi: the ~690 px text column of the HTML book
COLUMN_WIDTH = 7.0
# the widest a figure may be (Jupyter Book's full-width cells are about 1.4 columns)
MAX_WIDTH = 10.0
# the widest one panel of a row may be: a single panel is not drawn page-wide
PANEL_WIDTH = 3.5


def colour(name: str) -> str:
    """The colour of a role (see ``ROLES``) or of an Okabe-Ito colour name."""
    if name in ROLES:
        return ROLES[name]
    if name in OKABE_ITO:
        return OKABE_ITO[name]
    raise ValueError(
        f"unknown colour {name!r}; roles are {', '.join(ROLES)}, colours are {', '.join(OKABE_ITO)}"
    )


def series(n: int) -> list[str]:
    """The first ``n`` colours of :data:`SERIES`, for ``n`` lines or groups."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(SERIES):
        raise ValueError(f"n must be an integer in [0, {len(SERIES)}], got {n!r}")
    return list(SERIES[:n])


# Marker and dash of the i-th line of a comparison: lines that coincide (every method of a
# trial shares its first round) stay visible, the larger marker around the smaller one
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES = ("-", "--", ":", "-.")


# One style per kind of method in every figure of the book, so that neighbouring plots agree:
# (penalised?, acquisition) -> index into SERIES, MARKERS and DASHES
METHOD_KINDS = (
    (True, "predictive_entropy"),
    (True, "mutual_information"),
    (True, "random"),
    (False, "predictive_entropy"),
    (False, "random"),
    (False, "mutual_information"),
)


def method_indices(configs) -> list[int]:
    """A style index per run config: its kind's place in :data:`METHOD_KINDS`, the same in
    every figure; a config of no listed kind, or of a kind already drawn, takes the lowest
    index left free."""
    kinds = [(c.get("beta", 0) not in (0, 0.0, "0"), c.get("acquisition")) for c in configs]
    indices: list[int | None] = []
    for kind in kinds:
        known = METHOD_KINDS.index(kind) if kind in METHOD_KINDS else None
        indices.append(None if known in indices else known)
    free = (i for i in range(99) if i not in indices)
    return [next(free) if index is None else index for index in indices]


def line_style(i: int) -> dict:
    """Marker, line style, marker size and line width of the ``i``-th line (from 0) of a
    comparison: each later line is thinner and its markers smaller, drawn on top of the earlier."""
    if isinstance(i, bool) or not isinstance(i, int) or i < 0:
        raise ValueError(f"i must be an integer >= 0, got {i!r}")
    return {
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": DASHES[i % len(DASHES)],
        "markersize": max(8.0 - 1.5 * i, 3.5),
        "linewidth": max(2.5 - 0.5 * i, 1.0),
    }


# Paul Tol's "muted" qualitative scheme (https://personal.sron.nl/~pault/), colour-blind safe;
# Okabe-Ito has only eight colours, and CIFAR-10 has ten classes
MUTED = (
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
    "#DDDDDD",
)


def categories(n: int) -> list[str]:
    """``n`` colours for ``n`` categories (classes), at most ten, from :data:`MUTED`."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(MUTED):
        raise ValueError(f"n must be an integer in [0, {len(MUTED)}], got {n!r}")
    return list(MUTED[:n])


def row_width(panels: int, limit: float = COLUMN_WIDTH) -> float:
    """The width of a row of ``panels`` panels: :data:`PANEL_WIDTH` each, at most ``limit``."""
    if isinstance(panels, bool) or not isinstance(panels, int) or panels < 1:
        raise ValueError(f"panels must be a positive integer, got {panels!r}")
    return min(limit, PANEL_WIDTH * panels)


def figsize(
    columns: int = 1,
    rows: int = 1,
    *,
    aspect: float = 1.0,
    width: float = COLUMN_WIDTH,
    extra_height: float = 0.6,
) -> tuple[float, float]:
    """``(width, height)`` in inches for ``rows`` x ``columns`` panels in the column.

    Every panel is ``width / columns`` wide and ``aspect`` times as high
    (``aspect=1`` square, ``0.75`` landscape), plus ``extra_height`` inches
    for the titles and axis labels of each row. ``width`` is at most
    :data:`MAX_WIDTH` (a full-width figure).
    """
    for name, value in (("columns", columns), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("aspect", aspect), ("width", width)):
        if not isinstance(value, (int, float)) or not (0 < value < math.inf):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if width > MAX_WIDTH:
        raise ValueError(f"width must be at most {MAX_WIDTH} inches, got {width}")
    if not isinstance(extra_height, (int, float)) or not 0 <= extra_height < math.inf:
        raise ValueError(f"extra_height must be a number >= 0, got {extra_height!r}")
    panel = width / columns
    return (float(width), float(rows * (panel * aspect + extra_height)))
