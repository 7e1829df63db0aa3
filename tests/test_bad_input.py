"""Bad input gets a clear error (or a warning that says what was done), before any work."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.svm import SVR

import skinfluence
from skinfluence import _influence
from skinfluence.exceptions import IndefiniteHessianWarning, NotConvergedWarning
from skinfluence.linear_model import LogisticRegression


@pytest.fixture(scope="module")
def fitted(cancer):
    X, y, Xt, yt = cancer
    return LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y), Xt, yt


def test_unfitted_model_raises_not_fitted():
    with pytest.raises(NotFittedError):
        LogisticRegression().influence(np.zeros((1, 3)), [0])
    with pytest.raises(NotFittedError):
        skinfluence.explain(SkLogisticRegression(), np.zeros((2, 3)), [0, 1])


def test_feature_count_mismatch(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match="29 features, but LogisticRegression is expecting 30"):
        clf.influence(Xt[:, :-1], yt)


def test_unseen_test_label(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match=r"labels not seen during fit: \[7\]"):
        clf.influence(Xt[:2], [0, 7])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_test_input(fitted, bad):
    clf, Xt, yt = fitted
    Xb = Xt[:3].copy()
    Xb[1, 2] = bad
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        clf.influence(Xb, yt[:3])


def test_wrong_shapes(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match="Expected 2D array"):
        clf.influence(Xt[0], yt[:1])
    with pytest.raises(ValueError, match="X_test has 3 rows but y_test has 2"):
        clf.influence(Xt[:3], yt[:2])
    with pytest.raises(ValueError, match="train_indices out of range"):
        clf.influence(Xt[:3], yt[:3], train_indices=[10_000])
    with pytest.raises(ValueError, match="boolean train_indices must have shape"):
        clf.influence(Xt[:3], yt[:3], train_indices=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="X_new has 2 rows for 1 train_indices"):
        clf.edit_effect([0], Xt[:1], yt[:1], X_new=Xt[:2])


def test_explain_checks_training_data(cancer):
    X, y, _, _ = cancer
    clf = SkLogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="X has 300 rows but y has 299"):
        skinfluence.explain(clf, X, y[:-1])
    with pytest.raises(TypeError, match="cannot explain a SVR"):
        skinfluence.explain(SVR().fit(X, y), X, y)


def test_unknown_names(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match="method must be one of"):
        clf.loo_effect(Xt[:1], yt[:1], method="exact")
    with pytest.raises(ValueError, match="kind must be one of"):
        clf.rank_training_points(Xt[:1], yt[:1], kind="bad")
    with pytest.raises(ValueError, match="needs X_test and y_test"):
        clf.rank_training_points(kind="harmful")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        clf.rank_training_points(top_k=0)
    with pytest.raises(ValueError, match="Unknown solver 'qr'"):
        clf.influence(Xt[:1], yt[:1], solver="qr")
    with pytest.raises(TypeError, match="Unknown option"):
        clf.influence(Xt[:1], yt[:1], tolerance=3)
    with pytest.raises(ValueError, match="aggregate must be"):
        clf.perturbation_influence(Xt[:1], yt[:1], aggregate="max")
    with pytest.raises(ValueError, match="damping must be >= 0"):
        clf.influence(Xt[:1], yt[:1], damping=-1.0)


def test_multinomial_l1_is_refused(wine):
    X, y, Xt, yt = wine
    clf = LogisticRegression(C=0.5, l1_ratio=1.0, solver="saga", max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="L1/elastic-net multinomial"):
        clf.influence(Xt, yt)


def test_unconverged_fit_warns_with_gradient_norm(cancer):
    X, y, Xt, yt = cancer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=10.0, max_iter=2).fit(X, y)
    with pytest.warns(NotConvergedWarning, match=r"max\|grad\| / sum\(sample_weight\) = \d"):
        result = clf.influence(Xt[:2], yt[:2])
    assert np.all(np.isfinite(result))


def test_singular_hessian_warns_with_damping_applied(cancer):
    X, y, Xt, yt = cancer
    X2 = np.hstack([X[:, :3], X[:, :1]])
    clf = LogisticRegression(C=np.inf, tol=1e-10, max_iter=5000).fit(X2, y)
    with pytest.warns(IndefiniteHessianWarning, match=r"added damping \d"):
        clf.influence(np.hstack([Xt[:2, :3], Xt[:2, :1]]), yt[:2], solver="direct")
    assert clf.influence_explainer(solver="direct").diagnostics_["damping"] > 0


def test_model_without_training_data(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression()
    plain = SkLogisticRegression().fit(X, y)
    clf.coef_, clf.intercept_, clf.classes_ = plain.coef_, plain.intercept_, plain.classes_
    clf.n_features_in_ = plain.n_features_in_
    with pytest.raises(ValueError, match="skinfluence.explain"):
        clf.influence(Xt[:1], yt[:1])


def test_results_too_large_are_refused_up_front(fitted, monkeypatch):
    clf, Xt, yt = fitted
    monkeypatch.setattr(_influence, "MAX_RESULT_BYTES", 1000)
    with pytest.raises(MemoryError, match="pass train_indices or fewer test points"):
        clf.perturbation_influence(Xt[:5], yt[:5])
    with pytest.raises(MemoryError):
        clf.influence(Xt, yt)
    assert clf.influence(Xt[:5], yt[:5], train_indices=[0, 1]).shape == (2, 5)
