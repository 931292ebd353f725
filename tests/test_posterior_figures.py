"""The reference-posterior chapter's figures: what they draw, and what they refuse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.book import posterior_figures
from dpe_tutorial.running import toy


def test_maps_draw_a_column_per_model_on_shared_scales():
    xx, yy, grid = toy.plane_grid(np.array([[0.0, 0.0], [1.0, 1.0]]), resolution=6)
    probs = np.full((len(grid), 2), 0.5)
    columns = {"posterior": (probs, np.zeros(len(grid))), "DPE": (probs, np.full(len(grid), 0.2))}
    figure = posterior_figures.maps(xx, yy, columns, np.zeros((2, 2)), np.array([0, 1]))
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["posterior", "DPE"]
    assert len(figure.axes) == 2 * 2 + 2  # four maps and two colour bars
    with pytest.raises(ValueError, match="at least one approximation"):
        posterior_figures.maps(
            xx, yy, {"posterior": columns["posterior"]}, np.zeros((2, 2)), [0, 1]
        )
    with pytest.raises(ValueError, match="DPE: values for 36 grid points"):
        posterior_figures.maps(
            xx, yy, {**columns, "DPE": (probs[:5], np.zeros(5))}, np.zeros((2, 2)), [0, 1]
        )


def test_ensemble_size_draws_bias_with_intervals_and_spread():
    summary = pd.DataFrame(
        {
            "method": ["a", "a", "b", "b"],
            "members": [2, 4, 2, 4],
            "bias": [-0.05, -0.04, 0.0, 0.0],
            "bias_low": [-0.06, -0.05, -0.01, -0.01],
            "bias_high": [-0.04, -0.03, 0.01, 0.01],
            "spread": [0.01, 0.008, 0.04, 0.02],
        }
    )
    figure = posterior_figures.ensemble_size(summary)
    bias_axes, spread_axes = figure.axes[:2]
    assert [line.get_label() for line in spread_axes.get_lines()] == ["a", "b"]
    np.testing.assert_allclose(spread_axes.get_lines()[0].get_ydata(), [0.01, 0.008])
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["a", "b"]
    assert bias_axes.get_xscale() == "log"
