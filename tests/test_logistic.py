"""LogisticRegression: influence against formulas written here, retraining and statsmodels."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit, softmax
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

import skinfluence
from skinfluence.linear_model import LogisticRegression
from skinfluence.validation import loo_retrain, pearson_r

# newton-cg reaches 1e-12 in a few iterations; lbfgs stops on its ftol long before
TIGHT = dict(tol=1e-12, max_iter=20000, solver="newton-cg")
REFIT = dict(tol=1e-12, max_iter=20000)


@parametrize_with_checks([LogisticRegression(), LogisticRegression(C=0.5, solver="newton-cholesky")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------
# the formula, written out independently
# --------------------------------------------------------------------------------------
def _reference_influence(clf, X, y, Xt, yt, sw):
    """-n * C * s_i * g_t^T (C sum s H_i + P)^+ g_i straight from sklearn's objective."""
    n = X.shape[0]
    classes = clf.classes_
    one = np.ones((n, 1))
    Xa = np.hstack([X, one])
    Xta = np.hstack([Xt, np.ones((Xt.shape[0], 1))])
    W = np.hstack([clf.coef_, clf.intercept_[:, None]])
    if len(classes) == 2:
        p = expit(Xa @ W[0])
        G = (p - (y == classes[1]))[:, None] * Xa
        H = clf.C * (Xa * (sw * p * (1 - p))[:, None]).T @ Xa
        pt = expit(Xta @ W[0])
        Gt = (pt - (yt == classes[1]))[:, None] * Xta
        P = np.diag(np.r_[np.ones(X.shape[1]), 0.0])
    else:
        K, p1 = W.shape
        Y = (y[:, None] == classes[None, :]).astype(float)
        Pr = softmax(Xa @ W.T, axis=1)
        G = ((Pr - Y)[:, :, None] * Xa[:, None, :]).reshape(n, -1)
        H = np.zeros((K * p1, K * p1))
        for i in range(n):
            Di = np.diag(Pr[i]) - np.outer(Pr[i], Pr[i])
            H += clf.C * sw[i] * np.kron(Di, np.outer(Xa[i], Xa[i]))
        Yt = (yt[:, None] == classes[None, :]).astype(float)
        Prt = softmax(Xta @ W.T, axis=1)
        Gt = ((Prt - Yt)[:, :, None] * Xta[:, None, :]).reshape(len(yt), -1)
        P = np.kron(np.eye(K), np.diag(np.r_[np.ones(X.shape[1]), 0.0]))
    Hinv = np.linalg.pinv(H + P, hermitian=True)
    return -n * clf.C * sw[:, None] * (G @ Hinv @ Gt.T)


@pytest.mark.parametrize("multiclass", [False, True])
def test_influence_matches_reference_formula(multiclass, cancer, wine):
    X, y, Xt, yt = wine if multiclass else cancer
    X, y = X[:80], y[:80]
    sw = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    clf = LogisticRegression(C=0.3, **TIGHT).fit(X, y, sample_weight=sw)
    expected = _reference_influence(clf, X, y, Xt[:7], yt[:7], sw)
    got = clf.influence(Xt[:7], yt[:7])
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
    for solver in ("cg", "woodbury" if not multiclass else "direct"):
        other = clf.influence(Xt[:7], yt[:7], solver=solver, solver_options=None)
        np.testing.assert_allclose(other, expected, rtol=1e-5,
                                   atol=1e-7 * np.abs(expected).max())
    np.testing.assert_allclose(clf.loo_effect(Xt[:7], yt[:7]), -got / len(y))
    # the diagonal of influence(X_train) is self-influence
    np.testing.assert_allclose(np.diag(clf.influence(X[:9], y[:9], train_indices=np.arange(9))),
                               clf.self_influence(train_indices=np.arange(9)), rtol=1e-9)


# --------------------------------------------------------------------------------------
# against actual leave-one-out retraining, on real data
# --------------------------------------------------------------------------------------
def _worst_test_point(clf, Xt, yt):
    losses = clf.influence_explainer().test_loss(Xt, yt)
    t = int(np.argmax(losses))
    return Xt[t:t + 1], yt[t:t + 1]


def _loo_check(clf, X, y, Xt, yt, top=40, sample_weight=None):
    x_t, y_t = _worst_test_point(clf, Xt, yt)
    first = clf.loo_effect(x_t, y_t)[:, 0]
    newton = clf.loo_effect(x_t, y_t, method="newton")[:, 0]
    rows = np.argsort(-np.abs(first))[:top]
    # the clone keeps the estimator's own solver: only tighten it
    actual = loo_retrain(clf, X, y, rows, x_t, y_t, sample_weight=sample_weight,
                         refit_params=REFIT).loss_change[:, 0]
    return pearson_r(first[rows], actual), pearson_r(newton[rows], actual), rows, actual


def test_loo_binary_real_data(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.1, **TIGHT).fit(X, y)
    r_first, r_newton, _, _ = _loo_check(clf, X, y, Xt, yt)
    assert r_first >= 0.97
    assert r_newton >= 0.995


def test_loo_multinomial_real_data(digits):
    X, y, Xt, yt = digits
    clf = LogisticRegression(C=0.1, **TIGHT).fit(X, y)
    r_first, r_newton, _, _ = _loo_check(clf, X, y, Xt, yt)
    assert r_first >= 0.95
    assert r_newton >= 0.995


@pytest.mark.parametrize("params", [
    dict(solver="liblinear", intercept_scaling=2.0),
    dict(fit_intercept=False),
    dict(class_weight="balanced"),
])
def test_loo_variants(params, cancer):
    X, y, Xt, yt = cancer
    X, y = X[:150], y[:150]
    clf = LogisticRegression(C=0.1, **{**TIGHT, **params}).fit(X, y)
    _, r_newton, _, _ = _loo_check(clf, X, y, Xt, yt, top=20)
    assert r_newton >= 0.995


def test_loo_with_sample_weights_and_newton_parameters(cancer):
    X, y, Xt, yt = cancer
    X, y = X[:150], y[:150]
    sw = np.random.RandomState(3).uniform(0.5, 3.0, len(y))
    clf = LogisticRegression(C=0.2, **TIGHT).fit(X, y, sample_weight=sw)
    _, r_newton, rows, _ = _loo_check(clf, X, y, Xt, yt, top=20, sample_weight=sw)
    assert r_newton >= 0.995
    actual = loo_retrain(clf, X, y, rows[:8], sample_weight=sw, refit_params=TIGHT)
    d_coef, d_int = clf.loo_params(rows[:8], method="newton")
    # one Newton step from the fit lands within a few percent of the refit
    err = np.abs(d_coef - actual.coef_change).max() / np.abs(actual.coef_change).max()
    assert err < 0.05
    np.testing.assert_allclose(d_int, actual.intercept_change, rtol=0.1,
                               atol=0.05 * np.abs(actual.intercept_change).max())


def test_duplicated_row_equals_weight_two(cancer):
    """sklearn: weight 2 == the row twice; removing it == removing both copies."""
    X, y, Xt, yt = cancer
    X, y = X[:100], y[:100]
    sw = np.ones(len(y))
    sw[5] = 2.0
    weighted = LogisticRegression(C=0.5, **TIGHT).fit(X, y, sample_weight=sw)
    dup = LogisticRegression(C=0.5, **TIGHT).fit(np.vstack([X, X[5:6]]), np.r_[y, y[5]])
    got = weighted.loo_effect(Xt[:4], yt[:4], train_indices=[5])[0]
    expected = dup.group_effect([[5, 100]], Xt[:4], yt[:4])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    got_newton = weighted.loo_effect(Xt[:4], yt[:4], method="newton", train_indices=[5])[0]
    exp_newton = dup.group_effect([[5, 100]], Xt[:4], yt[:4], method="newton")[0]
    np.testing.assert_allclose(got_newton, exp_newton, rtol=1e-5)


def test_agrees_with_statsmodels_glm_influence(cancer):
    """An oracle nobody here wrote: statsmodels' one-step LOO parameter change."""
    sm = pytest.importorskip("statsmodels.api")
    X, y, _, _ = cancer
    X = X[:, :5]  # unpenalized and non-separable
    clf = LogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    res = sm.GLM(y, np.hstack([X, np.ones((len(y), 1))]), family=sm.families.Binomial()).fit(
        tol=1e-12)
    np.testing.assert_allclose(res.params, np.r_[clf.coef_[0], clf.intercept_], rtol=1e-6)
    infl = res.get_influence()
    d_coef, d_int = clf.loo_params(method="newton")
    ours = np.hstack([d_coef[:, 0, :], d_int])
    # statsmodels' d_params is params - params_without_i
    np.testing.assert_allclose(ours, -infl.d_params, rtol=1e-5,
                               atol=1e-7 * np.abs(infl.d_params).max())


# --------------------------------------------------------------------------------------
# perturbations, edits and groups against retraining
# --------------------------------------------------------------------------------------
def test_perturbation_influence_matches_retraining_finite_difference(cancer):
    X, y, Xt, yt = cancer
    X, y = X[:120], y[:120]
    clf = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    x_t, y_t = _worst_test_point(clf, Xt, yt)
    pert = clf.perturbation_influence(x_t, y_t)  # (n, 1, d)
    base = clf.influence_explainer().test_loss(x_t, y_t)[0]
    n = len(y)
    for i, j in [(3, 0), (17, 5), (40, 12)]:
        eps = 1e-3
        changes = []
        for sign in (1, -1):
            X2 = X.copy()
            X2[i, j] += sign * eps
            refit = LogisticRegression(C=0.5, **TIGHT).fit(X2, y)
            changes.append(refit.influence_explainer().test_loss(x_t, y_t)[0] - base)
        fd = (changes[0] - changes[1]) / (2 * eps)
        np.testing.assert_allclose(pert[i, 0, j] / n, fd, rtol=2e-3, atol=1e-9)
        # the discrete edit to first order is the same derivative
        X_new = X[i:i + 1].copy()
        X_new[0, j] += eps
        edit = clf.edit_effect([i], x_t, y_t, X_new=X_new)[0, 0]
        np.testing.assert_allclose(edit / eps, pert[i, 0, j] / n, rtol=1e-2)
    agg = clf.perturbation_influence(Xt[:3], yt[:3], aggregate="sum")
    np.testing.assert_allclose(agg, clf.perturbation_influence(Xt[:3], yt[:3]).sum(1),
                               rtol=1e-10)


def test_label_flip_edit_matches_retraining(cancer):
    X, y, Xt, yt = cancer
    X, y = X[:150], y[:150]
    clf = LogisticRegression(C=0.3, **TIGHT).fit(X, y)
    x_t, y_t = _worst_test_point(clf, Xt, yt)
    rows = np.arange(0, 150, 15)
    flipped = 1 - y[rows]
    first = clf.edit_effect(rows, x_t, y_t, y_new=flipped)[:, 0]
    newton = clf.edit_effect(rows, x_t, y_t, y_new=flipped, method="newton")[:, 0]
    base = clf.influence_explainer().test_loss(x_t, y_t)[0]
    actual = []
    for i, new in zip(rows, flipped):
        y2 = y.copy()
        y2[i] = new
        refit = LogisticRegression(C=0.3, **TIGHT).fit(X, y2)
        actual.append(refit.influence_explainer().test_loss(x_t, y_t)[0] - base)
    assert pearson_r(first, actual) >= 0.95
    assert pearson_r(newton, actual) >= 0.99


def test_group_removal_matches_retraining(digits):
    X, y, Xt, yt = digits
    clf = LogisticRegression(C=0.1, **TIGHT).fit(X, y)
    x_t, y_t = _worst_test_point(clf, Xt, yt)
    rng = np.random.RandomState(0)
    groups = [rng.choice(len(y), 10, replace=False) for _ in range(8)]
    first = clf.group_effect(groups, x_t, y_t)[:, 0]
    newton = clf.group_effect(groups, x_t, y_t, method="newton")[:, 0]
    actual = loo_retrain(clf, X, y, groups, x_t, y_t, groups=True,
                         refit_params=TIGHT).loss_change[:, 0]
    # first order of a group is the sum of its rows' effects
    np.testing.assert_allclose(first, [clf.loo_effect(x_t, y_t)[g, 0].sum() for g in groups],
                               rtol=1e-8)
    assert pearson_r(first, actual) >= 0.9
    assert pearson_r(newton, actual) >= 0.99
    labels = np.zeros(len(y), dtype=int)
    labels[groups[0]] = 1
    by_label = clf.group_effect(labels, x_t, y_t)
    np.testing.assert_allclose(by_label[1], first[0], rtol=1e-10)


def test_l1_fit_uses_the_active_set(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.05, l1_ratio=1.0, **{**TIGHT, "solver": "liblinear"}).fit(X, y)
    active = np.flatnonzero(clf.coef_[0])
    assert 0 < active.size < X.shape[1]
    pert = clf.perturbation_influence(Xt[:2], yt[:2])
    inactive = np.setdiff1d(np.arange(X.shape[1]), active)
    assert np.all(pert[:, :, inactive] == 0)
    assert np.any(pert[:, :, active] != 0)
    r_first, r_newton, _, _ = _loo_check(clf, X, y, Xt, yt, top=20)
    assert r_newton >= 0.95


# --------------------------------------------------------------------------------------
# input kinds, parallelism, caching, pickling, explaining plain sklearn
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("multiclass", [False, True])
def test_sparse_input_gives_the_dense_numbers(fmt, multiclass, cancer, wine):
    X, y, Xt, yt = wine if multiclass else cancer
    X = np.where(np.abs(X) < 0.5, 0.0, X)
    Xt = np.where(np.abs(Xt) < 0.5, 0.0, Xt)
    dense = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    sparse = LogisticRegression(C=0.5, **TIGHT).fit(sp.csr_matrix(X).asformat(fmt), y)
    Xs = sp.csr_matrix(Xt[:5]).asformat(fmt)
    np.testing.assert_allclose(sparse.influence(Xs, yt[:5]), dense.influence(Xt[:5], yt[:5]),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(sparse.self_influence(), dense.self_influence(), rtol=1e-6)
    np.testing.assert_allclose(sparse.loo_effect(Xs, yt[:5], method="newton"),
                               dense.loo_effect(Xt[:5], yt[:5], method="newton"),
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(sparse.perturbation_influence(Xs, yt[:5]),
                               dense.perturbation_influence(Xt[:5], yt[:5]), rtol=1e-6,
                               atol=1e-10)


def test_float32_is_close_to_float64(cancer):
    X, y, Xt, yt = cancer
    c64 = LogisticRegression(C=0.5, tol=1e-8, max_iter=5000).fit(X, y)
    c32 = LogisticRegression(C=0.5, tol=1e-8, max_iter=5000).fit(X.astype(np.float32), y)
    i64 = c64.influence(Xt[:5], yt[:5])
    i32 = c32.influence(Xt[:5].astype(np.float32), yt[:5])
    assert i32.dtype == np.float64
    assert np.abs(i32 - i64).max() <= 1e-3 * np.abs(i64).max()


def test_n_jobs_gives_identical_results(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    serial = clf.influence(Xt, yt)
    parallel = clf.influence(Xt, yt, n_jobs=2)
    np.testing.assert_allclose(parallel, serial, rtol=1e-12, atol=1e-14)
    cg = clf.influence(Xt[:6], yt[:6], solver="cg", n_jobs=2)
    np.testing.assert_allclose(cg, serial[:, :6], rtol=1e-5, atol=1e-8)


def test_small_working_memory_chunks_give_identical_results(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    big = clf.influence(Xt, yt)
    small = clf.influence(Xt, yt, working_memory=0.01)
    np.testing.assert_allclose(small, big, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(clf.loo_effect(Xt[:9], yt[:9], method="newton",
                                              working_memory=0.001),
                               clf.loo_effect(Xt[:9], yt[:9], method="newton"), rtol=1e-12)


def test_explaining_plain_sklearn_equals_subclass(wine):
    X, y, Xt, yt = wine
    ours = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    plain = SkLogisticRegression(C=0.5, **TIGHT).fit(X, y)
    inf = skinfluence.explain(plain, X, y)
    np.testing.assert_allclose(inf.influence(Xt, yt), ours.influence(Xt, yt), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(Xt), plain.predict_proba(Xt))


def test_factorization_is_cached_and_refit_invalidates_it(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    engine = clf.influence_explainer()
    assert clf.influence_explainer() is engine
    first = clf.influence(Xt[:3], yt[:3])
    assert clf.influence_explainer() is engine and hasattr(engine, "solver_")
    clf.fit(X[:200], y[:200])
    assert clf.influence_explainer() is not engine
    assert clf.influence(Xt[:3], yt[:3]).shape == (200, 3)
    assert not np.allclose(clf.influence(Xt[:3], yt[:3], train_indices=np.arange(5)),
                           first[:5])


def test_pickle_round_trip_keeps_results(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    before = clf.influence(Xt[:4], yt[:4])
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.influence(Xt[:4], yt[:4]), before)


def test_rank_training_points_orders_by_predicted_removal_effect(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    effect = clf.loo_effect(Xt[:3], yt[:3]).sum(1)
    harmful, scores = clf.rank_training_points(Xt[:3], yt[:3], kind="harmful", top_k=5,
                                               return_scores=True)
    np.testing.assert_array_equal(harmful, np.argsort(effect)[:5])
    np.testing.assert_allclose(scores, effect[harmful])
    assert np.all(scores < 0)
    helpful = clf.rank_training_points(Xt[:3], yt[:3], kind="helpful", top_k=5)
    np.testing.assert_array_equal(helpful, np.argsort(-effect)[:5])
    influential = clf.rank_training_points(Xt[:3], yt[:3], kind="influential", top_k=None)
    assert len(influential) == len(y)
    selfrank = clf.rank_training_points(top_k=10)
    np.testing.assert_array_equal(selfrank, np.argsort(clf.self_influence())[:10])
    newton = clf.rank_training_points(kind="self", top_k=10, method="newton")
    assert len(np.intersect1d(newton, selfrank)) >= 7


def test_influence_params_and_loo_params_conventions(cancer):
    X, y, _, _ = cancer
    clf = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    rows = np.array([0, 7, 42])
    engine = clf.influence_explainer()
    flat = engine.loo_params(rows)
    np.testing.assert_allclose(clf.influence_params(rows), -len(y) * flat)
    d_coef, d_int = clf.loo_params(rows)
    assert d_coef.shape == (3,) + clf.coef_.shape and d_int.shape == (3,) + clf.intercept_.shape
    np.testing.assert_allclose(np.hstack([d_coef[:, 0], d_int]), flat)
