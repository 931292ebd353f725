"""The labelling-loop study: the query's BALD picks (power sampling, top k) and random, paired.

:func:`run` runs :mod:`~dpe_tutorial.labelling.simulated_loop` for every seed
and arm into a results folder (``runs/<arm>-seed-<n>.csv``, each written
atomically when its loop ends, so a rerun skips what is there and restarts an
interrupted loop from its first query); ``study.json`` fixes the sizes and
config overrides (a rerun with others is refused) and ``sessions.json``
records where each loop ran. :func:`report` gives the tables; the analysis is
pre-registered in ``results/labelling-loop/README.md``: per arm and size the
mean held-out accuracy with its 95 % t interval, and the paired differences
over seeds of the last query's accuracy, NLL and ECE and of the area under
the learning curve.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from ..running import lock, provenance
from ..running.data.imagefolders import file_sha256
from ..running.files import atomic_write
from ..studies import intervals
from . import simulated_loop as loop

SEEDS = (0, 1, 2, 3, 4)
# (method, baseline): the comparisons the study reads, the question first
COMPARISONS = (
    ("power sampling", "random"),
    ("top-k", "random"),
    ("power sampling", "top-k"),
)
METRICS = ("final_ensemble_accuracy", "aulc", "final_nll", "final_ece")
LOWER_IS_BETTER = {"final_nll", "final_ece"}


def _run_path(folder: Path, arm: str, seed: int) -> Path:
    return folder / "runs" / f"{arm.replace(' ', '-')}-seed-{seed}.csv"


def _check_study(folder: Path, sizes: loop.LoopSizes, overrides) -> None:
    """Write ``study.json``, or refuse a rerun whose sizes or overrides differ from it."""
    wanted = {"sizes": loop.sizes_record(sizes), "overrides": list(overrides)}
    path = folder / "study.json"
    if path.exists():
        recorded = json.loads(path.read_text())
        if recorded != wanted:
            raise ValueError(
                f"{path} records {json.dumps(recorded)}; this run asks for {json.dumps(wanted)}: "
                "give another --out folder"
            )
        return
    atomic_write(path, json.dumps(wanted, indent=2) + "\n")


def run(folder, archive, seeds=SEEDS, arms=tuple(loop.ARMS), sizes=None, overrides=(), say=print):
    """Every (seed, arm) loop not yet in ``folder``; returns how many ran."""
    sizes = sizes or loop.LoopSizes()
    unknown = [arm for arm in arms if arm not in loop.ARMS]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r}; the arms are: {', '.join(loop.ARMS)}")
    if not Path(archive).is_file():
        raise ValueError(f"MNIST archive {archive} does not exist")
    for override in overrides:
        if override.partition("=")[0].strip() in loop.ARM_FIELDS:
            raise ValueError(
                f"--set {override}: the arms set {', '.join(loop.ARM_FIELDS)} themselves"
            )
    # every input is checked before study.json fixes the study
    config = loop.query.resolve_config(None, list(overrides))
    loop.check_archive(archive, sizes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ran = 0
    with lock.hold(folder):  # two runs into one folder would repeat loops and lose sessions
        _check_study(folder, sizes, overrides)
        archive_sha256 = file_sha256(archive)
        for seed in seeds:
            todo = [arm for arm in arms if not _run_path(folder, arm, seed).exists()]
            if not todo:
                continue
            with tempfile.TemporaryDirectory(prefix="dpe-loop-") as work:
                truth = loop.write_mnist_folders(archive, work, sizes, seed)
                for arm in todo:
                    started = dt.datetime.now(dt.timezone.utc)
                    clock = time.perf_counter()
                    rows = loop.run_arm(work, truth, arm, sizes, seed, config, report=say)
                    seconds = time.perf_counter() - clock
                    # the session first: a run file never lacks its record
                    _add_session(folder, arm, seed, started, seconds, archive_sha256)
                    atomic_write(_run_path(folder, arm, seed), rows.to_csv(index=False))
                    ran += 1
    return ran


def _add_session(folder: Path, arm: str, seed: int, started, seconds: float, archive_sha256):
    path = folder / "sessions.json"
    sessions = json.loads(path.read_text()) if path.exists() else []
    sessions.append(
        {
            "run": _run_path(folder, arm, seed).name,
            "started": started.isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "archive_sha256": archive_sha256,
            **provenance.session_environment(),
        }
    )
    atomic_write(path, json.dumps(sessions, indent=2) + "\n")


def load(folder) -> pd.DataFrame:
    """Every finished loop's rows under ``folder`` (empty, with the columns, when none)."""
    paths = sorted(Path(folder).glob("runs/*-seed-*.csv"))
    if not paths:
        return pd.DataFrame(columns=list(loop.COLUMNS))
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def progress(rows: pd.DataFrame) -> str:
    """A Markdown line: how many of the study's loops (arm x seed) have finished."""
    total = len(loop.ARMS) * len(SEEDS)
    counts = rows.groupby("method")["trial"].nunique() if len(rows) else pd.Series(dtype=int)
    done = [f"{arm} ({int(counts[arm])})" for arm in loop.ARMS if arm in counts]
    text = (
        f"**Finished so far:** {int(counts.sum())} of the study's {total} loops "
        f"({len(loop.ARMS)} arms × {len(SEEDS)} seeds)"
    )
    return text + (f"; seeds per arm: {', '.join(done)}." if done else ".")


def complete_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the seeds every arm present has finished: curves compared on the same seeds."""
    if rows.empty:
        return rows
    seeds = rows.groupby("method")["trial"].apply(set)
    shared = set.intersection(*seeds)
    return rows[rows["trial"].isin(shared)]


def per_seed(rows: pd.DataFrame) -> pd.DataFrame:
    """Per arm and seed: the last query's metrics, the AULC, the batches' distinct digits."""
    records = []
    for (method, trial), curve in rows.groupby(["method", "trial"]):
        curve = curve.sort_values("n_labeled")
        final = curve.iloc[-1]
        records.append(
            {
                "method": method,
                "trial": int(trial),
                "final_ensemble_accuracy": final["ensemble_accuracy"],
                "aulc": intervals.aulc(curve["n_labeled"], curve["ensemble_accuracy"]),
                "final_nll": final["nll"],
                "final_ece": final["ece"],
                "distinct": curve["distinct"].mean(),
            }
        )
    return pd.DataFrame(records, columns=["method", "trial", *METRICS, "distinct"])


def curve_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Held-out accuracy per arm (rows) and labelled-set size (columns): mean [95 % interval]
    over the seeds every arm has finished."""
    cells = {}
    for (method, size), group in complete_seeds(rows).groupby(["method", "n_labeled"]):
        interval = intervals.mean_interval(group["ensemble_accuracy"])
        cells.setdefault(method, {})[int(size)] = interval.plain_text()
    order = [arm for arm in loop.ARMS if arm in cells]
    return pd.DataFrame.from_dict(cells, orient="index").loc[order]


def _differences(seeds: pd.DataFrame, method: str, baseline: str):
    """Per shared seed, ``method`` minus ``baseline`` in every metric; None when none is shared."""
    mine = seeds[seeds["method"] == method].set_index("trial")
    theirs = seeds[seeds["method"] == baseline].set_index("trial")
    shared = sorted(set(mine.index) & set(theirs.index))
    if not shared:
        return None
    return mine.loc[shared, list(METRICS)] - theirs.loc[shared, list(METRICS)]


def paired_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Each comparison of :data:`COMPARISONS`: paired differences over the shared seeds."""
    seeds = per_seed(rows)
    records = []
    for method, baseline in COMPARISONS:
        differences = _differences(seeds, method, baseline)
        if differences is None:
            continue
        record = {"comparison": f"{method} - {baseline}", "pairs": len(differences)}
        for metric in METRICS:
            record[metric] = intervals.brief(differences[metric], metric in LOWER_IS_BETTER)
        records.append(record)
    return pd.DataFrame(records, columns=["comparison", "pairs", *METRICS])


def diversity_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Different digits in an acquired batch, per arm: mean over rounds, then over the
    seeds every arm has finished."""
    seeds = per_seed(complete_seeds(rows))
    table = {}
    for method in [arm for arm in loop.ARMS if arm in set(seeds["method"])]:
        interval = intervals.mean_interval(seeds[seeds["method"] == method]["distinct"])
        table[method] = {"seeds": interval.n, "distinct digits a batch": interval.plain_text(1)}
    return pd.DataFrame.from_dict(table, orient="index")


def curves_figure(rows: pd.DataFrame):
    """Held-out accuracy against labels, mean and 95 % t band over the seeds every arm has
    finished, one line an arm."""
    import matplotlib.pyplot as plt

    from ..figures import palette
    from ..studies import mnist_study

    colors = {
        "power sampling": palette.colour("pick"),
        "top-k": palette.colour("blue"),
        "random": palette.colour("random"),
    }
    fig, ax = plt.subplots(figsize=palette.figsize(1, 1, aspect=0.6))
    mnist_study.learning_curves(
        complete_seeds(rows), list(loop.ARMS), ax=ax, colors=colors, thresholds=(),
        ylabel="held-out accuracy (1,000 digits)",
    )  # fmt: skip
    if len(rows):
        ax.set_xticks(sorted(set(rows["n_labeled"])))
    fig.tight_layout()
    plt.close(fig)
    return fig


def reading(rows: pd.DataFrame) -> str:
    """What the finished seeds say about the question, in the words the intervals allow."""
    seeds = per_seed(rows)
    last = int(rows["n_labeled"].max()) if len(rows) else 0
    sentences = []
    for method, baseline in COMPARISONS:
        differences = _differences(seeds, method, baseline)
        if differences is None:
            continue
        accuracy = intervals.describe_pairs(differences["final_ensemble_accuracy"])
        area = intervals.brief(differences["aulc"])
        sentences.append(
            f"**{method} minus {baseline}**, held-out accuracy at {last} labels: {accuracy}; "
            f"area under the learning curve: {area}."
        )
    return "\n\n".join(sentences) or "No comparison has a finished pair of seeds yet."


def report(folder) -> str:
    """The study's tables in Markdown, with how many comparisons they make."""
    rows = load(folder)
    if rows.empty:
        return f"no finished loop under {folder}/runs yet\n"
    paired = paired_table(rows)
    pairs = int(paired["pairs"].max()) if len(paired) else 0
    parts = [
        "## Held-out accuracy per arm and labelled-set size (mean [95 % t interval])",
        curve_table(rows).to_markdown(),
        "## Paired differences over seeds (method - baseline)",
        paired.to_markdown(index=False),
        intervals.multiplicity_note(len(paired) * len(METRICS), pairs),
        "## Different digits in an acquired batch",
        diversity_table(rows).to_markdown(),
    ]
    return "\n\n".join(parts) + "\n"
