"""``config.json``: the record of a run, what a rerun checks before it goes on.

It holds the resolved config, the schedule of labelled-set sizes, the dataset
(source, sizes, class names and fingerprint), the environment
(:func:`dpe_tutorial.running.provenance.environment`) and one entry per session. A
rerun reads it (:func:`existing_run`) and goes on only with the same config
and, once :func:`record_for` has compared fingerprints, the same data. The
other files of the folder are :mod:`dpe_tutorial.running.results`'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from . import data, provenance
from .files import atomic_write, read_checked_json
from .results import note
from .results_folder import record_file

if TYPE_CHECKING:
    from .config import ExperimentConfig


# config fields added after runs were written, with the value those runs had
_LATER_FIELDS = {
    "distribution": "none",
    # the fields of learning from few labels (the MNIST study)
    "steps": None,
    "initial_labels": "random",
    "pool_subset": None,
    "selection": "top_k",
    "passes": 1,
    "member_predictions": False,
}


def existing_run(config_path: Path, config: ExperimentConfig, sizes: list[int]) -> dict | None:
    """The record of the run in the folder, checked to be whole and of ``config``; None if new."""
    record = read_checked_json(
        config_path,
        lambda record: _record_problem(record, sizes),
        what=str(config_path),
        advice="it says which config and data the folder holds, so it cannot be rebuilt: "
        "restore it from a backup, or choose another output folder",
    )
    if record is None:
        return None
    # a field added after the run was made is absent from its config.json: it ran as the default
    stored, wanted = {**_LATER_FIELDS, **record["config"]}, config.to_dict()
    if stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise ValueError(
            f"{config_path.parent} holds a run of another config "
            f"(differs in {', '.join(changed)}); choose another output folder"
        )
    return record


def _record_problem(record, sizes: list[int]) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, kind in (("config", dict), ("dataset", dict), ("sessions", list)):
        if not isinstance(record.get(key), kind):
            return f"no '{key}' {kind.__name__}"
    if record.get("schedule_sizes") != sizes:
        return f"its schedule_sizes are not {sizes}"
    return None


def record_for(record, config: ExperimentConfig, split: data.Split, sizes, out_dir: Path) -> dict:
    """A new run's record, or the existing one once its data fingerprint matches ``split``."""
    pool, test = split.train, split.test
    found = {
        "provenance": pool.provenance,
        "pool_size": len(pool),
        "test_size": len(test),
        "class_names": list(pool.class_names),
        "fingerprint": data.fingerprint(split),
    }
    if record is None:
        return {
            "config": config.to_dict(),
            "method": config.method,
            "schedule_sizes": sizes,
            "dataset": {"name": config.dataset, **found},
            "environment": provenance.environment(config.distribution),
            "sessions": [],
        }
    stored = record["dataset"]
    if stored.get("fingerprint") is None:
        stored["fingerprint"] = found["fingerprint"]
        note(f"{record_file(out_dir)} had no data fingerprint (an older run); recorded this data's")
    elif stored["fingerprint"] != found["fingerprint"]:
        changed = [
            f"{key} {stored.get(key)!r} -> {value!r}"
            for key, value in found.items()
            if key != "fingerprint" and stored.get(key) != value
        ]
        what = "; ".join(changed) or "same source and sizes, other pixels, labels or order"
        raise ValueError(
            f"{out_dir} holds a run on other data (fingerprint {stored['fingerprint'][7:19]} "
            f"-> {found['fingerprint'][7:19]}: {what}); point the config at the data the run "
            "used, or choose another output folder"
        )
    return record


def write_record(out_dir: Path, record: dict) -> None:
    atomic_write(record_file(out_dir), json.dumps(record, indent=2))
