"""Every inverse-HVP solver against a dense solve written here."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

import skinfluence
from skinfluence.exceptions import IndefiniteHessianWarning
from skinfluence.solvers import CGSolver, DirectSolver, LissaSolver, WoodburySolver, make_solver


def _objective(data, C=1.0, sparse=False, **kw):
    X, y, _, _ = data
    clf = SkLogisticRegression(C=C, tol=1e-10, max_iter=5000, **kw).fit(X, y)
    X_used = sp.csr_matrix(X) if sparse else X
    return skinfluence.explain(clf, X_used, y).objective


def _dense_solution(obj, B, damping=0.0):
    """Oracle: pseudo-inverse of the explicit Hessian (the null space never touched)."""
    H = obj.hessian() + damping * np.eye(obj.n_params)
    return np.linalg.pinv(H, rcond=1e-12, hermitian=True) @ B


def _rhs(obj, m=5):
    return obj.per_sample_gradients(np.arange(m)).T


@pytest.mark.parametrize("multiclass", [False, True])
def test_direct_matches_dense_solve(multiclass, cancer, wine):
    obj = _objective(wine if multiclass else cancer)
    B = _rhs(obj)
    x = DirectSolver().fit(obj).solve(B)
    expected = _dense_solution(obj, B)
    np.testing.assert_allclose(x, expected, rtol=1e-8, atol=1e-10 * np.abs(expected).max())
    # whitening gives the same quadratic forms
    np.testing.assert_allclose(DirectSolver().fit(obj).quadratic_forms(B),
                               np.einsum("ij,ij->j", B, expected), rtol=1e-8)


@pytest.mark.parametrize("multiclass", [False, True])
def test_cg_matches_dense_solve_to_its_tolerance(multiclass, cancer, wine):
    obj = _objective(wine if multiclass else cancer)
    B = _rhs(obj)
    solver = CGSolver(rtol=1e-10, maxiter=5000).fit(obj)
    x = solver.solve(B)
    expected = _dense_solution(obj, B)
    H = obj.hessian()
    # CG's own criterion: residual relative to the right-hand side
    resid = np.linalg.norm(H @ x - B, axis=0) / np.linalg.norm(B, axis=0)
    assert resid.max() < 1e-9
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())


def test_cg_in_parallel_equals_serial(cancer):
    obj = _objective(cancer)
    B = _rhs(obj, 6)
    serial = CGSolver(rtol=1e-10).fit(obj).solve(B)
    parallel = CGSolver(rtol=1e-10, n_jobs=2).fit(obj).solve(B)
    np.testing.assert_allclose(parallel, serial, rtol=1e-12, atol=1e-14)


def test_lissa_correlates_with_dense_solve(cancer):
    obj = _objective(cancer, C=0.05)
    B = _rhs(obj, 3)
    expected = _dense_solution(obj, B)
    solver = LissaSolver(depth=600, repeats=4, batch_size=64, random_state=0).fit(obj)
    x = solver.solve(B)
    for j in range(B.shape[1]):
        assert np.corrcoef(x[:, j], expected[:, j])[0, 1] >= 0.98
    # reproducible with the same random_state
    again = LissaSolver(depth=600, repeats=4, batch_size=64, random_state=0).fit(obj).solve(B)
    np.testing.assert_array_equal(x, again)


def test_lissa_reports_divergence(cancer):
    obj = _objective(cancer)
    with pytest.raises(FloatingPointError, match="diverged"):
        LissaSolver(depth=200, scale=1e-3, random_state=0).fit(obj).solve(_rhs(obj, 1))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_woodbury_matches_dense_solve(sparse, fit_intercept, cancer):
    X, y, Xt, yt = cancer
    # fewer rows than parameters: the regime the dual solve is for
    data = (X[:20], y[:20], Xt, yt)
    obj = _objective(data, sparse=sparse, fit_intercept=fit_intercept)
    B = np.random.RandomState(0).randn(obj.n_params, 4)
    for damping in (0.0, 0.3):
        x = WoodburySolver(damping).fit(obj).solve(B)
        np.testing.assert_allclose(x, _dense_solution(obj, B, damping), rtol=1e-8, atol=1e-10)


def test_direct_damps_singular_hessian_and_says_how_much(cancer):
    X, y, _, _ = cancer
    # duplicate column and no penalty: H is singular along (e_a - e_b)
    X2 = np.hstack([X[:, :3], X[:, :1]])
    clf = SkLogisticRegression(C=np.inf, tol=1e-10, max_iter=5000).fit(X2, y)
    obj = skinfluence.explain(clf, X2, y).objective
    with pytest.warns(IndefiniteHessianWarning, match="added damping"):
        solver = DirectSolver().fit(obj)
    assert solver.damping_ > 0
    # gradients have no component along the null direction: the answer is the pinv's
    B = _rhs(obj)
    np.testing.assert_allclose(solver.solve(B), _dense_solution(obj, B), rtol=1e-4, atol=1e-6)


def test_direct_warns_on_indefinite_matrix():
    H = np.diag([2.0, 1.0, -0.5])
    with pytest.warns(IndefiniteHessianWarning, match="smallest eigenvalue -0.5"):
        solver = DirectSolver().fit_matrix(H.copy())
    # negative curvature is mirrored: the smallest eigenvalue becomes |-0.5|
    assert solver.damping_ == pytest.approx(1.0)
    b = np.array([1.0, 1.0, 1.0])
    np.testing.assert_allclose(solver.solve(b), b / (np.diag(H) + solver.damping_))


def test_damping_is_added_to_the_diagonal(cancer):
    obj = _objective(cancer)
    B = _rhs(obj)
    for name in ("direct", "cg"):
        x = make_solver(name, damping=5.0).fit(obj).solve(B)
        np.testing.assert_allclose(x, _dense_solution(obj, B, 5.0), rtol=1e-6)


def test_unknown_solver_is_refused():
    with pytest.raises(ValueError, match="Unknown solver 'qr'"):
        make_solver("qr")
    with pytest.raises(ValueError, match="damping must be >= 0"):
        DirectSolver(-1.0)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("params", [dict(), dict(fit_intercept=False),
                                    dict(solver="liblinear", intercept_scaling=2.0)])
def test_woodbury_leverage_matches_direct_quadratic_forms(sparse, params, cancer):
    X, y, Xt, yt = cancer
    obj = _objective((X[:25], y[:25], Xt, yt), sparse=sparse, **params)
    rows = obj.design.dense().T
    expected = DirectSolver().fit(obj).quadratic_forms(rows)
    np.testing.assert_allclose(WoodburySolver().fit(obj).leverage(), expected, rtol=1e-8)


def test_woodbury_leverage_with_vanishing_curvature(cancer):
    """Smooth hinge at small t: many rows have (numerically) zero curvature."""
    from skinfluence.losses import SmoothHinge
    from skinfluence.objective import GLMObjective, LinearDesign

    X, y, _, _ = cancer
    X, signs = X[:30], 2.0 * y[:30] - 1
    # put six rows exactly on the margin (full curvature); the rest are far from it
    Xa = np.hstack([X, np.ones((30, 1))])
    coef = np.linalg.lstsq(Xa[:6], signs[:6], rcond=None)[0][None, :]
    obj = GLMObjective(SmoothHinge(0.01), LinearDesign(X), signs, coef, penalty=0.5)
    w = obj.curvature[:, 0, 0]
    assert np.sum(w < 1e-10) >= 5 and np.sum(w > 1e-3) >= 1
    expected = DirectSolver().fit(obj).quadratic_forms(obj.design.dense().T)
    np.testing.assert_allclose(WoodburySolver().fit(obj).leverage(), expected, rtol=1e-8)


def test_woodbury_damps_an_intercept_without_curvature(cancer):
    """No row near the smooth hinge's margin: the intercept has zero curvature."""
    from skinfluence.losses import SmoothHinge
    from skinfluence.objective import GLMObjective, LinearDesign

    X, y, _, _ = cancer
    X, signs = X[:20], 2.0 * y[:20] - 1
    coef = np.zeros((1, X.shape[1] + 1))
    coef[0, -1] = 50.0  # every raw prediction is 50: margins far from 1 for every row
    obj = GLMObjective(SmoothHinge(0.001), LinearDesign(X), signs, coef, penalty=0.5)
    assert np.all(obj.curvature == 0)
    with pytest.warns(IndefiniteHessianWarning, match="unpenalized parameters"):
        solver = WoodburySolver().fit(obj)
    assert solver.damping_ > 0
    b = np.random.RandomState(0).randn(obj.n_params)
    assert np.all(np.isfinite(solver.solve(b)))


def test_penalized_kernel_mixes_dense_and_sparse_columns():
    """Frequent columns go through syrk, rare ones through a sparse product: same kernel."""
    import scipy.sparse as sp

    from skinfluence.objective import LinearDesign
    from skinfluence.solvers import _penalized_kernel

    rng = np.random.RandomState(0)
    n, d = 300, 400
    # column j is non-zero in a share of rows falling from 90% to 0.3%
    density = np.geomspace(0.9, 0.003, d)
    X = sp.csr_matrix(rng.standard_normal((n, d)) * (rng.random_sample((n, d)) < density))
    counts = np.diff(X.tocsc().indptr)
    assert np.sum(counts > n / 8) >= 50 and np.sum((counts > 0) & (counts <= n / 8)) >= 50
    scale = rng.uniform(0.5, 2.0, d + 1)
    scale[::7] = 0.0  # unpenalized columns are left out of the kernel
    for fit_intercept in (True, False):
        design = LinearDesign(X, fit_intercept=fit_intercept, intercept_scaling=1.5)
        Xt = design.dense()
        expected = (Xt * scale[:Xt.shape[1]]) @ Xt.T
        # small blocks: several syrk and sparse-product blocks
        kernel = _penalized_kernel(design, scale[:Xt.shape[1]], block=16)
        np.testing.assert_allclose(kernel, expected, rtol=1e-12, atol=1e-12)
