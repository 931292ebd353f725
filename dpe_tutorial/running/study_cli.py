"""The command line every study script in ``scripts/`` shares.

A study script runs (or resumes) one study into a results folder, or prints
its report: ``--out`` names the folder, ``--report`` prints the tables and
stops, and bad input ends in one line that names the script, with exit
status 2 (the study functions raise ``ValueError`` for it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable


def study_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first line of the script's docstring, with
    ``--out`` and ``--report``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", required=True, help="the study's results folder")
    parser.add_argument(
        "--report", action="store_true", help="print the tables (Markdown) and stop"
    )
    return parser


def add_data(parser: argparse.ArgumentParser, variable: str, default: str) -> None:
    """``--data``: the archive named, else the environment variable, else ``default``."""
    parser.add_argument(
        "--data",
        default=os.environ.get(variable, default),
        help=f"the data archive (default: ${variable}, else {default})",
    )


def add_trials(parser: argparse.ArgumentParser, default: list[int], what: str) -> None:
    """``--trials``: which trials (or seeds) to run, by index."""
    parser.add_argument("--trials", type=int, nargs="+", default=default, help=what)


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="progress bars")


def run_or_report(
    name: str,
    args: argparse.Namespace,
    report: Callable[[str], str],
    run: Callable[[], object],
) -> int:
    """Print ``report(args.out)`` if ``--report`` was given, else ``run()``; a
    ``ValueError`` from either becomes one line on stderr and exit status 2."""
    try:
        if args.report:
            text = report(args.out)
            print(text, end="" if text.endswith("\n") else "\n")
        else:
            run()
    except ValueError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    return 0
