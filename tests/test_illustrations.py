"""The book's figure helpers: sizes that fit the text column, one palette, clear errors."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from dpe_tutorial.book import derivation_figures, experiment_figures, illustrations
from dpe_tutorial.book.conjugate import GaussianModel
from dpe_tutorial.figures import palette, plots
from dpe_tutorial.running import toy, tracing

matplotlib.use("Agg")

PALETTE = {colour.lower() for colour in palette.OKABE_ITO.values()} | {
    palette.colour("pool").lower()
}


def fits_the_column(figure: Figure) -> None:
    width, height = figure.get_size_inches()
    assert width <= palette.MAX_WIDTH + 1e-9
    assert height <= 0.9 * palette.MAX_WIDTH
    # a figure wider than the column must be one the book shows full-width
    assert width <= palette.COLUMN_WIDTH + 1e-9 or width == palette.MAX_WIDTH


def scatter_colours(ax) -> set[str]:
    colours = set()
    for collection in ax.collections:
        if isinstance(collection, matplotlib.collections.PathCollection):
            colours |= {to_hex(c).lower() for c in collection.get_facecolors()}
    return colours


def line_colours(ax) -> set[str]:
    return {to_hex(line.get_color()).lower() for line in ax.get_lines()}


@pytest.fixture(scope="module")
def plane():
    rng = np.random.default_rng(0)
    xx, yy, grid = toy.plane_grid(rng.normal(size=(30, 2)), resolution=12)
    logits = rng.normal(size=(grid.shape[0], 4, 2))
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    x = rng.normal(size=(10, 2))
    y = np.arange(10) % 2
    return xx, yy, grid, probs, x, y


# -- palette -----------------------------------------------------------------


def test_palette_is_okabe_ito_and_roles_use_it():
    assert len(palette.OKABE_ITO) == 8
    assert set(palette.SERIES) <= set(palette.OKABE_ITO.values())
    assert palette.OKABE_ITO["yellow"] not in palette.SERIES  # invisible on white
    for role in palette.ROLES:
        assert palette.colour(role).lower() in PALETTE
    assert palette.colour("dpe") != palette.colour("plain")
    assert palette.series(3) == list(palette.SERIES[:3])


@pytest.mark.parametrize("name", ["red", "", "DPE "])
def test_unknown_colours_are_refused_with_the_valid_names(name):
    with pytest.raises(ValueError, match=r"unknown colour.*roles are"):
        palette.colour(name)


def test_figsize_fits_the_column_and_scales_with_rows():
    width, height = palette.figsize()
    assert width == palette.COLUMN_WIDTH
    assert height == pytest.approx(palette.COLUMN_WIDTH + 0.6)
    two_rows = palette.figsize(3, 2, aspect=0.5)
    assert two_rows[0] == palette.COLUMN_WIDTH
    assert two_rows[1] == pytest.approx(2 * (palette.COLUMN_WIDTH / 3 * 0.5 + 0.6))


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((0,), {}, "columns must be a positive integer"),
        ((1, 1.5), {}, "rows must be a positive integer"),
        ((1,), {"aspect": -1}, "aspect must be a positive number"),
        ((1,), {"width": 15}, "width must be at most"),
        ((1,), {"extra_height": math.nan}, "extra_height must be a number"),
    ],
)
def test_figsize_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        palette.figsize(*args, **kwargs)


def test_series_rejects_more_colours_than_it_has():
    with pytest.raises(ValueError, match="n must be an integer"):
        palette.series(len(palette.SERIES) + 1)


def test_ten_distinct_class_colours_and_no_more():
    colours = palette.categories(10)
    assert len(set(colours)) == 10 and palette.categories(3) == colours[:3]
    with pytest.raises(ValueError, match="n must be an integer"):
        palette.categories(11)


# -- the two-moons figures -----------------------------------------------------


def test_labelled_scatter_draws_each_class_in_its_colour_and_the_pool_in_grey(plane):
    _, _, _, _, x, y = plane
    figure = illustrations.new_figure(palette.figsize())
    ax = figure.subplots()
    illustrations.labelled_scatter(ax, x, y, pool=x + 5)
    collections = ax.collections
    assert len(collections) == 3
    assert to_hex(collections[0].get_facecolors()[0]) == palette.colour("pool").lower()
    for c, collection in enumerate(collections[1:]):
        assert to_hex(collection.get_facecolors()[0]) == palette.CLASSES[c].lower()
        np.testing.assert_allclose(collection.get_offsets(), x[y == c])


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((4, 3)), np.zeros(4, dtype=int), r"x must have shape \(n, 2\)"),
        (np.zeros((4, 2)), np.zeros(3, dtype=int), "y must be integers of shape"),
        (np.zeros((4, 2)), np.zeros(4), "y must be integers of shape"),
        (np.zeros((2, 2)), np.array([0, 2]), r"y must lie in \[0, 2\)"),
    ],
)
def test_labelled_scatter_rejects_bad_shapes(x, y, message):
    ax = illustrations.new_figure((3, 3)).subplots()
    with pytest.raises(ValueError, match=message):
        illustrations.labelled_scatter(ax, x, y)


def test_new_figure_is_not_left_open_in_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    figure = illustrations.new_figure((2, 2))
    assert isinstance(figure, Figure)
    assert plt.get_fignums() == before  # shown once, by being returned


def test_decision_regions_has_two_labelled_panels_that_fit(plane):
    xx, yy, _, probs, x, y = plane
    figure = illustrations.decision_regions(xx, yy, probs, x, y, pool=x)
    fits_the_column(figure)
    left, right = (ax for ax in figure.axes if ax.get_label() != "<colorbar>")
    assert left.get_xlabel() == "$x_1$" and left.get_ylabel() == "$x_2$"
    assert "4 members" in right.get_title()
    assert set(palette.CLASSES) <= {c.upper() for c in scatter_colours(left)}


def test_score_maps_draw_one_panel_per_score_and_hide_the_rest(plane):
    xx, yy, grid, _, x, y = plane
    scores = {name: np.linspace(0, 1, grid.shape[0]) for name in ["a_b", "c", "d", "e"]}
    figure = illustrations.score_maps(xx, yy, scores, x, y, pool=x)
    fits_the_column(figure)
    visible = [ax for ax in figure.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in visible] == ["a b", "c", "d", "e"]
    with pytest.raises(ValueError, match="has 3 values, the grid 144 points"):
        illustrations.score_maps(xx, yy, {"a": np.zeros(3)}, x, y, pool=x)
    with pytest.raises(ValueError, match="scores is empty"):
        illustrations.score_maps(xx, yy, {}, x, y, pool=x)


def test_picks_marks_exactly_the_picked_points(plane):
    xx, yy, _, probs, x, y = plane
    figure = illustrations.picks(xx, yy, probs, x, {"first": [0, 3]}, x, y, pool=x)
    fits_the_column(figure)
    stars = [
        c
        for c in figure.axes[0].collections
        if isinstance(c, matplotlib.collections.PathCollection)
        and len(c.get_facecolors())
        and to_hex(c.get_facecolors()[0]) == palette.colour("pick").lower()
    ]
    assert len(stars) == 1
    np.testing.assert_allclose(stars[0].get_offsets(), x[[0, 3]])


def test_dpe_vs_plain_shares_one_colour_scale_per_score(plane):
    xx, yy, _, probs, x, y = plane
    flat = np.full_like(probs, 0.5)
    figure = illustrations.dpe_vs_plain(xx, yy, {"DPE": probs, "plain": flat}, x, y)
    fits_the_column(figure)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "DPE: predictive entropy",
        "plain: predictive entropy",
        "DPE: mutual information",
        "plain: mutual information",
    ]
    for row in (panels[:2], panels[2:]):
        limits = {tuple(ax.collections[0].get_clim()) for ax in row}
        assert len(limits) == 1  # one scale for both ensembles
    colourbars = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
    assert len(colourbars) == 2 and all(ax.get_ylabel() == "nats" for ax in colourbars)


def test_dpe_vs_plain_needs_two_ensembles_of_grid_shape(plane):
    xx, yy, _, probs, x, y = plane
    with pytest.raises(ValueError, match="at least two ensembles"):
        illustrations.dpe_vs_plain(xx, yy, {"DPE": probs}, x, y)
    with pytest.raises(ValueError, match=r"must have shape \(grid points = 144"):
        illustrations.dpe_vs_plain(xx, yy, {"DPE": probs, "plain": probs[:10]}, x, y)


def test_loop_figure_has_a_curve_per_run_and_a_map_per_run():
    runs = {
        name: pd.DataFrame(
            {
                "n_labeled": [4, 8, 12],
                "ensemble_accuracy": [0.5, 0.6, 0.7 + shift],
                "acquired": [np.array([0, 1]), np.array([2, 3]), np.array([], dtype=int)],
            }
        )
        for name, shift in [("predictive_entropy", 0.0), ("random", 0.1)]
    }
    points = np.random.default_rng(1).normal(size=(20, 2))
    figure = illustrations.loop_figure(runs, points, points[:4])
    fits_the_column(figure)
    curve = figure.axes[0]
    assert line_colours(curve) == {
        palette.colour("predictive_entropy").lower(),
        palette.colour("random").lower(),
    }
    assert [ax.get_title() for ax in figure.axes[1:]] == [
        "acquired by predictive entropy",
        "acquired by random",
    ]
    # the curves' legend sits below their panel, not over the curves
    assert curve.get_legend() is None
    legends = [legend for subfigure in figure.subfigs for legend in subfigure.legends]
    assert len(legends) == 2


# -- derivations -----------------------------------------------------------------


def test_largest_deviation_is_the_max_absolute_difference():
    assert illustrations.largest_deviation([1.0, 2.0], [1.5, 1.0]) == 1.0
    assert illustrations.largest_deviation(np.ones((2, 3)), 1.0) == 0.0
    with pytest.raises(ValueError, match="do not broadcast"):
        illustrations.largest_deviation(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="empty"):
        illustrations.largest_deviation([], [])


def test_conjugate_figures_use_the_palette_and_fit():
    model = GaussianModel(prior_mean=0.0, prior_var=1.0, noise_var=1.0)
    x = np.array([1.0, 2.0, 3.0])
    figure = derivation_figures.conjugate_densities(model, x, (1.0, 0.4))
    fits_the_column(figure)
    ax = figure.axes[0]
    assert {palette.colour(r).lower() for r in ("prior", "likelihood", "posterior", "q")} <= (
        line_colours(ax)
    )
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="variance > 0"):
        derivation_figures.conjugate_densities(model, x, (1.0, 0.0))
    a = np.linspace(-1, 1, 5)
    figure = derivation_figures.elbo_gap(a, -(a**2), a**2, 0.0, 0.0)
    fits_the_column(figure)
    with pytest.raises(ValueError, match="1-D of one shape"):
        derivation_figures.elbo_gap(a, a[:3], a, 0.0, 0.0)


def test_elbo_landscape_colour_bar_names_the_gaps():
    a, log_b = np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)
    elbo = -(a[None, :] ** 2) - 10 * log_b[:, None] ** 2
    figure = derivation_figures.elbo_landscape(a, log_b, elbo, 0.0, (0.0, 0.0), (0.5, 0.5))
    fits_the_column(figure)
    colourbar = next(ax for ax in figure.axes if ax.get_label() == "<colorbar>")
    labels = [t.get_text() for t in colourbar.get_yticklabels()]
    assert labels[-1] == r"$\log p(x)$" and labels[0] == "gap 30"
    with pytest.raises(ValueError, match=r"elbo must have shape \(7, 9\)"):
        derivation_figures.elbo_landscape(a, log_b, elbo.T, 0.0, (0, 0), (0, 0))


def test_kl_landscapes_show_their_range_on_a_log_colour_bar():
    u, t = np.linspace(-1, 1, 5), np.geomspace(0.5, 2, 4)
    values = (u[None, :] ** 2 + np.log(t[:, None]) ** 2) * 10
    figure = derivation_figures.kl_landscapes(
        u,
        t,
        {"exclusive": values, "paper": values + 3},
        {
            "exclusive": 0.0,
            "paper": 3.0,
        },
    )
    fits_the_column(figure)
    colourbar = next(ax for ax in figure.axes if ax.get_label() == "<colorbar>")
    assert colourbar.get_yscale() == "log"
    assert "nats" in colourbar.get_ylabel()
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ['"exclusive"', '"paper"']
    with pytest.raises(ValueError, match=r"must have shape \(4, 5\)"):
        derivation_figures.kl_landscapes(u, t, {"exclusive": values.T}, {"exclusive": 0.0})


def test_kl_slices_and_flow_check_their_shapes():
    t = np.geomspace(0.1, 10, 21)
    slices = {"exclusive": (t**2 - 1 - 2 * np.log(t)) / 2}
    fits_the_column(derivation_figures.kl_slices(t, slices))
    with pytest.raises(ValueError, match="must have shape"):
        derivation_figures.kl_slices(t, {"exclusive": t[:3]})
    with pytest.raises(ValueError, match="positive spreads"):
        derivation_figures.kl_slices(-t, slices)
    u, s = np.linspace(-1, 1, 6), np.linspace(0.5, 2, 5)
    field = u[None, :] ** 2 + s[:, None] ** 2
    figure = derivation_figures.gradient_flow(
        u, s, {"exclusive": field}, u, {"exclusive": u * 0 + 1}
    )
    fits_the_column(figure)
    with pytest.raises(ValueError, match=r"must have shape \(5, 6\)"):
        derivation_figures.gradient_flow(u, s, {"exclusive": field.T}, u, {})


def test_pooled_weights_needs_several_members():
    stacked = np.random.default_rng(0).normal(0, 0.1, size=(8, 3, 3, 2, 4))
    figure = derivation_figures.pooled_weights(stacked, 0.01)
    fits_the_column(figure)
    assert figure.axes[1].get_title() == "Spread of all 72 weights"
    with pytest.raises(ValueError, match="members >= 2"):
        derivation_figures.pooled_weights(stacked[:1], 0.01)


# -- images and results ------------------------------------------------------------


def test_shifted_groups_keep_the_shape_and_type_of_the_test_images():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(20, 8, 8, 1), dtype=np.uint8)
    test = rng.integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8)
    groups = experiment_figures.shifted_groups(train, test, np.random.default_rng(1))
    assert list(groups) == ["seen", "unseen", "shuffled", "inverted", "noise"]
    for images in groups.values():
        assert images.shape == test.shape and images.dtype == np.uint8
    np.testing.assert_array_equal(groups["inverted"], 255 - test)
    np.testing.assert_array_equal(
        np.sort(groups["shuffled"].reshape(6, -1)), np.sort(test.reshape(6, -1))
    )
    figure = experiment_figures.image_groups(groups)
    fits_the_column(figure)
    assert [ax.get_title() for ax in figure.axes] == list(groups)
    with pytest.raises(ValueError, match="must be uint8"):
        experiment_figures.shifted_groups(train.astype(float), test, rng)
    with pytest.raises(ValueError, match="need at least 6 training images"):
        experiment_figures.shifted_groups(train[:3], test, rng)


def fake_run(method, accuracy):
    results = pd.DataFrame(
        {
            "trial": [0, 0, 0],
            "round": [0, 1, 2],
            "n_labeled": [10, 20, 30],
            "ensemble_accuracy": accuracy,
        }
    )
    return plots.Run(Path(method), {"dataset": "digits"}, method, results, {})


def test_random_target_is_the_random_runs_last_mean():
    runs = [fake_run("dpe", [0.5, 0.7, 0.9]), fake_run("random", [0.4, 0.5, 0.6])]
    assert experiment_figures.random_target(runs) == (0.6, 30)
    assert experiment_figures.random_target(runs[:1]) is None


def test_labels_needed_counts_whole_labels():
    runs = [fake_run("dpe", [0.5, 0.7, 0.9]), fake_run("random", [0.4, 0.5, 0.6])]
    # dpe crosses 0.6 halfway between 10 and 20 labels (15), random 0.6 at 30; 0.55 at 12.5 -> 13
    table = experiment_figures.labels_needed(runs, 0.55)
    assert table["labels"].tolist() == [13, 25]
    assert table["labels_saved"].tolist()[0] == 12
    table = experiment_figures.labels_needed(runs, 0.95)  # nobody gets there
    assert table["labels"].isna().all() and table["labels_saved"].isna().all()


def test_tracing_filter_drops_only_the_retracing_warning(caplog):
    tracing.silence_retracing_warning()
    again = tracing.silence_retracing_warning()
    logger = logging.getLogger("tensorflow")
    assert sum(f is again for f in logger.filters) == 1  # installed once
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 64 calls to <f> triggered tf.function retracing.")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


# -- chapter 5 ---------------------------------------------------------------------


def test_training_curves_colour_each_model_by_its_role():
    history = {
        "cross_entropy": [3.0, 2.0],
        "kl": [10.0, 5.0],
        "ensemble_accuracy": [0.6, 0.8],
        "member_accuracy": [0.5, 0.7],
    }
    figure = experiment_figures.training_curves({"DPE": history, "plain": history})
    fits_the_column(figure)
    assert line_colours(figure.axes[0]) == {
        palette.colour("dpe").lower(),
        palette.colour("plain").lower(),
    }
    assert figure.axes[1].get_yscale() == "log"
    # the same history twice: the later model's curve is thinner, so the earlier shows around it
    first, second = figure.axes[2].lines[0], figure.axes[2].lines[2]
    np.testing.assert_allclose(first.get_ydata(), second.get_ydata())
    assert second.get_linewidth() < first.get_linewidth()
    with pytest.raises(ValueError, match="histories is empty"):
        experiment_figures.training_curves({})


def test_score_panels_and_bars():
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        {
            "model": np.repeat(["DPE", "plain"], 20),
            "group": np.tile(np.repeat(["seen", "noise"], 10), 2),
            "predictive entropy": rng.uniform(size=40),
        }
    )
    figure = experiment_figures.score_histograms(
        scores, "DPE", ["seen", "noise"], ["predictive entropy"]
    )
    fits_the_column(figure)
    assert figure.axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="lacks the columns"):
        experiment_figures.score_histograms(scores, "DPE", ["seen"], ["mutual information"])
    with pytest.raises(ValueError, match="no scores of model 'x'"):
        experiment_figures.score_histograms(scores, "x", ["seen"], ["predictive entropy"])
    means = scores.groupby(["group", "model"]).mean().unstack("model")
    figure = experiment_figures.group_bars(means, ["predictive entropy"])
    fits_the_column(figure)
    bar_colours = {to_hex(p.get_facecolor()) for p in figure.axes[0].patches}
    assert bar_colours == {palette.colour("dpe").lower(), palette.colour("plain").lower()}
    spreads = pd.DataFrame({"DPE": [1.0, 0.9], "plain": [1.2, 1.5]}, index=["a", "b"])
    fits_the_column(experiment_figures.spread_bars(spreads))


def test_ranked_images_show_the_extremes_of_the_score():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 8, 8, 1), dtype=np.uint8)
    scores = np.arange(10) / 10
    votes = np.zeros((10, 4), dtype=int)
    figure = experiment_figures.ranked_images(images, np.arange(10), votes, scores, k=3)
    fits_the_column(figure)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0].startswith("label 9") and titles[3].startswith("label 0")
    # each member's vote apart: "7 8 7 8", not a number "7878"
    assert "\nvotes 0 0 0 0\n" in titles[0]
    with pytest.raises(ValueError, match="must agree"):
        experiment_figures.ranked_images(images, np.arange(9), votes, scores)


# -- chapters 6 and 7 ------------------------------------------------------------------


def test_config_table_shows_no_float_noise():
    from dpe_tutorial.running import experiment

    config = experiment.configure("smoke", learning_rate=float(np.float32(0.05)))
    table = experiment_figures.config_table([config])
    assert table.loc["learning_rate", config.method] == "0.05"
    assert table.loc["data_path", config.method] == "default"
    plain = experiment.configure("smoke", beta=0.0)
    both = experiment_figures.config_table([config, plain])
    assert both.loc["kl_form", plain.method] == "unused (beta = 0)"
    assert both.loc["kl_form", config.method] == config.kl_form
    with pytest.raises(ValueError, match="configs is empty"):
        experiment_figures.config_table([])


def test_run_names_are_relative_to_the_root(tmp_path):
    folders = [tmp_path / "smoke" / "a", tmp_path / "smoke" / "b"]
    assert experiment_figures.run_names(folders, tmp_path) == ["smoke/a", "smoke/b"]
    with pytest.raises(ValueError, match="not under the results root"):
        experiment_figures.run_names([tmp_path.parent / "x"], tmp_path)


def test_learning_curves_row_puts_one_legend_below_and_names_single_trials():
    runs = [fake_run("dpe", [0.5, 0.7, 0.9]), fake_run("random", [0.4, 0.5, 0.6])]
    figure = experiment_figures.learning_curves_row(runs, ["ensemble_accuracy"], ["accuracy"])
    fits_the_column(figure)
    assert all(ax.get_legend() is None for ax in figure.axes)
    (legend,) = figure.legends
    assert legend.get_title().get_text() == "one trial per method"
    assert [to_hex(line.get_color()) for line in figure.axes[0].get_lines()] == [
        c.lower() for c in palette.series(2)
    ]
    assert "band" not in legend.get_title().get_text()
    with pytest.raises(ValueError, match="1 metrics but 2 titles"):
        experiment_figures.learning_curves_row(runs, ["ensemble_accuracy"], ["a", "b"])


def test_accuracy_curves_mark_the_seed_post_only_in_its_own_setting():
    seed_post = pd.Series({10: 0.3, 20: 0.4}, name="seed post, one run")

    def run(dataset, budget):
        results = fake_run("dpe", [0.5, 0.7, 0.9]).results.assign(
            mean_member_accuracy=[0.4, 0.6, 0.8]
        )
        config = {"dataset": dataset, "budget": budget}
        return plots.Run(Path("dpe"), config, "dpe", results, {})

    def marked(figure):
        return [line.get_label() for line in figure.axes[1].get_lines()].count(seed_post.name)

    cifar = experiment_figures.accuracy_curves([run("cifar10", 16000)], "linear-4", seed_post)
    fits_the_column(cifar)
    # the group's name once above the panels, short panel titles that cannot collide
    assert cifar.get_suptitle() == "linear-4"
    assert [ax.get_title() for ax in cifar.axes] == ["ensemble accuracy", "mean member accuracy"]
    assert marked(cifar) == 1
    for other in (run("cifar10", 2000), run("digits", 16000)):
        assert marked(experiment_figures.accuracy_curves([other], "x", seed_post)) == 0
    assert marked(experiment_figures.accuracy_curves([run("cifar10", 16000)], "x")) == 0


@pytest.mark.slow
def test_chapter_2s_reading_of_the_dpe_next_to_the_plain_ensemble_holds():
    # the same data, labels and settings as chapter 2: its prose says the plain ensemble's
    # mutual information peaks higher and averages higher on the pool, and the DPE's band of
    # high predictive entropy is broader
    from dpe_tutorial.running import toy

    data = toy.two_moons(n_train=500, n_test=1_000, noise=0.25, seed=0)
    labelled = np.random.default_rng(0).choice(len(data.x_train), size=24, replace=False)
    pool = data.x_train[np.setdiff1d(np.arange(len(data.x_train)), labelled)]
    settings = {"n_members": 8, "width": 32, "depth": 2, "steps": 300, "learning_rate": 0.01}
    x, y = data.x_train[labelled], data.y_train[labelled]
    ensembles = {
        "DPE": toy.train_ensemble(x, y, data.n_classes, seed=0, **settings),
        "plain": toy.train_ensemble(x, y, data.n_classes, seed=0, **{**settings, "beta": 0.0}),
    }
    _, _, grid = toy.plane_grid(data.x_train, resolution=100, margin=0.6)
    table = illustrations.uncertainty_contrast(
        {name: m.predict_members(grid, batch_size=len(grid)) for name, m in ensembles.items()},
        {name: m.predict_members(pool) for name, m in ensembles.items()},
    )
    dpe, plain = table["DPE"], table["plain"]
    assert plain["largest MI on the plane (nats)"] > dpe["largest MI on the plane (nats)"]
    assert plain["mean MI on the pool (nats)"] > dpe["mean MI on the pool (nats)"]
    assert (
        dpe["share of the plane with PE > 0.5 nats"]
        > plain["share of the plane with PE > 0.5 nats"]
    )


def test_line_styles_differ_between_neighbours_and_refuse_bad_indices():
    styles = [palette.line_style(i) for i in range(4)]
    assert len({(s["marker"], s["linestyle"]) for s in styles}) == 4
    sizes = [s["markersize"] for s in styles]
    assert sizes == sorted(sizes, reverse=True)
    widths = [s["linewidth"] for s in styles]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    with pytest.raises(ValueError, match="i must be an integer >= 0"):
        palette.line_style(-1)


def test_a_row_of_panels_grows_with_its_panels_up_to_its_limit():
    assert palette.row_width(1) == palette.PANEL_WIDTH
    assert palette.row_width(2) == palette.COLUMN_WIDTH  # two panels fill the column
    assert palette.row_width(4) == palette.COLUMN_WIDTH
    assert palette.row_width(4, limit=palette.MAX_WIDTH) == palette.MAX_WIDTH
    with pytest.raises(ValueError, match="panels must be a positive integer"):
        palette.row_width(0)
