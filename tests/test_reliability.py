"""Pickling, joblib persistence and repeated calls keep influence results identical."""

import pickle

import joblib
import numpy as np
import pytest
from test_model_family import CLASSIFIERS, REGRESSORS, _problem

import skinfluence
from skinfluence.linear_model import LogisticRegression

MODELS = {"LogisticRegression": lambda: LogisticRegression(C=0.5, tol=1e-10, max_iter=5000),
          **CLASSIFIERS, **REGRESSORS}


@pytest.mark.parametrize("name", list(MODELS))
def test_pickled_and_dumped_models_give_identical_influence(name, cancer, tmp_path):
    X, y, Xt, yt = _problem(name if name in REGRESSORS else "classifier", cancer)
    model = MODELS[name]().fit(X, y)
    expected = model.influence(Xt, yt)
    expected_self = model.self_influence()
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.influence(Xt, yt), expected)
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert np.array_equal(loaded.influence(Xt, yt), expected)
    assert np.array_equal(loaded.self_influence(), expected_self)
    # a fitted engine (with its factorization) too
    engine = pickle.loads(pickle.dumps(model.influence_explainer()))
    assert hasattr(engine, "solver_")
    assert np.array_equal(engine.influence(Xt, yt), expected)


def test_explained_sklearn_model_engine_pickles(cancer, tmp_path):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    X, y, Xt, yt = cancer
    clf = SkLogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    engine = skinfluence.explain(clf, X, y)
    expected = engine.loo_effect(Xt, yt, method="newton")
    joblib.dump(engine, tmp_path / "engine.joblib")
    restored = joblib.load(tmp_path / "engine.joblib")
    assert np.array_equal(restored.loo_effect(Xt, yt, method="newton"), expected)
    # validation still applies after the round trip
    with pytest.raises(ValueError, match="29 features"):
        restored.influence(Xt[:, :-1], yt)
