"""Pipelines: the final step's influence, in terms of the rows and columns the user passed."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.pipeline import make_pipeline as sk_make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    PolynomialFeatures,
    StandardScaler,
)

from skinfluence.linear_model import LogisticRegression
from skinfluence.pipeline import Pipeline, make_pipeline, pipeline_input_jacobian

from conftest import shared_data

TIGHT = dict(tol=1e-12, max_iter=5000, solver="newton-cholesky")


# --------------------------------------------------------------------------------------
# real mixed-type data: a few thousand rows of adult
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adult():
    path = shared_data("adult", "adult.data.gz")
    df = pd.read_csv(path, skipinitialspace=True, na_values="?")
    df = df.sample(2000, random_state=0)  # a shuffled integer index: labels != positions
    numeric = df.select_dtypes("number").columns.tolist()
    df[numeric] = df[numeric].astype(float)
    y = df.pop("Y")
    categorical = [c for c in df.columns if c not in numeric]
    return df.iloc[:1500], y.iloc[:1500], df.iloc[1500:], y.iloc[1500:], numeric, categorical


def _adult_pipeline(numeric, categorical, C=1.0):
    prep = ColumnTransformer([
        ("num", StandardScaler(), numeric),
        ("cat", sk_make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                 OneHotEncoder(handle_unknown="ignore")), categorical),
    ])
    return make_pipeline(prep, LogisticRegression(C=C, **TIGHT))


@pytest.fixture(scope="module")
def adult_fit(adult):
    X, y, Xt, yt, numeric, categorical = adult
    return _adult_pipeline(numeric, categorical).fit(X, y)


def test_make_pipeline_builds_a_skinfluence_pipeline_that_clones(adult_fit):
    assert type(adult_fit) is Pipeline
    assert type(clone(adult_fit)) is Pipeline
    assert list(adult_fit.named_steps) == ["columntransformer", "logisticregression"]


def test_methods_exist_only_when_the_final_step_has_them():
    plain = make_pipeline(StandardScaler(), SkLogisticRegression())
    ours = make_pipeline(StandardScaler(), LogisticRegression())
    for name in ("influence", "loo_effect", "self_influence", "self_loo_effect",
                 "rank_training_points", "perturbation_influence", "edit_effect",
                 "group_effect"):
        assert not hasattr(plain, name)
        assert hasattr(ours, name)


# --------------------------------------------------------------------------------------
# arrays in, arrays out: identical to the final step on transformed data
# --------------------------------------------------------------------------------------
def test_array_pipeline_equals_final_step_on_transformed_rows(cancer):
    X, y, Xt, yt = cancer
    X = X * 3.0 + 1.0  # undo part of the fixture's scaling so the scaler does work
    Xt = Xt * 3.0 + 1.0
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, **TIGHT)).fit(X, y)
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=0.5, **TIGHT).fit(scaler.transform(X), y)
    Zt = scaler.transform(Xt[:4])
    rows = np.array([5, 0, 17])
    np.testing.assert_allclose(pipe.influence(Xt[:4], yt[:4]), model.influence(Zt, yt[:4]))
    np.testing.assert_allclose(
        pipe.loo_effect(Xt[:4], yt[:4], method="newton", train_indices=rows),
        model.loo_effect(Zt, yt[:4], method="newton", train_indices=rows))
    np.testing.assert_allclose(pipe.self_influence(), model.self_influence())
    np.testing.assert_allclose(pipe.self_loo_effect(method="newton"),
                               model.self_loo_effect(method="newton"))
    np.testing.assert_array_equal(pipe.rank_training_points(top_k=7),
                                  model.rank_training_points(top_k=7))
    np.testing.assert_allclose(
        pipe.edit_effect(rows, Xt[:4], yt[:4], X_new=Xt[:3], y_new=1 - y[rows]),
        model.edit_effect(rows, Zt, yt[:4], X_new=scaler.transform(Xt[:3]),
                          y_new=1 - y[rows]))
    groups = [np.arange(10), np.arange(10, 30)]
    np.testing.assert_allclose(pipe.group_effect(groups, Xt[:4], yt[:4]),
                               model.group_effect(groups, Zt, yt[:4]))
    # chain rule through the scaler: d/dx = d/dz / scale
    np.testing.assert_allclose(pipe.perturbation_influence(Xt[:2], yt[:2]),
                               model.perturbation_influence(Zt[:2], yt[:2]) / scaler.scale_)


# --------------------------------------------------------------------------------------
# DataFrames in, pandas out, rows named by their index labels
# --------------------------------------------------------------------------------------
def test_dataframe_results_are_labelled_by_the_original_index(adult, adult_fit):
    X, y, Xt, yt, numeric, categorical = adult
    pipe = adult_fit
    influence = pipe.influence(Xt.iloc[:3], yt.iloc[:3])
    assert isinstance(influence, pd.DataFrame)
    assert influence.index.equals(X.index) and influence.columns.equals(Xt.index[:3])
    # the values are the final step's on the transformed rows, positionally
    raw = pipe[-1].influence(pipe[:-1].transform(Xt.iloc[:3]), yt.iloc[:3])
    np.testing.assert_allclose(influence.to_numpy(), raw)

    self_inf = pipe.self_influence()
    assert isinstance(self_inf, pd.Series) and self_inf.index.equals(X.index)

    labels, scores = pipe.rank_training_points(top_k=5, return_scores=True)
    positions = pipe[-1].rank_training_points(top_k=5)
    assert list(labels) == list(X.index[positions])
    assert list(scores.index) == list(labels)
    # labels name rows on the way in too: the ranked rows' own scores come back
    np.testing.assert_allclose(pipe.self_loo_effect(train_indices=labels).to_numpy(),
                               scores.to_numpy())

    picked = X.index[[7, 3]]
    loo = pipe.loo_effect(Xt.iloc[:2], yt.iloc[:2], method="newton", train_indices=picked)
    assert list(loo.index) == list(picked)
    np.testing.assert_allclose(
        loo.to_numpy(),
        pipe[-1].loo_effect(pipe[:-1].transform(Xt.iloc[:2]), yt.iloc[:2], method="newton",
                            train_indices=[7, 3]))


def test_dataframe_edits_and_groups_use_labels(adult, adult_fit):
    X, y, Xt, yt, numeric, categorical = adult
    pipe = adult_fit
    rows = X.index[[0, 11]]
    flipped = np.where(y.loc[rows] == ">50K", "<=50K", ">50K")
    edit = pipe.edit_effect(rows, Xt.iloc[:2], yt.iloc[:2], y_new=flipped)
    assert list(edit.index) == list(rows)
    np.testing.assert_allclose(
        edit.to_numpy(),
        pipe[-1].edit_effect([0, 11], pipe[:-1].transform(Xt.iloc[:2]), yt.iloc[:2],
                             y_new=flipped))
    by_sex = pipe.group_effect(X["sex"], Xt.iloc[:2], yt.iloc[:2])
    assert list(by_sex.index) == ["Female", "Male"]
    as_lists = pipe.group_effect([X.index[X["sex"] == "Female"], X.index[X["sex"] == "Male"]],
                                 Xt.iloc[:2], yt.iloc[:2])
    np.testing.assert_allclose(as_lists.to_numpy(), by_sex.to_numpy())


def test_unknown_or_ambiguous_labels_are_refused(adult, adult_fit):
    X, y, Xt, yt, numeric, categorical = adult
    missing = max(X.index) + 1
    with pytest.raises(ValueError, match=rf"labels not in the training index: \[{missing}\]"):
        adult_fit.self_influence(train_indices=[X.index[0], missing])
    doubled = X.iloc[:200].set_axis([0] * 100 + list(range(1, 101)))
    pipe = _adult_pipeline(numeric, categorical).fit(doubled, y.iloc[:200])
    with pytest.raises(ValueError, match="duplicate labels"):
        pipe.self_influence(train_indices=[1])


# --------------------------------------------------------------------------------------
# perturbation influence in raw feature units
# --------------------------------------------------------------------------------------
def test_categorical_columns_have_no_gradient(adult, adult_fit):
    X, y, Xt, yt, numeric, categorical = adult
    pert = adult_fit.perturbation_influence(Xt.iloc[:2], yt.iloc[:2], aggregate="sum")
    assert list(pert.columns) == list(X.columns) and pert.index.equals(X.index)
    assert pert[categorical].isna().all().all()
    assert np.isfinite(pert[numeric].to_numpy()).all()
    full = adult_fit.perturbation_influence(Xt.iloc[:2], yt.iloc[:2])
    assert full.index.names == ["train", "test"] and len(full) == 2 * len(X)
    np.testing.assert_allclose(full[numeric].groupby(level="train", sort=False).sum(),
                               pert[numeric], rtol=1e-10)


def _test_loss(pipe, x, y_):
    return pipe[-1].influence_explainer().test_loss(pipe[:-1].transform(x), y_)[0]


def test_perturbation_matches_finite_differences_of_retraining(adult, adult_fit):
    """Numeric columns against refits of the final step and of the whole pipeline.

    Retraining the whole pipeline also refits the scaler.  Its mean shift is absorbed by
    the unpenalized intercept; its scale change sigma_k -> sigma_k + d sigma rescales
    column k everywhere, which is a reparametrization except for the penalty: the
    optimum moves by 2 lam w_k H^-1 e_k dc with dc = -z_ik delta / (n sigma_k).  In
    the engine's units that adds -2 lam w_k z_ik [H^-1 g_t]_k / sigma_k, computed here
    independently, and the pipeline's (preprocessing held fixed) result must differ
    from the whole-pipeline derivative by exactly that.
    """
    X, y, Xt, yt, numeric, categorical = adult
    pipe = adult_fit
    x_t, y_t = Xt.iloc[:1], yt.iloc[:1]
    pert = pipe.perturbation_influence(x_t, y_t)
    base = _test_loss(pipe, x_t, y_t)
    n = len(y)
    engine = pipe[-1].influence_explainer()
    h_inv_g = engine.influence_factors(pipe[:-1].transform(x_t), y_t)[:, 0]
    scaler = pipe[0].named_transformers_["num"]
    lam, w = 1.0 / pipe[-1].C, pipe[-1].coef_[0]
    for i, col in [(3, "age"), (100, "hours-per-week"), (700, "education-num")]:
        k = numeric.index(col)
        eps = 1e-2 * scaler.scale_[k]
        frozen, whole = [], []
        for sign in (1, -1):
            X2 = X.copy()
            X2.iloc[i, X.columns.get_loc(col)] += sign * eps
            whole.append(_test_loss(clone(pipe).fit(X2, y), x_t, y_t) - base)
            refit = clone(pipe[-1]).fit(pipe[:-1].transform(X2), y)
            frozen.append(refit.influence_explainer().test_loss(
                pipe[:-1].transform(x_t), y_t)[0] - base)
        predicted = pert.loc[(X.index[i], x_t.index[0]), col] / n
        np.testing.assert_allclose(predicted, (frozen[0] - frozen[1]) / (2 * eps), rtol=1e-4)
        z_ik = (X[col].iloc[i] - scaler.mean_[k]) / scaler.scale_[k]
        scaler_refit = -2 * lam * w[k] * z_ik * h_inv_g[k] / scaler.scale_[k] / n
        np.testing.assert_allclose(predicted + scaler_refit,
                                   (whole[0] - whole[1]) / (2 * eps), rtol=1e-4)
        # with lam / n = 1 / 1500 the scaler's refit is a small correction
        assert abs(scaler_refit) < 0.01 * abs(predicted)


def test_missing_training_entries_have_no_gradient(cancer):
    X, y, Xt, yt = cancer
    X = X[:150].copy()
    X[4, 2] = np.nan
    pipe = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler(),
                         LogisticRegression(C=0.5, **TIGHT)).fit(X, y[:150])
    pert = pipe.perturbation_influence(Xt[:2], yt[:2])
    assert np.isnan(pert[4, :, 2]).all()
    assert np.isfinite(np.delete(pert[4], 2, axis=1)).all() and np.isfinite(pert[5]).all()


def test_jacobian_of_affine_steps_matches_finite_differences(cancer):
    X, y, Xt, yt = cancer
    X = X[:, :8] * 2.0 + 0.5
    X[::7, 3] = np.nan  # the imputer adds an indicator column for feature 3
    prep = ColumnTransformer([
        ("std", sk_make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), [0, 3]),
        ("minmax", MinMaxScaler(), [1, 2]),
        ("pca", sk_make_pipeline(MaxAbsScaler(), PCA(n_components=2, whiten=True)), [4, 5, 6]),
    ], remainder="passthrough", transformer_weights={"minmax": 3.0})
    pipe = make_pipeline(prep, LogisticRegression(C=0.5, **TIGHT)).fit(X, y)
    jac, undefined = pipeline_input_jacobian(pipe)
    assert not undefined.any()
    x0 = X[1:2]  # no missing value in this row
    fd = np.empty_like(jac)
    for k in range(X.shape[1]):
        step = np.zeros_like(x0)
        step[0, k] = 1e-4
        fd[:, k] = (prep.transform(x0 + step) - prep.transform(x0 - step))[0] / 2e-4
    np.testing.assert_allclose(jac, fd, atol=1e-8)


def test_unknown_and_all_categorical_preprocessing_is_refused(cancer, adult):
    X, y, Xt, yt = cancer
    pipe = make_pipeline(PolynomialFeatures(2), LogisticRegression(C=0.1, **TIGHT))
    pipe.fit(X[:100, :4], y[:100])
    with pytest.raises(ValueError, match="cannot differentiate through PolynomialFeatures"):
        pipe.perturbation_influence(Xt[:1, :4], yt[:1])
    Xa, ya, Xat, yat, numeric, categorical = adult
    cats = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                         LogisticRegression(C=0.5, **TIGHT))
    cats.fit(Xa[["sex", "race"]], ya)
    with pytest.raises(ValueError, match="every input column reaches the model through a "
                                         "non-differentiable step"):
        cats.perturbation_influence(Xat[["sex", "race"]].iloc[:1], yat.iloc[:1])
