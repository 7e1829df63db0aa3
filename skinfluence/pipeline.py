"""Pipelines whose last step explains itself: influence in terms of the rows you passed in.

:class:`Pipeline` is scikit-learn's :class:`~sklearn.pipeline.Pipeline` with the influence
methods of its final step (any estimator carrying :class:`~skinfluence.InfluenceMixin`)
exposed on the pipeline itself, the way scikit-learn exposes ``predict_proba``:

- test rows pass through the fitted preprocessing steps before reaching the model;
- results refer to the rows of the training input as given to :meth:`Pipeline.fit`;
- **the pandas rule**: when the pipeline was fitted on a pandas DataFrame, every result
  is a pandas object labelled by that DataFrame's index along the training-row axis, by
  ``X_test``'s index along the test axis (a ``RangeIndex`` when ``X_test`` is not a
  DataFrame) and by the input column names along the feature axis, and training rows are
  *named by index label* in ``train_indices`` and in the returned rankings.  Fitted on
  an array, the pipeline returns arrays and training rows are positions, exactly as the
  final step would.

Perturbation influence is the gradient of the test loss in the *original* input
features: the final step's gradient in the transformed features is mapped back through
the Jacobians of the fitted preprocessing steps (chain rule), which is exact for steps
that are affine in their input (scalers, imputation of observed values, PCA, column
selection).  Inputs that reach the model only through a non-differentiable step
(one-hot or ordinal encoding of categories) have no gradient: their entries are NaN,
as are entries that were missing in the training row.  A step whose Jacobian is not
known refuses with a message; :func:`register_jacobian` teaches it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn import pipeline as _sk_pipeline
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

__all__ = ["Pipeline", "make_pipeline", "register_jacobian"]


def _final_step_has(name: str):
    """``available_if`` check: the method exists when the final step has it."""

    def check(pipe) -> bool:
        getattr(pipe._final_estimator, name)  # raises the step's own AttributeError
        return True

    return check


def _is_dataframe(X) -> bool:
    return hasattr(X, "iloc") and hasattr(X, "columns") and hasattr(X, "index")


def _num_rows(X) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


class Pipeline(_sk_pipeline.Pipeline):
    """scikit-learn's ``Pipeline`` with the influence methods of its final step.

    It fits, predicts and tunes exactly like :class:`sklearn.pipeline.Pipeline`.  When
    the final step carries :class:`~skinfluence.InfluenceMixin` (e.g.
    :class:`skinfluence.linear_model.LogisticRegression`), the pipeline also has
    :meth:`influence`, :meth:`loo_effect`, :meth:`self_influence`,
    :meth:`self_loo_effect`, :meth:`rank_training_points`,
    :meth:`perturbation_influence`, :meth:`edit_effect` and :meth:`group_effect`.
    Test inputs (and ``X_new`` of :meth:`edit_effect`) are raw rows: they pass through
    the fitted preprocessing.  Influence is that of the final step's objective with the
    preprocessing held fixed as fitted.

    Results refer to the training rows given to :meth:`fit`.  Fitted on a pandas
    DataFrame, results are pandas objects labelled by its index (training rows), by
    ``X_test``'s index (test points) and by its columns (features); ``train_indices``,
    the rows of :meth:`edit_effect` and the members of groups are then index labels,
    and :meth:`rank_training_points` returns labels.  Fitted on arrays, everything is
    positional, as for the final step alone.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        As for :class:`sklearn.pipeline.Pipeline`.
    transform_input : list of str, default=None
        As for :class:`sklearn.pipeline.Pipeline`.
    memory : str or object with the joblib.Memory interface, default=None
        As for :class:`sklearn.pipeline.Pipeline`.
    verbose : bool, default=False
        As for :class:`sklearn.pipeline.Pipeline`.

    See Also
    --------
    make_pipeline : Build one from estimators, naming the steps automatically.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence.linear_model import LogisticRegression
    >>> from skinfluence.pipeline import make_pipeline
    >>> X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    >>> pipe = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-8))
    >>> pipe = pipe.fit(X.iloc[:400], y.iloc[:400])
    >>> pipe.influence(X.iloc[400:403], y.iloc[400:403]).shape
    (400, 3)
    >>> suspects = pipe.rank_training_points(top_k=5)   # index labels of X
    """

    def fit(self, X, y=None, **params):
        """Fit every step, and remember the training rows for influence.

        Parameters
        ----------
        X : iterable
            Training data, as for :meth:`sklearn.pipeline.Pipeline.fit`.
        y : iterable, default=None
            Training targets.
        **params : dict of str -> object
            Step parameters (``step__param``), as for scikit-learn's pipeline.

        Returns
        -------
        self : Pipeline
        """
        super().fit(X, y, **params)
        # a reference, not a copy: the index/columns label results, the missing-value
        # mask marks undefined perturbation gradients
        self._influence_input = X
        return self

    # ------------------------------------------------------------------ plumbing
    def _training_input(self):
        check_is_fitted(self)
        X = getattr(self, "_influence_input", None)
        if X is None:
            raise ValueError(
                "This Pipeline was not fitted with its fit method, so it does not know its "
                "training rows; call fit(X, y) before asking for influence."
            )
        return X

    def _pandas_mode(self) -> bool:
        return _is_dataframe(self._training_input())

    def _transform_rows(self, X):
        """Raw rows through every fitted step but the last."""
        for _, _, step in self._iter(with_final=False):
            X = step.transform(X)
        return X

    def _train_positions(self, train_indices):
        """Positions of the rows named by ``train_indices`` (labels in pandas mode)."""
        if train_indices is None or not self._pandas_mode():
            return train_indices
        index = self._training_input().index
        if _is_series(train_indices) and train_indices.dtype == bool:
            mask = train_indices.reindex(index).to_numpy()
            if np.any(mask != mask) or len(mask) != len(index):
                raise ValueError("a boolean Series train_indices must cover the training index.")
            return np.flatnonzero(mask.astype(bool))
        labels = np.asarray(train_indices)
        if labels.dtype == bool:
            return train_indices  # a positional mask of shape (n_train,)
        labels = np.atleast_1d(labels)
        if not index.is_unique:
            raise ValueError(
                "The training DataFrame's index has duplicate labels, so train_indices "
                "cannot name rows by label; reset_index() before fitting or pass a "
                "boolean mask."
            )
        positions = index.get_indexer(labels)
        if np.any(positions < 0):
            missing = labels[positions < 0][:5].tolist()
            raise ValueError(
                f"train_indices holds labels not in the training index: {missing}. "
                "This pipeline was fitted on a DataFrame, so rows are named by index label."
            )
        return positions

    def _train_labels(self, positions):
        index = self._training_input().index
        return index if positions is None else index[np.asarray(positions)]

    @staticmethod
    def _test_labels(X_test, n_test: int):
        import pandas as pd

        return X_test.index if _is_dataframe(X_test) else pd.RangeIndex(n_test)

    def _feature_labels(self):
        return self._training_input().columns

    def _rows_by_tests(self, result, positions, X_test):
        """An (n_rows, n_test) result as a DataFrame in pandas mode."""
        if not self._pandas_mode():
            return result
        import pandas as pd

        rows = positions if positions is not None else slice(None)
        labels = self._train_labels(None)[rows]
        return pd.DataFrame(result, index=labels, columns=self._test_labels(X_test, result.shape[1]))

    def _per_row(self, result, positions, name: str):
        if not self._pandas_mode():
            return result
        import pandas as pd

        rows = positions if positions is not None else slice(None)
        return pd.Series(result, index=self._train_labels(None)[rows], name=name)

    # ------------------------------------------------------------------ influence API
    @available_if(_final_step_has("influence"))
    def influence(self, X_test, y_test, *, train_indices=None, **options):
        """Koh & Liang's ``I_up,loss`` of every training row on every (raw) test row.

        Parameters
        ----------
        X_test : array-like or DataFrame of shape (n_test, n_features)
            Raw test rows (they pass through the fitted preprocessing).
        y_test : array-like of shape (n_test,)
        train_indices : array-like, default=None
            Training rows to return: index labels in pandas mode, else positions (or a
            boolean mask of shape (n_train,) either way).  All when None.
        **options
            Engine options of the final step (``solver``, ``damping``, ...).

        Returns
        -------
        ndarray or DataFrame of shape (n_rows, n_test)
            The final step's :meth:`~skinfluence.InfluenceMixin.influence`: positive
            values are harmful rows.
        """
        positions = self._train_positions(train_indices)
        result = self._final_estimator.influence(
            self._transform_rows(X_test), y_test, train_indices=positions, **options)
        return self._rows_by_tests(result, _as_positions(positions, self), X_test)

    @available_if(_final_step_has("loo_effect"))
    def loo_effect(self, X_test, y_test, *, method="influence", train_indices=None, **options):
        """Predicted change in each test loss when each training row is removed.

        Parameters
        ----------
        X_test, y_test : raw test data
        method : {"influence", "newton"}, default="influence"
            First order (``-influence / n``) or one exact Newton step without the row.
        train_indices : array-like, default=None
            Labels in pandas mode, else positions.
        **options
            Engine options.

        Returns
        -------
        ndarray or DataFrame of shape (n_rows, n_test)
        """
        positions = self._train_positions(train_indices)
        result = self._final_estimator.loo_effect(
            self._transform_rows(X_test), y_test, method=method, train_indices=positions,
            **options)
        return self._rows_by_tests(result, _as_positions(positions, self), X_test)

    @available_if(_final_step_has("self_influence"))
    def self_influence(self, *, train_indices=None, **options):
        """``I_up,loss(z_i, z_i)`` of each training row (non-positive).

        Parameters
        ----------
        train_indices : array-like, default=None
            Labels in pandas mode, else positions.
        **options
            Engine options.

        Returns
        -------
        ndarray or Series of shape (n_rows,)
        """
        positions = self._train_positions(train_indices)
        result = self._final_estimator.self_influence(train_indices=positions, **options)
        return self._per_row(result, _as_positions(positions, self), "self_influence")

    @available_if(_final_step_has("self_loo_effect"))
    def self_loo_effect(self, *, method="influence", train_indices=None, **options):
        """Predicted increase of each training row's own loss when it is removed.

        Parameters
        ----------
        method : {"influence", "newton"}, default="influence"
        train_indices : array-like, default=None
            Labels in pandas mode, else positions.
        **options
            Engine options.

        Returns
        -------
        ndarray or Series of shape (n_rows,)
        """
        positions = self._train_positions(train_indices)
        result = self._final_estimator.self_loo_effect(
            method=method, train_indices=positions, **options)
        return self._per_row(result, _as_positions(positions, self), "self_loo_effect")

    @available_if(_final_step_has("rank_training_points"))
    def rank_training_points(self, X_test=None, y_test=None, *, kind=None, top_k=10,
                             method="influence", return_scores=False, **options):
        """Training rows ordered by their effect on raw test rows, or on themselves.

        Parameters
        ----------
        X_test, y_test : raw test data, default=None
            Without test data the ranking is by self-influence.
        kind : {"harmful", "helpful", "influential", "self"}, default=None
            See :meth:`skinfluence.Influence.rank_training_points`.
        top_k : int or None, default=10
        method : {"influence", "newton"}, default="influence"
        return_scores : bool, default=False
        **options
            Engine options.

        Returns
        -------
        rows : ndarray or pandas Index of shape (top_k,)
            Positions, or index labels in pandas mode.
        scores : ndarray or Series of shape (top_k,), only when ``return_scores``
            Predicted change of the total test loss (own loss for ``"self"``) on
            removal, indexed by the same labels in pandas mode.
        """
        Xt = None if X_test is None else self._transform_rows(X_test)
        order = self._final_estimator.rank_training_points(
            Xt, y_test, kind=kind, top_k=top_k, method=method, return_scores=True, **options)
        positions, scores = order
        if self._pandas_mode():
            import pandas as pd

            labels = self._train_labels(positions)
            scores = pd.Series(scores, index=labels, name="score")
            positions = labels
        return (positions, scores) if return_scores else positions

    @available_if(_final_step_has("edit_effect"))
    def edit_effect(self, train_indices, X_test, y_test, *, X_new=None, y_new=None,
                    method="influence", **options):
        """Predicted change in test losses when training rows are edited one at a time.

        Parameters
        ----------
        train_indices : array-like of shape (n_edits,)
            Rows to edit: labels in pandas mode, else positions.
        X_test, y_test : raw test data
        X_new : array-like or DataFrame of shape (n_edits, n_features), default=None
            New raw features (they pass through the fitted preprocessing).
        y_new : array-like of shape (n_edits,), default=None
            New targets.
        method : {"influence", "newton"}, default="influence"
        **options
            Engine options.

        Returns
        -------
        ndarray or DataFrame of shape (n_edits, n_test)
        """
        positions = self._train_positions(train_indices)
        X_new_t = None if X_new is None else self._transform_rows(X_new)
        result = self._final_estimator.edit_effect(
            positions, self._transform_rows(X_test), y_test, X_new=X_new_t, y_new=y_new,
            method=method, **options)
        return self._rows_by_tests(result, _as_positions(positions, self), X_test)

    @available_if(_final_step_has("group_effect"))
    def group_effect(self, groups, X_test, y_test, *, method="influence", **options):
        """Predicted change in test losses when whole groups of training rows are removed.

        Parameters
        ----------
        groups : list of array-like, or array-like of shape (n_train,)
            A list of row sets (labels in pandas mode, else positions), or one group
            label per training row (groups in sorted order).
        X_test, y_test : raw test data
        method : {"influence", "newton"}, default="influence"
        **options
            Engine options.

        Returns
        -------
        ndarray or DataFrame of shape (n_groups, n_test)
            In pandas mode indexed by group number (list input) or group label.
        """
        group_names = None
        if isinstance(groups, (list, tuple)) and groups and np.ndim(groups[0]) > 0:
            groups = [self._train_positions(g) for g in groups]
            group_names = np.arange(len(groups))
        else:
            if _is_series(groups) and self._pandas_mode():
                groups = groups.reindex(self._training_input().index)
            groups = np.asarray(groups)
            if groups.ndim == 1 and groups.shape[0] == _num_rows(self._training_input()):
                group_names = np.unique(groups)
        result = self._final_estimator.group_effect(
            groups, self._transform_rows(X_test), y_test, method=method, **options)
        if not self._pandas_mode():
            return result
        import pandas as pd

        return pd.DataFrame(result, index=group_names,
                            columns=self._test_labels(X_test, result.shape[1]))

    @available_if(_final_step_has("perturbation_influence"))
    def perturbation_influence(self, X_test, y_test, *, train_indices=None, aggregate=None,
                               **options):
        """Koh & Liang's ``I_pert,loss`` in the units of the original input features.

        The final step's gradient in the transformed features is mapped back through the
        Jacobians of the fitted preprocessing (chain rule), with the preprocessing held
        as fitted.  Moving training row ``i`` by a small ``delta`` (in raw units)
        changes the loss at ``t`` by about ``result[i, t] @ delta / n_train``.

        Parameters
        ----------
        X_test, y_test : raw test data
        train_indices : array-like, default=None
            Labels in pandas mode, else positions.
        aggregate : {None, "sum", "mean"}, default=None
            Reduce over test points.
        **options
            Engine options.

        Returns
        -------
        ndarray of shape (n_rows, n_test, n_features) or (n_rows, n_features)
            NaN for inputs without a derivative: columns that reach the model only
            through a categorical encoder, and entries missing in the training row.  In
            pandas mode a DataFrame with the input columns, indexed by training label
            (aggregated) or by (training label, test label).

        Raises
        ------
        ValueError
            When a preprocessing step's Jacobian is unknown, or no input column has a
            derivative.
        """
        jacobian, undefined = pipeline_input_jacobian(self)
        if np.all(undefined):
            raise ValueError(
                "perturbation_influence has nothing to report: every input column reaches "
                "the model through a non-differentiable step (categorical encoding)."
            )
        positions = self._train_positions(train_indices)
        grad = self._final_estimator.perturbation_influence(
            self._transform_rows(X_test), y_test, train_indices=positions,
            aggregate=aggregate, **options)
        grad = grad @ jacobian  # d loss / d x = d loss / d z @ d z / d x
        grad[..., undefined] = np.nan
        rows = _as_positions(positions, self)
        missing = _missing_mask(self._training_input())
        if missing is not None:
            missing = missing if rows is None else missing[rows]
            mask = missing[:, None, :] if grad.ndim == 3 else missing
            grad = np.where(np.broadcast_to(mask, grad.shape), np.nan, grad)
        if not self._pandas_mode():
            return grad
        import pandas as pd

        train_labels = self._train_labels(rows)
        if grad.ndim == 2:
            return pd.DataFrame(grad, index=train_labels, columns=self._feature_labels())
        test_labels = self._test_labels(X_test, grad.shape[1])
        index = pd.MultiIndex.from_product([train_labels, test_labels],
                                           names=["train", "test"])
        return pd.DataFrame(grad.reshape(-1, grad.shape[2]), index=index,
                            columns=self._feature_labels())


def _is_series(obj) -> bool:
    return hasattr(obj, "reindex") and hasattr(obj, "dtype") and not hasattr(obj, "columns")


def _as_positions(positions, pipe: Pipeline):
    """Positions as an integer array (None for all rows), booleans resolved."""
    if positions is None:
        return None
    positions = np.asarray(positions)
    if positions.dtype == bool:
        return np.flatnonzero(positions)
    return positions % _num_rows(pipe._training_input())


def _missing_mask(X):
    """Boolean (n, d) mask of missing entries, or None when there can be none."""
    if _is_dataframe(X):
        return X.isna().to_numpy()
    if hasattr(X, "toarray") or not hasattr(X, "dtype"):
        return None
    X = np.asarray(X)
    if X.dtype.kind == "f":
        return np.isnan(X)
    if X.dtype.kind == "O":
        return np.vectorize(lambda v: v is None or v != v, otypes=[bool])(X)
    return None


def make_pipeline(*steps, memory=None, transform_input=None, verbose=False) -> Pipeline:
    """A skinfluence :class:`Pipeline` from estimators, named after their classes.

    Parameters
    ----------
    *steps : list of estimators
    memory, transform_input, verbose
        As for :func:`sklearn.pipeline.make_pipeline`.

    Returns
    -------
    Pipeline
    """
    named = _sk_pipeline.make_pipeline(*steps, memory=memory, transform_input=transform_input,
                                       verbose=verbose)
    return Pipeline(named.steps, memory=memory, transform_input=transform_input,
                    verbose=verbose)


# -------------------------------------------------------------------------------------
# Jacobians of fitted preprocessing steps
# -------------------------------------------------------------------------------------
#: step class -> function(fitted_step, n_inputs) -> (jacobian (n_out, n_in), undefined (n_in,))
_JACOBIANS: dict[type, Callable] = {}


def register_jacobian(step_class: type, jacobian: Callable) -> None:
    """Teach :meth:`Pipeline.perturbation_influence` the derivative of a transformer.

    Parameters
    ----------
    step_class : type
        The transformer class (subclasses are covered too).
    jacobian : callable
        ``jacobian(fitted_step, n_inputs)`` returning ``(J, undefined)``: ``J`` of shape
        ``(n_outputs, n_inputs)`` with ``J[j, k] = d output_j / d input_k`` (a constant:
        the step must be affine in its input), and a boolean ``undefined`` of shape
        ``(n_inputs,)`` marking inputs without a derivative (categorical codes).
    """
    _JACOBIANS[step_class] = jacobian


def step_jacobian(step, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian of one fitted step (see :func:`register_jacobian`).

    Parameters
    ----------
    step : fitted transformer, ``"passthrough"`` or None
    n_inputs : int
        Number of input columns of the step.

    Returns
    -------
    jacobian : ndarray of shape (n_outputs, n_inputs)
    undefined : ndarray of bool of shape (n_inputs,)
    """
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return np.eye(n_inputs), np.zeros(n_inputs, dtype=bool)
    for cls in type(step).__mro__:
        if cls in _JACOBIANS:
            return _JACOBIANS[cls](step, n_inputs)
    known = ", ".join(sorted(c.__name__ for c in _JACOBIANS))
    raise ValueError(
        f"perturbation_influence cannot differentiate through {type(step).__name__}: its "
        f"Jacobian is not a known constant (known: {known}). Register one with "
        "skinfluence.pipeline.register_jacobian, or compute the influence on the "
        "transformed features with pipe[-1].perturbation_influence."
    )


def _compose(steps, n_inputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian of steps applied in order; an input is undefined if any path is."""
    jac = np.eye(n_inputs)
    undefined = np.zeros(n_inputs, dtype=bool)
    for step in steps:
        step_jac, step_undefined = step_jacobian(step, jac.shape[0])
        # an input feeding an undefined intermediate column is undefined itself
        undefined |= np.any(jac[step_undefined] != 0, axis=0)
        jac = step_jac @ jac
    return jac, undefined


def pipeline_input_jacobian(pipe) -> tuple[np.ndarray, np.ndarray]:
    """Jacobian of a fitted pipeline's preprocessing (every step but the last).

    Parameters
    ----------
    pipe : fitted :class:`sklearn.pipeline.Pipeline`

    Returns
    -------
    jacobian : ndarray of shape (n_transformed_features, n_features_in)
    undefined : ndarray of bool of shape (n_features_in,)
    """
    check_is_fitted(pipe)
    steps = [step for _, step in pipe.steps[:-1]]
    return _compose(steps, _n_features_in(pipe))


def _n_features_in(pipe) -> int:
    for _, step in pipe.steps:
        if hasattr(step, "n_features_in_"):
            return int(step.n_features_in_)
    raise ValueError("Cannot tell how many input features this pipeline takes.")


def _diagonal(scale) -> Callable:
    def jacobian(step, n_inputs):
        factor = scale(step)
        factor = np.ones(n_inputs) if factor is None else np.asarray(factor, dtype=float)
        return np.diag(np.broadcast_to(factor, (n_inputs,)).copy()), np.zeros(n_inputs, bool)

    return jacobian


def _categorical_jacobian(step, n_inputs):
    n_out = len(step.get_feature_names_out())
    return np.zeros((n_out, n_inputs)), np.ones(n_inputs, dtype=bool)


def _imputer_jacobian(step: SimpleImputer, n_inputs):
    # observed values pass through unchanged (columns with no observed value are
    # dropped unless keep_empty_features); missing-indicator columns do not move
    # when an observed value moves.  Missing entries are masked by the caller.
    stats = np.asarray(step.statistics_)
    if step.keep_empty_features:
        kept = np.arange(n_inputs)
    else:
        empty = np.array([s is None or s != s for s in stats], dtype=bool) \
            if stats.dtype.kind == "O" else np.isnan(stats.astype(float))
        kept = np.flatnonzero(~empty)
    n_indicators = 0 if step.indicator_ is None else len(step.indicator_.features_)
    jac = np.zeros((kept.size + n_indicators, n_inputs))
    jac[np.arange(kept.size), kept] = 1.0
    return jac, np.zeros(n_inputs, dtype=bool)


def _function_jacobian(step: FunctionTransformer, n_inputs):
    if step.func is None:
        return np.eye(n_inputs), np.zeros(n_inputs, dtype=bool)
    raise ValueError(
        "perturbation_influence cannot differentiate through a FunctionTransformer with "
        f"func={step.func!r}; register a Jacobian for a dedicated transformer class."
    )


def _pca_jacobian(step: PCA, n_inputs):
    jac = np.asarray(step.components_, dtype=float)
    if step.whiten:
        jac = jac / np.sqrt(step.explained_variance_)[:, None]
    return jac, np.zeros(n_inputs, dtype=bool)


def _pipeline_jacobian(step, n_inputs):
    return _compose([s for _, s in step.steps], n_inputs)


def _column_transformer_jacobian(step: ColumnTransformer, n_inputs):
    inputs = step._transformer_to_input_indices  # name -> input columns (set at fit)
    n_out = sum(s.stop - s.start for s in step.output_indices_.values())
    jac = np.zeros((n_out, n_inputs))
    undefined = np.zeros(n_inputs, dtype=bool)
    weights = step.transformer_weights or {}
    for name, transformer, _ in step.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        cols = np.asarray(inputs[name], dtype=np.intp)
        out = step.output_indices_[name]
        if cols.size == 0 or out.stop == out.start:
            continue
        sub_jac, sub_undefined = step_jacobian(transformer, cols.size)
        jac[out, cols] = weights.get(name, 1.0) * sub_jac
        undefined[cols[sub_undefined]] = True
    return jac, undefined


register_jacobian(StandardScaler, _diagonal(
    lambda s: None if s.scale_ is None else 1.0 / s.scale_))
register_jacobian(MinMaxScaler, _diagonal(lambda s: s.scale_))
register_jacobian(MaxAbsScaler, _diagonal(lambda s: 1.0 / s.scale_))
register_jacobian(SimpleImputer, _imputer_jacobian)
register_jacobian(FunctionTransformer, _function_jacobian)
register_jacobian(PCA, _pca_jacobian)
register_jacobian(OneHotEncoder, _categorical_jacobian)
register_jacobian(OrdinalEncoder, _categorical_jacobian)
register_jacobian(_sk_pipeline.Pipeline, _pipeline_jacobian)
register_jacobian(ColumnTransformer, _column_transformer_jacobian)
