"""The chapters narrate in short cells, and show their checks instead of asserting them.

No code cell of a chapter is longer than 20 lines: longer computation and
drawing live in the package (where the tests reach them), or the cell is split
with a sentence between. No chapter asserts in its reading path: an identity a
chapter shows holding is printed for the reader (its largest deviation, say),
and the assertion lives in the tests (test_book_identities, test_book_findings).
Reads the notebooks only; nothing is executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
MAX_LINES = 20


def code_cells(path: Path) -> list[tuple[int, str]]:
    """(index among all the chapter's cells, counting from 0, source) of each code cell."""
    cells = nbformat.read(path, as_version=4).cells
    return [(index, cell.source) for index, cell in enumerate(cells) if cell.cell_type == "code"]


def python_of(source: str) -> str:
    """The cell without IPython's magics and shell escapes, which are not Python."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )


def assertions(source: str) -> list[int]:
    """Lines of ``source``'s assert statements and calls like ``np.testing.assert_allclose``."""
    found = []
    for node in ast.walk(ast.parse(python_of(source))):
        if isinstance(node, ast.Assert):
            found.append(node.lineno)
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else None
            name = function.id if isinstance(function, ast.Name) else name
            if name is not None and name.startswith("assert"):
                found.append(node.lineno)
    return sorted(found)


def first_line(source: str) -> str:
    return source.strip().splitlines()[0][:60] if source.strip() else ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_code_cell_is_longer_than_20_lines(path):
    long = [
        f"cell {index} ({len(source.splitlines())} lines: {first_line(source)!r})"
        for index, source in code_cells(path)
        if len(source.splitlines()) > MAX_LINES
    ]
    assert not long, (
        f"{path.name}: code cells over {MAX_LINES} lines (cells counted from 0, markdown "
        f"included): {'; '.join(long)}. Move the computation or the drawing into dpe_tutorial, "
        "or split the cell with a sentence between"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_chapter_asserts_in_its_reading_path(path):
    found = [
        f"cell {index} line {line} ({source.splitlines()[line - 1].strip()[:60]!r})"
        for index, source in code_cells(path)
        for line in assertions(source)
    ]
    assert not found, (
        f"{path.name} asserts in its reading path (cells counted from 0, markdown included): "
        f"{'; '.join(found)}. Print what the reader should see (the largest deviation, "
        "the numbers compared) and assert it in the tests"
    )


def test_the_checks_find_what_they_look_for():
    assert assertions("x = 1\nassert x == 1, 'message'") == [2]
    assert assertions("np.testing.assert_allclose(a, b)\nassert_that(x)") == [1, 2]
    assert assertions("%matplotlib inline\nassert ok") == [2]
    # the word alone, in a string, a comment or a name, is no assertion
    assert assertions("print('assert')  # assert\nasserted = 1\nx.asserted") == []
