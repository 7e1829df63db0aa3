"""Displays (scikit-learn's convention), drawn with the Agg backend on real data."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Bunch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skinfluence.display import (  # noqa: E402
    InfluentialExamplesDisplay,
    LabelFixingDisplay,
    LeaveOneOutDisplay,
)
from skinfluence.linear_model import LogisticRegression  # noqa: E402
from skinfluence.pipeline import make_pipeline  # noqa: E402
from skinfluence.validation import loo_retrain  # noqa: E402

TIGHT = dict(C=1.0, tol=1e-10, max_iter=5000, solver="newton-cholesky")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def ones_and_sevens():
    """Digits 1 vs 7 in [0, 1], 8x8 images."""
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [1, 7])
    X, y = X[keep] / 16.0, y[keep]
    return X[:250], y[:250], X[250:], y[250:]


def test_matplotlib_is_imported_only_when_plotting():
    code = ("import sys, skinfluence.display, skinfluence.attack, skinfluence.cleaning; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ Fig. 2
def test_loo_display_from_predictions_keeps_data_and_artists():
    predicted = np.array([0.1, -0.2, 0.3, 0.05])
    actual = np.array([0.12, -0.18, 0.33, 0.0])
    fig, ax = plt.subplots()
    display = LeaveOneOutDisplay.from_predictions(predicted, actual, name="influence", ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    np.testing.assert_allclose(display.pearson_r, np.corrcoef(predicted, actual)[0, 1])
    np.testing.assert_allclose(display.scatter_.get_offsets(), np.c_[actual, predicted])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"influence (Pearson R = {display.pearson_r:.3f})"]
    x, y = display.line_.get_data()
    np.testing.assert_allclose(x, y)  # the diagonal
    with pytest.raises(ValueError, match="actual has"):
        LeaveOneOutDisplay(predicted, actual[:2])


def test_loo_display_from_estimator_agrees_with_retraining(ones_and_sevens):
    X, y, Xt, yt = ones_and_sevens
    clf = LogisticRegression(**TIGHT).fit(X, y)
    t = int(np.argmax(clf.influence_explainer().test_loss(Xt, yt)))
    display = LeaveOneOutDisplay.from_estimator(clf, X, y, Xt[t:t + 1], yt[t:t + 1], top_k=12,
                                                method="newton")
    rows = display.train_indices
    expected_rows = np.argsort(-np.abs(clf.loo_effect(Xt[t:t + 1], yt[t:t + 1])[:, 0]),
                               kind="stable")[:12]
    np.testing.assert_array_equal(rows, expected_rows)
    actual = loo_retrain(clf, X, y, rows, Xt[t:t + 1], yt[t:t + 1],
                         refit_params={"tol": 1e-10}).loss_change[:, 0]
    np.testing.assert_allclose(display.actual, actual, rtol=1e-6, atol=1e-12)
    assert display.pearson_r > 0.99  # one Newton step is near exact on real data
    assert "newton" in display.ax_.get_legend().get_texts()[0].get_text()


# ------------------------------------------------------------------ Fig. 6
def test_label_fixing_display_draws_one_curve_per_ranking_and_panel():
    result = Bunch(
        fractions=np.array([0.0, 0.1, 0.2]),
        found={"influence": [[0, 0.6, 0.9], [0, 0.5, 0.8]], "random": [[0, 0.1, 0.2]] * 2},
        accuracy={"influence": [[0.8, 0.9, 0.95]] * 2, "random": [[0.8, 0.81, 0.82]] * 2},
        accuracy_clean=0.96)
    display = LabelFixingDisplay.from_result(result)
    assert display.axes_.shape == (2,) and display.ax_ is display.axes_[0]
    assert set(display.found_lines_) == set(display.accuracy_lines_) == {"influence", "random"}
    x, y = display.found_lines_["influence"].get_data()
    np.testing.assert_allclose(x, [0, 10, 20])
    np.testing.assert_allclose(y, [0, 0.55, 0.85])
    fig, axes = plt.subplots(1, 2)
    assert LabelFixingDisplay.from_result(result, ax=axes).figure_ is fig
    with pytest.raises(ValueError, match="two Axes"):
        display.plot(ax=[axes[0]])
    with pytest.raises(ValueError, match="columns"):
        LabelFixingDisplay([0.1], {"a": [[0.1, 0.2]]}, {"a": [[0.1, 0.2]]})


def test_label_fixing_display_from_estimator_on_real_data():
    X, y = load_breast_cancer(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(y))
    X, y = X[perm], y[perm]
    est = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-8))
    display = LabelFixingDisplay.from_estimator(est, X[:400], y[:400], X[400:], y[400:],
                                                fractions=[0, 0.1, 0.2], random_state=0)
    assert display.result_.found["influence"].shape == (1, 3)
    _, curve = display.found_lines_["influence"].get_data()
    np.testing.assert_allclose(curve, display.result_.found["influence"][0])


# ------------------------------------------------------------------ Fig. 1 / 4
def test_influential_examples_show_the_extremes_of_influence(ones_and_sevens):
    X, y, Xt, yt = ones_and_sevens
    clf = LogisticRegression(**TIGHT).fit(X, y)
    display = InfluentialExamplesDisplay.from_estimator(clf, X, y, Xt[0], yt[0], n_examples=4)
    scores = clf.influence(Xt[:1], yt[:1])[:, 0]
    np.testing.assert_allclose(display.scores_, scores)
    np.testing.assert_allclose(display.harmful_scores, np.sort(scores)[::-1][:4])
    np.testing.assert_allclose(display.helpful_scores, np.sort(scores)[:4])
    np.testing.assert_array_equal(display.harmful_images, X[display.harmful_indices])
    assert display.axes_.shape == (2, 5)
    assert len(display.images_) == 1 + 4 + 4
    np.testing.assert_allclose(display.images_[0].get_array(), Xt[0].reshape(8, 8))
    assert display.ax_ is None


def test_influential_examples_fill_a_given_axes(ones_and_sevens):
    X, y, Xt, yt = ones_and_sevens
    clf = make_pipeline(StandardScaler(), LogisticRegression(**TIGHT)).fit(X, y)
    fig, ax = plt.subplots()
    display = InfluentialExamplesDisplay.from_estimator(clf, X, y, Xt[:1], yt[:1], ax=ax,
                                                        n_examples=2)
    assert display.ax_ is ax and display.figure_ is fig
    assert not ax.axison  # the host Axes is hidden behind the grid
    # a pipeline: scores refer to the raw training rows it was fitted on
    np.testing.assert_allclose(display.scores_, clf.influence(Xt[:1], yt[:1])[:, 0])


def test_influential_examples_need_an_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        InfluentialExamplesDisplay(np.zeros(10), np.zeros((1, 10)), np.zeros((1, 10)), [1.0],
                                   [1.0])
    display = InfluentialExamplesDisplay(np.zeros(10), np.zeros((1, 10)), np.zeros((1, 10)),
                                         [1.0], [1.0], image_shape=(2, 5))
    assert display.plot().images_[0].get_array().shape == (2, 5)
