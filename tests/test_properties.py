"""Properties that hold on every well-posed problem, checked on random ones (hypothesis).

A problem is a binary logistic regression with an L2 penalty (strictly convex, so the
Hessian is positive definite), fitted by scikit-learn to ``tol=1e-12``.  Each property
is an identity of the mathematics, so the tolerances are those of floating point.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

import skinfluence

# derandomized: the same examples on every run (a CI failure is reproducible); set
# HYPOTHESIS_PROFILE=explore to draw new ones (see conftest.py)
PROPERTY = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, weighted=False):
    """A fitted model, its training rows and three test points."""
    n = draw(st.integers(25, 70))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    C = draw(st.sampled_from([0.1, 1.0, 10.0]))
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    rng = np.random.default_rng(seed)
    X = scale * rng.standard_normal((n, d))
    y = (rng.random(n) < expit(X @ rng.standard_normal(d))).astype(int)
    y[:2] = [0, 1]  # both classes
    X_test = scale * rng.standard_normal((3, d))
    y_test = rng.integers(0, 2, 3)
    weights = None
    if weighted:
        weights = np.ones(n)
        weights[draw(st.integers(0, n - 1))] = 2.0
    clf = LogisticRegression(C=C, tol=1e-12, max_iter=10_000, solver="newton-cholesky")
    clf.fit(X, y, sample_weight=weights)
    return clf, X, y, X_test, y_test, weights


def _close(actual, expected, rtol):
    scale = max(float(np.abs(expected).max()), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@PROPERTY
@given(problems())
def test_solvers_agree(problem):
    clf, X, y, X_test, y_test, _ = problem
    direct = skinfluence.explain(clf, X, y, solver="direct").influence(X_test, y_test)
    cg = skinfluence.explain(clf, X, y, solver="cg", solver_options={"rtol": 1e-12})
    woodbury = skinfluence.explain(clf, X, y, solver="woodbury")
    _close(cg.influence(X_test, y_test), direct, 1e-6)
    _close(woodbury.influence(X_test, y_test), direct, 1e-8)


@PROPERTY
@given(problems(), st.integers(0, 2**32 - 1))
def test_permuting_rows_permutes_the_result(problem, seed):
    clf, X, y, X_test, y_test, _ = problem
    order = np.random.default_rng(seed).permutation(len(y))
    engine = skinfluence.explain(clf, X, y)
    permuted = skinfluence.explain(clf, X[order], y[order])
    # the objective is a sum: the same numbers up to its summation order
    _close(permuted.influence(X_test, y_test), engine.influence(X_test, y_test)[order], 1e-9)
    _close(permuted.self_influence(), engine.self_influence()[order], 1e-9)
    _close(permuted.loo_effect(X_test, y_test, method="newton"),
           engine.loo_effect(X_test, y_test, method="newton")[order], 1e-9)


@PROPERTY
@given(problems(weighted=True))
def test_duplicating_a_row_doubles_its_removal_effect(problem):
    """A row of weight 2 is the same objective as two copies of it.

    First order: removing the weight-2 row changes the test loss by exactly twice what
    removing one of the two copies does.  Newton: removing the weight-2 row is one
    exact step of the same objective as removing both copies.
    """
    clf, X, y, X_test, y_test, weights = problem
    row = int(np.flatnonzero(weights == 2.0)[0])
    weighted = skinfluence.explain(clf, X, y, sample_weight=weights)
    copies = skinfluence.explain(clf, np.vstack([X, X[row]]), np.append(y, y[row]))
    one_copy = copies.loo_effect(X_test, y_test)[row]
    _close(copies.loo_effect(X_test, y_test)[-1], one_copy, 1e-12)
    _close(weighted.loo_effect(X_test, y_test)[row], 2.0 * one_copy, 1e-9)
    _close(copies.group_effect([[row, len(y)]], X_test, y_test)[0], 2.0 * one_copy, 1e-9)
    _close(copies.group_effect([[row, len(y)]], X_test, y_test, method="newton")[0],
           weighted.loo_effect(X_test, y_test, method="newton")[row], 1e-8)


@PROPERTY
@given(problems())
def test_float32_rows_give_float64_results_within_their_precision(problem):
    clf, X, y, X_test, y_test, _ = problem
    engine = skinfluence.explain(clf, X, y, solver="direct")
    exact = engine.influence(X_test, y_test)
    single = skinfluence.explain(clf, X.astype(np.float32), y, solver="direct",
                                 convergence_tol=np.inf)
    assert single.objective.design.X.dtype == np.float32
    # rows rounded to float32 move H and the gradients by ~eps32 relative; the solve
    # amplifies that by at most the condition number of H
    eigenvalues = np.linalg.eigvalsh(engine.objective.hessian())
    tolerance = 50 * np.finfo(np.float32).eps * eigenvalues[-1] / eigenvalues[0]
    _close(single.influence(X_test.astype(np.float32), y_test), exact, min(tolerance, 0.5))


@pytest.mark.parametrize("solver", ["direct", "cg", "lissa"])
def test_random_state_makes_results_reproducible(cancer, solver):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    options = dict(solver=solver, random_state=3,
                   solver_options={"depth": 200, "repeats": 2} if solver == "lissa" else None)
    engine = skinfluence.explain(clf, X, y, **options)
    first = engine.influence(Xt[:5], yt[:5])
    assert np.array_equal(engine.influence(Xt[:5], yt[:5]), first)  # the same engine again
    assert np.array_equal(skinfluence.explain(clf, X, y, **options).influence(Xt[:5], yt[:5]),
                          first)  # a new engine with the same seed
    # each test point's column is computed alone: splitting the test set changes nothing
    split = np.hstack([engine.influence(Xt[:2], yt[:2]), engine.influence(Xt[2:5], yt[2:5])])
    np.testing.assert_allclose(split, first, rtol=1e-12, atol=1e-12 * np.abs(first).max())
