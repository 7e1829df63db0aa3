"""Kernel maps and kernel models: the whitened map, input gradients, and influence
against independent oracles (the linear model it must equal, finite differences of
actual refits, leave-one-out retraining)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.kernel_ridge import KernelRidge as SkKernelRidge
from sklearn.metrics.pairwise import pairwise_kernels

import skinfluence
from skinfluence._kernel import ExactKernelMap, KernelSpec, NystroemKernelMap
from skinfluence.kernel_model import KernelLogisticRegression, KernelSmoothHingeClassifier
from skinfluence.kernel_ridge import KernelRidge
from skinfluence.linear_model import LogisticRegression
from skinfluence.validation import loo_retrain, pearson_r


@pytest.fixture(scope="module")
def threes_eights():
    """Digits 3 vs 8 in [0, 1]: 150 training rows, the rest for testing."""
    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 8)
    X, y = X[keep] / 16.0, y[keep]
    perm = np.random.RandomState(0).permutation(len(y))
    X, y = X[perm], y[perm]
    return X[:150], y[:150], X[150:], y[150:]


KERNELS = [
    ("linear", {}),
    ("poly", {"gamma": 0.3, "degree": 3, "coef0": 1.0}),
    ("rbf", {"gamma": 0.7}),
    ("sigmoid", {"gamma": 0.1, "coef0": 0.2}),
]


@pytest.mark.parametrize("kernel, params", KERNELS, ids=[k for k, _ in KERNELS])
def test_kernel_input_gradient_matches_finite_differences(kernel, params):
    rng = np.random.RandomState(0)
    A, B = rng.randn(4, 5), rng.randn(6, 5)
    coeffs = rng.randn(6, 3)
    spec = KernelSpec(kernel, params)
    grad = spec.input_gradient(A, B, coeffs)
    eps = 1e-6
    for j in range(5):
        step = np.zeros_like(A)
        step[:, j] = eps
        fd = (spec(A + step, B) - spec(A - step, B)) / (2 * eps) @ coeffs
        np.testing.assert_allclose(grad[:, :, j], fd, rtol=1e-6, atol=1e-8)


def test_exact_map_reproduces_the_kernel(threes_eights):
    X, _, Xt, _ = threes_eights
    spec = KernelSpec("rbf", {"gamma": 0.5})
    kmap = ExactKernelMap(spec).fit(X)
    K = pairwise_kernels(X, X, metric="rbf", gamma=0.5)
    L = kmap.train_features_
    np.testing.assert_allclose(L @ L.T, K, atol=1e-10)
    np.testing.assert_allclose(kmap.transform(X), L, atol=1e-8)
    # new points: z(x) . z(x_i) is the kernel exactly when x is in the training span,
    # and its projection otherwise: never more than k(x, x_i)
    Z = kmap.transform(Xt[:5])
    assert np.all(np.sum(Z**2, axis=1) <= 1.0 + 1e-10)
    # a precomputed kernel gives the same map
    pre = ExactKernelMap(KernelSpec("precomputed")).fit(K)
    np.testing.assert_allclose(np.abs(pre.train_features_), np.abs(L), atol=1e-8)


def test_non_psd_kernel_is_refused(threes_eights):
    X = threes_eights[0]
    # a distance is a valid "kernel" for pairwise_kernels but not positive semi-definite
    distances = pairwise_kernels(X[:30], X[:30], metric="rbf", gamma=0.5)
    distances = 1.0 - 2.0 * distances
    with pytest.raises(ValueError, match="not positive semi-definite"):
        ExactKernelMap(KernelSpec("precomputed")).fit(distances)


def test_linear_kernel_model_equals_the_linear_model(threes_eights):
    """Kernel logistic regression with k(x, z) = x.z *is* logistic regression: every
    influence quantity must agree, which checks the map, its whitening and the
    perturbation terms (including the one outside the training span: zero pixels)."""
    X, y, Xt, yt = threes_eights
    kern = KernelLogisticRegression(C=0.5, kernel="linear", tol=1e-12).fit(X, y)
    lin = LogisticRegression(C=0.5, tol=1e-12, max_iter=10000, solver="newton-cg").fit(X, y)
    np.testing.assert_allclose(kern.dual_coef_[:, 0] @ X, lin.coef_[0], atol=1e-7)
    np.testing.assert_allclose(kern.intercept_, lin.intercept_, atol=1e-7)
    Xq, yq = Xt[:4], yt[:4]
    for method in ("influence", "perturbation_influence"):
        got = getattr(kern, method)(Xq, yq)
        want = getattr(lin, method)(Xq, yq)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * np.abs(want).max())
    np.testing.assert_allclose(kern.loo_effect(Xq, yq, method="newton"),
                               lin.loo_effect(Xq, yq, method="newton"), rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(kern.perturbation_influence(Xq, yq, aggregate="mean"),
                               lin.perturbation_influence(Xq, yq, aggregate="mean"),
                               rtol=1e-5, atol=1e-9)


def _refit_loss_derivative(model, X, y, X_test, y_test, row, direction, eps=1e-3):
    """Central difference of the test losses when training row `row` moves."""
    losses = []
    for sign in (1.0, -1.0):
        moved = X.copy()
        moved[row] += sign * eps * direction
        refit = clone(model).fit(moved, y)
        losses.append(skinfluence.explain(refit, moved, y).test_loss(X_test, y_test))
    return (losses[0] - losses[1]) / (2 * eps)


PERTURBATION_MODELS = {
    "logistic-rbf": KernelLogisticRegression(C=3.0, kernel="rbf", tol=1e-12),
    "logistic-poly": KernelLogisticRegression(C=0.5, kernel="poly", degree=2, coef0=1.0,
                                              tol=1e-12),
    "smooth-hinge-rbf": KernelSmoothHingeClassifier(C=2.0, t=0.1, tol=1e-12),
}


@pytest.mark.parametrize("name", list(PERTURBATION_MODELS))
def test_kernel_perturbation_influence_matches_refits(name, threes_eights):
    """I_pert / n is the derivative of the refitted model's test loss in a training row."""
    X, y, Xt, yt = threes_eights
    model = clone(PERTURBATION_MODELS[name]).fit(X, y)
    # the kernel width is a fitted value; refits must not re-estimate it from moved data
    model.set_params(gamma=model._gamma)
    Xq, yq = Xt[:3], yt[:3]
    engine = model.influence_explainer()
    pert = engine.perturbation_influence(Xq, yq)
    direction = np.random.RandomState(1).randn(X.shape[1])
    direction /= np.linalg.norm(direction)
    for row in (0, 17):
        fd = _refit_loss_derivative(model, X, y, Xq, yq, row, direction)
        predicted = pert[row] @ direction / len(y)
        np.testing.assert_allclose(predicted, fd, rtol=2e-3, atol=1e-4 * np.abs(fd).max())


def test_test_side_term_is_needed(threes_eights):
    """Without the part of H^-1 g_t outside the training span the derivative is wrong:
    the check above has teeth."""
    X, y, Xt, yt = threes_eights
    model = KernelLogisticRegression(C=3.0, tol=1e-12).fit(X, y)
    model.set_params(gamma=model._gamma)
    engine = model.influence_explainer()
    Xq, yq = Xt[:3], yt[:3]
    full = engine.perturbation_influence(Xq, yq, train_indices=[17])
    test_term = engine.objective.test_input_cross_products
    try:
        engine.objective.test_input_cross_products = lambda *args: 0.0
        partial = engine.perturbation_influence(Xq, yq, train_indices=[17])
    finally:
        engine.objective.test_input_cross_products = test_term
    direction = np.random.RandomState(1).randn(X.shape[1])
    direction /= np.linalg.norm(direction)
    fd = _refit_loss_derivative(model, X, y, Xq, yq, 17, direction)
    err_full = np.abs(full[0] @ direction / len(y) - fd).max()
    err_partial = np.abs(partial[0] @ direction / len(y) - fd).max()
    assert err_partial > 20 * err_full


def test_nystroem_perturbation_matches_refits_off_the_landmarks(threes_eights):
    """With a Nystroem map the landmarks stay put: moving any other row is exact."""
    X, y, Xt, yt = threes_eights
    model = KernelLogisticRegression(C=2.0, kernel_map="nystroem", n_components=60,
                                     random_state=0, tol=1e-12).fit(X, y)
    model.set_params(gamma=model._gamma)
    landmarks = model.kernel_map_.nystroem_.component_indices_
    row = int(np.setdiff1d(np.arange(len(y)), landmarks)[0])
    Xq, yq = Xt[:3], yt[:3]
    pert = model.perturbation_influence(Xq, yq, train_indices=[row])[0]
    direction = np.random.RandomState(2).randn(X.shape[1])
    direction /= np.linalg.norm(direction)
    fd = _refit_loss_derivative(model, X, y, Xq, yq, row, direction)
    np.testing.assert_allclose(pert @ direction / len(y), fd, rtol=2e-3,
                               atol=1e-4 * np.abs(fd).max())


def test_kernel_logistic_loo_matches_retraining(threes_eights):
    """Kernel logistic regression: predicted vs actual leave-one-out change, R >= 0.95."""
    X, y, Xt, yt = threes_eights
    model = KernelLogisticRegression(C=3.0, tol=1e-12).fit(X, y)
    raw = model.decision_function(Xt)
    margin = np.where(yt == model.classes_[1], raw, -raw)
    test = int(np.argmin(np.abs(margin)))  # a low-margin test point
    Xq, yq = Xt[test:test + 1], yt[test:test + 1]
    predicted = model.loo_effect(Xq, yq)[:, 0]
    top = np.argsort(-np.abs(predicted))[:40]
    actual = loo_retrain(model, X, y, top, Xq, yq, refit_params={"tol": 1e-12}).loss_change[:, 0]
    assert pearson_r(predicted[top], actual) >= 0.95
    newton = model.loo_effect(Xq, yq, method="newton", train_indices=top)[:, 0]
    assert pearson_r(newton, actual) >= 0.99


@pytest.mark.parametrize("kernel, params", [("rbf", {"gamma": 0.7}),
                                            ("poly", {"degree": 2, "gamma": 0.5}),
                                            ("laplacian", {"gamma": 0.1})])
def test_kernel_ridge_newton_loo_is_exact(kernel, params, threes_eights):
    """A quadratic objective: one Newton step is the leave-one-out refit, to ~1e-8."""
    X, _, Xt, _ = threes_eights
    rng = np.random.RandomState(0)
    y = X @ rng.randn(X.shape[1]) + 0.1 * rng.randn(len(X))
    yt = Xt[:5] @ rng.randn(X.shape[1])
    sw = rng.uniform(0.5, 2.0, len(y))
    model = KernelRidge(alpha=0.05, kernel=kernel, **params).fit(X, y, sample_weight=sw)
    engine = model.influence_explainer()
    engine.fit()
    assert engine.diagnostics_["gradient_norm"] < 1e-10
    loo_raw = engine.loo_raw_predictions()[:, 0]
    rows = np.arange(0, len(y), 15)
    newton = engine.loo_effect(Xt[:5], yt, method="newton", train_indices=rows)
    base = 0.5 * (model.predict(Xt[:5]) - yt) ** 2
    for k, row in enumerate(rows):
        keep = np.arange(len(y)) != row
        refit = clone(model).fit(X[keep], y[keep], sample_weight=sw[keep])
        np.testing.assert_allclose(loo_raw[row], refit.predict(X[row:row + 1])[0], atol=1e-8)
        actual = 0.5 * (refit.predict(Xt[:5]) - yt) ** 2 - base
        np.testing.assert_allclose(newton[k], actual, atol=1e-8)


def test_plain_kernel_ridge_is_explained_with_its_own_objective(threes_eights):
    X, _, _, _ = threes_eights
    y = X.sum(axis=1)
    sw = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    model = SkKernelRidge(alpha=0.3, kernel="rbf", gamma=0.4).fit(X, y, sample_weight=sw)
    good = skinfluence.explain(model, X, y, sample_weight=sw)
    good.fit()
    assert good.diagnostics_["gradient_norm"] < 1e-10
    wrong = skinfluence.explain(model, X, y, convergence_tol=np.inf)  # forgets the weights
    wrong.fit()
    assert wrong.diagnostics_["gradient_norm"] > 1e-4
    # a precomputed kernel is the same model
    K = pairwise_kernels(X, X, metric="rbf", gamma=0.4)
    pre = SkKernelRidge(alpha=0.3, kernel="precomputed").fit(K, y, sample_weight=sw)
    np.testing.assert_allclose(
        skinfluence.explain(pre, K, y, sample_weight=sw).self_influence(),
        good.self_influence(), rtol=1e-6)


def test_multitarget_kernel_ridge_and_one_alpha_per_target(threes_eights):
    X = threes_eights[0]
    Y = np.column_stack([X.sum(1), X[:, :5].sum(1)])
    model = KernelRidge(alpha=0.1, kernel="rbf", gamma=0.5).fit(X, Y)
    loo = model.influence_explainer().loo_raw_predictions()
    keep = np.arange(len(X)) != 3
    refit = clone(model).fit(X[keep], Y[keep])
    np.testing.assert_allclose(loo[3], refit.predict(X[3:4])[0], atol=1e-8)
    per_target = KernelRidge(alpha=[0.1, 0.2], kernel="rbf").fit(X, Y)
    with pytest.raises(ValueError, match="one alpha per target"):
        per_target.influence(X[:2], Y[:2])


def test_precomputed_and_callable_kernels_give_the_same_influence(threes_eights):
    X, y, Xt, yt = threes_eights
    by_name = KernelLogisticRegression(C=1.0, gamma=0.5, tol=1e-12).fit(X, y)
    by_callable = KernelLogisticRegression(
        C=1.0, kernel=lambda A, B: pairwise_kernels(A, B, metric="rbf", gamma=0.5),
        tol=1e-12).fit(X, y)
    K = pairwise_kernels(X, X, metric="rbf", gamma=0.5)
    Kt = pairwise_kernels(Xt[:3], X, metric="rbf", gamma=0.5)
    pre = KernelLogisticRegression(C=1.0, kernel="precomputed", tol=1e-12).fit(K, y)
    want = by_name.influence(Xt[:3], yt[:3])
    np.testing.assert_allclose(by_callable.influence(Xt[:3], yt[:3]), want, rtol=1e-6,
                               atol=1e-10)
    np.testing.assert_allclose(pre.influence(Kt, yt[:3]), want, rtol=1e-6, atol=1e-10)
    with pytest.raises(ValueError, match="gradient"):
        pre.perturbation_influence(Kt, yt[:3])


def test_multiclass_kernel_models(digits):
    X, y, Xt, yt = digits
    X, y = X[:200], y[:200]
    for model in (KernelLogisticRegression(C=2.0, tol=1e-10),
                  KernelSmoothHingeClassifier(C=2.0, t=0.2, tol=1e-10)):
        model.fit(X, y)
        engine = model.influence_explainer()
        engine.fit()
        assert engine.diagnostics_["gradient_norm"] < 1e-8
        assert model.score(Xt, yt) > 0.85
        assert engine.influence(Xt[:2], yt[:2]).shape == (200, 2)


def test_nystroem_with_all_rows_as_landmarks_equals_exact(threes_eights):
    X, y, Xt, yt = threes_eights
    spec = KernelSpec("rbf", {"gamma": 0.5})
    exact = ExactKernelMap(spec).fit(X)
    nys = NystroemKernelMap(spec, n_components=len(X), random_state=0).fit(X)
    np.testing.assert_allclose(nys.train_features_ @ nys.train_features_.T,
                               exact.train_features_ @ exact.train_features_.T, atol=1e-8)
