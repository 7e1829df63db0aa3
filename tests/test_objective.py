"""The engine's objective is the one scikit-learn minimized; its derivatives are right."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

import skinfluence
from skinfluence.losses import BinaryLogistic, SoftmaxCrossEntropy
from skinfluence.objective import GLMObjective, LinearDesign


def _reference_value(X, y_enc, coef, lam, sw, binary):
    """J written independently with numpy: sum_i s_i l_i + 0.5 sum lam_j theta_j^2."""
    Xt = np.hstack([X, np.ones((X.shape[0], 1))])
    raw = Xt @ coef.T
    if binary:
        z = raw[:, 0]
        losses = np.logaddexp(0, z) - y_enc * z
    else:
        losses = logsumexp(raw, axis=1) - raw[np.arange(len(y_enc)), y_enc]
    return sw @ losses + 0.5 * np.sum(lam * coef**2)


@pytest.mark.parametrize("binary", [True, False])
def test_gradient_and_hessian_match_finite_differences(binary, wine):
    X, y, _, _ = wine
    X = X[:40, :5]
    y = y[:40]
    rng = np.random.RandomState(1)
    K = 1 if binary else 3
    y_enc = (y == 1).astype(float) if binary else y
    coef = rng.randn(K, 6) * 0.3
    lam = np.r_[np.full(5, 0.7), 0.0]
    sw = rng.uniform(0.5, 2.0, len(y))
    loss = BinaryLogistic() if binary else SoftmaxCrossEntropy()

    def make(c):
        return GLMObjective(loss, LinearDesign(X), y_enc, c, penalty=lam, sample_weight=sw)

    obj = make(coef)
    eps = 1e-6
    flat = coef.ravel()
    fd_grad = np.empty_like(flat)
    fd_hess = np.empty((flat.size, flat.size))
    for j in range(flat.size):
        step = np.zeros_like(flat)
        step[j] = eps
        plus, minus = (flat + step).reshape(coef.shape), (flat - step).reshape(coef.shape)
        fd_grad[j] = (_reference_value(X, y_enc, plus, lam, sw, binary)
                      - _reference_value(X, y_enc, minus, lam, sw, binary)) / (2 * eps)
        fd_hess[:, j] = (make(plus).gradient() - make(minus).gradient()) / (2 * eps)
    np.testing.assert_allclose(obj.gradient(), fd_grad, rtol=1e-6, atol=1e-6)
    H = obj.hessian()
    np.testing.assert_allclose(H, fd_hess, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    V = rng.randn(flat.size, 3)
    np.testing.assert_allclose(obj.hessp(V), H @ V, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(obj.hessian_diagonal(), np.diag(H), rtol=1e-10)
    # mini-batch Hessian: rows restricted and rescaled
    rows = np.array([0, 3, 7])
    sub = GLMObjective(loss, LinearDesign(X[rows]), y_enc[rows], coef, penalty=lam,
                       sample_weight=sw[rows])
    np.testing.assert_allclose(obj.hessp(V, index=rows, data_scale=2.0),
                               2.0 * (sub.hessian() - np.diag(np.tile(lam, K))) @ V
                               + np.tile(lam, K)[:, None] * V, rtol=1e-10, atol=1e-10)


def test_softmax_null_space_is_exact(wine):
    X, y, _, _ = wine
    clf = SkLogisticRegression(tol=1e-10, max_iter=2000).fit(X, y)
    obj = skinfluence.explain(clf, X, y).objective
    null = obj.null_space()
    assert null.shape == (obj.n_params, 1)
    np.testing.assert_allclose(obj.hessp(null), 0, atol=1e-10)
    # every per-sample gradient is orthogonal to it, so solving in the complement is exact
    np.testing.assert_allclose(obj.per_sample_gradients() @ null, 0, atol=1e-12)


CONFIGS = {
    "lbfgs": dict(),
    "C=0.05": dict(C=0.05),
    "no-intercept": dict(fit_intercept=False),
    "class_weight": dict(class_weight={0: 3.0, 1: 0.5}),
    "balanced": dict(class_weight="balanced"),
    "newton-cg": dict(solver="newton-cg"),
    "liblinear": dict(solver="liblinear", intercept_scaling=3.0, tol=1e-12),
    "unpenalized": dict(C=np.inf),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("multiclass", [False, True])
def test_fitted_sklearn_model_is_a_stationary_point(name, multiclass, cancer, wine):
    """If the engine's J were not sklearn's, sklearn's optimum would not zero its gradient."""
    X, y, _, _ = wine if multiclass else cancer
    if multiclass and name == "liblinear":
        pytest.skip("liblinear is binary only")
    if name == "unpenalized":
        X = X[:, :4]  # keep it non-separable so the optimum exists
    params = dict(tol=1e-10, max_iter=10000)
    params.update(CONFIGS[name])
    sw = np.random.RandomState(0).uniform(0.2, 3.0, len(y))
    clf = SkLogisticRegression(**params).fit(X, y, sample_weight=sw)
    inf = skinfluence.explain(clf, X, y, sample_weight=sw)
    inf.fit()
    assert inf.diagnostics_["gradient_norm"] < 1e-6
    # and a different penalty would not be: the check has teeth
    wrong = skinfluence.explain(clf, X, y)  # forgets the sample weights
    wrong.convergence_tol = np.inf
    wrong.fit()
    assert wrong.diagnostics_["gradient_norm"] > 1e-4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_design_equals_dense(dtype, cancer):
    X, y, _, _ = cancer
    X = np.where(np.abs(X) < 0.8, 0.0, X).astype(dtype)
    coef = np.random.RandomState(0).randn(1, X.shape[1] + 1) * 0.1
    dense = GLMObjective(BinaryLogistic(), LinearDesign(X), (y == 1) * 1.0, coef, penalty=1.0)
    sparse = GLMObjective(BinaryLogistic(), LinearDesign(sp.csr_matrix(X)), (y == 1) * 1.0,
                          coef, penalty=1.0)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(sparse.hessian(), dense.hessian(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(sparse.gradient(), dense.gradient(), rtol=rtol, atol=rtol)
    V = np.random.RandomState(1).randn(coef.size, 2)
    np.testing.assert_allclose(sparse.hessp(V), dense.hessp(V), rtol=rtol, atol=rtol)


def test_gram_with_negative_weights_and_liblinear_scaling(cancer):
    X, _, _, _ = cancer
    w = np.random.RandomState(0).randn(X.shape[0])
    design = LinearDesign(X, fit_intercept=True, intercept_scaling=2.5)
    Xt = np.hstack([X, np.full((X.shape[0], 1), 2.5)])
    np.testing.assert_allclose(design.gram(w), Xt.T @ (w[:, None] * Xt), rtol=1e-10, atol=1e-9)
    # one sign throughout takes the rank-k update path: non-negative and non-positive
    for same_sign in (np.abs(w), -np.abs(w)):
        np.testing.assert_allclose(design.gram(same_sign), Xt.T @ (same_sign[:, None] * Xt),
                                   rtol=1e-10, atol=1e-9)
