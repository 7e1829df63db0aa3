"""Every estimator of the family answers every influence question, consistently."""

import numpy as np
import pytest
from sklearn import kernel_ridge, linear_model, svm

import skinfluence
from skinfluence.kernel_model import KernelLogisticRegression, KernelSmoothHingeClassifier
from skinfluence.kernel_ridge import KernelRidge
from skinfluence.linear_model import LinearRegression, Ridge
from skinfluence.svm import SVC, LinearSVC, SmoothHingeClassifier

CLASSIFIERS = {
    "LinearSVC-hinge": lambda: LinearSVC(loss="hinge", C=0.05, tol=1e-10, max_iter=100000),
    "LinearSVC-squared": lambda: LinearSVC(C=0.05, tol=1e-10, max_iter=100000),
    "SVC": lambda: SVC(C=1.0, tol=1e-8),
    "SmoothHingeClassifier": lambda: SmoothHingeClassifier(C=0.1),
    "KernelLogisticRegression": lambda: KernelLogisticRegression(C=1.0),
    "KernelSmoothHingeClassifier": lambda: KernelSmoothHingeClassifier(C=1.0),
    "KernelLogisticRegression-nystroem": lambda: KernelLogisticRegression(
        C=1.0, kernel_map="nystroem", n_components=50, random_state=0),
}
REGRESSORS = {
    "Ridge": lambda: Ridge(alpha=1.0),
    "LinearRegression": lambda: LinearRegression(),
    "KernelRidge": lambda: KernelRidge(alpha=1.0, kernel="rbf", gamma=0.05),
}


def _problem(name, cancer):
    X, y, Xt, yt = cancer
    X, y = X[:150], y[:150]
    if name in REGRESSORS:
        y, yt = X[:, 0] + 0.5 * X[:, 1] ** 2, Xt[:, 0] + 0.5 * Xt[:, 1] ** 2
        X, Xt = X[:, 1:], Xt[:, 1:]
    return X, y, Xt[:4], yt[:4]


@pytest.mark.parametrize("name", list(CLASSIFIERS) + list(REGRESSORS))
def test_every_method_answers_consistently(name, cancer):
    make = {**CLASSIFIERS, **REGRESSORS}[name]
    X, y, Xt, yt = _problem(name, cancer)
    model = make().fit(X, y)
    n = len(y)
    influence = model.influence(Xt, yt)
    assert influence.shape == (n, 4) and np.all(np.isfinite(influence))
    np.testing.assert_allclose(model.loo_effect(Xt, yt), -influence / n)
    newton = model.loo_effect(Xt, yt, method="newton")
    assert newton.shape == (n, 4) and np.all(np.isfinite(newton))
    pert = model.perturbation_influence(Xt, yt, train_indices=[0, 5])
    assert pert.shape == (2, 4, X.shape[1])
    np.testing.assert_allclose(model.perturbation_influence(Xt, yt, train_indices=[0, 5],
                                                            aggregate="sum"),
                               pert.sum(axis=1), rtol=1e-8, atol=1e-12)
    assert np.all(model.self_influence() <= 1e-10)
    order, scores = model.rank_training_points(Xt, yt, kind="harmful", top_k=5,
                                               return_scores=True)
    total = model.loo_effect(Xt, yt).sum(axis=1)
    np.testing.assert_allclose(scores, total[order])
    assert scores[0] == pytest.approx(total.min())
    assert len(model.rank_training_points(kind="self", top_k=3)) == 3
    # explain() on the model gives the same numbers without refitting
    np.testing.assert_allclose(skinfluence.explain(model, X, y).influence(Xt, yt), influence,
                               rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("cls", [svm.LinearSVC, svm.SVC, linear_model.Ridge,
                                 linear_model.LinearRegression, kernel_ridge.KernelRidge])
def test_plain_sklearn_estimators_are_registered(cls, cancer):
    X, y, Xt, yt = cancer
    model = cls().fit(X[:100], y[:100])
    assert skinfluence.explain(model, X[:100], y[:100]).influence(Xt[:2], yt[:2]).shape == (
        100, 2)
