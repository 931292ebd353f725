"""The study of results/posterior-study: the toy approximations against a reference posterior.

Chapter 2's toy problem (two moons, noise 0.25, 500 pool points) and its
labelled set of 24, plus sets of 8 and 64 drawn the same way: for each,
a NUTS reference posterior (:mod:`.reference_posterior`) and every method of
:func:`.posterior_comparison.methods` trained with :data:`SEEDS` seeds,
compared at a grid over the plane and at the unlabelled pool
(:func:`.posterior_comparison.compare`). Then the ensemble-size check: the
MI of the pool from E = 2 to 32 members, of the plain ensemble, two DPE
settings and E exact posterior draws, against the reference's.

Everything is resumable: each reference, each comparison row and each
ensemble-size group is written atomically as it finishes, and a rerun skips
what exists. The study's protocol is pre-registered in its README.

Files in the folder::

    reference-n{N}.npz         the reference at the grid and the pool, the labelled indices
    reference.json             the sampler's settings, diagnostics and cost per N; provenance
    comparison.csv             a row per (labelled, method, seed): the metrics
    ensemble-size/*.npz        the pool MI per seed of one (method, members) group
    provenance.json            where the comparison ran
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..running import files, provenance
from . import posterior_comparison, reference_posterior

SIZES = (8, 24, 64)
SEEDS = tuple(range(10))
LABEL_SEED = 0  # draws each labelled set, as chapter 2 draws its 24
GRID_RESOLUTION = 60
GRID_MARGIN = 0.6
SAMPLER = {"chains": 4, "warmup": 1000, "samples": 1000, "seed": 0}
SIZE_CHECK_LABELS = 24
MEMBER_COUNTS = (2, 4, 8, 16, 32)
POSTERIOR_DRAWS = "posterior draws"
SIZE_CHECK_METHODS = (
    posterior_comparison.PLAIN,
    "DPE exclusive, beta=elbo",
    posterior_comparison.DEFAULT,
)
ROW_COLUMNS = ("labelled", "method", "seed", "members", *posterior_comparison.METRICS)


def toy_data():
    """Chapter 2's two moons."""
    from ..running import toy

    return toy.two_moons(n_train=500, n_test=1000, noise=0.25, seed=0)


def labelled_indices(size: int, pool_size: int = 500) -> np.ndarray:
    """The labelled set of ``size`` pool points (for 24: chapter 2's)."""
    return np.random.default_rng(LABEL_SEED).choice(pool_size, size=size, replace=False)


def grid(data):
    """``(xx, yy, points)`` of the comparison's grid over the pool."""
    from ..running import toy

    return toy.plane_grid(data.x_train, resolution=GRID_RESOLUTION, margin=GRID_MARGIN)


@dataclass(frozen=True)
class Setting:
    """One labelled set: its points, the pool left unlabelled, the reference at grid and pool."""

    size: int
    x: np.ndarray
    y: np.ndarray
    pool: np.ndarray  # the unlabelled points
    grid: np.ndarray
    reference_grid: reference_posterior.Reference
    reference_pool: reference_posterior.Reference


def _reference_path(folder, size: int) -> Path:
    return Path(folder) / f"reference-n{size}.npz"


def sample_reference(folder, size: int, sampler: dict | None = None, seeds=SEEDS):
    """Sample the reference for ``size`` labels: its diagnostics and the arrays to save.

    At :data:`SIZE_CHECK_LABELS` labels it also writes the ensemble-size groups
    of E posterior draws (they need the draws, which are not kept).
    """
    data = toy_data()
    labelled = labelled_indices(size, len(data.x_train))
    pool = np.setdiff1d(np.arange(len(data.x_train)), labelled)
    _, _, points = grid(data)
    network = reference_posterior.Network(features=2, classes=2, width=32, depth=2)
    settings = {**SAMPLER, **(sampler or {})}
    draws = reference_posterior.sample(
        data.x_train[labelled], data.y_train[labelled], network, **settings
    )
    at_grid = reference_posterior.summarise(draws, points)
    at_pool = reference_posterior.summarise(draws, data.x_train[pool])
    arrays = {"labelled": labelled, "pool": pool, "grid": points}
    for where, reference in (("grid", at_grid), ("pool", at_pool)):
        arrays[f"{where}_probs"] = reference.probs
        arrays[f"{where}_expected_entropy"] = reference.expected_entropy
        arrays[f"{where}_mutual_information"] = reference.mutual_information
    if size == SIZE_CHECK_LABELS:
        _posterior_draw_groups(folder, draws, data.x_train[pool], seeds)
    diagnostics = {
        **at_grid.diagnostics,
        "pool_function_r_hat_max": at_pool.diagnostics["function_r_hat_max"],
        "pool_function_ess_min": at_pool.diagnostics["function_ess_min"],
        **_half_split(draws, points),
    }
    return diagnostics, arrays


def _half_split(draws, points) -> dict:
    """How far the reference is from itself: the first half of the chains against the second."""
    chains = draws.theta.shape[0]
    if chains < 2:
        return {}
    halves = [
        reference_posterior.summarise(
            reference_posterior.chains_part(draws, part), points, with_diagnostics=False
        )
        for part in (slice(0, chains // 2), slice(chains // 2, chains))
    ]
    distance = posterior_comparison.predictive_distance(halves[0].probs, halves[1].probs[:, None])
    agreement = posterior_comparison.bald_agreement(
        halves[0].mutual_information, halves[1].mutual_information
    )
    return {f"half_split_{key}": value for key, value in {**distance, **agreement}.items()}


def _posterior_draw_groups(folder, draws, pool_points, seeds) -> None:
    """The pool MI of E draws picked at random from the reference's, per seed and E."""
    from ..method import acquisition

    per_draw = reference_posterior.predictive(draws, pool_points)
    per_draw = per_draw.reshape(-1, *per_draw.shape[2:])  # (draws, pool, classes)
    for members in MEMBER_COUNTS:
        information = []
        for seed in seeds:
            chosen = np.random.default_rng(seed).choice(len(per_draw), members, replace=False)
            information.append(acquisition.mutual_information(per_draw[chosen].transpose(1, 0, 2)))
        _write_group(folder, POSTERIOR_DRAWS, members, seeds, np.stack(information))


def load_setting(folder, size: int) -> Setting:
    """A labelled set and its saved reference; ValueError naming the file if it is missing."""
    path = _reference_path(folder, size)
    if not path.exists():
        raise ValueError(f"{path}: no reference for {size} labels; run scripts/posterior_study.py")
    data = toy_data()
    with np.load(path) as saved:
        arrays = {key: saved[key] for key in saved.files}
    references = {
        where: reference_posterior.Reference(
            probs=arrays[f"{where}_probs"],
            expected_entropy=arrays[f"{where}_expected_entropy"],
            mutual_information=arrays[f"{where}_mutual_information"],
            diagnostics={},
        )
        for where in ("grid", "pool")
    }
    labelled = arrays["labelled"]
    return Setting(
        size=size,
        x=data.x_train[labelled],
        y=data.y_train[labelled],
        pool=data.x_train[arrays["pool"]],
        grid=arrays["grid"],
        reference_grid=references["grid"],
        reference_pool=references["pool"],
    )


def approximation(setting: Setting, method: str, seed: int, **overrides):
    """``method`` trained with ``seed`` on the setting's labels: its member probabilities
    at the grid and at the pool, ``(grid, pool)``."""
    points = np.concatenate([setting.grid, setting.pool])
    probs = posterior_comparison.approximate(
        method, setting.x, setting.y, points, seed=seed, **overrides
    )
    return probs[: len(setting.grid)], probs[len(setting.grid) :]


def compare_method(setting: Setting, method: str, seed: int, **overrides) -> dict:
    """One row: ``method`` trained with ``seed`` on the setting's labels, against its reference."""
    at_grid, at_pool = approximation(setting, method, seed, **overrides)
    metrics = posterior_comparison.compare(
        setting.reference_grid, setting.reference_pool, at_grid, at_pool
    )
    return {
        "labelled": setting.size,
        "method": method,
        "seed": seed,
        "members": at_grid.shape[1],
        **metrics,
    }


def load_rows(folder) -> pd.DataFrame:
    """The comparison's rows; ValueError naming the file if it is missing or has other columns."""
    path = Path(folder) / "comparison.csv"
    if not path.exists():
        raise ValueError(f"{path}: no comparison rows yet; run scripts/posterior_study.py")
    rows = pd.read_csv(path)
    if tuple(rows.columns) != ROW_COLUMNS:
        raise ValueError(f"{path}: columns {list(rows.columns)}, expected {list(ROW_COLUMNS)}")
    return rows


REFERENCE_COLUMNS = {
    "seconds": "sampling (s)",
    "mean_leapfrog_steps": "leapfrog steps a draw",
    "divergences": "divergences",
    "weight_r_hat_max": "max R-hat, weights",
    "function_r_hat_max": "max R-hat, predictive",
    "function_ess_min": "min ESS, predictive",
    "half_split_total_variation": "chains 1-2 vs 3-4: TV",
    "half_split_spearman": "chains 1-2 vs 3-4: Spearman",
    "half_split_top_overlap": "chains 1-2 vs 3-4: top-10",
}


def reference_table(folder) -> pd.DataFrame:
    """The sampler's cost and diagnostics, and the reference's own noise, per labelled-set size."""
    path = Path(folder) / "reference.json"
    if not path.exists():
        raise ValueError(f"{path}: no reference yet; run scripts/posterior_study.py")
    record = json.loads(path.read_text(encoding="utf-8"))
    sizes = sorted(int(key) for key in record if key.isdigit())
    table = pd.DataFrame({f"{n} labels": record[str(n)] for n in sizes})
    return table.loc[list(REFERENCE_COLUMNS)].rename(index=REFERENCE_COLUMNS)


def _group_path(folder, method: str, members: int) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")
    return Path(folder) / "ensemble-size" / f"{slug}-E{members}.npz"


def _write_group(folder, method, members, seeds, information) -> None:
    arrays = {
        "method": np.array(method),
        "members": members,
        "seeds": np.asarray(seeds),
        "information": np.asarray(information, np.float32),
    }
    files.atomic_write(
        _group_path(folder, method, members), lambda handle: np.savez(handle, **arrays)
    )


def load_size_rows(folder) -> pd.DataFrame:
    """A row per (method, members, seed) of the ensemble-size check, with the pool MI."""
    rows = []
    for path in sorted((Path(folder) / "ensemble-size").glob("*.npz")):
        with np.load(path) as saved:
            for seed, information in zip(saved["seeds"], saved["information"], strict=True):
                rows.append(
                    {
                        "method": str(saved["method"]),
                        "members": int(saved["members"]),
                        "seed": int(seed),
                        "information": information,
                    }
                )
    if not rows:
        raise ValueError(f"{folder}: no ensemble-size results yet; run scripts/posterior_study.py")
    return pd.DataFrame(rows)


def run(folder, sizes=SIZES, seeds=SEEDS, methods=None, sampler=None, say=print) -> None:
    """The whole study, skipping what is already in ``folder``."""
    known = posterior_comparison.methods()
    unknown = [method for method in methods or [] if method not in known]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; the methods are: {'; '.join(known)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / "reference.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    added = 0
    for size in sizes:
        # the arrays are written last: a reference whose file exists is complete
        if _reference_path(folder, size).exists() and str(size) in record:
            continue
        say(f"reference for {size} labels: sampling")
        record[str(size)], arrays = sample_reference(folder, size, sampler, seeds)
        record["provenance"] = _provenance()
        files.atomic_write(record_path, json.dumps(record, indent=2) + "\n")
        files.atomic_write(
            _reference_path(folder, size), lambda handle, a=arrays: np.savez(handle, **a)
        )
        say(f"  {json.dumps(record[str(size)])}")
        added += 1
    methods = methods or list(posterior_comparison.methods())
    added += _run_comparison(folder, sizes, seeds, methods, say)
    if SIZE_CHECK_LABELS in sizes:
        added += _run_size_check(folder, seeds, say)
    if added:  # where the newest work ran; a rerun that adds nothing leaves it as it was
        files.atomic_write(folder / "provenance.json", json.dumps(_provenance(), indent=2) + "\n")


def _run_comparison(folder, sizes, seeds, methods, say) -> int:
    """The comparison rows not yet in the folder; returns how many it added."""
    added = 0
    path = folder / "comparison.csv"
    done = set()
    if path.exists():
        done = {(r.labelled, r.method, r.seed) for r in load_rows(folder).itertuples()}
    for size in sizes:
        setting = load_setting(folder, size)
        for seed in seeds:
            for method in methods:
                if (size, method, seed) in done:
                    continue
                row = compare_method(setting, method, seed)
                files.append_csv_row(path, ROW_COLUMNS, row)
                added += 1
                say(
                    f"{size} labels, seed {seed}, {method}: tv {row['total_variation']:.3f}, "
                    f"spearman {row['spearman']:.2f}"
                )
    return added


def _run_size_check(folder, seeds, say) -> int:
    """The ensemble-size groups not yet in the folder; returns how many it added."""
    added = 0
    setting = load_setting(folder, SIZE_CHECK_LABELS)
    for method in (*SIZE_CHECK_METHODS, POSTERIOR_DRAWS):
        for members in MEMBER_COUNTS:
            path = _group_path(folder, method, members)
            if path.exists():
                _check_group_seeds(path, seeds)
                continue
            if method == POSTERIOR_DRAWS or members < _fewest_members(method):
                continue  # the draws' groups are written with their reference
            information = [_pool_information(setting, method, seed, members) for seed in seeds]
            _write_group(folder, method, members, seeds, np.stack(information))
            say(f"ensemble size {members}, {method}: done")
            added += 1
    return added


def _check_group_seeds(path: Path, seeds) -> None:
    """ValueError naming ``path`` if its group was computed with other seeds than ``seeds``."""
    with np.load(path) as saved:
        held = [int(seed) for seed in saved["seeds"]]
    if held != [int(seed) for seed in seeds]:
        raise ValueError(
            f"{path}: computed with seeds {held}, this run asks for {list(seeds)}; "
            "rerun with those seeds or write to another folder"
        )


def _fewest_members(method: str) -> int:
    """2, or 4 for DPE in a form that divides by the members' variance."""
    from ..method import choices

    settings = posterior_comparison.methods()[method]
    if settings["beta"] != 0 and settings.get("kl_form") in choices.DIVIDING_FORMS:
        return choices.MIN_MEMBERS_DIVIDING_FORMS
    return 2


def _pool_information(setting: Setting, method: str, seed: int, members: int) -> np.ndarray:
    from ..method import acquisition

    probs = posterior_comparison.approximate(
        method, setting.x, setting.y, setting.pool, seed=seed, n_members=members
    )
    return acquisition.mutual_information(probs)


def _provenance() -> dict:
    from importlib import metadata

    versions = {}
    for name in ("jax", "numpyro", "keras", "tensorflow-cpu", "tensorflow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    import keras

    return {
        "git_commit": provenance.git_commit(),
        "lock_sha256": provenance.lock_sha256(),
        "machine": provenance.machine(),
        "keras_backend": keras.backend.backend(),
        "versions": versions,
        "written": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }


def report(folder) -> str:
    """The study's tables in Markdown: the reference, every metric per method and size, the
    comparisons with the plain ensemble, and the ensemble-size check."""
    from . import markdown

    def as_markdown(frame: pd.DataFrame, digits: int = 3) -> list[str]:
        cells = frame.round(digits).astype(str) if frame.dtypes.ne(object).any() else frame
        rows = [[str(index), *map(str, values)] for index, values in cells.iterrows()]
        return markdown.table([frame.index.name or "", *map(str, frame.columns)], rows)

    rows = load_rows(folder)
    lines = ["### The reference", "", *as_markdown(reference_table(folder).rename_axis(""))]
    for metric in posterior_comparison.METRICS:
        table = posterior_comparison.method_table(rows, metric)
        lines += ["", f"### {metric}: mean [95 % interval] over seeds", "", *as_markdown(table)]
    for metric in ("total_variation", "spearman", "top_overlap"):
        table, _ = posterior_comparison.against(rows, metric)
        lines += ["", f"### {metric}: minus the plain ensemble, paired by seed", ""]
        lines += as_markdown(table)
    reference = load_setting(folder, SIZE_CHECK_LABELS).reference_pool.mutual_information
    sizes = load_size_rows(folder)
    summary = posterior_comparison.size_summary(sizes, reference)
    summary.index = [f"{m}, E = {e}" for m, e in zip(summary.method, summary.members, strict=True)]
    summary = summary.drop(columns=["method", "members"]).rename_axis("method, members")
    lines += ["", f"### Ensemble size ({SIZE_CHECK_LABELS} labels): pool MI", ""]
    lines += as_markdown(summary, digits=4)
    table, _ = posterior_comparison.size_against(sizes)
    lines += ["", "### Ensemble size: mean pool MI minus the plain ensemble's", ""]
    lines += as_markdown(table)
    return "\n".join(lines) + "\n"
