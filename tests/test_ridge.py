"""Ridge and least squares: scikit-learn's objective, exact leave-one-out without
refitting, and regression diagnostics equal to statsmodels'."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import Ridge as SkRidge

import skinfluence
from skinfluence.linear_model import LinearRegression, RegressionInfluence, Ridge

sm = pytest.importorskip("statsmodels.api")
OLSInfluence = pytest.importorskip("statsmodels.stats.outliers_influence").OLSInfluence


@pytest.fixture(scope="module")
def diabetes():
    """Real regression data: 442 patients, 10 standardized features."""
    X, y = load_diabetes(return_X_y=True)
    return X[:300], y[:300], X[300:], y[300:]


CONFIGS = {
    "ridge": (SkRidge, dict(alpha=0.3)),
    "ridge-no-intercept": (SkRidge, dict(alpha=1.0, fit_intercept=False)),
    "ridge-svd": (SkRidge, dict(alpha=0.05, solver="svd")),
    "ols": (SkLinearRegression, dict()),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fitted_regression_is_a_stationary_point(name, diabetes):
    X, y, _, _ = diabetes
    cls, params = CONFIGS[name]
    sw = np.random.RandomState(0).uniform(0.2, 3.0, len(y))
    model = cls(**params).fit(X, y, sample_weight=sw)
    good = skinfluence.explain(model, X, y, sample_weight=sw)
    good.fit()
    assert good.diagnostics_["gradient_norm"] < 1e-9
    wrong = skinfluence.explain(model, X, y, convergence_tol=np.inf)
    wrong.fit()
    assert wrong.diagnostics_["gradient_norm"] > 1e-3


@pytest.mark.parametrize("name", list(CONFIGS))
def test_exact_loo_residuals_and_newton_effects_equal_retraining(name, diabetes):
    """The objective is quadratic: Newton leave-one-out is the refit, to ~1e-8."""
    X, y, Xt, yt = diabetes
    cls, params = CONFIGS[name]
    sw = np.random.RandomState(1).uniform(0.5, 2.0, len(y))
    model = cls(**params).fit(X, y, sample_weight=sw)
    engine = skinfluence.explain(model, X, y, sample_weight=sw)
    loo_raw = engine.loo_raw_predictions()[:, 0]
    rows = np.arange(0, len(y), 23)
    newton = engine.loo_effect(Xt[:4], yt[:4], method="newton", train_indices=rows)
    self_newton = engine.self_loo_effect(method="newton", train_indices=rows)
    delta_params = engine.loo_params(rows, method="newton")
    base = 0.5 * (model.predict(Xt[:4]) - yt[:4]) ** 2
    scale = np.abs(y).max()
    for k, row in enumerate(rows):
        keep = np.arange(len(y)) != row
        refit = clone(model).fit(X[keep], y[keep], sample_weight=sw[keep])
        own = refit.predict(X[row:row + 1])[0]
        np.testing.assert_allclose(loo_raw[row], own, atol=1e-8 * scale)
        np.testing.assert_allclose(self_newton[k],
                                   0.5 * (own - y[row]) ** 2 - 0.5 * (model.predict(
                                       X[row:row + 1])[0] - y[row]) ** 2,
                                   rtol=1e-8, atol=1e-8 * scale)
        actual = 0.5 * (refit.predict(Xt[:4]) - yt[:4]) ** 2 - base
        np.testing.assert_allclose(newton[k], actual, atol=1e-8 * scale**2)
        coef, intercept = engine.params_to_estimator(delta_params[k])
        np.testing.assert_allclose(coef[0], refit.coef_ - model.coef_, atol=1e-8 * scale)
        np.testing.assert_allclose(intercept[0], refit.intercept_ - model.intercept_,
                                   atol=1e-8 * scale)


def test_diagnostics_equal_statsmodels(diabetes):
    X, y, _, _ = diabetes
    ols = LinearRegression().fit(X, y)
    ours = ols.influence_summary()
    ref = OLSInfluence(sm.OLS(y, sm.add_constant(X, prepend=False)).fit())
    np.testing.assert_allclose(ours.hat_matrix_diag, ref.hat_matrix_diag, atol=1e-12)
    np.testing.assert_allclose(ours.cooks_distance, ref.cooks_distance[0], rtol=1e-9)
    np.testing.assert_allclose(ours.resid_press, ref.resid_press, rtol=1e-9)
    np.testing.assert_allclose(ours.resid_studentized_internal,
                               ref.resid_studentized_internal, rtol=1e-9)
    np.testing.assert_allclose(ours.resid_studentized_external,
                               ref.resid_studentized_external, rtol=1e-9)
    np.testing.assert_allclose(ours.dffits, ref.dffits[0], rtol=1e-9)
    np.testing.assert_allclose(ours.dfbetas, ref.dfbetas, rtol=1e-8, atol=1e-12)
    ours_frame, ref_frame = ours.summary_frame(), ref.summary_frame()
    for column in ref_frame.columns:
        np.testing.assert_allclose(ours_frame[column], ref_frame[column], rtol=1e-8,
                                   atol=1e-12, err_msg=column)


def test_ridge_cooks_distance_is_the_refit_change_in_fitted_values(diabetes):
    """With a penalty the classic formula no longer applies; ours is the definition."""
    X, y, _, _ = diabetes
    sw = np.random.RandomState(2).uniform(0.5, 2.0, len(y))
    ridge = Ridge(alpha=0.5).fit(X, y, sample_weight=sw)
    diag = ridge.influence_summary()
    assert diag.df_model < X.shape[1] + 1
    for row in (0, 50, 111):
        keep = np.arange(len(y)) != row
        refit = clone(ridge).fit(X[keep], y[keep], sample_weight=sw[keep])
        change = sw @ (ridge.predict(X) - refit.predict(X)) ** 2
        np.testing.assert_allclose(diag.cooks_distance[row],
                                   change / (diag.df_model * diag.scale), rtol=1e-8)


def test_multioutput_ridge_loo(diabetes):
    X, y, _, _ = diabetes
    Y = np.column_stack([y, np.log(y)])
    ridge = Ridge(alpha=0.2).fit(X, Y)
    loo = ridge.influence_explainer().loo_raw_predictions()
    keep = np.arange(len(y)) != 7
    np.testing.assert_allclose(loo[7], clone(ridge).fit(X[keep], Y[keep]).predict(X[7:8])[0],
                               rtol=1e-9)
    with pytest.raises(ValueError, match="single-output"):
        ridge.influence_summary()


def test_perturbation_influence_matches_refits(diabetes):
    X, y, Xt, yt = diabetes
    ridge = Ridge(alpha=0.3).fit(X, y)
    pert = ridge.perturbation_influence(Xt[:3], yt[:3], train_indices=[5])[0]
    direction = np.random.RandomState(0).randn(X.shape[1])
    eps = 1e-4
    losses = []
    for sign in (1.0, -1.0):
        moved = X.copy()
        moved[5] += sign * eps * direction
        refit = clone(ridge).fit(moved, y)
        losses.append(0.5 * (refit.predict(Xt[:3]) - yt[:3]) ** 2)
    fd = (losses[0] - losses[1]) / (2 * eps)
    np.testing.assert_allclose(pert @ direction / len(y), fd, rtol=1e-6)


def test_what_ridge_cannot_explain(diabetes):
    X, y, _, _ = diabetes
    Y = np.column_stack([y, y])
    per_target = Ridge(alpha=[0.1, 1.0]).fit(X, Y)
    with pytest.raises(ValueError, match="one alpha per target"):
        per_target.influence(X[:2], Y[:2])
    positive = LinearRegression(positive=True).fit(X, y)
    with pytest.raises(ValueError, match="positive=True"):
        positive.influence(X[:2], y[:2])
    with pytest.raises(ValueError, match="single-output squared-error"):
        from skinfluence.linear_model import LogisticRegression
        RegressionInfluence(LogisticRegression().fit(X, y > 150).influence_explainer())
