"""Bad input gets a clear error (or a warning that says what was done), before any work."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.svm import SVR

import skinfluence
from skinfluence import _influence
from skinfluence.exceptions import IndefiniteHessianWarning, NotConvergedWarning
from skinfluence.linear_model import LogisticRegression


@pytest.fixture(scope="module")
def fitted(cancer):
    X, y, Xt, yt = cancer
    return LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y), Xt, yt


def test_unfitted_model_raises_not_fitted():
    with pytest.raises(NotFittedError):
        LogisticRegression().influence(np.zeros((1, 3)), [0])
    with pytest.raises(NotFittedError):
        skinfluence.explain(SkLogisticRegression(), np.zeros((2, 3)), [0, 1])


def test_feature_count_mismatch(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match="29 features, but LogisticRegression is expecting 30"):
        clf.influence(Xt[:, :-1], yt)


def test_unseen_test_label(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match=r"labels not seen during fit: \[7\]"):
        clf.influence(Xt[:2], [0, 7])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_test_input(fitted, bad):
    clf, Xt, yt = fitted
    Xb = Xt[:3].copy()
    Xb[1, 2] = bad
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        clf.influence(Xb, yt[:3])


def test_wrong_shapes(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match="Expected 2D array"):
        clf.influence(Xt[0], yt[:1])
    with pytest.raises(ValueError, match="X_test has 3 rows but y_test has 2"):
        clf.influence(Xt[:3], yt[:2])
    with pytest.raises(ValueError, match="train_indices out of range"):
        clf.influence(Xt[:3], yt[:3], train_indices=[10_000])
    with pytest.raises(ValueError, match="boolean train_indices must have shape"):
        clf.influence(Xt[:3], yt[:3], train_indices=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="X_new has 2 rows for 1 train_indices"):
        clf.edit_effect([0], Xt[:1], yt[:1], X_new=Xt[:2])


def test_explain_checks_training_data(cancer):
    X, y, _, _ = cancer
    clf = SkLogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="X has 300 rows but y has 299"):
        skinfluence.explain(clf, X, y[:-1])
    with pytest.raises(TypeError, match="cannot explain a SVR"):
        skinfluence.explain(SVR().fit(X, y), X, y)


def test_unknown_names(fitted):
    clf, Xt, yt = fitted
    with pytest.raises(ValueError, match="method must be one of"):
        clf.loo_effect(Xt[:1], yt[:1], method="exact")
    with pytest.raises(ValueError, match="kind must be one of"):
        clf.rank_training_points(Xt[:1], yt[:1], kind="bad")
    with pytest.raises(ValueError, match="needs X_test and y_test"):
        clf.rank_training_points(kind="harmful")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        clf.rank_training_points(top_k=0)
    with pytest.raises(ValueError, match="Unknown solver 'qr'"):
        clf.influence(Xt[:1], yt[:1], solver="qr")
    with pytest.raises(TypeError, match="Unknown option"):
        clf.influence(Xt[:1], yt[:1], tolerance=3)
    with pytest.raises(ValueError, match="aggregate must be"):
        clf.perturbation_influence(Xt[:1], yt[:1], aggregate="max")
    with pytest.raises(ValueError, match="damping must be >= 0"):
        clf.influence(Xt[:1], yt[:1], damping=-1.0)


def test_multinomial_l1_is_refused(wine):
    X, y, Xt, yt = wine
    clf = LogisticRegression(C=0.5, l1_ratio=1.0, solver="saga", max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="L1/elastic-net multinomial"):
        clf.influence(Xt, yt)


def test_unconverged_fit_warns_with_gradient_norm(cancer):
    X, y, Xt, yt = cancer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=10.0, max_iter=2).fit(X, y)
    with pytest.warns(NotConvergedWarning, match=r"max\|grad\| / sum\(sample_weight\) = \d"):
        result = clf.influence(Xt[:2], yt[:2])
    assert np.all(np.isfinite(result))


def test_singular_hessian_warns_with_damping_applied(cancer):
    X, y, Xt, yt = cancer
    X2 = np.hstack([X[:, :3], X[:, :1]])
    clf = LogisticRegression(C=np.inf, tol=1e-10, max_iter=5000).fit(X2, y)
    with pytest.warns(IndefiniteHessianWarning, match=r"added damping \d"):
        clf.influence(np.hstack([Xt[:2, :3], Xt[:2, :1]]), yt[:2], solver="direct")
    assert clf.influence_explainer(solver="direct").diagnostics_["damping"] > 0


def test_model_without_training_data(cancer):
    X, y, Xt, yt = cancer
    clf = LogisticRegression()
    plain = SkLogisticRegression().fit(X, y)
    clf.coef_, clf.intercept_, clf.classes_ = plain.coef_, plain.intercept_, plain.classes_
    clf.n_features_in_ = plain.n_features_in_
    with pytest.raises(ValueError, match="skinfluence.explain"):
        clf.influence(Xt[:1], yt[:1])


def test_results_too_large_are_refused_up_front(fitted, monkeypatch):
    clf, Xt, yt = fitted
    monkeypatch.setattr(_influence, "MAX_RESULT_BYTES", 1000)
    with pytest.raises(MemoryError, match="pass train_indices or fewer test points"):
        clf.perturbation_influence(Xt[:5], yt[:5])
    with pytest.raises(MemoryError):
        clf.influence(Xt, yt)
    assert clf.influence(Xt[:5], yt[:5], train_indices=[0, 1]).shape == (2, 5)


# ======================================================================================
# The bad-input matrix: every public entry point x every kind of bad input.
#
# docs/bad_input.rst shows this matrix; test_docs_table_is_this_matrix checks that the
# page is exactly what render_matrix() produces (regenerate it with
# ``python tests/test_bad_input.py``).
# ======================================================================================
import contextlib  # noqa: E402
import re  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from skinfluence.linear_model import Ridge  # noqa: E402
from skinfluence.pipeline import make_pipeline  # noqa: E402
from skinfluence.validation import loo_retrain  # noqa: E402

DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "bad_input.rst"


@dataclass(frozen=True)
class Raises:
    """The call raises ``error`` whose message contains ``phrase``."""

    error: type
    phrase: str

    def text(self) -> str:
        return f"{self.error.__name__}: {self.phrase}"


@dataclass(frozen=True)
class Works:
    """The call returns finite results (for sparse input: those of the dense input)."""

    note: str = ""

    def text(self) -> str:
        return "works" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Warns:
    """The call returns results and warns with ``warning`` containing ``phrase``."""

    warning: type
    phrase: str

    def text(self) -> str:
        return f"works, {self.warning.__name__}: {self.phrase}"


@dataclass(frozen=True)
class Cli:
    """``skinfluence rank`` exits with ``code``; on error its one line contains ``phrase``."""

    code: int
    phrase: str = ""

    def text(self) -> str:
        return "ranks the rows" + (f" ({self.phrase})" if self.phrase else "") if self.code == 0 \
            else f"exit 1: {self.phrase}"


NA = None  # the entry point takes no such input

#: (case, what it is)
CASES = {
    "NaN in X": "a missing value among the features",
    "inf in X": "an infinite feature value",
    "NaN in y": "a missing target",
    "empty": "no rows at all",
    "one row": "a single row",
    "one class": "every target of the same class",
    "wrong dtype": "text where numbers are expected",
    "wrong shape": "one feature fewer than at fit",
    "y length": "one target fewer than rows",
    "unseen label": "a class the model was not fitted on",
    "unfitted": "a model that was never fitted",
    "sparse COO": "scipy.sparse COO features",
    "sparse CSC": "scipy.sparse CSC features",
    "sparse CSR": "scipy.sparse CSR features",
    "pandas categorical": "a DataFrame with a categorical (text) column",
}

NOT_FITTED = Raises(NotFittedError, "is not fitted yet")
NAN_X = Raises(ValueError, "Input X contains NaN")
INF_X = Raises(ValueError, "Input X contains infinity")
NO_ROWS = Raises(ValueError, "Found array with 0 sample(s)")
TEXT_X = Raises(ValueError, "could not convert string to float")
NARROW = Raises(ValueError, "X has 29 features, but LogisticRegression is expecting 30")
CATEGORICAL = Raises(ValueError, "non-numeric column(s) ['f0'] (category)")
UNSEEN = Raises(ValueError, "y contains labels not seen during fit: [7]")
NAN_LABEL = Raises(ValueError, "y contains labels not seen during fit: [nan]")
SAME_AS_DENSE = Works("same numbers as dense")
NOT_STATIONARY = Warns(NotConvergedWarning, "not a stationary point")

#: entry point -> {case: expected outcome}
MATRIX = {
    "explain(estimator, X, y)": {
        "NaN in X": NAN_X, "inf in X": INF_X, "NaN in y": NAN_LABEL, "empty": NO_ROWS,
        # rows other than the fitted ones: the fit is not their optimum, and it says so
        "one row": NOT_STATIONARY, "one class": NOT_STATIONARY, "wrong dtype": TEXT_X,
        "wrong shape": NARROW, "y length": Raises(ValueError, "X has 300 rows but y has 299"),
        "unseen label": UNSEEN, "unfitted": NOT_FITTED, "sparse COO": SAME_AS_DENSE,
        "sparse CSC": SAME_AS_DENSE, "sparse CSR": SAME_AS_DENSE,
        "pandas categorical": CATEGORICAL,
    },
    "influence, loo_effect, perturbation_influence, edit_effect, group_effect, "
    "rank_training_points (test data)": {
        "NaN in X": NAN_X, "inf in X": INF_X, "NaN in y": NAN_LABEL, "empty": NO_ROWS,
        "one row": Works(), "one class": Works(), "wrong dtype": TEXT_X, "wrong shape": NARROW,
        "y length": Raises(ValueError, "X_test has 6 rows but y_test has 5"),
        "unseen label": UNSEEN, "unfitted": NOT_FITTED, "sparse COO": SAME_AS_DENSE,
        "sparse CSC": SAME_AS_DENSE, "sparse CSR": SAME_AS_DENSE,
        "pandas categorical": CATEGORICAL,
    },
    "Ridge.influence (regression test data)": {
        "NaN in X": NAN_X, "inf in X": INF_X, "NaN in y": Raises(ValueError, "Input y contains NaN"),
        "empty": NO_ROWS, "one row": Works(), "one class": NA,
        "wrong dtype": TEXT_X, "wrong shape": Raises(ValueError, "X has 29 features, but Ridge "
                                                                 "is expecting 30"),
        "y length": Raises(ValueError, "X_test has 6 rows but y_test has 5"),
        "unseen label": NA,
        "unfitted": NOT_FITTED, "sparse COO": SAME_AS_DENSE, "sparse CSC": SAME_AS_DENSE,
        "sparse CSR": SAME_AS_DENSE,
        "pandas categorical": Raises(ValueError, "non-numeric column(s) ['f0'] (category)"),
    },
    "loo_retrain(estimator, X, y, rows, X_test, y_test)": {
        "NaN in X": NAN_X, "inf in X": INF_X, "NaN in y": NAN_LABEL, "empty": NO_ROWS,
        "one row": Raises(ValueError, "leaves no training rows"),
        "one class": Raises(ValueError, "only one class"), "wrong dtype": TEXT_X,
        "wrong shape": NARROW, "y length": Raises(ValueError, "X has 300 rows but y has 299"),
        "unseen label": UNSEEN, "unfitted": NOT_FITTED, "sparse COO": SAME_AS_DENSE,
        "sparse CSC": SAME_AS_DENSE, "sparse CSR": SAME_AS_DENSE,
        "pandas categorical": CATEGORICAL,
    },
    "Pipeline fitted on a DataFrame (test data)": {
        "NaN in X": Raises(ValueError, "Input X contains NaN"),
        "inf in X": Raises(ValueError, "Input X contains infinity"),
        "NaN in y": NAN_LABEL, "empty": NO_ROWS, "one row": Works(), "one class": Works(),
        "wrong dtype": Raises(ValueError, "could not convert string to float"),
        "wrong shape": Raises(ValueError, "columns are missing: {'f29'}"),
        "y length": Raises(ValueError, "X_test has 6 rows but y_test has 5"),
        "unseen label": UNSEEN, "unfitted": NOT_FITTED,
        "sparse COO": NA, "sparse CSC": NA, "sparse CSR": NA,
        "pandas categorical": Works("one-hot encoded by the pipeline"),
    },
    "skinfluence rank data.csv": {
        "NaN in X": Cli(0, "imputed, with an indicator"),
        "inf in X": Cli(1, "could not be fitted: Input X contains infinity"),
        "NaN in y": Cli(0, "rows without a target are left out, with a note"),
        "empty": Cli(1, "the file is empty"), "one row": Cli(1, "too few rows: 1"),
        "one class": Cli(1, "has only one class"),
        "wrong dtype": Cli(0, "text columns are categories"),
        "wrong shape": Cli(1, "cannot parse it as a table"), "y length": NA,
        "unseen label": NA, "unfitted": NA, "sparse COO": NA, "sparse CSC": NA,
        "sparse CSR": NA, "pandas categorical": NA,
    },
}


# ---------------------------------------------------------------------------- inputs
def _bad(case, X, y, *, regression=False):
    """(X, y) with the case's defect; X, y are arrays of the good input."""
    X, y = np.array(X, dtype=float), np.array(y)
    if case == "NaN in X":
        X[0, 1] = np.nan
    elif case == "inf in X":
        X[0, 1] = np.inf
    elif case == "NaN in y":
        y = y.astype(float)
        y[0] = np.nan
    elif case == "empty":
        X, y = X[:0], y[:0]
    elif case == "one row":
        X, y = X[:1], y[:1]
    elif case == "one class":
        X, y = X[y == y[0]], y[y == y[0]]
    elif case == "wrong dtype":
        X = X.astype(object)
        X[0, 1] = "a"
    elif case == "wrong shape":
        X = X[:, :-1]
    elif case == "y length":
        y = y[:-1]
    elif case == "unseen label":
        y = y.copy()
        y[0] = 7
    elif case.startswith("sparse"):
        X = {"sparse COO": sp.coo_matrix, "sparse CSC": sp.csc_matrix,
             "sparse CSR": sp.csr_matrix}[case](X)
    elif case == "pandas categorical":
        X = _frame(X)
        X["f0"] = pd.Categorical(np.where(np.arange(len(X)) % 2, "low", "high"))
    return X, y


def _frame(X):
    return pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])


@pytest.fixture(scope="module")
def models(cancer):
    X, y, Xt, yt = cancer
    Xt, yt = Xt[:6], yt[:6]
    clf = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    sk_clf = SkLogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    ridge = Ridge(alpha=1.0).fit(X, X[:, 0] + y)
    frame = _frame(X)
    frame["f0"] = np.where(y > 0, "low", "high")
    numeric = [f"f{j}" for j in range(1, X.shape[1])]
    pipe = make_pipeline(
        ColumnTransformer([("numbers", StandardScaler(), numeric),
                           ("category", OneHotEncoder(handle_unknown="ignore"), ["f0"])]),
        LogisticRegression(C=0.5, tol=1e-10, max_iter=5000)).fit(frame, y)
    return dict(X=X, y=y, Xt=Xt, yt=yt, clf=clf, sk_clf=sk_clf, ridge=ridge, pipe=pipe)


def _test_data_calls(model, Xt, yt):
    return [lambda: model.influence(Xt, yt),
            lambda: model.loo_effect(Xt, yt, method="newton"),
            lambda: model.perturbation_influence(Xt, yt, train_indices=[0, 1]),
            lambda: model.edit_effect([0], Xt, yt, y_new=[1]),
            lambda: model.group_effect([[0, 1]], Xt, yt),
            lambda: model.rank_training_points(Xt, yt, return_scores=True)[1]]


def _calls(entry, case, m):
    """The calls of one cell (several for a group of entry points)."""
    X, y, Xt, yt = m["X"], m["y"], m["Xt"], m["yt"]
    if entry.startswith("explain"):
        model = SkLogisticRegression() if case == "unfitted" else m["sk_clf"]
        Xb, yb = _bad(case, X, y)
        return [lambda: skinfluence.explain(model, Xb, yb).self_influence()]
    if entry.startswith("influence, loo_effect"):
        model = LogisticRegression() if case == "unfitted" else m["clf"]
        return _test_data_calls(model, *_bad(case, Xt, yt))
    if entry.startswith("Ridge"):
        model = Ridge() if case == "unfitted" else m["ridge"]
        Xb, yb = _bad(case, Xt, Xt[:, 0] + yt)
        return [lambda: model.influence(Xb, yb), lambda: model.loo_effect(Xb, yb,
                                                                         method="newton")]
    if entry.startswith("loo_retrain"):
        model = SkLogisticRegression() if case == "unfitted" else m["sk_clf"]
        Xb, yb = _bad(case, X, y)
        return [lambda: loo_retrain(model, Xb, yb, [0], Xt, yt).loss_change]
    if entry.startswith("Pipeline"):
        model = make_pipeline(LogisticRegression()) if case == "unfitted" else m["pipe"]
        plain = case in ("wrong dtype", "pandas categorical", "unfitted", "dense")
        Xb, yb = _bad("dense" if plain else case, Xt, yt)
        Xb = _frame(Xb).assign(f0="low")  # the pipeline's text column
        if case == "wrong dtype":
            Xb["f1"] = "text"
        elif case == "pandas categorical":
            Xb["f0"] = pd.Categorical(["low", "high"] * 3)
        return [lambda: model.influence(Xb, yb),
                lambda: model.loo_effect(Xb, yb, method="newton")]
    if entry.startswith("skinfluence rank"):
        return [lambda: _run_cli(case)]
    raise AssertionError(entry)


def _csv(case) -> str:
    rng = np.random.default_rng(0)
    n = {"one row": 1}.get(case, 30)
    rows = ["x1,x2,colour,label"]
    for i in range(n):
        x1 = "" if (case == "NaN in X" and i == 0) else \
            "inf" if (case == "inf in X" and i == 0) else f"{rng.standard_normal():.3f}"
        label = "" if (case == "NaN in y" and i == 0) else \
            "yes" if (case == "one class" or i % 2) else "no"
        colour = ["red", "blue"][i % 2] if case == "wrong dtype" else str(i % 3)
        extra = ",9" if (case == "wrong shape" and i == 3) else ""
        rows.append(f"{x1},{rng.standard_normal():.3f},{colour},{label}{extra}")
    return "" if case == "empty" else "\n".join(rows) + "\n"


def _run_cli(case):
    from skinfluence.cli import main

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "data.csv"
        source.write_text(_csv(case))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["rank", str(source), "--target", "label", "-o",
                         str(Path(folder) / "out.csv")])
        return code, err.getvalue()


CELLS = [(entry, case) for entry in MATRIX for case in CASES if MATRIX[entry][case] is not NA]


@pytest.mark.parametrize("entry, case", CELLS, ids=[f"{e.split('(')[0].split(',')[0]}|{c}"
                                                    for e, c in CELLS])
def test_bad_input_matrix(models, entry, case):
    expected = MATRIX[entry][case]
    for call in _calls(entry, case, models):
        if isinstance(expected, Raises):
            with pytest.raises(expected.error, match=_escaped(expected.phrase)):
                call()
        elif isinstance(expected, Warns):
            with pytest.warns(expected.warning, match=_escaped(expected.phrase)):
                result = call()
            assert np.all(np.isfinite(result))
        elif isinstance(expected, Cli):
            code, err = call()
            assert code == expected.code, err
            assert "Traceback" not in err
            if expected.code == 1:
                assert expected.phrase in err.strip().splitlines()[-1]
        else:
            result = call()
            values = result.to_numpy() if hasattr(result, "to_numpy") else np.asarray(result)
            assert np.all(np.isfinite(values))
    if expected == SAME_AS_DENSE:
        # exact retraining refits on the sparse rows with another code path: its tol
        rtol = 1e-6 if entry.startswith("loo_retrain") else 1e-10
        for sparse_call, dense_call in zip(_calls(entry, case, models),
                                           _calls(entry, "dense", models)):
            dense = dense_call()
            np.testing.assert_allclose(sparse_call(), dense, rtol=rtol,
                                       atol=rtol * np.abs(dense).max())


def _escaped(phrase: str) -> str:
    import re

    return re.escape(phrase)


#: the docs' column headers
HEADERS = {
    "explain(estimator, X, y)": "``explain(estimator, X, y)`` (training data)",
    "influence, loo_effect, perturbation_influence, edit_effect, group_effect, "
    "rank_training_points (test data)":
        "``influence``, ``loo_effect``, ``perturbation_influence``, ``edit_effect``, "
        "``group_effect``, ``rank_training_points`` (test data)",
    "Ridge.influence (regression test data)": "``Ridge.influence``, ``loo_effect`` "
                                              "(regression test data)",
    "loo_retrain(estimator, X, y, rows, X_test, y_test)":
        "``loo_retrain(estimator, X, y, rows, X_test, y_test)`` (training data)",
    "Pipeline fitted on a DataFrame (test data)": "``Pipeline`` fitted on a DataFrame "
                                                  "(test data)",
    "skinfluence rank data.csv": "``skinfluence rank data.csv``",
}


def render_matrix() -> str:
    """The reStructuredText list-table of :data:`MATRIX` (the docs page's body)."""
    entries = list(MATRIX)
    lines = [".. list-table::", "   :header-rows: 1", "   :stub-columns: 1", "",
             "   * - Bad input", *[f"     - {HEADERS[e]}" for e in entries]]
    for case, description in CASES.items():
        lines.append(f"   * - **{case}**: {description}")
        for entry in entries:
            outcome = MATRIX[entry][case]
            lines.append("     - " + ("—" if outcome is NA else outcome.text()))
    return "\n".join(lines) + "\n"


_BEGIN, _END = ".. begin: generated by tests/test_bad_input.py\n", ".. end: generated\n"


def test_docs_table_is_this_matrix():
    page = DOCS_PAGE.read_text()
    assert _BEGIN in page and _END in page, "docs/bad_input.rst lost its generated block"
    generated = page.split(_BEGIN, 1)[1].split(_END, 1)[0]
    assert generated.strip() == render_matrix().strip(), (
        "docs/bad_input.rst is out of date: run `python tests/test_bad_input.py`")


if __name__ == "__main__":  # regenerate the docs table
    page = DOCS_PAGE.read_text()
    head, rest = page.split(_BEGIN, 1)
    tail = rest.split(_END, 1)[1]
    DOCS_PAGE.write_text(head + _BEGIN + "\n" + render_matrix() + "\n" + _END + tail)
    print(f"wrote {DOCS_PAGE}", file=sys.stderr)


# ---------------------------------------------------------------------------- row indices
ROW_INDEX_CASES = {
    "floats": ([1.5], ValueError, "must be a 1-d array of integer row indices"),
    "NaN": ([np.nan], ValueError, "must be a 1-d array of integer row indices"),
    "text": (["a"], ValueError, "must be a 1-d array of integer row indices"),
    "2-d": ([[0, 1]], ValueError, "must be a 1-d array of integer row indices"),
    "out of range": ([300], ValueError, "out of range for 300 training rows"),
    "short mask": (np.ones(3, dtype=bool), ValueError, "boolean train_indices must have "
                                                       "shape (300,)"),
}


def _row_index_calls(m, rows):
    clf, X, y, Xt, yt = m["clf"], m["X"], m["y"], m["Xt"], m["yt"]
    return {
        "self_influence": lambda: clf.self_influence(train_indices=rows),
        "influence": lambda: clf.influence(Xt, yt, train_indices=rows),
        "loo_params": lambda: clf.loo_params(rows),
        "edit_effect": lambda: clf.edit_effect(rows, Xt, yt),
        "group_effect": lambda: clf.group_effect([rows], Xt, yt),
        "loo_retrain": lambda: loo_retrain(m["sk_clf"], X, y, rows, Xt, yt),
        "loo_retrain groups": lambda: loo_retrain(m["sk_clf"], X, y, [rows], Xt, yt,
                                                  groups=True),
    }


@pytest.mark.parametrize("case", list(ROW_INDEX_CASES))
def test_row_indices_are_checked_everywhere(models, case):
    """Found by the matrix: floats were truncated and short masks read as indices."""
    rows, error, phrase = ROW_INDEX_CASES[case]
    for name, call in _row_index_calls(models, rows).items():
        if case == "2-d" and name in ("group_effect", "loo_retrain groups"):
            continue  # a 2-d group list is a list of groups
        with pytest.raises(error, match=re.escape(phrase)):
            call()


def test_an_empty_selection_gives_an_empty_result(models):
    """Found by the matrix: an empty train_indices used to crash in gen_batches."""
    m = models
    results = {name: call() for name, call in _row_index_calls(m, []).items()
               if not name.startswith("group") and not name.endswith("groups")}
    assert results["self_influence"].shape == (0,)
    assert results["influence"].shape == (0, 6)
    assert results["loo_params"][0].shape == (0, 1, 30)  # (delta_coef, delta_intercept)
    assert results["edit_effect"].shape == (0, 6)
    assert results["loo_retrain"].loss_change.shape == (0, 6)
    assert results["loo_retrain"].coef_change.shape == (0, 1, 30)
    # an empty group removes nothing
    np.testing.assert_array_equal(m["clf"].group_effect([[]], m["Xt"], m["yt"]),
                                  np.zeros((1, 6)))


def test_loo_retrain_accepts_sparse_coo_rows(models):
    """Found by the matrix: COO rows cannot be indexed, so the refits crashed."""
    m = models
    dense = loo_retrain(m["sk_clf"], m["X"], m["y"], [3], m["Xt"], m["yt"]).loss_change
    coo = loo_retrain(m["sk_clf"], sp.coo_matrix(m["X"]), m["y"], [3], m["Xt"],
                      m["yt"]).loss_change
    np.testing.assert_allclose(coo, dense, rtol=1e-6, atol=1e-9)
