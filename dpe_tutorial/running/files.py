"""Atomic file writes (a reader, or a crash, never sees a half-written file) and checked reads."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path, content: str | bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same folder and a rename.

    ``content`` is text (UTF-8), bytes, or a function that writes into the
    binary handle it is given (``np.savez``, ``figure.savefig``). Parent
    folders are created. A failure leaves the old file, if any, in place and
    no temporary file behind; an OSError names ``path``, the file being
    written. The file gets the permissions a plain ``open()`` would give
    (``mkstemp`` would make it private).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if isinstance(content, str):
                handle.write(content.encode("utf-8"))
            elif isinstance(content, bytes):
                handle.write(content)
            elif callable(content):
                content(handle)
            else:
                raise TypeError(
                    f"cannot write {type(content).__name__}: give str, bytes or a writer"
                )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno is None:
            raise
        # name the file being written, not the temporary (or nothing: a failed write() names none)
        raise type(error)(error.errno, error.strerror, str(path)) from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_checked_json(path, problem_of: Callable[[object], str | None], what: str, advice: str):
    """The JSON value in ``path``, or None when there is no such file.

    ``problem_of(value)`` says what is wrong with a parsed value (None when
    nothing is). An unreadable file, invalid JSON or a problem raises
    ValueError: ``"{what} is unreadable or damaged ({problem}); {advice}"``.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        problem = problem_of(value)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"{type(error).__name__}: {error}"
    if problem:
        raise ValueError(f"{what} is unreadable or damaged ({problem}); {advice}")
    return value


def append_csv_row(path, columns, row: dict) -> None:
    """Append ``row`` to the CSV at ``path``, writing the header ``columns`` first if it is new.

    For measurement scripts that resume: each finished measurement is one line
    at once, so a stop loses at most the one in progress.
    """
    import csv

    path = Path(path)
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        if new:
            writer.writeheader()
        writer.writerow(row)
