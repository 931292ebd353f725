"""Approximations against a reference posterior: the metrics, the tables, the study's files."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.method import choices
from dpe_tutorial.studies import posterior_comparison as pc


def test_predictive_distance_known_values():
    p = np.array([[0.5, 0.5], [0.2, 0.8]])
    same = pc.predictive_distance(p, np.stack([p, p], axis=1))
    assert same == {"total_variation": pytest.approx(0), "kl": pytest.approx(0)}
    # the approximation's predictive is the members' mean: (0.5, 0.5) and (1.0, 0.0) -> (0.75, 0.25)
    members = np.array([[[0.5, 0.5], [1.0, 0.0]], [[0.2, 0.8], [0.2, 0.8]]])
    found = pc.predictive_distance(p, members)
    kl_first = 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)
    assert found["total_variation"] == pytest.approx(0.25 / 2)
    assert found["kl"] == pytest.approx(kl_first / 2)
    with pytest.raises(ValueError, match="differ in shape"):
        pc.predictive_distance(p, members[:1])
    # an approximation sure of the wrong class: the floor 1e-12 keeps the KL finite
    certain = pc.predictive_distance(p[:1], np.array([[[1.0, 0.0]]]))
    expected = 0.5 * np.log(0.5 / 1.0) + 0.5 * np.log(0.5 / 1e-12)
    assert certain["kl"] == pytest.approx(expected) and certain["total_variation"] == 0.5


def test_bald_agreement_same_reversed_and_shifted():
    scores = np.linspace(0, 1, 30)
    assert pc.bald_agreement(scores, scores) == {"spearman": pytest.approx(1), "top_overlap": 1.0}
    assert pc.bald_agreement(scores, -scores) == {"spearman": pytest.approx(-1), "top_overlap": 0}
    moved = scores.copy()
    moved[-5:] = -1  # five of the reference's top 10 fall to the bottom
    assert pc.bald_agreement(scores, moved)["top_overlap"] == 0.5
    with pytest.raises(ValueError, match="no top 10"):
        pc.bald_agreement(scores[:5], scores[:5])


def test_compare_reads_grid_and_pool():
    grid = np.array([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]])  # no / full disagreement
    reference = SimpleNamespace(
        probs=np.array([[0.5, 0.5], [0.5, 0.5]]), mutual_information=np.array([0.0, 0.0])
    )
    pool = np.random.default_rng(0).dirichlet([1, 1], size=(20, 4))
    pool_reference = SimpleNamespace(mutual_information=np.linspace(0, 1, 20))
    row = pc.compare(reference, pool_reference, grid, pool)
    information = np.log(2) - (-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)))
    assert row["total_variation"] == pytest.approx(0)
    assert row["mi_error"] == pytest.approx(information / 2, rel=1e-6)
    assert row["mi_bias"] == pytest.approx(information / 2, rel=1e-6)
    assert set(row) == set(pc.METRICS)
    from scipy import stats

    from dpe_tutorial.method import acquisition

    pool_information = acquisition.mutual_information(pool)
    expected = stats.spearmanr(pool_reference.mutual_information, pool_information).statistic
    assert row["spearman"] == pytest.approx(expected)
    shared = set(np.argsort(-pool_information)[:10]) & set(range(10, 20))  # reference's top 10
    assert row["top_overlap"] == len(shared) / 10


def test_methods_hold_the_default_plain_and_mc_dropout():
    table = pc.methods()
    assert pc.DEFAULT in table and pc.PLAIN in table
    assert len(table) == 1 + len(choices.FORMS) * len(pc.BETAS) + len(pc.DROPOUT_RATES)
    assert table["MC dropout, p=0.5"] == {"n_members": 1, "beta": 0.0, "dropout": 0.5}
    with pytest.raises(ValueError, match="unknown method"):
        pc.approximate("bayes by backprop", np.zeros((2, 2)), np.zeros(2, int), np.zeros((1, 2)))


def _rows():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(6):
        base = 0.2 + 0.01 * rng.normal()
        for method, offset in ((pc.PLAIN, 0.0), (pc.DEFAULT, -0.05), ("MC dropout, p=0.1", 0.0)):
            noise = 0.002 * rng.normal() if offset == 0 and method != pc.PLAIN else 0.0
            rows.append(
                {
                    "labelled": 24,
                    "method": method,
                    "seed": seed,
                    "members": 8,
                    "total_variation": base + offset + noise,
                    "spearman": 0.5 - offset,
                }
            )
    return pd.DataFrame(rows)


def test_tables_with_intervals_and_direction_counts():
    rows = _rows()
    table = pc.method_table(rows, "total_variation")
    assert list(table.columns) == ["24 labels"] and table.loc[pc.PLAIN, "24 labels"].count("[") == 1
    differences, found = pc.against(rows, "total_variation")
    assert found[(pc.DEFAULT, 24)].mean == pytest.approx(-0.05)
    assert found[(pc.DEFAULT, 24)].high < 0  # the same offset every seed: excludes zero
    assert differences.loc[pc.DEFAULT, "24 labels"].startswith("-0.050")
    counts = pc.direction_counts(found, "total_variation").loc[24]
    assert counts["closer"] == 1 and counts["closer"] + counts["farther"] + counts["undecided"] == 2
    with pytest.raises(ValueError, match="signed"):
        pc.direction_counts(found, "mi_bias")
    with pytest.raises(ValueError, match="metric must be one of"):
        pc.method_table(rows, "accuracy")


def test_size_summary_bias_and_spread():
    reference = np.full(5, 0.2)
    rows = pd.DataFrame(
        [
            {"method": "m", "members": 4, "seed": s, "information": np.full(5, 0.1 + 0.02 * s)}
            for s in range(3)
        ]
    )
    summary = pc.size_summary(rows, reference).iloc[0]
    assert summary["bias"] == pytest.approx(-0.08)  # estimates 0.10, 0.12, 0.14 against 0.2
    assert summary["spread"] == pytest.approx(0.02)
    assert summary["share"] == pytest.approx(0.6)  # 0.12 of 0.2
    assert summary["bias_low"] < -0.08 < summary["bias_high"]

    more = rows.assign(method="n", information=[x + 0.01 for x in rows["information"]])
    texts, found = pc.size_against(pd.concat([rows, more]), baseline="m")
    assert found[("n", 4)].mean == pytest.approx(0.01) and found[("n", 4)].excludes_zero()
    assert texts.loc[4, "n"].startswith("+0.0100")
    with pytest.raises(ValueError, match="no 'plain ensemble' rows"):
        pc.size_against(rows)


@pytest.mark.slow
def test_approximations_have_their_members_and_passes():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    y = np.array([0, 1, 1, 0])
    points = np.zeros((3, 2), np.float32)
    plain = pc.approximate(pc.PLAIN, x, y, points, steps=5, n_members=4)
    dropout = pc.approximate("MC dropout, p=0.5", x, y, points, steps=5)
    assert plain.shape == (3, 4, 2) and dropout.shape == (3, pc.PASSES, 2)
    assert np.ptp(dropout[0, :, 0]) > 0  # the passes differ: dropout stays on


def test_study_cli_refuses_an_unknown_method_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/posterior_study.py", "--out", str(tmp_path), "--methods", "x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"posterior_study: error: unknown method 'x'; the methods are: {'; '.join(pc.methods())}"
    ]
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_study_runs_small_resumes_and_names_a_damaged_file(tmp_path, monkeypatch):
    import json

    from dpe_tutorial.studies import posterior_study as study

    monkeypatch.setattr(study, "SIZE_CHECK_LABELS", 8)
    monkeypatch.setattr(study, "MEMBER_COUNTS", (1, 2))
    monkeypatch.setattr(study, "SEEDS", (0, 1))
    monkeypatch.setattr(study, "SIZE_CHECK_METHODS", (pc.PLAIN,))
    monkeypatch.setitem(pc.TOY_SETTINGS, "steps", 5)
    arguments = {
        "sizes": (8,),
        "seeds": (0, 1),
        "methods": [pc.PLAIN, pc.DEFAULT],
        "sampler": {"chains": 2, "warmup": 50, "samples": 50},
    }
    said = []
    study.run(tmp_path, **arguments, say=said.append)
    rows = study.load_rows(tmp_path)
    assert sorted(zip(rows.method, rows.seed, strict=True)) == sorted(
        (method, seed) for method in (pc.DEFAULT, pc.PLAIN) for seed in (0, 1)
    )
    assert rows["total_variation"].between(0, 1).all() and (rows["labelled"] == 8).all()
    setting = study.load_setting(tmp_path, 8)
    assert len(setting.pool) == 492 and setting.grid.shape == (study.GRID_RESOLUTION**2, 2)
    sizes = study.load_size_rows(tmp_path)
    assert set(sizes.method) == {pc.PLAIN, study.POSTERIOR_DRAWS}
    assert len(sizes) == 6  # the plain ensemble has no 1-member group
    draws = sizes[sizes.method == study.POSTERIOR_DRAWS].set_index(["members", "seed"])
    assert not np.any(draws.information[(1, 0)])  # one draw does not disagree with itself
    assert not np.array_equal(draws.information[(2, 0)], draws.information[(2, 1)])
    record = json.loads((tmp_path / "reference.json").read_text())
    assert record["8"]["chains"] == 2 and record["provenance"]["versions"]["numpyro"]

    report = study.report(tmp_path)
    for metric in pc.METRICS:
        assert f"### {metric}: mean [95 % interval] over seeds" in report
    assert "| plain ensemble, E = 2 |" in report

    said.clear()
    study.run(tmp_path, **arguments, say=said.append)  # everything is there: nothing is redone
    assert said == [] and len(study.load_rows(tmp_path)) == 4

    # a stop between the reference's record and its arrays: the rerun samples it again
    (tmp_path / "reference-n8.npz").unlink()
    rows_before = (tmp_path / "comparison.csv").read_text()
    study.run(tmp_path, **arguments, say=said.append)
    assert said[0] == "reference for 8 labels: sampling" and len(said) == 2
    assert (tmp_path / "comparison.csv").read_text() == rows_before  # rows kept, none redone

    with pytest.raises(ValueError, match=r"computed with seeds \[0, 1\], this run asks for \[0\]"):
        study.run(tmp_path, **{**arguments, "seeds": (0,)}, say=said.append)

    (tmp_path / "comparison.csv").write_text("labelled,method\n8,plain ensemble\n")
    with pytest.raises(ValueError, match=r"comparison\.csv: columns"):
        study.run(tmp_path, **arguments, say=said.append)
    with pytest.raises(ValueError, match=r"reference-n24\.npz: no reference"):
        study.load_setting(tmp_path, 24)
