"""``dpe-tutorial merge-labels``: a filled-in suggestions file's labels, added to the labels file.

A query writes ``suggestions.csv`` with an empty ``label`` column; the person
who labels fills in some or all of it, and :func:`merge_labels` appends the
filled rows to the labels CSV as ``path,label``. Any ``path,label`` CSV works
as the suggestions file (a ``predictions.csv`` whose labels were checked, for
one). A row whose path is already labelled the same is counted, not added
again; a blank label is skipped and counted. A path that is not an image of
the pool, or labelled differently in either file, stops the merge with one
line that names the file, line and path, and the labels file is left as it
was; otherwise it is rewritten atomically, its earlier lines unchanged.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..running.files import atomic_write
from .query_labels import Row, read_rows
from .query_pool import list_pool


@dataclass(frozen=True)
class Merged:
    """What a merge did: rows added, rows already there, blank rows, and the rows now labelled."""

    added: int
    already: int
    blank: int
    total: int


def merge_labels(suggestions, labels_csv, pool=None) -> Merged:
    """Append the labelled rows of ``suggestions`` to ``labels_csv``; see the module.

    ``pool`` is the folder or zip the paths are relative to; by default the
    pool recorded in the ``config.json`` beside ``suggestions`` (a query's
    output folder).
    """
    suggestions, labels_csv = Path(suggestions), Path(labels_csv)
    _, new_rows = read_rows(suggestions, "suggestions file")
    header, old_rows = read_rows(labels_csv, "labels file")
    listing = list_pool(pool if pool is not None else _pool_of(suggestions))
    in_pool = set(listing.paths)
    existing = {row.path: row for row in old_rows}
    adding: dict[str, Row] = {}
    blank = already = 0
    for row in new_rows:
        where = f"suggestions file {suggestions} line {row.line}"
        if not row.label:
            blank += 1
            continue
        if row.path not in in_pool:
            why = listing.why_left_out(row.path) or f"paths are relative to {listing.root}"
            raise ValueError(f"{where}: {row.path!r} is not an image in the pool ({why})")
        known = existing.get(row.path) or adding.get(row.path)
        if known is None:
            adding[row.path] = row
        elif known.label == row.label:
            already += 1
        else:
            other = f"labels file {labels_csv}" if row.path in existing else "this file"
            raise ValueError(
                f"{where}: {row.path!r} is labelled {row.label!r} here but {known.label!r} in "
                f"{other} line {known.line}; make them agree, then merge again"
            )
    if adding:
        atomic_write(labels_csv, _appended(labels_csv, header, adding.values()))
    return Merged(len(adding), already, blank, len(old_rows) + len(adding))


def _pool_of(suggestions: Path):
    from .query import CONFIG, KIND

    record_file = suggestions.parent / CONFIG
    try:
        record = json.loads(record_file.read_text("utf-8"))
        if record.get("kind") == KIND:
            return record["pool"]
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    raise ValueError(
        f"suggestions file {suggestions} is not in a query's output folder (no query's "
        f"{CONFIG} beside it); give the pool its paths are relative to with --pool"
    )


def _appended(labels_csv: Path, header: list[str], rows) -> str:
    """The labels file's text as it is, then the new rows in its columns and line endings."""
    text = labels_csv.read_bytes().decode("utf-8")  # a BOM, if any, is kept as it is
    newline = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith(("\n", "\r")):
        text += newline
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    path_at, label_at = header.index("path"), header.index("label")
    for row in rows:
        cells = [""] * len(header)
        cells[path_at], cells[label_at] = row.path, row.label
        writer.writerow(cells)
    return text + buffer.getvalue()
