"""Markdown tables for the studies' reports: what the closing notes and results READMEs show."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def mean_and_spread(mean: float, std: float) -> str:
    """``0.441 ± 0.002``, or ``0.441`` alone when there is no spread (a single trial)."""
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def summary_table(
    summary, key_header: Sequence[str], key_cells: Callable[[object], list[str]], metrics
) -> list[str]:
    """A table with ``mean ± std`` per metric and the number of trials, one row per summary row.

    ``summary`` has columns ``(metric, "mean")``, ``(metric, "std")`` and
    ``("trials", "n")``; ``key_cells`` turns a row's index into its first cells.
    """
    rows = [
        [
            *key_cells(key),
            str(int(row[("trials", "n")])),
            *(mean_and_spread(row[(m, "mean")], row[(m, "std")]) for m in metrics),
        ]
        for key, row in summary.iterrows()
    ]
    return table([*key_header, "trials", *metrics], rows)
