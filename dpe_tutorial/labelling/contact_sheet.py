"""The contact sheet of a query's suggestions, with file names in any script.

Matplotlib draws each character with the first font of :data:`FONT_FAMILIES`
that is installed and has it: DejaVu Sans, its default, covers Latin, Greek,
Cyrillic, Arabic and Hebrew; Chinese, Japanese, Korean, Devanagari or Thai
names need a font such as Noto Sans CJK or Noto Sans Devanagari. A character
that no installed font has would be drawn as an empty box, so it is written
escaped instead (``\\u732b`` for 猫) and the sheet's title says so.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

FONT_FAMILIES = (
    "DejaVu Sans",
    "Noto Sans",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans Devanagari",
    "Noto Sans Thai",
    "Arial Unicode MS",
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans",
    "Nirmala UI",
)
MOST_SHOWN = 40  # images on a contact sheet at most
NAME_CHARACTERS = 22  # a longer path is shown by its end


@functools.cache
def installed_fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """The families of :data:`FONT_FAMILIES` installed here, and the characters they cover."""
    from matplotlib import font_manager, ft2font

    families, covered = [], set()
    for family in FONT_FAMILIES:
        try:
            file = font_manager.findfont(
                font_manager.FontProperties(family=family), fallback_to_default=False
            )
            covered |= set(ft2font.FT2Font(file).get_charmap())
        except (ValueError, RuntimeError, OSError):  # not installed, or unreadable
            continue
        families.append(family)
    return tuple(families), frozenset(covered)


def drawable(text: str) -> tuple[str, bool]:
    """``text`` with each character no installed font has escaped, and whether any was."""
    covered = installed_fonts()[1]
    out = []
    for char in text:
        if ord(char) in covered and char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    shown = "".join(out)
    return shown, shown != text


def save_contact_sheet(images: np.ndarray, table: pd.DataFrame, path: Path, total: int) -> None:
    """The rows of ``table`` (rank, path, score, predicted, probability) with their images."""
    from matplotlib.figure import Figure

    from ..figures.plots import save_figure

    families = list(installed_fonts()[0]) or None
    n = len(table)
    # four across: the sheet is the width of the book's text column, so its captions read
    # at about body-text size there and on a screen
    columns = min(4, n)
    rows = -(-n // columns)
    figure = Figure(figsize=(1.75 * columns, 2.2 * rows + 0.4), layout="constrained")
    any_escaped = False
    for i, row in enumerate(table.itertuples(index=False)):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.imshow(images[i], interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"#{row.rank}  score {row.score:.3f}", fontsize=9)
        name, escaped = drawable(row.path)
        predicted, escaped_class = drawable(str(row.predicted))
        any_escaped |= escaped or escaped_class
        if len(name) > NAME_CHARACTERS:
            name = "…" + name[1 - NAME_CHARACTERS :]
        caption = f"{name}\n{predicted} {row.probability:.0%}"
        axes.set_xlabel(caption, fontsize=8.5, fontfamily=families)
    shown = f"top {n} of {total}" if n < total else f"all {n}"
    title = f"Label these next ({shown}): score; path, predicted class and its probability"
    if any_escaped:
        title += "\n(characters no installed font has are written as \\uXXXX)"
    figure.suptitle(title)
    save_figure(figure, path)
