"""Paper Fig. 2 (left): influence vs leave-one-out retraining, 10-class MNIST logistic regression.

The paper fitted 55,000 rows with L2 strength 0.01 on the mean objective and compared the
500 most influential rows of a misclassified test point.  Here: 10,000 rows (so that
retraining 50 models fits in a CI slot), the same regularization (``C = 1 / (0.01 n)``),
the 50 most influential rows, retraining warm-started from the fit to tol 1e-10 (newton-cg: lbfgs stops on its
ftol before resolving an O(1/n) change).
"""

import numpy as np
import pytest

from skinfluence.linear_model import LogisticRegression
from skinfluence.validation import loo_retrain, pearson_r

from conftest import shared_data

pytestmark = pytest.mark.slow


def test_mnist_fig2_influence_matches_leave_one_out():
    data = np.load(shared_data("mnist", "mnist.npz"))
    rng = np.random.RandomState(0)
    n = 10_000
    rows = rng.choice(data["X_train"].shape[0], n, replace=False)
    X = data["X_train"][rows].astype(np.float64) / 255.0
    y = data["y_train"][rows]
    Xt = data["X_test"][:2000].astype(np.float64) / 255.0
    yt = data["y_test"][:2000]
    C = 1.0 / (0.01 * n)
    refit = dict(tol=1e-10, max_iter=5000, solver="newton-cg")
    clf = LogisticRegression(C=C, **refit).fit(X, y)
    wrong = np.flatnonzero(clf.predict(Xt) != yt)
    t = wrong[np.argmax(clf.influence_explainer().test_loss(Xt[wrong], yt[wrong]))]
    x_t, y_t = Xt[t:t + 1], yt[t:t + 1]
    first = clf.loo_effect(x_t, y_t)[:, 0]
    newton = clf.loo_effect(x_t, y_t, method="newton", train_indices=np.argsort(-np.abs(first))[:50])[:, 0]
    top = np.argsort(-np.abs(first))[:50]
    actual = loo_retrain(clf, X, y, top, x_t, y_t, refit_params=refit, n_jobs=2).loss_change[:, 0]
    r_first, r_newton = pearson_r(first[top], actual), pearson_r(newton, actual)
    print(f"MNIST Fig. 2: Pearson R first order {r_first:.4f}, one-step Newton {r_newton:.4f}")
    assert r_first >= 0.95
    assert r_newton >= 0.99
    # and the magnitudes agree, not just the ordering (a least-squares slope near 1)
    slope = float(first[top] @ actual / (first[top] @ first[top]))
    assert 0.8 < slope < 1.25
