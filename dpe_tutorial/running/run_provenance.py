"""Where each run of a results folder comes from, as a table for a page of text.

One row per run, read from its ``config.json``: the dataset copy, the
machines (every session's), backend, commits, trials, rounds and wall time.
Sessions that recorded no wall time are counted, so a reader knows when the
time is a lower bound.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from .results import Run, as_runs


def provenance_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Where each run comes from: dataset copy, device, backend, commit, trials and wall time.

    One row per run, from its ``config.json``; a field the run did not record
    shows as "unknown". ``wall_minutes`` sums the sessions that recorded their
    time; ``untimed_sessions`` counts those that did not (:func:`untimed_sessions`),
    for which ``wall_minutes`` is a lower bound.
    """
    rows = []
    for run in as_runs(runs):
        environment = run.record.get("environment") or {}
        dataset = run.record.get("dataset") or {}
        # the first session's commit, then any other that later sessions ran
        commits = [environment.get("git_commit")] + [
            session.get("git_commit") for session in run.record.get("sessions") or []
        ]
        shown = list(dict.fromkeys(c[:10] for c in commits if isinstance(c, str)))
        wall = run.record.get("wall_seconds")
        # the first session's machine, then any other that later sessions worked on
        machines = [environment.get("device_name") or run.device or "unknown"] + [
            _machine_name(session["machine"])
            for session in run.record.get("sessions") or []
            if session.get("machine") and _did_work(session)
        ]
        rows.append(
            {
                "method": run.method,
                "config": run.config.get("name") or "unnamed",
                "dataset": _short_hashes(dataset.get("provenance") or run.dataset),
                "device": "; ".join(dict.fromkeys(machines)),
                "backend": environment.get("backend") or "unknown",
                "commit": ", ".join(shown) or "unknown",
                "trials": int(run.results["trial"].nunique()),
                "rounds": int(run.results["round"].nunique()),
                "wall_minutes": round(wall / 60, 1) if isinstance(wall, (int, float)) else math.nan,
                "untimed_sessions": untimed_sessions(run.record),
                "folder": str(run.path),
            }
        )
    return pd.DataFrame(rows)


def _machine_name(machine: str) -> str:
    """``AMD EPYC`` of a session's ``AMD EPYC, 2 cores``."""
    name, _, cores = machine.rpartition(", ")
    return name if name and cores.endswith(" cores") else machine


def _did_work(session: dict) -> bool:
    """False for a session that only opened a finished run (no time, no epochs)."""
    return not (session.get("wall_seconds") == 0 and not session.get("epochs_trained"))


# why a session has no wall time (see untimed_sessions)
UNTIMED_REASON = "stopped before writing it, or still running"


def untimed_notes(provenance: pd.DataFrame) -> list[str]:
    """A sentence for each row of a :func:`provenance_table` whose ``wall_minutes`` is a
    lower bound, because some of its sessions recorded no time."""
    return [
        f"{row.method} ({row.config}): wall_minutes is a lower bound; "
        f"{row.untimed_sessions} session(s) recorded no time ({UNTIMED_REASON})"
        for row in provenance.itertuples()
        if row.untimed_sessions > 0
    ]


def untimed_sessions(record: dict) -> int:
    """The sessions of a ``config.json`` record that recorded no wall time.

    A session stopped before it wrote its time (runs of this package before it
    wrote the time at every save), or one still running before its first save.
    """
    return sum(1 for s in record.get("sessions") or [] if s.get("wall_seconds") is None)


def _short_hashes(text: str) -> str:
    """``sha256 05b4c8c8bf43...`` as ``sha256 05b4c8c8``: enough to tell copies apart in a table."""
    return re.sub(r"\b(sha256 [0-9a-f]{8})[0-9a-f]+", r"\1", text)
