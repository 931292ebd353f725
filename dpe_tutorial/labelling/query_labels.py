"""A query's ``path,label`` files: the labels, a held-out set, and merging new labels in.

:func:`read_rows` reads any such CSV (UTF-8, a ``path`` and a ``label``
column, blank lines skipped, paths normalised) and names the file and line of
each problem; :func:`read_labels` checks the labels against the pool,
:func:`check_held_out` and :func:`read_held_out` read held-out images to
measure a query on. Nothing here imports a Keras backend.
"""

from __future__ import annotations

import csv
import io
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .query_pool import Pool, PoolListing, check_unreadable, read_image


@dataclass(frozen=True)
class Row:
    """One non-blank row of a ``path,label`` CSV: its line number, normalised path and label."""

    line: int
    path: str
    label: str


def read_rows(file, what: str) -> tuple[list[str], list[Row]]:
    """The header and rows of a ``path,label`` CSV; blank lines are skipped.

    ValueError (FileNotFoundError for a missing file) names ``what`` and the
    file: not UTF-8, no ``path`` and ``label`` columns, an empty path.
    """
    file = Path(file)
    if not file.is_file():
        state = "is a folder" if file.is_dir() else "does not exist"
        raise FileNotFoundError(f"{what} {file} {state}; give a CSV with columns path,label")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {file} is not UTF-8 text; give a CSV") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    if "path" not in header or "label" not in header:
        raise ValueError(
            f"{what} {file} must have the columns path,label in its first line; it has {header}"
        )
    path_at, label_at = header.index("path"), header.index("label")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        cells = cells + [""] * (len(header) - len(cells))
        path = normal_path(cells[path_at])
        if not path:
            raise ValueError(f"{what} {file} line {line}: the path is empty")
        rows.append(Row(line, path, cells[label_at].strip()))
    return header, rows


def normal_path(text: str) -> str:
    path = text.strip().replace("\\", "/")
    if not path:
        return ""
    return posixpath.normpath(path).removeprefix("./")


def _once_each(rows: list[Row], where: str) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        if row.path in seen:
            raise ValueError(
                f"{where} line {row.line}: {row.path!r} is labelled twice (lines "
                f"{seen[row.path]} and {row.line}); keep one"
            )
        seen[row.path] = row.line


@dataclass(frozen=True)
class Labels:
    """The labelled paths in file order, their class indices, the class names and file lines."""

    paths: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    lines: tuple[int, ...] = ()


def read_labels(labels_csv, pool_paths, classes=None, listing: PoolListing | None = None):
    """The ``path,label`` CSV checked against the pool's paths; ValueError names the line.

    The classes are the sorted distinct labels, or ``classes`` in its order;
    there must be at least 2, each with at least one labelled image.
    ``listing`` says why a path it left out is not in the pool.
    """
    file = Path(labels_csv)
    _, rows = read_rows(file, "labels file")
    in_pool = set(pool_paths)
    for row in rows:
        where = f"labels file {file} line {row.line}"
        if row.path not in in_pool:
            why = listing.why_left_out(row.path) if listing is not None else None
            example = next(iter(sorted(in_pool)), "")
            raise ValueError(
                f"{where}: {row.path!r} is not an image in the pool ("
                + (why or f"paths are relative to the pool's root, such as {example!r}")
                + ")"
            )
        if not row.label:
            raise ValueError(f"{where}: the label of {row.path!r} is empty; give it a class")
    _once_each(rows, f"labels file {file}")
    names = [row.label for row in rows]
    found = sorted(set(names))
    if classes is None:
        class_names = tuple(found)
    else:
        class_names = tuple(str(c).strip() for c in classes)
        if len(set(class_names)) != len(class_names) or not all(class_names):
            raise ValueError(f"classes must be distinct non-empty names, got {list(classes)}")
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise ValueError(
                f"labels file {file} uses label(s) {unknown} that are not among the classes "
                f"{list(class_names)}"
            )
    if len(class_names) < 2:
        raise ValueError(
            f"labels file {file} has {len(class_names)} class(es) {list(class_names)}; "
            "label images of at least 2 classes"
        )
    empty = [name for name in class_names if name not in set(found)]
    if empty:
        raise ValueError(
            f"class(es) {empty} have no labelled image in {file}; label at least 1 image "
            "of each class"
        )
    index = {name: i for i, name in enumerate(class_names)}
    return Labels(
        tuple(row.path for row in rows),
        np.array([index[n] for n in names], np.int64),
        class_names,
        tuple(row.line for row in rows),
    )


def check_labelled_readable(labels: Labels, pool: Pool, labels_csv) -> None:
    """A skipped unreadable image cannot be trained on: refuse its label, naming the line."""
    reasons = dict(pool.unreadable)
    for path, line in zip(labels.paths, labels.lines, strict=True):
        if path in reasons:
            raise ValueError(
                f"labels file {labels_csv} line {line}: {path!r} is labelled but cannot be "
                f"read ({reasons[path]}); fix the image or remove its row"
            )


@dataclass(frozen=True)
class HeldOut:
    """Labelled images the query never trains on or suggests, to measure it on."""

    file: Path
    paths: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    unreadable: tuple[tuple[str, str], ...] = ()


def check_held_out(eval_csv, class_names, pool_root: Path) -> list[Row]:
    """The held-out file's rows, checked without decoding; paths are relative to its folder."""
    file = Path(eval_csv)
    _, rows = read_rows(file, "eval file")
    where = f"eval file {file}"
    if not rows:
        raise ValueError(f"{where} has no rows; list held-out images as path,label")
    _once_each(rows, where)
    pool = pool_root.resolve() if pool_root.is_dir() else None
    for row in rows:
        image = (file.parent / row.path).resolve()
        if row.label not in class_names:
            raise ValueError(
                f"{where} line {row.line}: label {row.label!r} of {row.path!r} is not one of "
                f"the classes {list(class_names)}"
            )
        if not image.is_file():
            raise ValueError(
                f"{where} line {row.line}: no image at {file.parent / row.path} (paths are "
                "relative to the eval file's folder)"
            )
        if pool is not None and image.is_relative_to(pool):
            raise ValueError(
                f"{where} line {row.line}: {row.path!r} lies inside the pool {pool_root}; "
                "held-out images must lie outside it, or the query could train on them"
            )
    return rows


def read_held_out(eval_csv, rows: list[Row], class_names, image_size: int, skip_unreadable):
    """The held-out images decoded and resized as the pool's are (not cached)."""
    file = Path(eval_csv)
    index = {name: i for i, name in enumerate(class_names)}
    images, labels, paths, unreadable = [], [], [], []
    for row in rows:
        image = file.parent / row.path
        try:
            images.append(read_image(image.read_bytes, str(image), image_size))
        except ValueError as error:
            unreadable.append((row.path, str(error)))
            continue
        labels.append(index[row.label])
        paths.append(row.path)
    check_unreadable(unreadable, f"eval file {file}", skip_unreadable)
    if not paths:
        raise ValueError(f"eval file {file}: none of its images can be read")
    shape = (0, image_size, image_size, 3)
    stacked = np.stack(images) if images else np.empty(shape, np.uint8)
    return HeldOut(file, tuple(paths), stacked, np.array(labels, np.int64), tuple(unreadable))
