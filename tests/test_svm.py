"""SVMs: the engine's objective is the one liblinear/libsvm minimized, the smooth
hinge's influence predicts leave-one-out retraining of a hinge SVM, and the raw hinge
does not."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.svm import SVC as SkSVC
from sklearn.svm import LinearSVC as SkLinearSVC

import skinfluence
from skinfluence._margin import HingeSurrogate, OneVsRest, SquaredHinge
from skinfluence.losses import SmoothHinge
from skinfluence.svm import SVC, LinearSVC, SmoothHingeClassifier, svc_objective
from skinfluence.validation import loo_retrain, pearson_r


def test_margin_loss_derivatives():
    rng = np.random.RandomState(0)
    y = rng.choice([-1.0, 1.0], 9)
    raw = rng.randn(9, 1) * 2
    eps = 1e-6
    for loss in (SquaredHinge(), OneVsRest(SmoothHinge(0.3))):
        targets = y if loss.__class__ is SquaredHinge else np.column_stack([y, -2.0 * y])
        values = raw if loss.__class__ is SquaredHinge else np.column_stack([raw, -raw])
        grad, hess = loss.gradient(targets, values), loss.hessian(targets, values)
        for k in range(values.shape[1]):
            step = np.zeros_like(values)
            step[:, k] = eps
            fd = (loss.value(targets, values + step) - loss.value(targets, values - step))
            np.testing.assert_allclose(grad[:, k], fd / (2 * eps), rtol=1e-6, atol=1e-8)
            fd_h = (loss.gradient(targets, values + step) - loss.gradient(targets, values - step))
            np.testing.assert_allclose(hess[:, :, k], fd_h / (2 * eps), rtol=1e-5, atol=1e-6)
    # the surrogate's values are the hinge, its derivatives the smooth hinge's
    surrogate = HingeSurrogate(0.01)
    np.testing.assert_allclose(surrogate.value(y, raw), np.maximum(0, 1 - y * raw[:, 0]))
    np.testing.assert_allclose(surrogate.gradient(y, raw), SmoothHinge(0.01).gradient(y, raw))
    np.testing.assert_allclose(surrogate.hessian(y, raw), SmoothHinge(0.01).hessian(y, raw))


LINEAR_SVC_CONFIGS = {
    "hinge": dict(loss="hinge"),
    "hinge-scaling": dict(loss="hinge", intercept_scaling=3.0),
    "hinge-class_weight": dict(loss="hinge", class_weight={0: 3.0, 1: 0.5, 2: 2.0}),
    "hinge-no-intercept": dict(loss="hinge", fit_intercept=False),
    "squared": dict(loss="squared_hinge"),
    "squared-primal": dict(loss="squared_hinge", dual=False),
    "squared-balanced": dict(loss="squared_hinge", class_weight="balanced"),
}


@pytest.mark.parametrize("name", list(LINEAR_SVC_CONFIGS))
@pytest.mark.parametrize("multiclass", [False, True])
def test_fitted_linear_svc_is_a_stationary_point(name, multiclass, cancer, wine):
    """liblinear's optimum zeroes the engine's (sub)gradient; forgetting the sample
    weights does not, so the check has teeth."""
    X, y, _, _ = wine if multiclass else cancer
    params = dict(C=0.1, tol=1e-10, max_iter=1000000)
    params.update(LINEAR_SVC_CONFIGS[name])
    if not multiclass and isinstance(params.get("class_weight"), dict):
        params["class_weight"] = {0: 3.0, 1: 0.5}
    sw = np.random.RandomState(0).uniform(0.2, 3.0, len(y))
    svm = SkLinearSVC(**params).fit(X, y, sample_weight=sw)
    good = skinfluence.explain(svm, X, y, sample_weight=sw)
    good.fit()
    assert good.diagnostics_["gradient_norm"] < 1e-7
    wrong = skinfluence.explain(svm, X, y, convergence_tol=np.inf)
    wrong.fit()
    assert wrong.diagnostics_["gradient_norm"] > 1e-3


def test_linear_svc_t_is_an_estimator_parameter(cancer):
    X, y, Xt, yt = cancer
    svm = LinearSVC(loss="hinge", C=0.05, tol=1e-10, max_iter=100000).fit(X, y)
    assert svm.t == 0.001
    sharp = svm.loo_effect(Xt[:3], yt[:3])
    svm.set_params(t=0.1)
    smooth = svm.loo_effect(Xt[:3], yt[:3])
    assert not np.allclose(sharp, smooth)
    # the same value as explain() with the same t
    np.testing.assert_allclose(
        smooth, -skinfluence.explain(svm, X, y).influence(Xt[:3], yt[:3]) / len(y))


def _hinge_loo_agreement(svm, X, y, X_test, y_test, n_rows, t_values):
    """R of predicted vs actual hinge-loss change for the rows most influential at t[0]."""
    predicted = {}
    for t in t_values:
        svm.set_params(t=t)
        predicted[t] = svm.loo_effect(X_test, y_test)[:, 0]
    top = np.argsort(-np.abs(predicted[t_values[0]]))[:n_rows]
    actual = loo_retrain(svm, X, y, top, X_test, y_test,
                         refit_params={"tol": 1e-10}).loss_change[:, 0]
    return {t: (pearson_r(predicted[t][top], actual),
                np.abs(predicted[t][top]).sum() / np.abs(actual).sum()) for t in t_values}


def test_squared_hinge_newton_loo_matches_retraining(cancer):
    X, y, Xt, yt = cancer
    svm = LinearSVC(C=0.05, tol=1e-12, dual=False, max_iter=100000).fit(X, y)
    rows = np.arange(0, len(y), 30)
    newton = svm.loo_effect(Xt[:3], yt[:3], method="newton", train_indices=rows)
    actual = loo_retrain(svm, X, y, rows, Xt[:3], yt[:3],
                         refit_params={"tol": 1e-12}).loss_change
    np.testing.assert_allclose(newton, actual, rtol=2e-2, atol=1e-3 * np.abs(actual).max())


@pytest.fixture(scope="module")
def threes_eights():
    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 8)
    X, y = X[keep] / 16.0, y[keep]
    perm = np.random.RandomState(0).permutation(len(y))
    return X[perm][:250], y[perm][:250], X[perm][250:], y[perm][250:]


SVC_CONFIGS = {
    "rbf": dict(),
    "poly": dict(kernel="poly", degree=2, coef0=1.0),
    "linear": dict(kernel="linear"),
    "class_weight": dict(class_weight={3: 2.0, 8: 0.7}),
}


@pytest.mark.parametrize("name", list(SVC_CONFIGS))
def test_fitted_svc_is_a_stationary_point(name, threes_eights):
    """libsvm's multipliers are a subgradient of the engine's objective that vanishes
    (and its raw predictions are libsvm's); without the sample weights they are not."""
    X, y, Xt, yt = threes_eights
    sw = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    svm = SkSVC(C=1.0, tol=1e-10, **SVC_CONFIGS[name]).fit(X, y, sample_weight=sw)
    good = skinfluence.explain(svm, X, y, sample_weight=sw)
    good.fit()
    assert good.diagnostics_["gradient_norm"] < 1e-10
    np.testing.assert_allclose(good.objective.raw[:, 0], svm.decision_function(X), atol=1e-9)
    hinge = np.maximum(0, 1 - np.where(yt == 8, 1, -1) * svm.decision_function(Xt))
    np.testing.assert_allclose(good.test_loss(Xt, yt), hinge, atol=1e-9)
    wrong = skinfluence.explain(svm, X, y, convergence_tol=np.inf)
    wrong.fit()
    assert wrong.diagnostics_["gradient_norm"] > 1e-3


def test_kernel_svm_loo_matches_retraining(threes_eights):
    """Kernel SVM (rbf, smooth hinge at t = 0.001 on SVC's own objective): the ~40 most
    influential rows of a low-margin test point, R >= 0.9 against retraining; the hinge's
    own derivatives (no curvature, intercept undetermined) are far off."""
    X, y, Xt, yt = threes_eights
    # lambda = 1 / (C n) = 0.013; agreement degrades with weak regularization (C = 3:
    # R from 0.27 to 0.92 over seeds), see docs/svm_and_kernels.rst
    svm = SVC(C=0.3, tol=1e-10).fit(X, y)
    margin = np.where(yt == 8, 1, -1) * svm.decision_function(Xt)
    test = int(np.argmin(np.abs(margin)))
    with pytest.warns(skinfluence.exceptions.IndefiniteHessianWarning):
        result = _hinge_loo_agreement(svm, X, y, Xt[test:test + 1], yt[test:test + 1], 40,
                                      (0.001, 0.0))
    r_smooth, ratio_smooth = result[0.001]
    r_raw, ratio_raw = result[0.0]
    assert r_smooth >= 0.9
    assert 0.5 < ratio_smooth < 2.0
    assert ratio_raw > 10.0 and r_raw < r_smooth


def test_svc_precomputed_and_callable_kernels(threes_eights):
    X, y, Xt, yt = threes_eights
    gamma = 0.3
    named = SVC(gamma=gamma, tol=1e-10).fit(X, y)
    K = pairwise_kernels(X, X, metric="rbf", gamma=gamma)
    pre = SVC(kernel="precomputed", tol=1e-10).fit(K, y)
    func = SVC(kernel=lambda A, B: pairwise_kernels(A, B, metric="rbf", gamma=gamma),
               tol=1e-10).fit(X, y)
    want = named.influence(Xt[:3], yt[:3])
    Kt = pairwise_kernels(Xt[:3], X, metric="rbf", gamma=gamma)
    np.testing.assert_allclose(pre.influence(Kt, yt[:3]), want, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(func.influence(Xt[:3], yt[:3]), want, rtol=1e-5, atol=1e-8)


def test_svc_nystroem_approximates_exact(threes_eights):
    """The Nystroem objective keeps the SVM's exact raw predictions and projects the
    Hessian: with most rows as landmarks it agrees with the exact map."""
    X, y, Xt, yt = threes_eights
    svm = SkSVC(C=1.0, tol=1e-10).fit(X, y)
    exact = skinfluence.Influence(svc_objective(svm, X, y, t=0.01))
    approx = skinfluence.Influence(svc_objective(svm, X, y, t=0.01, kernel_map="nystroem",
                                                 n_components=200, random_state=0))
    np.testing.assert_allclose(approx.objective.raw, exact.objective.raw, atol=1e-8)
    a, b = exact.influence(Xt[:5], yt[:5]), approx.influence(Xt[:5], yt[:5])
    assert pearson_r(a, b) > 0.95


def test_svc_multiclass_is_refused_with_a_clear_error(digits):
    X, y, Xt, yt = digits
    svm = SVC().fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="two classes"):
        svm.influence(Xt[:2], yt[:2])


def test_linear_svc_refuses_what_it_cannot_explain(cancer, wine):
    X, y, _, _ = wine
    cs = LinearSVC(multi_class="crammer_singer").fit(X, y)
    with pytest.raises(ValueError, match="crammer_singer"):
        cs.influence(X[:2], y[:2])
    X, y, _, _ = cancer
    l1 = LinearSVC(penalty="l1", dual=False).fit(X, y)
    with pytest.raises(ValueError, match="l1"):
        l1.influence(X[:2], y[:2])


def test_smooth_hinge_classifier_is_its_own_objective(cancer, wine):
    for X, y, Xt, yt in (cancer, wine):
        sw = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
        clf = SmoothHingeClassifier(C=0.5, t=0.05, class_weight="balanced").fit(
            X, y, sample_weight=sw)
        engine = clf.influence_explainer()
        engine.fit()
        assert engine.diagnostics_["gradient_norm"] < 1e-9
        assert clf.score(Xt, yt) > 0.9
    # as t -> 0 it tends to the hinge SVM with the same objective: libsvm's linear SVC
    # (unpenalized intercept), at a distance of order t
    X, y, _, _ = cancer
    hinge = SkSVC(kernel="linear", C=0.5, tol=1e-10).fit(X, y)
    for t, atol in ((0.01, 3e-2), (0.001, 3e-3)):
        smooth = SmoothHingeClassifier(C=0.5, t=t).fit(X, y)
        np.testing.assert_allclose(smooth.coef_, hinge.coef_, atol=atol)
        np.testing.assert_allclose(smooth.intercept_, hinge.intercept_, atol=atol)


@pytest.mark.parametrize("make", [
    lambda: SmoothHingeClassifier(C=0.5, t=0.1, tol=1e-12),
    lambda: LinearSVC(C=0.05, dual=False, tol=1e-12, max_iter=100000),
])
def test_linear_perturbation_influence_matches_refits(make, cancer):
    """I_pert / n is the derivative of the refitted test loss in a training row."""
    X, y, Xt, yt = cancer
    model = make().fit(X, y)
    Xq, yq = Xt[:3], yt[:3]
    # rows that carry loss (a row beyond the margin moves nothing)
    rows = np.argsort(model.self_influence())[:2]
    pert = model.perturbation_influence(Xq, yq, train_indices=rows)
    direction = np.random.RandomState(0).randn(X.shape[1])
    direction /= np.linalg.norm(direction)
    eps = 1e-3
    for k, row in enumerate(rows):
        losses = []
        for sign in (1.0, -1.0):
            moved = X.copy()
            moved[row] += sign * eps * direction
            refit = clone(model).fit(moved, y)
            losses.append(skinfluence.explain(refit, moved, y).test_loss(Xq, yq))
        fd = (losses[0] - losses[1]) / (2 * eps)
        np.testing.assert_allclose(pert[k] @ direction / len(y), fd, rtol=1e-3,
                                   atol=1e-4 * np.abs(fd).max())
