"""Influence scorers and LOOSearchCV against exact leave-one-out cross-validation."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import (
    GridSearchCV,
    LeaveOneOut,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_validate,
)
from sklearn.preprocessing import StandardScaler

from skinfluence.linear_model import LogisticRegression
from skinfluence.metrics import (
    approximate_loo_losses,
    loo_scorer,
    make_self_influence_scorer,
    self_influence_scorer,
)
from skinfluence.model_selection import LOOSearchCV
from skinfluence.pipeline import make_pipeline
from skinfluence.validation import loo_retrain, pearson_r

TIGHT = dict(tol=1e-10, solver="newton-cholesky", max_iter=1000)


@pytest.fixture(scope="module")
def cancer300():
    """300 rows of breast cancer, standardized once (both LOO methods see the same X)."""
    X, y = load_breast_cancer(return_X_y=True)
    rows = np.random.RandomState(0).permutation(len(y))[:300]
    return StandardScaler().fit_transform(X[rows]), y[rows]


def _exact_loo_losses(estimator, X, y):
    """Each row's log loss under the model refitted without it (warm-started refits)."""
    out = loo_retrain(estimator, X, y, np.arange(len(y)), refit_params={"tol": 1e-10})
    return estimator.influence_explainer().test_loss(X, y) + np.concatenate(out.own_loss_change)


def test_loo_scorer_tracks_exact_leave_one_out(cancer300):
    X, y = cancer300
    exact_means, scores = [], []
    for C in (0.3, 1.0, 3.0):  # around the optimum of this data
        est = LogisticRegression(C=C, **TIGHT).fit(X, y)
        exact = _exact_loo_losses(est, X, y)
        approx = approximate_loo_losses(est)
        # per row: r = 0.99999 at C=0.3, 0.9989 at C=3 where leverage grows
        assert pearson_r(approx, exact) > 0.995
        # the held-out rows a scorer is handed are not used
        scores.append(loo_scorer(est, X[:5], y[:5]))
        assert scores[-1] == loo_scorer(est, None, None) == -approx.mean()
        # one Newton step under-corrects high-leverage rows a little (about 2% at C=3)
        np.testing.assert_allclose(-scores[-1], exact.mean(), rtol=0.03)
        exact_means.append(exact.mean())
    assert np.argmax(scores) == np.argmin(exact_means)


def test_self_influence_scorer_is_minus_the_largest_own_loss_increase(cancer300):
    X, y = cancer300
    loose = LogisticRegression(C=10.0, **TIGHT).fit(X, y)
    tight = LogisticRegression(C=0.01, **TIGHT).fit(X, y)
    increase = loose.self_loo_effect()
    assert self_influence_scorer(loose, X, y) == -increase.max()
    assert make_self_influence_scorer(quantile=0.5)(loose, X, y) == -np.median(increase)
    newton = make_self_influence_scorer(method="newton")(loose, X, y)
    assert newton == -loose.self_loo_effect(method="newton").max()
    # a model that leans on single rows scores lower than a heavily regularized one
    assert self_influence_scorer(loose, X, y) < self_influence_scorer(tight, X, y)
    with pytest.raises(ValueError, match="quantile must be in"):
        make_self_influence_scorer(quantile=2.0)


def test_scorers_refuse_estimators_without_influence(cancer300):
    X, y = cancer300
    plain = SkLogisticRegression().fit(X, y)
    with pytest.raises(TypeError, match="LogisticRegression has no influence methods"):
        loo_scorer(plain, X, y)
    with pytest.raises(TypeError, match="LogisticRegression has no influence methods"):
        LOOSearchCV(make_pipeline(StandardScaler(), SkLogisticRegression()),
                    {"logisticregression__C": [1.0]}).fit(X, y)


def test_scorers_in_sklearn_searches_with_two_jobs(cancer300):
    X, y = cancer300
    X = X * 4.0 + 2.0  # let the pipeline's scaler do the standardizing
    pipe = make_pipeline(StandardScaler(), LogisticRegression(**TIGHT))
    scoring = {"loo": loo_scorer, "reliance": self_influence_scorer,
               "neg_log_loss": "neg_log_loss"}
    grid = {"logisticregression__C": [0.1, 1.0]}
    search = GridSearchCV(pipe, grid, scoring=scoring, refit="neg_log_loss", cv=3,
                          n_jobs=2).fit(X, y)
    # recompute one cell by hand: the scorer on the model fitted to that training fold
    train, _ = next(StratifiedKFold(3).split(X, y))  # what cv=3 means for a classifier
    fold = clone(pipe).set_params(logisticregression__C=1.0).fit(X[train], y[train])
    np.testing.assert_allclose(search.cv_results_["split0_test_loo"][1], loo_scorer(fold))
    np.testing.assert_allclose(search.cv_results_["split0_test_reliance"][1],
                               self_influence_scorer(fold))
    randomized = RandomizedSearchCV(pipe, {"logisticregression__C": [0.1, 1.0, 10.0]},
                                    n_iter=2, scoring=loo_scorer, cv=3, n_jobs=2,
                                    random_state=0).fit(X, y)
    assert np.isfinite(randomized.best_score_)
    scores = cross_validate(pipe, X, y, scoring=scoring, cv=3, n_jobs=2)
    np.testing.assert_allclose(scores["test_loo"][0], loo_scorer(
        clone(pipe).fit(X[train], y[train])))


def test_loo_search_scores_each_candidate_by_its_own_fit(cancer300):
    X, y = cancer300
    grid = {"C": [0.1, 1.0, 10.0], "fit_intercept": [True, False]}
    est = LogisticRegression(**TIGHT)
    search = LOOSearchCV(est, grid).fit(X, y)
    for params, score in zip(search.cv_results_["params"],
                             search.cv_results_["mean_test_score"]):
        np.testing.assert_allclose(score, loo_scorer(clone(est).set_params(**params).fit(X, y)))
    best = int(np.argmax(search.cv_results_["mean_test_score"]))
    assert search.best_index_ == best and search.best_params_ == search.cv_results_["params"][best]
    assert search.best_score_ == search.cv_results_["mean_test_score"][best]
    assert search.best_estimator_.C == search.best_params_["C"]
    np.testing.assert_array_equal(search.predict(X), search.best_estimator_.predict(X))
    assert search.n_splits_ == 1
    parallel = LOOSearchCV(est, grid, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(parallel.cv_results_["mean_test_score"],
                               search.cv_results_["mean_test_score"])
    assert not hasattr(LOOSearchCV(est, grid, refit=False).fit(X, y), "best_estimator_")
    assert clone(search).get_params()["param_grid"] == grid


def test_loo_search_passes_fit_params_and_works_on_pipelines(cancer300):
    X, y = cancer300
    weights = np.where(np.arange(len(y)) % 3 == 0, 2.0, 1.0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(**TIGHT))
    grid = {"logisticregression__C": [0.3, 3.0]}
    search = LOOSearchCV(pipe, grid).fit(X, y, logisticregression__sample_weight=weights)
    manual = clone(pipe).set_params(logisticregression__C=3.0).fit(
        X, y, logisticregression__sample_weight=weights)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"][1], loo_scorer(manual))
    unweighted = clone(pipe).set_params(logisticregression__C=3.0).fit(X, y)
    assert not np.isclose(loo_scorer(unweighted), loo_scorer(manual))


@pytest.mark.slow
def test_loo_search_picks_what_exact_loo_cv_picks(cancer300):
    """The issue's criterion over a wide grid, against scikit-learn's own LOO-CV."""
    X, y = cancer300
    grid = {"C": list(np.logspace(-3, 2, 11))}
    est = LogisticRegression(**TIGHT)
    approx = LOOSearchCV(est, grid, n_jobs=2).fit(X, y)
    exact_scorer = make_scorer(log_loss, response_method="predict_proba",
                               greater_is_better=False, labels=[0, 1])
    exact = GridSearchCV(est, grid, cv=LeaveOneOut(), scoring=exact_scorer,
                         n_jobs=2).fit(X, y)
    exact_loss = -exact.cv_results_["mean_test_score"]
    approx_loss = -approx.cv_results_["mean_test_score"]
    assert pearson_r(approx_loss, exact_loss) > 0.99
    assert exact_loss[approx.best_index_] <= 1.01 * exact_loss.min()
