"""Fixing mislabeled rows (paper Section 5.4): the simulation, on real data.

Fast variants run on scikit-learn's breast cancer and on UCI spambase; the paper's own
experiment on Enron1 (Fig. 6, 10 seeds) is in ``test_paper_enron.py`` (slow).
"""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from skinfluence.cleaning import flip_labels, simulate_label_fixing
from skinfluence.linear_model import LogisticRegression
from skinfluence.pipeline import make_pipeline

FIT = dict(C=1.0, tol=1e-8, max_iter=5000, solver="newton-cholesky")


@pytest.fixture(scope="module")
def cancer_split():
    X, y = load_breast_cancer(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(y))
    X, y = X[perm], y[perm]
    return X[:400], y[:400], X[400:], y[400:]


def test_flip_labels_flips_exactly_the_reported_rows():
    y = np.repeat([0, 1, 2], 50)
    y_noisy, flipped = flip_labels(y, 0.1, random_state=0)
    assert len(flipped) == 15
    np.testing.assert_array_equal(np.flatnonzero(y_noisy != y), flipped)
    binary = np.repeat([3, 7], 20)
    y_b, flipped_b = flip_labels(binary, 0.25, random_state=1)
    assert set(y_b[flipped_b]) <= {3, 7}
    np.testing.assert_array_equal(y_b[flipped_b], np.where(binary[flipped_b] == 3, 7, 3))
    with pytest.raises(ValueError, match="fraction"):
        flip_labels(y, 1.5)
    with pytest.raises(ValueError, match="two classes"):
        flip_labels(np.zeros(5), 0.2)


def test_simulation_on_real_data_matches_a_hand_count(cancer_split):
    """found = flips among the first k rows of the ranking, recomputed independently."""
    X, y, Xt, yt = cancer_split
    est = make_pipeline(StandardScaler(), LogisticRegression(**FIT))
    fractions = [0.0, 0.05, 0.1, 0.2, 1.0]
    result = simulate_label_fixing(est, X, y, Xt, yt, fractions=fractions, n_repeats=2,
                                   random_state=0)
    assert result.n_flipped == 40 and result.n_train == 400
    for name in ("influence", "train loss", "random"):
        assert result.found[name].shape == (2, 5)
        np.testing.assert_array_equal(result.found[name][:, 0], 0)   # nothing checked
        np.testing.assert_array_equal(result.found[name][:, -1], 1)  # everything checked
        # nothing checked: the noisy model; everything checked: every label is true again
        np.testing.assert_allclose(result.accuracy[name][:, 0], result.accuracy_noisy)
        np.testing.assert_allclose(result.accuracy[name][:, -1], result.accuracy_clean)

    # repeat 0 by hand: same seed stream, the self-influence order of the noisy fit
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=2)[0]
    y_noisy, flipped = flip_labels(y, 0.1, random_state=np.random.RandomState(seed))
    noisy = make_pipeline(StandardScaler(), LogisticRegression(**FIT)).fit(X, y_noisy)
    order = np.argsort(noisy.self_influence(), kind="stable")  # most negative first
    for j, f in enumerate(fractions):
        k = int(round(f * len(y)))
        assert result.found["influence"][0, j] == np.isin(order[:k], flipped).sum() / 40


def test_loo_loss_ranking_is_the_approximate_leave_one_out_loss(cancer_split):
    from skinfluence.cleaning import RANKINGS
    from skinfluence.metrics import approximate_loo_losses

    X, y, _, _ = cancer_split
    y_noisy, _ = flip_labels(y, 0.1, random_state=3)
    model = make_pipeline(StandardScaler(), LogisticRegression(**FIT)).fit(X, y_noisy)
    order = RANKINGS["loo loss"](model, X, y_noisy, np.random.RandomState(0))
    losses = approximate_loo_losses(model)
    np.testing.assert_array_equal(order, np.argsort(-losses, kind="stable"))
    # and it is the loss of an actual refit without the row, to one Newton step
    from skinfluence.validation import loo_retrain

    step = model[-1]
    X_scaled = model[0].transform(X)
    worst = order[:3]
    refit = loo_retrain(step, X_scaled, y_noisy, worst, refit_params={"tol": 1e-12})
    actual = np.array([c[0] for c in refit.own_loss_change])
    own = step.influence_explainer().test_loss(X_scaled[worst], y_noisy[worst])
    np.testing.assert_allclose(losses[worst], own + actual, rtol=0.05)


def test_influence_finds_more_flips_than_random_on_spambase():
    from skinfluence.datasets import load_spambase

    pytest.importorskip("pandas")
    try:
        X, y = load_spambase()
    except FileNotFoundError:
        pytest.skip("spambase not found in the shared data")
    perm = np.random.RandomState(0).permutation(len(y))
    X, y = np.log1p(X[perm]), y[perm]  # word frequencies: heavy tails
    X_train, y_train, X_test, y_test = X[:3000], y[:3000], X[3000:], y[3000:]
    est = make_pipeline(StandardScaler(), LogisticRegression(**FIT))
    result = simulate_label_fixing(est, X_train, y_train, X_test, y_test,
                                   fractions=[0.1, 0.2], n_repeats=2, random_state=0)
    found = {name: v.mean(axis=0) for name, v in result.found.items()}
    # a random tenth holds a tenth of the flips on average; self-influence far more
    assert np.all(found["influence"] > 2 * found["random"])
    assert np.all(result.accuracy["influence"].mean(0) >= result.accuracy_noisy.mean())


def test_custom_rankings_are_called_and_checked(cancer_split):
    X, y, Xt, yt = cancer_split
    calls = []

    def by_position(model, X_, y_noisy, rng):
        calls.append(len(y_noisy))
        return np.arange(len(y_noisy))

    est = make_pipeline(StandardScaler(), LogisticRegression(**FIT))
    result = simulate_label_fixing(est, X, y, Xt, yt, fractions=[0.5],
                                   rankings={"first rows": by_position}, random_state=0)
    assert calls == [400] and list(result.found) == ["first rows"]
    with pytest.raises(ValueError, match="every row position"):
        simulate_label_fixing(est, X, y, Xt, yt, fractions=[0.5],
                              rankings={"bad": lambda *a: np.arange(10)}, random_state=0)
    with pytest.raises(ValueError, match="Unknown ranking"):
        simulate_label_fixing(est, X, y, Xt, yt, rankings=["loss"])
    with pytest.raises(ValueError, match="fractions"):
        simulate_label_fixing(est, X, y, Xt, yt, fractions=[1.5])
